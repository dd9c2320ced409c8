import { describe, expect, it } from 'vitest';
import {
  defaultCheckers,
  epochMonotoneView,
  fencedWritesMonotone,
  liveness,
  oneLeaderPerEpoch,
  realTimeExclusivity,
  runCheckers,
  selfFencing,
  stability,
} from '../../sim/checkers.js';
import { TRACE_FORMAT, type TraceLine } from '../../sim/trace.js';

// Hand-made histories: each checker must flag its bad one and pass the good one.

const meta = (over: Record<string, unknown> = {}, violatedAssumptions: string[] = []): TraceLine => ({
  kind: 'meta',
  format: TRACE_FORMAT,
  seed: 1,
  nodes: ['n1', 'n2'],
  options: {
    leaseDurationMs: 1000,
    renewDeadlineMs: 600,
    retryPeriodMs: 200,
    maxDriftRate: 0.01,
    requestTimeoutMs: 200,
    maxLatencyMs: 10,
    slowestClockRate: 1,
    durationMs: 20_000,
    ...over,
  },
  violatedAssumptions,
});

const tr = (t: number, node: string, from: string, to: string, epoch: number | null, extra: Partial<TraceLine> = {}): TraceLine =>
  ({ t, kind: 'transition', node, from, to, event: 'x', epoch, localTime: t, deadlineAt: to.startsWith('leader') ? t + 600 : null, ...extra }) as TraceLine;

const res = (t: number, node: string, token: number, accepted = true): TraceLine => ({ t, kind: 'resource', node, token, accepted, highWater: token });

/** n1 wins epoch 1, n2 sees it, the store is wiped, and n2 (same incarnation) wins epoch 1 again: rule 2 broken. */
function wipedAndRewon(): TraceLine[] {
  return [
    meta({}, ['store-data-loss']),
    tr(0, 'n1', 'candidate', 'leader.holding', 1, { highestEpochSeen: 1, incarnation: 0 }),
    tr(50, 'n2', 'follower.reading', 'follower.waiting', null, { highestEpochSeen: 1, incarnation: 0 }),
    { t: 3000, kind: 'fault', fault: 'store-wipe' } as TraceLine,
    tr(3200, 'n2', 'candidate', 'leader.holding', 1, { highestEpochSeen: 1, incarnation: 0 }),
  ];
}

describe('checker 1: one leader per epoch', () => {
  it('flags two nodes holding the same epoch', () => {
    const bad = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 3), tr(500, 'n1', 'leader.holding', 'fenced', 3), tr(2000, 'n2', 'candidate', 'leader.holding', 3)];
    expect(oneLeaderPerEpoch.check(bad)).toHaveLength(1);
  });
  it('passes distinct epochs', () => {
    const good = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 3), tr(2000, 'n2', 'candidate', 'leader.holding', 4)];
    expect(oneLeaderPerEpoch.check(good)).toEqual([]);
  });
  it('reports it as expected when the store lost its data on purpose', () => {
    const bad = [meta({}, ['store-data-loss']), tr(0, 'n1', 'candidate', 'leader', 1), tr(9, 'n2', 'candidate', 'leader', 1)];
    expect(runCheckers(bad, [oneLeaderPerEpoch])[0]?.expected).toBe(true);
  });
  it('never excuses a win of an epoch the winner had already seen (rule 2), wipe or not (review)', () => {
    const bad = wipedAndRewon();
    const found = runCheckers(bad, [oneLeaderPerEpoch]);
    expect(found).toHaveLength(1);
    expect(found[0]!.expected).toBe(false);
    expect(found[0]!.message).toMatch(/rule 2/);
    // A restarted n2 (new incarnation, memory lost) never saw epoch 1: the wipe excuses it.
    const restarted = bad.map((l) => (l.kind === 'transition' && l.t === 3200 ? ({ ...l, incarnation: 1, highestEpochSeen: 1 } as TraceLine) : l));
    expect(runCheckers(restarted, [oneLeaderPerEpoch])[0]?.expected).toBe(true);
  });
});

describe('checker 2: fenced writes are monotone', () => {
  it('flags a lower token accepted after a higher one', () => {
    const bad = [meta(), res(10, 'n2', 5), res(20, 'n1', 4)];
    expect(fencedWritesMonotone.check(bad)).toHaveLength(1);
  });
  it('passes when the lower token was rejected, and is unconditional', () => {
    const good = [meta(), res(10, 'n2', 5), res(20, 'n1', 4, false), res(30, 'n2', 5)];
    expect(fencedWritesMonotone.check(good)).toEqual([]);
    const bad = [meta({}, ['drift-beyond-max', 'long-pause', 'unsafe-timing', 'store-data-loss']), res(10, 'n2', 5), res(20, 'n1', 4)];
    expect(runCheckers(bad, [fencedWritesMonotone])[0]?.expected).toBe(false);
  });
  it('flags one token accepted from two holders; expected after a wipe only if the later holder never saw the epoch (review)', () => {
    const history = (n2SeenBefore: number, violated: string[]) => [
      meta({}, violated),
      tr(0, 'n1', 'candidate', 'leader.holding', 1, { highestEpochSeen: 1, incarnation: 0 }),
      tr(50, 'n2', 'follower.reading', 'follower.waiting', null, { highestEpochSeen: n2SeenBefore, incarnation: 0 }),
      { t: 3000, kind: 'fault', fault: 'store-wipe' } as TraceLine,
      tr(3200, 'n2', 'candidate', 'leader.holding', 1, { highestEpochSeen: 1, incarnation: 0 }),
      res(3210, 'n2', 1),
      res(3290, 'n1', 1), // the deposed leader's delayed write lands after its successor's, and is accepted
      res(3300, 'n2', 1),
      tr(3310, 'n1', 'leader.verifying', 'fenced', 1, { highestEpochSeen: 1, incarnation: 0 }),
    ];
    const seen = runCheckers(history(1, ['store-data-loss']), [fencedWritesMonotone]);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((v) => !v.expected)).toBe(true);
    const unseen = runCheckers(history(0, ['store-data-loss']), [fencedWritesMonotone]);
    expect(unseen.length).toBeGreaterThan(0);
    expect(unseen.every((v) => v.expected)).toBe(true);
    // Without a wipe two holders of one epoch are never expected.
    expect(runCheckers(history(0, []), [fencedWritesMonotone]).every((v) => !v.expected)).toBe(true);
    // One holder writing the same token again (or a new incarnation's holder being told apart) is judged by holder.
    expect(fencedWritesMonotone.check([meta(), res(10, 'n1', 3), res(20, 'n1', 3)])).toEqual([]);
    const twoIncarnations = [meta(), { ...(res(10, 'n1', 3) as object), incarnation: 0 } as TraceLine, { ...(res(20, 'n1', 3) as object), incarnation: 1 } as TraceLine];
    expect(fencedWritesMonotone.check(twoIncarnations)).toHaveLength(1);
  });
  it('the whole review history: only unexpected findings, from both checkers', () => {
    const trace = [
      ...wipedAndRewon(),
      res(3210, 'n2', 1),
      res(3290, 'n1', 1),
      res(3300, 'n2', 1),
      tr(3310, 'n1', 'leader.verifying', 'fenced', 1, { highestEpochSeen: 1, incarnation: 0 }),
    ];
    const unexpected = new Set(runCheckers(trace).filter((v) => !v.expected).map((v) => v.checker));
    expect([...unexpected].sort()).toEqual(['fenced-writes-monotone', 'one-leader-per-epoch']);
  });
});

describe('checker 3: real-time exclusivity', () => {
  const overlap = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 1), tr(900, 'n2', 'candidate', 'leader.holding', 2), tr(950, 'n1', 'leader.holding', 'fenced', 1)];
  it('flags two nodes in leader at the same instant', () => {
    const found = realTimeExclusivity.check(overlap);
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toMatch(/overlap 50 ms/);
  });
  it('passes a clean hand-over, and marks overlaps expected when drift was broken on purpose', () => {
    const good = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 1), tr(600, 'n1', 'leader.holding', 'fenced', 1), tr(1100, 'n2', 'candidate', 'leader.holding', 2)];
    expect(realTimeExclusivity.check(good)).toEqual([]);
    const expected = [{ ...(overlap[0] as any), violatedAssumptions: ['drift-beyond-max'] }, ...overlap.slice(1)];
    expect(runCheckers(expected, [realTimeExclusivity])[0]?.expected).toBe(true);
  });
  it('treats an open leader interval as lasting to the end of the run', () => {
    const bad = [meta(), tr(0, 'n1', 'candidate', 'leader', 1), tr(5000, 'n2', 'candidate', 'leader', 2)];
    expect(realTimeExclusivity.check(bad)).toHaveLength(1);
  });
});

describe('checker 4: self-fencing', () => {
  it('flags a token claimed past the deadline the machine recorded', () => {
    const bad = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineAt: 600 }), { t: 700, kind: 'work', node: 'n1', phase: 'claim', token: 1, localTime: 700 } as TraceLine];
    expect(selfFencing.check(bad)).toHaveLength(1);
  });
  it('flags a claim made outside the leader state', () => {
    const bad = [meta(), tr(0, 'n1', 'leader.holding', 'fenced', 1), { t: 10, kind: 'work', node: 'n1', phase: 'claim', token: 1, localTime: 10 } as TraceLine];
    expect(selfFencing.check(bad)).toHaveLength(1);
  });
  it('flags a running node that stays leader past its deadline, but excuses stale timers after a pause', () => {
    const stays = tr(800, 'n1', 'leader.holding', 'leader.renewing', 1, { deadlineAt: 600, deadlineT: 600, localTime: 800 });
    const fences = tr(800, 'n1', 'leader.renewing', 'fenced', 1, { localTime: 800 });
    const bad = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineAt: 600, deadlineT: 600 }), stays, fences];
    // The stale renewal timer that fired past the deadline, and the interval that ended 200 ms late.
    expect(selfFencing.check(bad)).toHaveLength(2);
    const paused: TraceLine[] = [
      meta(),
      tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineAt: 600, deadlineT: 600 }),
      { t: 100, kind: 'fault', fault: 'pause', node: 'n1', durationMs: 700 },
      { t: 800, kind: 'fault', fault: 'resume', node: 'n1' },
      stays,
      fences,
    ];
    expect(selfFencing.check(paused)).toEqual([]);
  });
  it('flags a node that stays in leader 400 ms past its deadline without being paused (review)', () => {
    // What the mutant "no fencing when the renew deadline passes" does: the holding state's retry timer fences late.
    const trace = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineT: 600 }), tr(1000, 'n1', 'leader.holding', 'fenced', 1)];
    const found = selfFencing.check(trace);
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toMatch(/400 ms past its deadline/);
  });
  it('judges the last leader transition, the end of the run and crashes; excuses a pause spanning the deadline', () => {
    const renewed = [
      meta(),
      tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineT: 600 }),
      tr(300, 'n1', 'leader.renewing', 'leader.holding', 1, { deadlineT: 900 }),
      tr(900, 'n1', 'leader.holding', 'fenced', 1), // exactly at the deadline: fine
    ];
    expect(selfFencing.check(renewed)).toEqual([]);
    const openEnded = [meta({ durationMs: 5000 }), tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineT: 600 })];
    expect(selfFencing.check(openEnded)).toHaveLength(1);
    const crashedLate = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineT: 600 }), tr(700, 'n1', 'leader.holding', 'crashed', null)];
    expect(selfFencing.check(crashedLate)).toHaveLength(1);
    const pausedThenCrashed: TraceLine[] = [
      meta(),
      tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineT: 600 }),
      { t: 500, kind: 'fault', fault: 'pause', node: 'n1', durationMs: 1000 },
      { t: 700, kind: 'fault', fault: 'crash', node: 'n1' },
      tr(700, 'n1', 'leader.holding', 'crashed', null),
    ];
    expect(selfFencing.check(pausedThenCrashed)).toEqual([]);
  });
  it('excuses a node that fences on the instant it resumes, rounding included (CI property seed 340991638)', () => {
    // Paused mid-renewal: on resume the late reply lands (a deadline already past), and the deadline timer fences a
    // hair later, from the clock conversion's rounding.
    const resumed: TraceLine[] = [
      meta(),
      tr(40, 'n2', 'candidate', 'leader.holding', 1, { deadlineT: 511 }),
      tr(113, 'n2', 'leader.holding', 'leader.renewing', 1, { deadlineT: 511 }),
      { t: 114, kind: 'fault', fault: 'pause', node: 'n2', durationMs: 837 },
      { t: 951, kind: 'fault', fault: 'resume', node: 'n2' },
      tr(951, 'n2', 'leader.renewing', 'leader.holding', 1, { deadlineT: 606.2 }),
      tr(951.0000000115, 'n2', 'leader.holding', 'fenced', 1),
    ];
    expect(selfFencing.check(resumed)).toEqual([]);
    // Still running a millisecond after the resume is not excused.
    const lingering = resumed.map((l, i) => (i === resumed.length - 1 ? tr(952, 'n2', 'leader.holding', 'fenced', 1) : l));
    expect(selfFencing.check(lingering)).toHaveLength(1);
  });
  it('passes claims before the deadline', () => {
    const good = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineAt: 600 }), { t: 500, kind: 'work', node: 'n1', phase: 'claim', token: 1, localTime: 500 } as TraceLine];
    expect(selfFencing.check(good)).toEqual([]);
  });
});

describe('checker 5: liveness', () => {
  it('flags a run with no leader long after the last fault healed', () => {
    const bad = [meta(), { t: 1000, kind: 'fault', fault: 'heal', node: 'n1' } as TraceLine, tr(0, 'n1', 'start', 'follower.reading', null)];
    const found = liveness.check(bad);
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toMatch(/no leader within/);
  });
  it('passes when a leader appears within the bound, and skips runs too short to judge', () => {
    const good = [meta(), { t: 1000, kind: 'fault', fault: 'heal', node: 'n1' } as TraceLine, tr(2500, 'n2', 'candidate', 'leader.holding', 1)];
    expect(liveness.check(good)).toEqual([]);
    const short = [meta({ durationMs: 1500 }), { t: 1000, kind: 'fault', fault: 'heal', node: 'n1' } as TraceLine];
    expect(liveness.check(short)).toEqual([]);
  });
  it('flags a leader that appears only after the bound', () => {
    const late = [meta(), { t: 1000, kind: 'fault', fault: 'heal' } as TraceLine, tr(9000, 'n2', 'candidate', 'leader.holding', 1)];
    expect(liveness.check(late)).toHaveLength(1);
  });
  it('flags a run whose only leader steps down 1 ms after the heal and nobody leads again for 18 s (review)', () => {
    const trace = [
      meta(),
      tr(0, 'n1', 'candidate', 'leader.holding', 1),
      { t: 1000, kind: 'fault', fault: 'partition', node: 'n2', durationMs: 1000 } as TraceLine,
      { t: 2000, kind: 'fault', fault: 'heal', node: 'n2' } as TraceLine,
      tr(2001, 'n1', 'leader.holding', 'fenced', 1),
    ];
    const found = liveness.check(trace);
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toMatch(/last 17999 ms of the run/);
  });
  it('flags every leaderless gap in the tail longer than the bound, and passes short ones', () => {
    const gaps = (gapMs: number) => [
      meta(),
      { t: 1000, kind: 'fault', fault: 'heal' } as TraceLine,
      tr(1100, 'n1', 'candidate', 'leader.holding', 1),
      tr(5000, 'n1', 'leader.holding', 'fenced', 1),
      tr(5000 + gapMs, 'n2', 'candidate', 'leader.holding', 2),
    ];
    expect(liveness.check(gaps(1500))).toEqual([]);
    const found = liveness.check(gaps(4000));
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toMatch(/no leader for 4000 ms from 5000 ms/);
  });
});

describe('checker 7: stability in the fault-free tail', () => {
  // A leader that wins at 100 and renews every ~220 ms; `lines` come after it.
  const established = (lines: TraceLine[]) => [
    meta(),
    { t: 50, kind: 'fault', fault: 'heal' } as TraceLine,
    tr(100, 'n1', 'candidate', 'leader.holding', 1, { event: 'lease.written', deadlineAt: 690, localTime: 100 }),
    ...lines,
  ];
  it('flags a new epoch won after a leader was established (review: a leader that can never renew)', () => {
    const bad = established([tr(700, 'n1', 'leader.holding', 'fenced', 1, { fenceReason: 'lease-lost' }), tr(2000, 'n2', 'candidate', 'leader.holding', 2)]);
    const found = stability.check(bad);
    expect(found).toHaveLength(1);
    expect(found[0]!.message).toMatch(/n2 won epoch 2/);
  });
  it("flags a deadline fence of the established leader (recorded reason, or inferred from the event for older traces)", () => {
    expect(stability.check(established([tr(700, 'n1', 'leader.verifying', 'fenced', 1, { fenceReason: 'deadline-passed' })]))).toHaveLength(1);
    expect(stability.check(established([tr(700, 'n1', 'leader.holding', 'fenced', 1, { event: 'renew.deadline' })]))).toHaveLength(1);
  });
  it('passes a leader that keeps renewing, and does not judge before it is established or timing that cannot sustain renewals', () => {
    const renewals = Array.from({ length: 20 }, (_, i) =>
      tr(320 + i * 220, 'n1', 'leader.renewing', 'leader.holding', 1, { event: 'lease.written', deadlineAt: 900 + i * 220, localTime: 320 + i * 220 }),
    );
    expect(stability.check(established(renewals))).toEqual([]);
    // Before the last fault: not judged.
    const early = [meta(), tr(100, 'n1', 'candidate', 'leader.holding', 1, { event: 'lease.written', deadlineAt: 690 }), tr(700, 'n1', 'leader.holding', 'fenced', 1, { fenceReason: 'deadline-passed' }), { t: 800, kind: 'fault', fault: 'heal' } as TraceLine];
    expect(stability.check(early)).toEqual([]);
    // A leader whose renewal was sent before the heal is not established by it.
    const straddles = [meta(), { t: 300, kind: 'fault', fault: 'heal' } as TraceLine, tr(320, 'n1', 'leader.renewing', 'leader.holding', 1, { event: 'lease.written', deadlineAt: 880, localTime: 320 }), tr(900, 'n1', 'leader.holding', 'fenced', 1, { fenceReason: 'deadline-passed' })];
    expect(stability.check(straddles)).toEqual([]);
    // Round trips of 2 × 150 ms: retry 200 + 2 RTT > renew deadline 600, renewals can fail without faults.
    const slow = [{ ...(meta({ maxLatencyMs: 150 }) as object) } as TraceLine, ...established([tr(700, 'n1', 'leader.holding', 'fenced', 1, { fenceReason: 'deadline-passed' })]).slice(1)];
    expect(stability.check(slow)).toEqual([]);
  });
});

describe('checker 6: epoch monotonicity in every view', () => {
  it("flags a node whose highest epoch seen goes back", () => {
    const bad = [meta(), tr(0, 'n1', 'a', 'b', null, { highestEpochSeen: 4, incarnation: 0 }), tr(10, 'n1', 'b', 'c', null, { highestEpochSeen: 2, incarnation: 0 })];
    expect(epochMonotoneView.check(bad)).toHaveLength(1);
  });
  it('flags a held epoch that goes back', () => {
    const bad = [meta(), tr(0, 'n1', 'candidate', 'leader', 5, { incarnation: 0 }), tr(10, 'n1', 'leader', 'fenced', 3, { incarnation: 0 })];
    expect(epochMonotoneView.check(bad)).toHaveLength(1);
  });
  it('forgives a restart (a crash loses memory)', () => {
    const good = [meta(), tr(0, 'n1', 'a', 'b', 5, { highestEpochSeen: 5, incarnation: 0 }), tr(10, 'n1', 'b', 'c', null, { highestEpochSeen: 0, incarnation: 1 })];
    expect(epochMonotoneView.check(good)).toEqual([]);
  });
});

it('the default list has the six checkers in the order of the issue, then stability (review)', () => {
  expect(defaultCheckers.map((c) => c.name)).toEqual([
    'one-leader-per-epoch',
    'fenced-writes-monotone',
    'real-time-exclusivity',
    'self-fencing',
    'liveness',
    'epoch-monotone-view',
    'stability',
  ]);
});
