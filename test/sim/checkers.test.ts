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
});

describe('checker 2: fenced writes are monotone', () => {
  it('flags a lower token accepted after a higher one', () => {
    const bad = [meta(), res(10, 'n2', 5), res(20, 'n1', 4)];
    expect(fencedWritesMonotone.check(bad)).toHaveLength(1);
  });
  it('passes when the lower token was rejected, and is unconditional', () => {
    const good = [meta(), res(10, 'n2', 5), res(20, 'n1', 4, false), res(30, 'n2', 5)];
    expect(fencedWritesMonotone.check(good)).toEqual([]);
    const bad = [meta({}, ['drift-beyond-max', 'long-pause', 'unsafe-timing']), res(10, 'n2', 5), res(20, 'n1', 4)];
    expect(runCheckers(bad, [fencedWritesMonotone])[0]?.expected).toBe(false);
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
    const bad = [meta(), tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineAt: 600 }), stays];
    expect(selfFencing.check(bad)).toHaveLength(1);
    const paused: TraceLine[] = [
      meta(),
      tr(0, 'n1', 'candidate', 'leader.holding', 1, { deadlineAt: 600 }),
      { t: 100, kind: 'fault', fault: 'pause', node: 'n1', durationMs: 700 },
      { t: 800, kind: 'fault', fault: 'resume', node: 'n1' },
      stays,
    ];
    expect(selfFencing.check(paused)).toEqual([]);
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

it('the default list has the six checkers in the order of the issue', () => {
  expect(defaultCheckers.map((c) => c.name)).toEqual([
    'one-leader-per-epoch',
    'fenced-writes-monotone',
    'real-time-exclusivity',
    'self-fencing',
    'liveness',
    'epoch-monotone-view',
  ]);
});
