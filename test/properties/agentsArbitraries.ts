import fc from 'fast-check';
import type { ClockSpec } from '../../sim/clock.js';
import { agentSettleMs, defaultAgentSpec, type FaultSpec, type Scenario } from '../../sim/scenario.js';
import { type FaultBounds, scenarioArb } from './arbitraries.js';

/**
 * Election scenarios (scenarioArb) plus 1–4 worker agents on hosts of their own with their own clocks and faults:
 * crashes (restart as a new process), pauses of any length, partitions; agent timing drawn around the election's;
 * mid-sweep stalls; a quiet tail long enough for a leader, a detection and a requeue.
 */
export function agentScenarioArb(b: FaultBounds, o: { maxNodes?: number; maxFaults?: number; maxAgentFaults?: number; stallChance?: fc.Arbitrary<number>; recover?: boolean } = {}): fc.Arbitrary<Scenario> {
  return scenarioArb(b, { maxNodes: o.maxNodes ?? 5, maxFaults: o.maxFaults ?? 8 }).chain((s) => {
    const rho = s.timing.maxDriftRate;
    const windowMs = Math.max(1000, ...s.faults.map((f) => f.at + ('durationMs' in f ? f.durationMs : 0)));
    return fc
      .record({
        count: fc.integer({ min: 1, max: 4 }),
        tasksPerAgent: fc.integer({ min: 1, max: 4 }),
        staleShare: fc.double({ min: 0.5, max: 2, noNaN: true }),
        sweepShare: fc.double({ min: 0.1, max: 1, noNaN: true }),
        stallChance: o.stallChance ?? fc.constantFrom(0, 0.1, 0.5),
        // Retention of stale agents, in units of staleAfterMs (0: never retired); outages last up to 3 × staleAfterMs.
        retentionShare: fc.constantFrom(0, 1.5, 2.5),
      })
      .chain(({ count, tasksPerAgent, staleShare, sweepShare, stallChance, retentionShare }) => {
        const base = defaultAgentSpec(s.timing, s.network.maxLatencyMs, count, count * tasksPerAgent);
        const staleAfterMs = Math.max(base.heartbeatIntervalMs * 4, Math.round(s.timing.leaseDurationMs * staleShare));
        const agents = {
          ...base,
          staleAfterMs,
          sweepIntervalMs: Math.max(10, Math.round(staleAfterMs * sweepShare)),
          stall: { chance: stallChance, maxMs: 2 * s.timing.leaseDurationMs },
          retention: retentionShare === 0 ? { goneMs: null, staleMs: null } : { goneMs: Math.round(staleAfterMs * retentionShare), staleMs: Math.round(staleAfterMs * retentionShare) },
          laterTasks: [{ at: Math.floor(windowMs / 2), count }],
          ...(o.recover === false ? { recover: false } : {}),
        };
        const clock: fc.Arbitrary<ClockSpec> = fc
          .record({ drift: fc.double({ min: -1, max: 1, noNaN: true }), offsetMs: fc.integer({ min: 0, max: 1e9 }) })
          .map(({ drift, offsetMs }) => ({ offsetMs, driftRate: drift * rho * 0.999, wobbleRate: 0, wobblePeriodMs: 1000, wallStartMs: 1_700_000_000_000 }));
        const host = fc.integer({ min: s.nodes, max: s.nodes + count - 1 });
        const at = fc.integer({ min: 0, max: windowMs });
        const dur = fc.integer({ min: 1, max: 3 * staleAfterMs });
        const fault: fc.Arbitrary<FaultSpec> = fc.oneof(
          fc.record({ kind: fc.constant('crash' as const), at, node: host, durationMs: dur }),
          fc.record({ kind: fc.constant('pause' as const), at, node: host, durationMs: dur }),
          fc.record({ kind: fc.constant('partition' as const), at, node: host, durationMs: dur, direction: fc.constantFrom('both' as const, 'to-store' as const, 'from-store' as const) }),
        );
        return fc.record({ clocks: fc.array(clock, { minLength: count, maxLength: count }), faults: fc.array(fault, { maxLength: o.maxAgentFaults ?? 6 }) }).map(
          ({ clocks, faults }): Scenario => {
            const all = [...s.faults, ...faults].sort((x, y) => x.at - y.at);
            const lastEnd = Math.max(0, ...all.map((f) => f.at + ('durationMs' in f ? f.durationMs : 0)));
            const settle = Math.ceil(agentSettleMs({ ...s, agents }, 1 - Math.max(rho, b.breakAssumptions ? 0.31 : 0)) * 1.25) + 500;
            return { ...s, clocks: [...s.clocks, ...clocks], faults: all, agents, durationMs: Math.max(s.durationMs, lastEnd + settle) };
          },
        );
      });
  });
}

export function describeAgentScenario(s: Scenario): string {
  const a = s.agents;
  return a
    ? `${a.count} agents (heartbeat ${a.heartbeatIntervalMs} / stale after ${a.staleAfterMs} / sweep ${a.sweepIntervalMs} ms, stall chance ${a.stall?.chance ?? 0}), ${a.tasks} tasks + ${a.laterTasks?.reduce((n, b) => n + b.count, 0) ?? 0} later`
    : 'no agents';
}
