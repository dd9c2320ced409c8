import { TRACE_FORMAT, type TraceLine } from '../../sim/trace.js';

/**
 * A synthetic trace that looks like a simulator run (same line kinds, real state paths and event types of
 * electionMachine) without running the protocol: for viewer tests and for sizing the viewer on large runs. It is not
 * evidence about the protocol; the simulator is.
 */
export interface SyntheticOptions {
  nodes?: number;
  durationMs?: number;
  seed?: number;
  /** Mean time between faults. */
  faultEveryMs?: number;
  /** A stale leader keeps writing after a long pause, overlapping the next leader: adds violations. */
  unsafe?: boolean;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Down {
  a: number;
  b: number;
  kind: 'partition' | 'pause' | 'crash';
}

export function syntheticTrace(options: SyntheticOptions = {}): TraceLine[] {
  const count = options.nodes ?? 5;
  const duration = options.durationMs ?? 60_000;
  const rand = mulberry32(options.seed ?? 1);
  const lease = options.leaseDurationMs ?? 1000;
  const deadline = options.renewDeadlineMs ?? 600;
  const retry = options.retryPeriodMs ?? 200;
  const faultEvery = options.faultEveryMs ?? 15_000;
  const names = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const lines: TraceLine[] = [];
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const rtt = () => 2 + rand() * 8;

  // Faults per node.
  const downs: Down[][] = names.map(() => []);
  for (let t = faultEvery * (0.5 + rand()); t < duration - 3000; t += faultEvery * (0.5 + rand())) {
    const n = Math.floor(rand() * count);
    const roll = rand();
    const kind: Down['kind'] = roll < 0.45 ? 'partition' : roll < 0.75 ? 'pause' : 'crash';
    const len = kind === 'pause' ? 800 + rand() * 2500 : 1500 + rand() * 4000;
    downs[n]!.push({ a: r3(t), b: r3(t + len), kind });
    const node = names[n]!;
    lines.push({ t: r3(t), kind: 'fault', fault: kind, node, ...(kind === 'partition' ? { detail: { from: 'store' } } : {}) });
    lines.push({ t: r3(t + len), kind: 'fault', fault: kind === 'partition' ? 'heal' : kind === 'pause' ? 'resume' : 'restart', node });
    if (rand() < 0.3) {
      const other = names[Math.floor(rand() * count)]!;
      lines.push({ t: r3(t + 500), kind: 'fault', fault: 'clock-jump', node: other, detail: { jumpMs: Math.round((rand() - 0.5) * 4000) } });
    }
  }
  const downAt = (n: number, t: number) => downs[n]!.find((d) => d.a <= t && t < d.b);

  // Leadership schedule: a term ends when a fault hits its leader; the next healthy node takes over after the lease.
  interface Term {
    n: number;
    epoch: number;
    a: number;
    b: number;
    end: 'fenced' | 'crash' | 'end' | 'stale';
    /** Length of the pause a stale leader wakes from. */
    staleUntil?: number;
  }
  const terms: Term[] = [];
  let epoch = 0;
  let t = 40 + rand() * 20;
  let leader = 0;
  while (t < duration) {
    epoch++;
    const hit = downs[leader]!.find((d) => d.a > t);
    const term: Term = { n: leader, epoch, a: r3(t), b: duration, end: 'end' };
    terms.push(term);
    if (!hit || hit.a >= duration) break;
    if (hit.kind === 'crash') {
      term.b = hit.a;
      term.end = 'crash';
    } else if (hit.kind === 'partition') {
      term.b = r3(hit.a + deadline);
      term.end = 'fenced';
    } else {
      // Paused: frozen until resume; on resume its expired deadline fences it — in the unsafe variant it first writes.
      term.b = hit.b;
      term.end = options.unsafe ? 'stale' : 'fenced';
      term.staleUntil = hit.b - hit.a;
    }
    const nextStart = hit.a + lease + retry * rand() + 20;
    if (term.end === 'stale' && nextStart >= hit.b) term.end = 'fenced';
    let next = (leader + 1 + Math.floor(rand() * (count - 1))) % count;
    for (let tries = 0; tries < count && downAt(next, hit.a + lease + 100); tries++) next = (next + 1) % count;
    leader = next;
    t = nextStart;
    // The pause case: the next leader takes over while the old one is frozen.
  }

  // Per-node transitions.
  const add = (tt: number, node: number, from: string, to: string, event: string, ep: number | null) =>
    lines.push({ t: r3(tt), kind: 'transition', node: names[node]!, from, to, event, epoch: ep });
  let requestId = 0;
  const store = (tt: number, node: number, op: 'read' | 'write', outcome: string) => {
    requestId++;
    lines.push({ t: r3(tt), kind: 'store', node: names[node]!, phase: 'request', op, requestId });
    lines.push({ t: r3(tt + 1), kind: 'store', node: names[node]!, phase: 'applied', op, requestId, outcome });
    lines.push({ t: r3(tt + 2), kind: 'store', node: names[node]!, phase: 'reply', op, requestId, outcome });
  };
  const writes: { t: number; n: number; token: number }[] = [];
  for (let n = 0; n < count; n++) {
    let state = 'follower.waiting';
    let myEpoch: number | null = null;
    let now = rand() * retry;
    const mine = terms.filter((x) => x.n === n);
    let ti = 0;
    while (now < duration) {
      const down = downAt(n, now);
      if (down) {
        if (down.kind === 'crash' && state !== 'follower.reading') {
          state = 'follower.reading';
        }
        now = down.b + rtt();
        if (down.kind === 'crash') {
          add(now, n, 'shutdown', 'follower.reading', 'xstate.init', null);
          state = 'follower.reading';
        }
        continue;
      }
      const term = mine[ti];
      if (term && term.a <= now + retry) {
        if (term.a < now) term.a = r3(now + rtt());
        // Acquire.
        const from = state === 'follower.waiting' ? 'follower.waiting' : state;
        if (from === 'follower.waiting') add(term.a - 2 * rtt() - 1, n, from, 'follower.reading', `xstate.after.retryPeriod.election.follower.waiting`, myEpoch);
        add(term.a - rtt(), n, 'follower.reading', 'candidate', 'lease.read', myEpoch);
        store(term.a - rtt(), n, 'write', 'ok');
        myEpoch = term.epoch;
        add(term.a, n, 'candidate', 'leader.holding', 'lease.written', myEpoch);
        let lt = term.a;
        while (lt + retry < term.b) {
          lt += retry;
          add(lt, n, 'leader.holding', 'leader.renewing', 'xstate.after.retryPeriod.election.leader.holding', myEpoch);
          const r = rtt();
          const partitioned = downAt(n, lt)?.kind === 'partition';
          store(lt, n, 'write', partitioned ? 'lost' : 'ok');
          add(lt + r, n, 'leader.renewing', 'leader.holding', partitioned ? 'lease.failed' : 'lease.written', myEpoch);
          for (let w = lt + 20; w < Math.min(lt + retry, term.b); w += 60 + rand() * 60) writes.push({ t: r3(w), n, token: term.epoch });
          if (downAt(n, lt + retry)?.kind === 'pause') break;
        }
        if (term.end === 'crash') {
          now = term.b;
          state = 'follower.reading';
          ti++;
          continue;
        }
        if (term.end === 'stale') {
          // Woke up from a long pause still believing it leads: one write with the stale token, then fenced.
          for (const dt of [1, 30, 60]) writes.push({ t: r3(term.b + dt), n, token: term.epoch });
          lines.push({
            t: r3(term.b + 1),
            kind: 'violation',
            checker: 'real-time-exclusivity',
            message: `${names[n]} acted as leader of epoch ${term.epoch} after waking from a ${Math.round(term.staleUntil ?? 0)} ms pause while a newer leader held the lease`,
            nodes: [names[n]!],
            expected: false,
          });
        }
        add(term.b + 2, n, 'leader.holding', 'fenced', 'renew.deadline', myEpoch);
        add(term.b + 2 + retry, n, 'fenced', 'follower.reading', 'xstate.after.fencedDwell.election.fenced', myEpoch);
        state = 'follower.reading';
        now = term.b + 2 + retry;
        ti++;
        continue;
      }
      // Follower chatter: waiting → reading → (lease.read) waiting.
      if (state === 'follower.waiting') {
        now += retry;
        if (downAt(n, now)) continue;
        add(now, n, 'follower.waiting', 'follower.reading', 'xstate.after.retryPeriod.election.follower.waiting', myEpoch);
        state = 'follower.reading';
      } else {
        const r = rtt();
        store(now, n, 'read', 'ok');
        now += r;
        add(now, n, state, 'follower.waiting', 'lease.read', myEpoch);
        state = 'follower.waiting';
      }
    }
  }

  // The resource: accepts a token only if it is at least the high-water mark.
  writes.sort((a, b) => a.t - b.t);
  let high = 0;
  let lastAccepted = 0;
  for (const w of writes) {
    const accepted = w.token >= high;
    if (accepted) {
      high = w.token;
      lastAccepted = w.t;
    }
    lines.push({ t: w.t, kind: 'resource', node: names[w.n]!, token: w.token, accepted, highWater: high });
  }
  void lastAccepted;

  lines.sort((a, b) => (a as { t: number }).t - (b as { t: number }).t);
  const meta: TraceLine = {
    kind: 'meta',
    format: TRACE_FORMAT,
    seed: options.seed ?? 1,
    nodes: names,
    options: { synthetic: true, leaseDurationMs: lease, renewDeadlineMs: deadline, retryPeriodMs: retry, unsafe: options.unsafe ?? false },
    violatedAssumptions: options.unsafe ? ['long-pause'] : [],
  };
  return [meta, ...lines];
}
