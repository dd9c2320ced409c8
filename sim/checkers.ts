import { livenessBoundMs, type SimTiming } from './scenario.js';
import type { TraceLine, TraceLineOf } from './trace.js';

/**
 * The checkers: small pure functions over a recorded history (a trace). Each one states the property, and the
 * violated-on-purpose assumptions under which a violation is *expected* (reported, but not a failure).
 */
export interface Finding {
  readonly t: number;
  readonly message: string;
  readonly nodes?: string[];
}

export interface Violation extends Finding {
  readonly checker: string;
  /** True when the property is only promised under assumptions this run broke on purpose. */
  readonly expected: boolean;
}

export interface Checker {
  readonly name: string;
  readonly description: string;
  /** Assumptions (as listed in the trace's meta line) whose violation makes a finding expected. */
  readonly assumptions: readonly string[];
  check(trace: readonly TraceLine[]): Finding[];
}

type Transition = TraceLineOf<'transition'>;

export function metaOf(trace: readonly TraceLine[]): TraceLineOf<'meta'> | undefined {
  return trace.find((l): l is TraceLineOf<'meta'> => l.kind === 'meta');
}

const isLeaderState = (s: string) => s === 'leader' || s.startsWith('leader.');

export interface LeaderInterval {
  readonly node: string;
  readonly epoch: number | null;
  readonly start: number;
  /** Real time the node left `leader` (fenced, crashed, released), or the end of the run. */
  readonly end: number;
}

/** When each node was in the `leader` state, in real time. */
export function leaderIntervals(trace: readonly TraceLine[]): LeaderInterval[] {
  const meta = metaOf(trace);
  let last = 0;
  const open = new Map<string, { start: number; epoch: number | null }>();
  const out: LeaderInterval[] = [];
  for (const l of trace) {
    if ('t' in l && l.kind !== 'violation') last = Math.max(last, l.t);
    if (l.kind !== 'transition') continue;
    const was = isLeaderState(l.from);
    const is = isLeaderState(l.to);
    if (!was && is) open.set(l.node, { start: l.t, epoch: l.epoch });
    if (was && !is) {
      const o = open.get(l.node);
      if (o) out.push({ node: l.node, epoch: o.epoch, start: o.start, end: l.t });
      open.delete(l.node);
    }
  }
  const end = Math.max(last, Number(meta?.options.durationMs ?? 0));
  for (const [node, o] of open) out.push({ node, epoch: o.epoch, start: o.start, end });
  return out.sort((a, b) => a.start - b.start || (a.node < b.node ? -1 : 1));
}

/** 1. No two nodes ever hold the same epoch. */
export const oneLeaderPerEpoch: Checker = {
  name: 'one-leader-per-epoch',
  description: 'no two nodes ever hold the same epoch',
  assumptions: ['store-data-loss'],
  check(trace) {
    const holder = new Map<number, string>();
    const out: Finding[] = [];
    for (const l of trace) {
      if (l.kind !== 'transition' || !isLeaderState(l.to) || isLeaderState(l.from) || l.epoch === null) continue;
      const prev = holder.get(l.epoch);
      if (prev !== undefined && prev !== l.node) {
        out.push({ t: l.t, message: `epoch ${l.epoch} won by ${l.node} although ${prev} already held it`, nodes: [prev, l.node] });
      }
      holder.set(l.epoch, l.node);
    }
    return out;
  },
};

/** 2. The resource never accepts a token lower than one it already accepted (what fencing buys unconditionally). */
export const fencedWritesMonotone: Checker = {
  name: 'fenced-writes-monotone',
  description: 'the resource never accepts a token lower than one it already accepted',
  assumptions: [],
  check(trace) {
    let high = Number.NEGATIVE_INFINITY;
    let highNode = '';
    const out: Finding[] = [];
    for (const l of trace) {
      if (l.kind !== 'resource' || !l.accepted) continue;
      if (l.token < high) {
        out.push({ t: l.t, message: `resource accepted token ${l.token} from ${l.node} after accepting ${high} from ${highNode}`, nodes: [l.node, highNode] });
      } else {
        high = l.token;
        highNode = l.node;
      }
    }
    return out;
  },
};

/** 3. No two nodes are in `leader` at the same real instant (promised under bounded drift and pauses, safe timing). */
export const realTimeExclusivity: Checker = {
  name: 'real-time-exclusivity',
  description: 'no two nodes believe they lead at the same real instant',
  // A store that forgets the record lets a newcomer acquire at once: fencing (checker 2) still holds.
  assumptions: ['drift-beyond-max', 'long-pause', 'unsafe-timing', 'store-data-loss'],
  check(trace) {
    const intervals = leaderIntervals(trace);
    const out: Finding[] = [];
    for (let i = 0; i < intervals.length; i++) {
      const a = intervals[i]!;
      for (let j = i + 1; j < intervals.length; j++) {
        const b = intervals[j]!;
        if (b.start >= a.end) break;
        if (a.node === b.node) continue;
        out.push({
          t: b.start,
          message: `${a.node} (epoch ${a.epoch}) still in leader until ${fmt(a.end)} ms while ${b.node} (epoch ${b.epoch}) led from ${fmt(b.start)} ms: overlap ${fmt(Math.min(a.end, b.end) - b.start)} ms`,
          nodes: [a.node, b.node],
        });
      }
    }
    return out;
  },
};

interface Span {
  start: number;
  end: number;
}

function pausesByNode(trace: readonly TraceLine[]): Map<string, Span[]> {
  const out = new Map<string, Span[]>();
  const open = new Map<string, number>();
  for (const l of trace) {
    if (l.kind !== 'fault' || !l.node) continue;
    if (l.fault === 'pause' && !open.has(l.node)) open.set(l.node, l.t);
    if ((l.fault === 'resume' || l.fault === 'crash') && open.has(l.node)) {
      const list = out.get(l.node) ?? [];
      list.push({ start: open.get(l.node)!, end: l.t });
      out.set(l.node, list);
      open.delete(l.node);
    }
  }
  for (const [node, start] of open) {
    const list = out.get(node) ?? [];
    list.push({ start, end: Number.POSITIVE_INFINITY });
    out.set(node, list);
  }
  return out;
}

/**
 * 4. No node acts as leader after its own deadline, judged on its own clock with the deadline the *machine*
 * recorded: every token claim (assertLeader) happens before it, and a node that is running (not paused) leaves
 * `leader` by it — after a pause, stale timers may still fire before the deadline event, which is allowed because
 * assertLeader refuses by then.
 */
export const selfFencing: Checker = {
  name: 'self-fencing',
  description: 'no node acts as leader after its own deadline',
  assumptions: [],
  check(trace) {
    const last = new Map<string, Transition>();
    const pauses = pausesByNode(trace);
    const out: Finding[] = [];
    for (const l of trace) {
      if (l.kind === 'transition') {
        last.set(l.node, l);
        if (isLeaderState(l.to) && l.localTime !== undefined && typeof l.deadlineAt === 'number' && l.localTime > l.deadlineAt) {
          const deadlineT = l.deadlineT ?? l.t;
          const excused = (pauses.get(l.node) ?? []).some((p) => p.start <= l.t && p.end >= deadlineT);
          if (!excused) {
            out.push({
              t: l.t,
              message: `${l.node} took ${l.from} -> ${l.to} on ${l.event} at ${fmt(l.localTime)} on its clock, past its deadline ${fmt(l.deadlineAt)}, without having been paused`,
              nodes: [l.node],
            });
          }
        }
      } else if (l.kind === 'work' && l.phase === 'claim') {
        const tr = last.get(l.node);
        const deadline = tr && isLeaderState(tr.to) ? tr.deadlineAt : undefined;
        if (typeof deadline !== 'number' || l.localTime === undefined || l.localTime >= deadline) {
          out.push({
            t: l.t,
            message:
              typeof deadline !== 'number'
                ? `${l.node} claimed token ${l.token} while the machine was in ${tr?.to ?? 'no state'}`
                : `${l.node} claimed token ${l.token} at ${fmt(l.localTime ?? Number.NaN)} on its clock, past its deadline ${fmt(deadline)}`,
            nodes: [l.node],
          });
        }
      }
    }
    return out;
  },
};

/** 5. Once every fault has healed, some node leads within the derived bound (see livenessBoundMs). */
export const liveness: Checker = {
  name: 'liveness',
  description: 'after faults heal, a leader exists within the liveness bound',
  assumptions: ['slow-network'],
  check(trace) {
    const meta = metaOf(trace);
    if (!meta) return [];
    const o = meta.options as Record<string, any>;
    const timing: SimTiming = {
      leaseDurationMs: o.leaseDurationMs,
      renewDeadlineMs: o.renewDeadlineMs,
      retryPeriodMs: o.retryPeriodMs,
      maxDriftRate: o.maxDriftRate,
      requestTimeoutMs: o.requestTimeoutMs,
    };
    const slowest = Math.min(Number(o.slowestClockRate ?? 1), 1 - timing.maxDriftRate);
    const bound = livenessBoundMs(timing, Number(o.maxLatencyMs ?? 0), slowest);
    let healed = 0;
    for (const l of trace) if (l.kind === 'fault') healed = Math.max(healed, l.t);
    const deadline = healed + bound;
    if (Number(o.durationMs ?? 0) < deadline) return [];
    const ok = leaderIntervals(trace).some((i) => i.start <= deadline && i.end > healed);
    return ok
      ? []
      : [{ t: deadline, message: `no leader within ${fmt(bound)} ms after the last fault healed at ${fmt(healed)} ms` }];
  },
};

/** 6. In every node's view (per incarnation: a crash loses memory), the epoch and the highest epoch seen never go back. */
export const epochMonotoneView: Checker = {
  name: 'epoch-monotone-view',
  description: "epochs never go back in any node's view",
  assumptions: [],
  check(trace) {
    const seen = new Map<string, { epoch: number; highest: number }>();
    const out: Finding[] = [];
    for (const l of trace) {
      if (l.kind !== 'transition' || l.to === 'crashed') continue;
      const key = `${l.node}#${l.incarnation ?? 0}`;
      const prev = seen.get(key) ?? { epoch: Number.NEGATIVE_INFINITY, highest: Number.NEGATIVE_INFINITY };
      const epoch = l.epoch ?? prev.epoch;
      const highest = l.highestEpochSeen ?? prev.highest;
      if (epoch < prev.epoch) out.push({ t: l.t, message: `${l.node}'s epoch went back from ${prev.epoch} to ${epoch}`, nodes: [l.node] });
      if (highest < prev.highest)
        out.push({ t: l.t, message: `${l.node}'s highest epoch seen went back from ${prev.highest} to ${highest}`, nodes: [l.node] });
      seen.set(key, { epoch: Math.max(epoch, prev.epoch), highest: Math.max(highest, prev.highest) });
    }
    return out;
  },
};

/** The election checkers, in the order of the issue. Extend with your own (e.g. task checkers) by concatenation. */
export const defaultCheckers: readonly Checker[] = [
  oneLeaderPerEpoch,
  fencedWritesMonotone,
  realTimeExclusivity,
  selfFencing,
  liveness,
  epochMonotoneView,
];

export function runCheckers(trace: readonly TraceLine[], checkers: readonly Checker[] = defaultCheckers): Violation[] {
  const violated = new Set(metaOf(trace)?.violatedAssumptions ?? []);
  const out: Violation[] = [];
  for (const c of checkers) {
    const expected = c.assumptions.some((a) => violated.has(a));
    for (const f of c.check(trace)) out.push({ ...f, checker: c.name, expected });
  }
  return out;
}

function fmt(n: number): string {
  return Number.isFinite(n) ? String(Math.round(n * 10) / 10) : String(n);
}
