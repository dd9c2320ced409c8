import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scenarioArb, share } from './arbitraries.js';
import { assertNoUnexpectedViolations } from './check.js';

const runs = share(0.65);

describe('election properties within the stated assumptions', () => {
  it(`all seven checkers hold (stability too): drift ≤ maxDriftRate, pauses ≤ margin, any partitions/crashes/loss/jumps (${runs} scenarios)`, async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb({ breakAssumptions: false, wipe: false }), assertNoUnexpectedViolations),
      { numRuns: runs, seed: process.env.FENCED_LEADER_FC_SEED ? Number(process.env.FENCED_LEADER_FC_SEED) : undefined },
    );
    expect(runs).toBeGreaterThan(0);
  }, 600_000);
});
