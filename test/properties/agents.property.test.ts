import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { agentScenarioArb } from './agentsArbitraries.js';
import { assertAgentsHold } from './agentsCheck.js';
import { share } from './arbitraries.js';

// Agents and tasks under faults, within the election's assumptions: the seven election checkers and the seven agent
// checkers (no task lost, none completed twice, no requeue from a non-current epoch, detection within the bound, no
// active or busy agent retired from the index, every active agent indexed at the end, no agent retired before its
// retention period).
const runs = share(0.3);

describe('agent properties', () => {
  it(`no task lost or completed twice, sweeps only at the current epoch, stale agents detected within the bound (${runs} scenarios)`, async () => {
    await fc.assert(fc.asyncProperty(agentScenarioArb({ breakAssumptions: false, wipe: false }), (s) => assertAgentsHold(s)), {
      numRuns: runs,
      seed: process.env.FENCED_LEADER_FC_SEED ? Number(process.env.FENCED_LEADER_FC_SEED) : undefined,
    });
    expect(runs).toBeGreaterThan(0);
  }, 600_000);
});
