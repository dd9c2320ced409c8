import fc from 'fast-check';
import type { ClockSpec } from '../../sim/clock.js';
import { type FaultSpec, quietTailMs, type Scenario, type SimTiming } from '../../sim/scenario.js';

/** Total scenarios across the property files; `npm run test:soak` raises it. */
export const TOTAL_SCENARIOS = Math.max(1, Number(process.env.FENCED_LEADER_SCENARIOS ?? 1000));
export const share = (fraction: number) => Math.max(1, Math.round(TOTAL_SCENARIOS * fraction));

/** Valid timing options: the validation inequality holds (with a hair of room) and retry < renew deadline. */
export const timingArb: fc.Arbitrary<SimTiming> = timingArbWith(0.3)

/** Timing options with the renew deadline at least `minShare` of its largest valid value. */
export function timingArbWith(minShare: number): fc.Arbitrary<SimTiming> {
  return fc
  .record({
    maxDriftRate: fc.constantFrom(0, 0.001, 0.01, 0.03),
    leaseDurationMs: fc.integer({ min: 500, max: 2500 }),
    // Weighted towards the edge: a renew deadline just inside the validation inequality leaves the least margin.
    deadlineShare: fc.oneof(fc.double({ min: minShare, max: 0.995, noNaN: true }), fc.double({ min: Math.max(minShare, 0.97), max: 0.999, noNaN: true })),
    retryShare: fc.double({ min: 0.15, max: 0.6, noNaN: true }),
    timeoutShare: fc.option(fc.double({ min: 0.3, max: 1, noNaN: true }), { nil: undefined }),
  })
  .map(({ maxDriftRate, leaseDurationMs, deadlineShare, retryShare, timeoutShare }) => {
    const maxDeadline = Math.ceil((leaseDurationMs * (1 - maxDriftRate)) / (1 + maxDriftRate)) - 1;
    const renewDeadlineMs = Math.max(100, Math.floor(maxDeadline * deadlineShare));
    const retryPeriodMs = Math.max(50, Math.min(renewDeadlineMs - 1, Math.floor(renewDeadlineMs * retryShare)));
    const t: SimTiming = { leaseDurationMs, renewDeadlineMs, retryPeriodMs, maxDriftRate };
    return timeoutShare === undefined ? t : { ...t, requestTimeoutMs: Math.max(1, Math.floor(renewDeadlineMs * timeoutShare)) };
  });
}

export interface FaultBounds {
  /** Allow pauses longer than the margin and drift beyond maxDriftRate. */
  readonly breakAssumptions: boolean;
  readonly wipe: boolean;
}

function faultArb(nodes: number, windowMs: number, t: SimTiming, clocks: readonly ClockSpec[], margin: number, b: FaultBounds): fc.Arbitrary<FaultSpec> {
  const at = fc.integer({ min: 0, max: windowMs - 10 });
  const node = fc.integer({ min: 0, max: nodes - 1 });
  const dur = (max: number) => fc.integer({ min: 1, max: Math.max(1, max) });
  const rho = t.maxDriftRate;
  const kinds: fc.Arbitrary<FaultSpec>[] = [
    fc.record({ kind: fc.constant('partition' as const), at, node, durationMs: dur(3000), direction: fc.constantFrom('both' as const, 'to-store' as const, 'from-store' as const) }),
    fc.record({ kind: fc.constant('flap' as const), at, node, durationMs: dur(3000), periodMs: fc.integer({ min: 20, max: 600 }) }),
    fc.record({ kind: fc.constant('pause' as const), at, node, durationMs: dur(b.breakAssumptions ? 3000 : margin) }),
    fc.record({ kind: fc.constant('crash' as const), at, node, durationMs: dur(3000) }),
    fc.record({ kind: fc.constant('clock-jump' as const), at, node, jumpMs: fc.integer({ min: -86_400_000, max: 86_400_000 }) }),
    fc
      .record({ kind: fc.constant('drift' as const), at, node, durationMs: dur(3000), share: fc.double({ min: -1, max: 1, noNaN: true }) })
      .map(({ share, ...f }) => {
        const room = b.breakAssumptions ? 0.3 : Math.max(0, rho - (clocks[f.node]?.wobbleRate ?? 0)) * 0.999;
        return { ...f, driftRate: share * room };
      }),
    fc.record({
      kind: fc.constant('loss' as const),
      at,
      durationMs: dur(3000),
      requestLoss: fc.double({ min: 0, max: 0.6, noNaN: true }),
      replyLoss: fc.double({ min: 0, max: 0.6, noNaN: true }),
      duplicate: fc.double({ min: 0, max: 0.4, noNaN: true }),
    }),
    // A node's writes to the resource sit in a network queue well past its deadline (within the assumptions), mostly
    // aimed at the leader and paired with a cut from the store long enough to lose the lease: the dangerous case
    // fencing exists for (a successor writes before the queued writes land).
    fc
      .record({
        kind: fc.constant('resource-delay' as const),
        at,
        node,
        durationMs: dur(3000),
        delayMs: fc.integer({ min: t.renewDeadlineMs + t.leaseDurationMs, max: 4 * t.leaseDurationMs + t.renewDeadlineMs }),
        aim: fc.option(fc.integer({ min: Math.ceil(1.5 * t.leaseDurationMs), max: 3000 + t.leaseDurationMs }), { freq: 4 }),
      })
      .map(({ aim, ...f }): FaultSpec => (aim === null ? f : { ...f, target: 'leader', cutMs: aim })),
  ];
  if (b.wipe) kinds.push(fc.record({ kind: fc.constant('store-wipe' as const), at }));
  return fc.oneof(...kinds);
}

/** Scenarios: 2–7 nodes, valid timing, skewed/drifting/wobbling clocks, a fault schedule, then a quiet tail. */
export function scenarioArb(b: FaultBounds, o: { maxNodes?: number; maxFaults?: number; timing?: fc.Arbitrary<SimTiming>; unsafeTiming?: boolean; fencing?: boolean } = {}): fc.Arbitrary<Scenario> {
  return fc
    .record({
      seed: fc.integer({ min: 0, max: 0x7fffffff }),
      nodes: fc.integer({ min: 2, max: o.maxNodes ?? 7 }),
      timing: o.timing ?? timingArb,
      windowMs: fc.integer({ min: 1000, max: 5000 }),
      latencyShare: fc.double({ min: 0.01, max: 1, noNaN: true }),
    })
    .chain(({ seed, nodes, timing, windowMs, latencyShare }) => {
      // Within the assumptions a round trip beats the request timeout; beyond them, up to 60 ms one way regardless.
      const fast = Math.max(1, Math.floor((timing.requestTimeoutMs ?? timing.retryPeriodMs) / 2) - 1);
      const maxLatencyMs = Math.max(1, Math.round((b.breakAssumptions ? 60 : Math.min(60, fast)) * latencyShare));
      const rho = timing.maxDriftRate;
      const clock = fc
        .record({
          offsetMs: fc.integer({ min: 0, max: 1e9 }),
          wobble: fc.double({ min: 0, max: 0.5, noNaN: true }),
          drift: fc.double({ min: -1, max: 1, noNaN: true }),
          wobblePeriodMs: fc.integer({ min: 100, max: 5000 }),
          wallStartMs: fc.integer({ min: 1_600_000_000_000, max: 1_800_000_000_000 }),
        })
        .map(({ offsetMs, wobble, drift, wobblePeriodMs, wallStartMs }) => {
          const wobbleRate = rho * wobble;
          return { offsetMs, wobbleRate, driftRate: drift * (rho - wobbleRate) * 0.999, wobblePeriodMs, wallStartMs } satisfies ClockSpec;
        });
      return fc.array(clock, { minLength: nodes, maxLength: nodes }).chain((clocks) => {
        const margin = Math.max(1, Math.floor(timing.leaseDurationMs / (1 + rho) - timing.renewDeadlineMs / (1 - rho)));
        const network = { minLatencyMs: 0.5, maxLatencyMs };
        const faults = fc.array(faultArb(nodes, windowMs, timing, clocks, margin, b), { maxLength: o.maxFaults ?? 12 });
        return faults.map(
          (fs): Scenario => ({
            seed,
            nodes,
            timing,
            network,
            clocks,
            faults: [...fs].sort((x, y) => x.at - y.at),
            durationMs: windowMs + 3000 + quietTailMs({ timing, network }, 1 - Math.max(rho, b.breakAssumptions ? 0.31 : 0)),
            fencing: o.fencing ?? true,
            unsafeTiming: o.unsafeTiming ?? false,
            work: { intervalMs: 50, durationMs: 10 },
          }),
        );
      });
    });
}

export function describeScenario(s: Scenario): string {
  const t = s.timing;
  return `seed ${s.seed}, ${s.nodes} nodes, lease ${t.leaseDurationMs}/deadline ${t.renewDeadlineMs}/retry ${t.retryPeriodMs} ms, drift ≤ ${t.maxDriftRate}, faults ${JSON.stringify(s.faults)}`;
}
