import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exclusivityMarginMs, generateScenario } from '../../sim/scenario.js';
import { simulate } from '../../sim/simulator.js';
import { scenarioArb } from '../properties/arbitraries.js';

// Does the fault generator produce each fault, and the dangerous ones where the proof needs them? (review)

describe('generator coverage (generateScenario, the CLI / npm run sim default)', () => {
  it('every fault kind of the default mix shows up over 200 seeds; store wipes only when asked for', () => {
    const counts: Record<string, number> = {};
    let maxDriftShare = 0;
    let aimed = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const s = generateScenario(seed);
      const rho = s.timing.maxDriftRate;
      for (const f of s.faults) {
        counts[f.kind] = (counts[f.kind] ?? 0) + 1;
        if (f.kind === 'drift') maxDriftShare = Math.max(maxDriftShare, (Math.abs(f.driftRate) + s.clocks[f.node]!.wobbleRate) / rho);
        if (f.kind === 'resource-delay' && f.target === 'leader') aimed++;
      }
      for (const c of s.clocks) maxDriftShare = Math.max(maxDriftShare, (Math.abs(c.driftRate) + c.wobbleRate) / rho);
    }
    for (const k of ['partition', 'flap', 'pause', 'crash', 'clock-jump', 'drift', 'loss', 'resource-delay']) expect(counts[k] ?? 0, k).toBeGreaterThan(50);
    expect(aimed).toBeGreaterThan(50);
    expect(maxDriftShare).toBeGreaterThan(0.95);
    // A wipe breaks a stated assumption (store data loss): the default campaign leaves it out, `--faults ...,wipe` adds it.
    expect(counts['store-wipe'] ?? 0).toBe(0);
    let wipes = 0;
    for (let seed = 1; seed <= 50; seed++) wipes += generateScenario(seed, { faults: ['partition', 'crash', 'wipe'] }).faults.filter((f) => f.kind === 'store-wipe').length;
    expect(wipes).toBeGreaterThan(0);
  });

  it('within the assumptions, no pause is longer than the margin', () => {
    let over = 0;
    let pauses = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const s = generateScenario(seed);
      for (const f of s.faults)
        if (f.kind === 'pause') {
          pauses++;
          if (f.durationMs > exclusivityMarginMs(s.timing)) over++;
        }
    }
    expect(pauses).toBeGreaterThan(100);
    expect(over).toBe(0);
  });

  it('adding resource delays left every other fault of a seed as it was (their own random stream)', () => {
    for (const seed of [1, 2, 3]) {
      const all = generateScenario(seed).faults.filter((f) => f.kind !== 'resource-delay');
      const without = generateScenario(seed, { faults: ['partition', 'skew', 'drift', 'pause', 'crash', 'loss'] }).faults;
      expect(all).toEqual(without);
    }
  });
});

describe('the fence is exercised within the assumptions', () => {
  it('the FenceGuard rejects writes in 60 within-assumption property scenarios (resource-delay faults), and every checker holds', async () => {
    const samples = fc.sample(scenarioArb({ breakAssumptions: false, wipe: false }, { maxFaults: 8 }), { numRuns: 60, seed: 42 });
    let rejected = 0;
    let runs = 0;
    for (const s of samples) {
      const r = await simulate(s, { traceStore: false });
      rejected += r.stats.rejectedWrites;
      if (r.stats.rejectedWrites > 0) runs++;
      expect(r.violations.filter((v) => !v.expected)).toEqual([]);
    }
    expect(rejected).toBeGreaterThan(0);
    expect(runs).toBeGreaterThan(2);
  }, 300_000);
});
