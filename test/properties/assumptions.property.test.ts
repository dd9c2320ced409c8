import fc from 'fast-check';
import { describe, it } from 'vitest';
import { scenarioArb, share } from './arbitraries.js';
import { assertNoUnexpectedViolations } from './check.js';

const runs = share(0.35);

describe('election properties beyond the assumptions', () => {
  it(`fencing, one leader per epoch, self-fencing, liveness and per-node epoch order hold unconditionally; broken exclusivity is reported as expected (${runs} scenarios)`, async () => {
    await fc.assert(fc.asyncProperty(scenarioArb({ breakAssumptions: true, wipe: true }), assertNoUnexpectedViolations), {
      numRuns: runs,
      seed: process.env.FENCED_LEADER_FC_SEED ? Number(process.env.FENCED_LEADER_FC_SEED) : undefined,
    });
  }, 600_000);
});
