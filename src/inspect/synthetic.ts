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
  /** Leader work lines: a token claim (assertLeader) before every fenced write, whose resource line names it. */
  work?: boolean;
  /**
   * Worker agents (a1..aN) with heartbeats, task claims and completions, outages of their own, and the leader's
   * sweeps marking them stale and requeuing their task; a `final` board line at the end.
   */
  agents?: number;
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
  for (const w of writes) {
    const accepted = w.token >= high;
    if (accepted) high = w.token;
    if (options.work) {
      const claimedT = r3(w.t - 1 - rand() * 4);
      lines.push({ t: claimedT, kind: 'work', node: names[w.n]!, phase: 'claim', token: w.token });
      lines.push({ t: w.t, kind: 'resource', node: names[w.n]!, token: w.token, accepted, highWater: high, claimedT });
    } else lines.push({ t: w.t, kind: 'resource', node: names[w.n]!, token: w.token, accepted, highWater: high });
  }
  if (options.work) {
    for (const term of terms) {
      lines.push({ t: r3(term.a), kind: 'work', node: names[term.n]!, phase: 'start', token: term.epoch });
      if (term.b < duration) lines.push({ t: r3(term.b), kind: 'work', node: names[term.n]!, phase: 'stop', token: term.epoch });
    }
  }
  const agentNames = options.agents ? syntheticAgents(options.agents, duration, rand, terms, names, lines) : [];

  lines.sort((a, b) => (a as { t: number }).t - (b as { t: number }).t);
  const meta: TraceLine = {
    kind: 'meta',
    format: TRACE_FORMAT,
    seed: options.seed ?? 1,
    nodes: [...names, ...agentNames],
    options: { synthetic: true, leaseDurationMs: lease, renewDeadlineMs: deadline, retryPeriodMs: retry, unsafe: options.unsafe ?? false },
    violatedAssumptions: options.unsafe ? ['long-pause'] : [],
  };
  return [meta, ...lines];
}

/** Agent lines for `syntheticTrace({ agents })`: see SyntheticOptions.agents. Appends to `lines`, returns the ids. */
function syntheticAgents(
  count: number,
  duration: number,
  rand: () => number,
  terms: readonly { n: number; epoch: number; a: number; b: number }[],
  names: readonly string[],
  lines: TraceLine[],
): string[] {
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const staleAfter = 1500;
  const ids = Array.from({ length: count }, (_, i) => `a${i + 1}`);
  const leaderAt = (t: number) => terms.find((term) => term.a <= t && t < term.b) ?? terms.find((term) => term.a >= t);
  const queue: { task: string; token: number }[] = [];
  const tasks = new Map<string, { state: string; claimedBy: string | null; claimToken: number; completedBy: string | null }>();
  let nextTask = 1;
  const take = () => queue.shift() ?? { task: `t${nextTask++}`, token: 0 };
  // Each agent is simulated on its own, in time order, sharing the queue (good enough for a picture).
  interface AgentRun {
    id: string;
    now: number;
    incarnation: number;
    beat: number;
    nextBeat: number;
    holding: { task: string; token: number; doneAt: number } | null;
    outages: { a: number; b: number; kind: 'pause' | 'partition' | 'crash' }[];
  }
  const runs: AgentRun[] = ids.map((id) => {
    const outages: AgentRun['outages'] = [];
    for (let t = 20_000 + rand() * 40_000; t < duration - 5000; t += 30_000 + rand() * 60_000) {
      const roll = rand();
      outages.push({ a: r3(t), b: r3(t + 1000 + rand() * 3500), kind: roll < 0.4 ? 'pause' : roll < 0.7 ? 'partition' : 'crash' });
    }
    return { id, now: 30 + rand() * 60, incarnation: 1, beat: 0, nextBeat: 0, holding: null, outages };
  });
  for (const run of runs) {
    const { id } = run;
    const register = (t: number) => {
      lines.push({ t: r3(t), kind: 'agent', node: id, event: 'register', agent: id, incarnation: run.incarnation, beat: run.beat });
      run.nextBeat = t + 500;
    };
    register(run.now);
    let o = 0;
    while (run.now < duration) {
      const outage = run.outages[o];
      const next = Math.min(run.nextBeat, run.holding ? run.holding.doneAt : run.now + 20 + rand() * 80, outage ? outage.a : Number.POSITIVE_INFINITY);
      if (next >= duration) break;
      run.now = next;
      if (outage && run.now >= outage.a) {
        o++;
        lines.push({ t: outage.a, kind: 'fault', fault: outage.kind, node: id, durationMs: r3(outage.b - outage.a) });
        // Silent past staleAfter: the leader's next sweep marks it stale and requeues what it held.
        if (outage.b - outage.a > staleAfter + 300) {
          const sweepT = outage.a + staleAfter + 100 + rand() * 200;
          const term = leaderAt(sweepT);
          if (term) {
            const at = Math.max(sweepT, term.a + 50);
            const requeued = run.holding ? [{ task: run.holding.task, from: id, token: run.holding.token }] : [];
            if (run.holding) {
              queue.push({ task: run.holding.task, token: run.holding.token });
              tasks.set(run.holding.task, { state: 'queued', claimedBy: null, claimToken: run.holding.token, completedBy: null });
              run.holding = null;
            }
            lines.push({
              t: r3(at),
              kind: 'agent',
              node: names[term.n]!,
              event: 'sweep',
              applied: true,
              epoch: term.epoch,
              detail: { epochs: [term.epoch], marked: [{ agent: id, incarnation: run.incarnation, beat: run.beat }], requeued },
            });
          }
          run.incarnation++;
          run.now = outage.b + 5;
          register(run.now);
        } else {
          run.now = outage.b + 5;
          run.nextBeat = run.now;
          if (run.holding) run.holding.doneAt = Math.max(run.holding.doneAt, run.now + 50);
        }
        continue;
      }
      if (run.now >= run.nextBeat) {
        run.beat++;
        lines.push({ t: r3(run.now), kind: 'agent', node: id, event: 'heartbeat', agent: id, incarnation: run.incarnation, beat: run.beat });
        run.nextBeat = run.now + 500;
        continue;
      }
      if (run.holding && run.now >= run.holding.doneAt) {
        const { task, token } = run.holding;
        lines.push({ t: r3(run.now), kind: 'agent', node: id, event: 'complete', task, agent: id, token, detail: { claimToken: token, claimedBy: id, wasState: 'claimed' } });
        tasks.set(task, { state: 'completed', claimedBy: id, claimToken: token, completedBy: id });
        run.holding = null;
        continue;
      }
      if (!run.holding) {
        const { task, token } = take();
        run.holding = { task, token: token + 1, doneAt: run.now + 300 + rand() * 900 };
        tasks.set(task, { state: 'claimed', claimedBy: id, claimToken: token + 1, completedBy: null });
        lines.push({ t: r3(run.now), kind: 'agent', node: id, event: 'claim', task, agent: id, token: token + 1, incarnation: run.incarnation });
      }
    }
  }
  lines.sort((a, b) => (a as { t: number }).t - (b as { t: number }).t);
  lines.push({ t: duration, kind: 'agent', node: 'env', event: 'final', detail: { tasks: Object.fromEntries(tasks), agents: {} } });
  return ids;
}
