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
  /**
   * The finding breaks a promise the protocol makes whatever assumptions the run broke (e.g. rule 2: a node never
   * wins an epoch it has already seen, store wipe or not): never reported as expected.
   */
  readonly unconditional?: boolean;
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

export interface Win {
  readonly t: number;
  readonly node: string;
  readonly incarnation: number | undefined;
  readonly epoch: number;
  /** The highest epoch this node (this incarnation) had seen before the win, from its previous transition line. */
  readonly seenBefore: number | undefined;
}

/**
 * Every acquisition (a transition into `leader` from outside it, with an epoch), with what the winner had seen
 * before it. Rule 2 promises a node never acquires at or below the highest epoch it has seen, so a win with
 * `seenBefore >= epoch` breaks the protocol whatever happened to the store.
 */
export function wins(trace: readonly TraceLine[]): Win[] {
  const highest = new Map<string, number>();
  const out: Win[] = [];
  for (const l of trace) {
    if (l.kind !== 'transition') continue;
    const key = `${l.node}#${l.incarnation ?? 0}`;
    if (isLeaderState(l.to) && !isLeaderState(l.from) && l.epoch !== null) {
      out.push({ t: l.t, node: l.node, incarnation: l.incarnation, epoch: l.epoch, seenBefore: highest.get(key) });
    }
    if (l.highestEpochSeen !== undefined) highest.set(key, Math.max(highest.get(key) ?? Number.NEGATIVE_INFINITY, l.highestEpochSeen));
  }
  return out;
}

const seenAlready = (w: Win) => w.seenBefore !== undefined && w.seenBefore >= w.epoch;

/**
 * 1. No two nodes ever hold the same epoch. A store that lost its data excuses a second holder only if that node had
 * never seen the epoch (rule 2): a win at or below the winner's own highest epoch seen is never excused.
 */
export const oneLeaderPerEpoch: Checker = {
  name: 'one-leader-per-epoch',
  description: 'no two nodes ever hold the same epoch',
  assumptions: ['store-data-loss'],
  check(trace) {
    const holder = new Map<number, string>();
    const out: Finding[] = [];
    for (const w of wins(trace)) {
      const prev = holder.get(w.epoch);
      if (prev !== undefined && prev !== w.node) {
        const seen = seenAlready(w);
        out.push({
          t: w.t,
          message: `epoch ${w.epoch} won by ${w.node} although ${prev} already held it${seen ? ` (and ${w.node} had already seen epoch ${w.seenBefore}: rule 2 broken, no store wipe excuses it)` : ''}`,
          nodes: [prev, w.node],
          ...(seen ? { unconditional: true } : {}),
        });
      }
      holder.set(w.epoch, w.node);
    }
    return out;
  },
};

/**
 * 2. The resource never accepts a token lower than one it already accepted (what fencing buys unconditionally), nor
 * a token from one holder after it accepted the same token from another (two terms under one epoch). The second is
 * expected only after a store wipe, and only if the later of the two holdings was won by a node that had never seen
 * the epoch (rule 2); a holder is a node and incarnation (resource lines carry the incarnation).
 */
export const fencedWritesMonotone: Checker = {
  name: 'fenced-writes-monotone',
  description: 'the resource never accepts a token lower than one it accepted, nor one token from two holders',
  assumptions: ['store-data-loss'],
  check(trace) {
    const allWins = wins(trace);
    /** The win of `epoch` by this holder that its write at `t` was made under (the latest one before it). */
    const winOf = (node: string, incarnation: number | undefined, epoch: number, t: number) => {
      let found: Win | undefined;
      for (const w of allWins) {
        if (w.t > t) break;
        if (w.node === node && w.epoch === epoch && (incarnation === undefined || w.incarnation === undefined || w.incarnation === incarnation)) found = w;
      }
      return found;
    };
    const holderName = (node: string, incarnation: number | undefined) => (incarnation === undefined ? node : `${node}#${incarnation}`);
    const sameHolder = (a: { node: string; incarnation?: number }, b: { node: string; incarnation?: number }) =>
      a.node === b.node && (a.incarnation === undefined || b.incarnation === undefined || a.incarnation === b.incarnation);
    let high = Number.NEGATIVE_INFINITY;
    let highLine: TraceLineOf<'resource'> | undefined;
    const out: Finding[] = [];
    for (const l of trace) {
      if (l.kind !== 'resource' || !l.accepted) continue;
      if (l.token < high) {
        out.push({
          t: l.t,
          message: `resource accepted token ${l.token} from ${l.node} after accepting ${high} from ${highLine?.node}`,
          nodes: [l.node, highLine?.node ?? ''],
          unconditional: true,
        });
        continue;
      }
      if (l.token === high && highLine && !sameHolder(l, highLine)) {
        const a = winOf(highLine.node, highLine.incarnation, l.token, highLine.t);
        const b = winOf(l.node, l.incarnation, l.token, l.t);
        const later = a && b ? (a.t > b.t ? a : b) : undefined;
        const seen = later !== undefined && seenAlready(later);
        out.push({
          t: l.t,
          message: `resource accepted token ${l.token} from ${holderName(l.node, l.incarnation)} after accepting it from ${holderName(highLine.node, highLine.incarnation)}: two holders of one epoch${seen ? ` (${later.node} won it at ${fmt(later.t)} ms having already seen epoch ${later.seenBefore}: rule 2 broken)` : ''}`,
          nodes: [highLine.node, l.node],
          ...(seen ? { unconditional: true } : {}),
        });
      }
      high = l.token;
      highLine = l;
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

/** Timers fire at the first real instant a node's clock reaches the deadline: allow for rounding, not for lateness. */
const DEADLINE_SLACK_MS = 1e-6;

/** The last instant of the run (the meta line's duration, or the last timed line). */
function runEnd(trace: readonly TraceLine[]): number {
  let last = 0;
  for (const l of trace) if ('t' in l && l.kind !== 'violation') last = Math.max(last, l.t);
  return Math.max(last, Number(metaOf(trace)?.options.durationMs ?? 0));
}

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
    // The timers a resumed node owes fire at the resume instant, give or take the clock conversion's rounding.
    const frozenThrough = (node: string, from: number, to: number) =>
      (pauses.get(node) ?? []).some((p) => p.start <= from && p.end + DEADLINE_SLACK_MS >= to);
    /** A leader interval must end by the deadline of its last leader transition (the machine's own deadline). */
    const checkEnd = (prev: Transition | undefined, node: string, end: number, how: string) => {
      if (!prev || !isLeaderState(prev.to) || typeof prev.deadlineT !== 'number') return;
      if (end <= prev.deadlineT + DEADLINE_SLACK_MS || frozenThrough(node, prev.deadlineT, end)) return;
      out.push({
        t: end,
        message: `${node} (epoch ${prev.epoch}) stayed in ${prev.to} until ${fmt(end)} ms (${how}), ${fmt(end - prev.deadlineT)} ms past its deadline at ${fmt(prev.deadlineT)} ms, without having been paused`,
        nodes: [node],
      });
    };
    for (const l of trace) {
      if (l.kind === 'transition') {
        const prev = last.get(l.node);
        if (prev && isLeaderState(prev.to) && !isLeaderState(l.to)) checkEnd(prev, l.node, l.t, `left on ${l.event}`);
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
    const end = runEnd(trace);
    for (const [node, prev] of last) if (isLeaderState(prev.to)) checkEnd(prev, node, end, 'the end of the run');
    return out;
  },
};

interface TailTiming {
  readonly timing: SimTiming;
  /** Failover bound (livenessBoundMs with the slowest clock in the run). */
  readonly bound: number;
  /** Real time of the last fault line (the last heal). */
  readonly healed: number;
  readonly end: number;
  readonly maxLatencyMs: number;
  readonly fastest: number;
  readonly slowest: number;
}

function tailTiming(trace: readonly TraceLine[]): TailTiming | undefined {
  const meta = metaOf(trace);
  if (!meta) return undefined;
  const o = meta.options as Record<string, any>;
  const timing: SimTiming = {
    leaseDurationMs: o.leaseDurationMs,
    renewDeadlineMs: o.renewDeadlineMs,
    retryPeriodMs: o.retryPeriodMs,
    maxDriftRate: o.maxDriftRate,
    requestTimeoutMs: o.requestTimeoutMs,
  };
  const slowest = Math.min(Number(o.slowestClockRate ?? 1), 1 - timing.maxDriftRate);
  const fastest = Math.max(Number(o.fastestClockRate ?? 1), 1 + timing.maxDriftRate);
  const maxLatencyMs = Number(o.maxLatencyMs ?? 0);
  let healed = 0;
  for (const l of trace) if (l.kind === 'fault') healed = Math.max(healed, l.t);
  return { timing, bound: livenessBoundMs(timing, maxLatencyMs, slowest), healed, end: runEnd(trace), maxLatencyMs, fastest, slowest };
}

/**
 * 5. Once every fault has healed, some node leads within the derived bound (see livenessBoundMs), and from then to
 * the end of the run no gap without a leader is longer than that bound (a leader that steps down in a fault-free
 * tail must be replaced as fast as after a fault).
 */
export const liveness: Checker = {
  name: 'liveness',
  description: 'after faults heal, a leader exists within the liveness bound, and every later leaderless gap is shorter than it',
  assumptions: ['slow-network'],
  check(trace) {
    const tt = tailTiming(trace);
    if (!tt) return [];
    const { bound, healed, end } = tt;
    const deadline = healed + bound;
    if (end < deadline) return [];
    const out: Finding[] = [];
    const flag = (gapStart: number, gapEnd: number) => {
      if (gapEnd - gapStart <= bound) return;
      out.push({
        t: gapStart + bound,
        message:
          gapStart === healed
            ? `no leader within ${fmt(bound)} ms after the last fault healed at ${fmt(healed)} ms`
            : `no leader for ${gapEnd >= end ? `the last ${fmt(gapEnd - gapStart)} ms of the run` : `${fmt(gapEnd - gapStart)} ms`} from ${fmt(gapStart)} ms (after the last fault healed at ${fmt(healed)} ms), longer than the failover bound ${fmt(bound)} ms`,
      });
    };
    // Walk the union of leader intervals from the heal on: every gap in it, and the one up to the end, is judged.
    let coveredUntil = healed;
    for (const i of leaderIntervals(trace)) {
      if (i.end <= coveredUntil) continue;
      if (i.start > coveredUntil) flag(coveredUntil, i.start);
      coveredUntil = i.end;
    }
    if (coveredUntil < end) flag(coveredUntil, end);
    return out;
  },
};

type FenceReason = 'deadline-passed' | 'lease-lost' | 'higher-epoch' | 'unknown';

/** Why a transition into `fenced` happened: the machine's own reason when recorded, else inferred from the event. */
export function fenceReasonOf(l: Transition): FenceReason | undefined {
  if (l.to !== 'fenced') return undefined;
  if (l.fenceReason) return l.fenceReason as FenceReason;
  if (l.event === 'renew.deadline') return 'deadline-passed';
  if (l.from.startsWith('leader') && l.event.startsWith('xstate.after')) return 'deadline-passed';
  if (l.from === 'candidate' && l.event === 'lease.written') return 'deadline-passed';
  return 'unknown';
}

/**
 * Whether a leader can keep renewing on this network without faults: one renewal cycle (a round trip, the retry
 * period, the next round trip, all on the leader's clock) fits in the renew deadline, and a round trip beats the
 * request timeout. Runs whose timing does not are not judged for stability.
 */
export function renewalsSustainable(tt: Pick<TailTiming, 'timing' | 'maxLatencyMs' | 'fastest'>): boolean {
  const rtt = 2 * tt.maxLatencyMs * tt.fastest;
  const t = tt.timing;
  return t.retryPeriodMs + 2 * rtt + 1 < t.renewDeadlineMs && rtt + 1 < (t.requestTimeoutMs ?? t.retryPeriodMs);
}

/**
 * 7. Stability: in the fault-free tail (after the last fault line), once a leader is established — it won, or renewed
 * with a request sent after the heal — no new epoch is won and no node fences because its deadline passed. Judged
 * only from transition lines: a win is a transition into `leader`; a renewal's request start is `deadlineAt −
 * renewDeadlineMs` on the node's clock, which was at most `(localTime − that) / slowest` real ms before the line.
 * Only runs whose timing can sustain renewals on their network are judged (see renewalsSustainable).
 */
export const stability: Checker = {
  name: 'stability',
  description: 'in the fault-free tail, an established leader keeps its lease: no new epoch, no deadline fencing',
  assumptions: ['slow-network'],
  check(trace) {
    const tt = tailTiming(trace);
    if (!tt || !renewalsSustainable(tt)) return [];
    const { healed, timing, slowest } = tt;
    const out: Finding[] = [];
    let established: { node: string; t: number; epoch: number | null; start: number } | undefined;
    const leaderSince = new Map<string, number>();
    for (const l of trace) {
      if (l.kind !== 'transition') continue;
      const was = isLeaderState(l.from);
      const is = isLeaderState(l.to);
      if (is && !was) leaderSince.set(l.node, l.t);
      const since = leaderSince.get(l.node);
      if (!is) leaderSince.delete(l.node);
      if (l.t < healed) continue;
      if (!established) {
        if (!is || l.event !== 'lease.written' || typeof l.deadlineAt !== 'number' || l.localTime === undefined) continue;
        const sentAgoLocal = l.localTime - (l.deadlineAt - timing.renewDeadlineMs);
        if (l.t - Math.max(0, sentAgoLocal) / slowest < healed) continue;
        established = { node: l.node, t: l.t, epoch: l.epoch, start: since ?? l.t };
        continue;
      }
      if (is && !was) {
        out.push({
          t: l.t,
          message: `${l.node} won epoch ${l.epoch} at ${fmt(l.t)} ms in the fault-free tail (last fault at ${fmt(healed)} ms), although ${established.node} had established epoch ${established.epoch} at ${fmt(established.t)} ms`,
          nodes: [established.node, l.node],
        });
        continue;
      }
      const ownsTerm = l.from === 'candidate' || (was && since !== undefined && (since >= established.t || (l.node === established.node && since === established.start)));
      if (ownsTerm && fenceReasonOf(l) === 'deadline-passed') {
        out.push({
          t: l.t,
          message: `${l.node} (epoch ${l.epoch}) fenced at ${fmt(l.t)} ms because its deadline passed, in the fault-free tail (last fault at ${fmt(healed)} ms) after epoch ${established.epoch} was established at ${fmt(established.t)} ms: it could not renew`,
          nodes: [l.node],
        });
      }
    }
    return out;
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

/** The election checkers, in the order of the issue (stability added in review). Extend with your own (e.g. task checkers) by concatenation. */
export const defaultCheckers: readonly Checker[] = [
  oneLeaderPerEpoch,
  fencedWritesMonotone,
  realTimeExclusivity,
  selfFencing,
  liveness,
  epochMonotoneView,
  stability,
];

export function runCheckers(trace: readonly TraceLine[], checkers: readonly Checker[] = defaultCheckers): Violation[] {
  const violated = new Set(metaOf(trace)?.violatedAssumptions ?? []);
  const out: Violation[] = [];
  for (const c of checkers) {
    const expected = c.assumptions.some((a) => violated.has(a));
    for (const f of c.check(trace)) {
      const { unconditional, ...rest } = f;
      out.push({ ...rest, checker: c.name, expected: expected && unconditional !== true });
    }
  }
  return out;
}

function fmt(n: number): string {
  return Number.isFinite(n) ? String(Math.round(n * 10) / 10) : String(n);
}
