import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { replayCommand } from '../../sim/replayArg.js';
import type { Scenario, SimTiming } from '../../sim/scenario.js';
import { simulate } from '../../sim/simulator.js';
import { scenarioArb } from './arbitraries.js';

// The whole pipeline (machine + simulator + checkers + shrinking) must catch a real protocol bug: a deliberately
// unsafe configuration (renew deadline ≥ lease duration), and a resource with fencing switched off.

const unsafeTiming: fc.Arbitrary<SimTiming> = fc
  .record({ leaseDurationMs: fc.integer({ min: 500, max: 1500 }), over: fc.double({ min: 1, max: 1.6, noNaN: true }) })
  .map(({ leaseDurationMs, over }) => ({ leaseDurationMs, renewDeadlineMs: Math.round(leaseDurationMs * over), retryPeriodMs: 100, maxDriftRate: 0.01 }));

const unsafeScenarios = scenarioArb({ breakAssumptions: false, wipe: false }, { timing: unsafeTiming, unsafeTiming: true, fencing: false, maxNodes: 4, maxFaults: 6 });

const found = new Map<string, Promise<{ scenario: Scenario; message: string }>>();
const findCounterExample = (checker: string) => {
  if (!found.has(checker)) found.set(checker, search(checker));
  return found.get(checker)!;
};

async function search(checker: string): Promise<{ scenario: Scenario; message: string }> {
  const out = await fc.check(
    fc.asyncProperty(unsafeScenarios, async (s) => {
      const r = await simulate(s, { traceStore: false });
      return !r.violations.some((v) => v.checker === checker);
    }),
    { numRuns: 300, seed: 20240601 },
  );
  expect(out.failed).toBe(true);
  const scenario = out.counterexample![0];
  const r = await simulate(scenario, { traceStore: false });
  const v = r.violations.find((x) => x.checker === checker)!;
  return { scenario, message: `[${checker}] ${v.message}${v.expected ? ' (expected: unsafe-timing)' : ''}` };
}

function report(label: string, c: { scenario: Scenario; message: string }) {
  const s = c.scenario;
  console.log(
    `${label}\n  seed ${s.seed}, ${s.nodes} nodes, lease ${s.timing.leaseDurationMs} / renew deadline ${s.timing.renewDeadlineMs} / retry ${s.timing.retryPeriodMs} ms, fencing ${s.fencing ? 'on' : 'off'}\n  shrunk schedule: ${JSON.stringify(s.faults)}\n  ${c.message}\n  ${replayCommand(s)}`,
  );
}

describe('the pipeline catches real protocol bugs', () => {
  it('unsafe timing (renew deadline ≥ lease duration): two nodes lead at once, found and shrunk', async () => {
    const c = await findCounterExample('real-time-exclusivity');
    report('counter-example (real-time exclusivity):', c);
    expect(c.scenario.faults.length).toBeLessThanOrEqual(2);
    expect(c.scenario.timing.renewDeadlineMs).toBeGreaterThanOrEqual(c.scenario.timing.leaseDurationMs);
  }, 300_000);

  it('fencing switched off in the resource: a deposed leader’s write lands after its successor’s, found and shrunk', async () => {
    const c = await findCounterExample('fenced-writes-monotone');
    report('counter-example (fenced writes, fencing off):', c);
    expect(c.scenario.fencing).toBe(false);
  }, 300_000);

  it('the same scenarios with fencing on keep the resource monotone', async () => {
    const c = await findCounterExample('fenced-writes-monotone');
    const r = await simulate({ ...c.scenario, fencing: true }, { traceStore: false });
    expect(r.violations.filter((v) => v.checker === 'fenced-writes-monotone')).toEqual([]);
    expect(r.stats.rejectedWrites).toBeGreaterThan(0);
  }, 300_000);
});
