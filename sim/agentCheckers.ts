/**
 * The agent and task checkers (issue 4): small pure functions over a recorded history, like the election ones. They
 * read the `agent` lines, which the simulator records at the store at the instant a write was applied (so they see
 * what happened, not what a client believed), the fault lines and the leader intervals.
 */
import { type Checker, type Finding, leaderIntervals, metaOf } from './checkers.js';
import { agentSettleMs, detectionBoundMs, type Scenario, sweepReadMs } from './scenario.js';
import type { TraceLine, TraceLineOf } from './trace.js';

type AgentLine = TraceLineOf<'agent'>;

interface FinalState {
  readonly tasks: Record<string, { state: string; claimedBy: string | null; claimToken: number }>;
  /** Every agent record in the store; `indexed` false: not listed in the index (absent in traces before it). */
  readonly agents: Record<string, { state: string; incarnation: number; alive: boolean; working: string[]; indexed?: boolean }>;
}

/** One agent in an `index` line: its record right after the commit (and, when removed, what the board held for it). */
interface IndexEntry {
  readonly agent: string;
  readonly state: string | null;
  readonly incarnation: number | null;
  readonly claims?: string[];
  readonly reserved?: string[];
}

const agentLines = (trace: readonly TraceLine[]): AgentLine[] => trace.filter((l): l is AgentLine => l.kind === 'agent');

/** The scenario (with agents) and the figures the bounds need, from the trace's meta line. */
export function agentContext(trace: readonly TraceLine[]) {
  const meta = metaOf(trace);
  const o = (meta?.options ?? {}) as Record<string, unknown>;
  const scenario = o.scenario as Scenario | undefined;
  if (!scenario?.agents) return undefined;
  const slowest = Math.min(Number(o.slowestClockRate ?? 1), 1 - scenario.timing.maxDriftRate);
  const maxLatencyMs = scenario.network.maxLatencyMs;
  return {
    scenario,
    agents: scenario.agents,
    slowest,
    maxLatencyMs,
    durationMs: scenario.durationMs,
    detectionBoundMs: detectionBoundMs(scenario.agents, maxLatencyMs, slowest),
    settleMs: agentSettleMs({ ...scenario, agents: scenario.agents }, slowest),
  };
}

/** When the last fault (or injected mid-sweep stall) ended, in real ms. */
function lastFaultEnd(trace: readonly TraceLine[]): number {
  let healed = 0;
  for (const l of trace) {
    if (l.kind === 'fault' || (l.kind === 'agent' && l.event === 'stall')) healed = Math.max(healed, l.t);
  }
  return healed;
}

/**
 * No task lost: once faults have healed (the run's tail is long enough for a leader, a detection and a requeue),
 * every task is completed, queued, or claimed by a live agent whose record is active and that is working on it (a
 * claim applied so recently that its reply may still be on the way is given the benefit of the doubt).
 */
export const noTaskLost: Checker = {
  name: 'no-task-lost',
  description: 'after faults heal every task is completed, queued, or claimed by a live agent working on it',
  assumptions: ['store-data-loss'],
  check(trace) {
    const ctx = agentContext(trace);
    const lines = agentLines(trace);
    const final = [...lines].reverse().find((l) => l.event === 'final');
    if (!ctx || !final) return [];
    if (final.t < lastFaultEnd(trace) + ctx.settleMs) return [];
    const { tasks, agents } = final.detail as unknown as FinalState;
    const a = ctx.agents;
    const inFlight = (a.storeTimeoutMs + a.pollMs) / ctx.slowest + 2 * ctx.maxLatencyMs;
    const lastClaim = new Map<string, number>();
    for (const l of lines) if (l.event === 'claim' && l.task) lastClaim.set(l.task, l.t);
    const out: Finding[] = [];
    for (const [id, task] of Object.entries(tasks)) {
      if (task.state !== 'claimed') continue;
      const holder = task.claimedBy ? agents[task.claimedBy] : undefined;
      if (holder && holder.state === 'active' && holder.alive && holder.working.includes(id)) continue;
      if ((lastClaim.get(id) ?? Number.NEGATIVE_INFINITY) >= final.t - inFlight) continue;
      const why = !holder
        ? 'an unknown agent'
        : `${task.claimedBy} (record ${holder.state}, incarnation ${holder.incarnation}, ${holder.alive ? 'running' : 'down'}, ${holder.working.length ? `working on ${holder.working.join(', ')}` : 'working on nothing'})`;
      out.push({ t: final.t, message: `task ${id} is lost: still claimed (token ${task.claimToken}) by ${why} at the end of the run`, nodes: task.claimedBy ? [task.claimedBy] : [] });
    }
    return out;
  },
};

/** No task completed twice, and no completion accepted from a claim that was not the current one. */
export const noTaskCompletedTwice: Checker = {
  name: 'no-task-completed-twice',
  description: 'every task is completed at most once, by its current claim',
  assumptions: [],
  check(trace) {
    const done = new Map<string, AgentLine>();
    const out: Finding[] = [];
    for (const l of agentLines(trace)) {
      if (l.event !== 'complete' || !l.task) continue;
      const before = (l.detail ?? {}) as { claimToken?: number; claimedBy?: string | null; wasState?: string };
      const first = done.get(l.task);
      if (first) {
        out.push({ t: l.t, message: `task ${l.task} completed twice: by ${first.agent} (token ${first.token}) at ${Math.round(first.t)} ms and by ${l.agent} (token ${l.token})`, nodes: [first.agent ?? '', l.agent ?? ''] });
      } else if (before.wasState !== 'claimed' || before.claimToken !== l.token || before.claimedBy !== l.agent) {
        out.push({
          t: l.t,
          message: `task ${l.task} completed by ${l.agent} with token ${l.token}, but it was ${before.wasState} by ${before.claimedBy ?? 'nobody'} at token ${before.claimToken}: a stale claim was accepted`,
          nodes: [l.agent ?? ''],
        });
      }
      if (!first) done.set(l.task, l);
    }
    return out;
  },
};

/** Every applied sweep (stale marks, requeues) was written while its epoch was the current one, held by its writer. */
export const noStaleEpochRequeue: Checker = {
  name: 'no-stale-epoch-requeue',
  description: 'no sweep (stale mark or requeue) is accepted from a non-current epoch',
  assumptions: [],
  check(trace) {
    const out: Finding[] = [];
    for (const l of agentLines(trace)) {
      if (l.event !== 'sweep' || l.applied !== true) continue;
      const d = (l.detail ?? {}) as { lease?: { holder: string | null; epoch: number | null } | null; epochs?: number[]; requeued?: unknown[]; marked?: unknown[] };
      const lease = d.lease;
      const epochs = d.epochs ?? [];
      if (lease && lease.holder === l.node && epochs.length > 0 && epochs.every((e) => e === lease.epoch)) continue;
      out.push({
        t: l.t,
        message: `${l.node}'s sweep at epoch ${epochs.join('/') || '?'} (${d.marked?.length ?? 0} stale mark(s), ${d.requeued?.length ?? 0} requeue(s)) was applied while the lease was ${lease ? `held by ${lease.holder ?? 'nobody'} at epoch ${lease.epoch}` : 'absent'}`,
        nodes: [l.node, ...(lease?.holder && lease.holder !== l.node ? [lease.holder] : [])],
      });
    }
    return out;
  },
};

export interface Silence {
  readonly agent: string;
  readonly incarnation: number;
  readonly beat: number;
  /** Real time of the last beat-changing write (register/heartbeat) of this (incarnation, beat). */
  readonly since: number;
  /** When the next beat-changing write of the agent landed (the silence ended), or the end of the run. */
  readonly until: number;
  /** When a sweep marked this (incarnation, beat) stale, if it did. */
  readonly markedAt: number | undefined;
}

/** Every heartbeat gap of every agent, and when (if) it was marked stale. */
export function silences(trace: readonly TraceLine[]): Silence[] {
  const lines = agentLines(trace);
  const end = Math.max(Number(metaOf(trace)?.options.durationMs ?? 0), ...lines.map((l) => l.t));
  const marks = new Map<string, number>();
  for (const l of lines) {
    if (l.event !== 'sweep' || l.applied !== true) continue;
    for (const m of ((l.detail ?? {}) as { marked?: Array<{ agent: string; incarnation: number; beat: number }> }).marked ?? []) {
      const key = `${m.agent}#${m.incarnation}#${m.beat}`;
      if (!marks.has(key)) marks.set(key, l.t);
    }
  }
  const beats = lines.filter((l) => (l.event === 'register' || l.event === 'heartbeat' || l.event === 'deregister') && l.agent);
  const out: Silence[] = [];
  beats.forEach((l, i) => {
    if (l.event === 'deregister') return;
    const next = beats.slice(i + 1).find((n) => n.agent === l.agent);
    out.push({
      agent: l.agent!,
      incarnation: l.incarnation ?? 0,
      beat: l.beat ?? 0,
      since: l.t,
      until: next ? next.t : end,
      markedAt: marks.get(`${l.agent}#${l.incarnation}#${l.beat}`),
    });
  });
  return out;
}

interface Span {
  readonly start: number;
  readonly end: number;
}

/** Fault spans per orchestrator node (from the scenario's schedule and the recorded stalls); `*` = global. */
function faultSpans(trace: readonly TraceLine[], scenario: Scenario, slowest: number): Map<string, Span[]> {
  const out = new Map<string, Span[]>();
  const add = (node: string, span: Span) => out.set(node, [...(out.get(node) ?? []), span]);
  for (const f of scenario.faults) {
    if (f.kind === 'clock-jump') continue;
    // Aimed at whoever leads when it strikes: its store cut is taken from the trace below, on the node it hit.
    if (f.kind === 'resource-delay' && f.target === 'leader') continue;
    const node = 'node' in f ? `n${f.node + 1}` : '*';
    if ('node' in f && f.node >= scenario.nodes) continue;
    add(node, { start: f.at, end: f.at + ('durationMs' in f ? f.durationMs : 0) });
  }
  for (const l of trace) {
    if (l.kind !== 'fault' || l.fault !== 'partition' || (l.detail as { with?: unknown } | undefined)?.with !== 'resource-delay') continue;
    add(l.node ?? '*', { start: l.t, end: l.t + (l.durationMs ?? 0) });
  }
  for (const l of agentLines(trace)) {
    if (l.event !== 'stall') continue;
    const d = (l.detail ?? {}) as { since?: number; plannedMs?: number; begin?: boolean };
    const start = Number(d.since ?? l.t);
    // A stall's begin line spans its planned length (on the node's clock): its end line is missing if the node
    // crashed mid-stall.
    add(l.node, { start, end: d.begin ? start + Number(d.plannedMs ?? 0) / slowest : l.t });
  }
  return out;
}

/**
 * Stale agents are detected within the bound (`detectionBoundMs`: k·(staleAfter + sweepInterval) plus the reads of a
 * few sweeps), counted from the agent's last heartbeat write or, if later, from when a node starts leading. Judged
 * only where one node led throughout, and neither it nor the network suffered a fault (or an injected mid-sweep
 * stall) from one request timeout before until the deadline; every sweep commit of that leader refused on a version
 * conflict in the window extends it by one sweep and commit.
 */
export const staleDetectionBound: Checker = {
  name: 'stale-detection-bound',
  description: 'a silent agent is marked stale within staleAfterMs + one sweep interval (scaled for drift, plus network)',
  assumptions: ['drift-beyond-max', 'slow-network', 'store-data-loss'],
  check(trace) {
    const ctx = agentContext(trace);
    if (!ctx) return [];
    const rtt = 2 * ctx.maxLatencyMs;
    const perConflict = sweepReadMs(ctx.agents, ctx.maxLatencyMs) + rtt;
    const lookback = ctx.agents.storeTimeoutMs / ctx.slowest + rtt;
    const leaders = leaderIntervals(trace);
    const faults = faultSpans(trace, ctx.scenario, ctx.slowest);
    const refused = agentLines(trace).filter((l) => l.event === 'sweep' && l.applied === false);
    const out: Finding[] = [];
    for (const s of silences(trace)) {
      for (const lead of leaders) {
        const from = Math.max(s.since, lead.start);
        let deadline = from + ctx.detectionBoundMs;
        for (let i = 0; i < 20; i++) {
          const conflicts = refused.filter((r) => r.node === lead.node && r.t >= from && r.t <= deadline).length;
          const next = from + ctx.detectionBoundMs + conflicts * perConflict;
          if (next === deadline) break;
          deadline = next;
        }
        if (deadline > Math.min(lead.end, s.until, ctx.durationMs)) continue;
        const hit = (sp: Span) => sp.start <= deadline && sp.end >= from - lookback;
        if ((faults.get(lead.node) ?? []).some(hit) || (faults.get('*') ?? []).some(hit)) continue;
        if (s.markedAt === undefined || s.markedAt > deadline) {
          out.push({
            t: deadline,
            message: `${s.agent} (incarnation ${s.incarnation}) silent since ${Math.round(s.since)} ms was ${s.markedAt === undefined ? 'not marked stale' : `marked stale only at ${Math.round(s.markedAt)} ms`} although ${lead.node} led throughout from ${Math.round(lead.start)} ms: bound ${Math.round(deadline - from)} ms`,
            nodes: [s.agent, lead.node],
          });
        }
        break;
      }
    }
    return out;
  },
};

/**
 * Retirement keeps the registry whole, at the commit: no index write removes an agent whose record is active right
 * after it, or that the board then shows holding a claim or a reservation, and only a sweep removes anyone
 * (registration only adds). An agent dropped from the index is never judged again by the sweeps while idle.
 */
export const noActiveAgentRetired: Checker = {
  name: 'no-active-agent-retired',
  description: 'no agent leaves the index while active, holding a claim or reserved a task, nor by a non-sweep write',
  assumptions: [],
  check(trace) {
    const out: Finding[] = [];
    for (const l of agentLines(trace)) {
      if (l.event !== 'index') continue;
      const d = (l.detail ?? {}) as { sweep?: boolean; removed?: IndexEntry[] };
      for (const r of d.removed ?? []) {
        const why = [
          ...(r.state === 'active' ? [`its record was active (incarnation ${r.incarnation})`] : []),
          ...(r.claims?.length ? [`it held ${r.claims.join(', ')}`] : []),
          ...(r.reserved?.length ? [`${r.reserved.join(', ')} ${r.reserved.length > 1 ? 'were' : 'was'} reserved for it`] : []),
          ...(d.sweep !== true ? ['the write was not a sweep'] : []),
        ];
        if (why.length === 0) continue;
        out.push({ t: l.t, message: `${l.node} removed ${r.agent} (record ${r.state ?? 'absent'}) from the agent index although ${why.join(' and ')}`, nodes: [r.agent, l.node] });
      }
    }
    return out;
  },
};

/**
 * Every active agent is in the index at the end, once faults (and stalls) have healed for `agentSettleMs`: only the
 * index is swept, so an active agent missing from it would never be marked stale, nor shown by `agentStatus()`.
 */
export const activeAgentsIndexed: Checker = {
  name: 'active-agents-indexed',
  description: 'after faults heal every active agent record is listed in the agent index',
  assumptions: ['store-data-loss'],
  check(trace) {
    const ctx = agentContext(trace);
    const final = [...agentLines(trace)].reverse().find((l) => l.event === 'final');
    if (!ctx || !final) return [];
    if (final.t < lastFaultEnd(trace) + ctx.settleMs) return [];
    const { agents } = final.detail as unknown as FinalState;
    const out: Finding[] = [];
    for (const [id, a] of Object.entries(agents)) {
      if (a.state !== 'active' || a.indexed !== false) continue;
      out.push({ t: final.t, message: `${id} (incarnation ${a.incarnation}, ${a.alive ? 'running' : 'down'}) is active but missing from the agent index at the end of the run: no sweep judges it`, nodes: [id] });
    }
    return out;
  },
};

/** One agent removed from the index (a retirement), timed against its retention period. */
export interface Retirement {
  /** Real time the index commit was applied. */
  readonly t: number;
  /** Who wrote the index (an orchestrator for a retirement). */
  readonly node: string;
  readonly agent: string;
  readonly state: 'gone' | 'stale';
  readonly incarnation: number | null;
  /** The retention period for that state (`goneMs` or `staleMs`); null: never retire. */
  readonly keepMs: number | null;
  /** The agent's last beat-changing write before the commit (its deregistration, last heartbeat or registration). */
  readonly since: { readonly t: number; readonly event: string; readonly beat: number | undefined } | undefined;
  /** The earliest real time a correct leader can retire it: `since + keepMs / fastest` (Infinity when never). */
  readonly earliest: number;
  /** `t - earliest`: how much later than that bound it happened (negative: too early). */
  readonly marginMs: number;
}

/**
 * The fastest rate a leader's monotonic clock may run at: the scenario's measured bound over the orchestrator nodes
 * (drift faults and wobble included), and at least 1 + maxDriftRate — the looser of the two.
 */
function fastestRate(trace: readonly TraceLine[], scenario: Scenario): number {
  const measured = Number((metaOf(trace)?.options as Record<string, unknown> | undefined)?.fastestClockRate ?? 0);
  return Math.max(Number.isFinite(measured) ? measured : 0, 1 + scenario.timing.maxDriftRate);
}

/** Floating-point slack on clock readings around 1e9 ms (the bound itself has no rounding). */
const CLOCK_EPSILON_MS = 1e-3;

/**
 * Every agent an index write removed while its record was stale or gone (records in other states are the business
 * of `no-active-agent-retired`), with the last write that changed its heartbeat counter before that commit and the
 * earliest instant its retention allowed it.
 *
 * Why `since + keepMs / fastest` is a bound every correct leader meets: the leader retires an agent once its own
 * monotonic clock has advanced `keepMs` since the fold that first showed the agent's current (incarnation, beat) —
 * the commit checks the record at the version read, so that is the record still in the store at the commit, and the
 * last beat-changing write in the trace is the one that produced it. That fold ran after a read applied after the
 * write (network latency only delays it), the commit lands after the plan (latency again only delays it), and a clock
 * running at most `fastest` advances `keepMs` in no less than `keepMs / fastest` real ms. So drift is the only
 * allowance (the leader's clock may run fast); latency and the time of the leader's first observation can only add
 * to the margin, and no round trip is subtracted.
 */
export function retirements(trace: readonly TraceLine[]): Retirement[] {
  const ctx = agentContext(trace);
  if (!ctx) return [];
  const fastest = fastestRate(trace, ctx.scenario);
  const retention = ctx.agents.retention;
  const last = new Map<string, { t: number; event: string; beat: number | undefined }>();
  const out: Retirement[] = [];
  for (const l of agentLines(trace)) {
    if ((l.event === 'register' || l.event === 'heartbeat' || l.event === 'deregister') && l.agent) {
      last.set(l.agent, { t: l.t, event: l.event, beat: l.beat });
      continue;
    }
    if (l.event !== 'index') continue;
    for (const r of ((l.detail ?? {}) as { removed?: IndexEntry[] }).removed ?? []) {
      if (r.state !== 'gone' && r.state !== 'stale') continue;
      const keepMs = (r.state === 'gone' ? retention?.goneMs : retention?.staleMs) ?? null;
      const since = last.get(r.agent);
      const earliest = keepMs === null ? Number.POSITIVE_INFINITY : (since?.t ?? 0) + keepMs / fastest;
      out.push({ t: l.t, node: l.node, agent: r.agent, state: r.state, incarnation: r.incarnation, keepMs, since, earliest, marginMs: l.t - earliest });
    }
  }
  return out;
}

/**
 * Retention is waited out: no agent leaves the index before its retention period has passed — a gone agent not
 * before `goneMs` after its deregistration, a stale one not before `staleMs` after its last heartbeat change — in
 * real time, allowing for a leader whose clock runs fast (see `retirements` for why that is the only allowance). An
 * agent retired while its state's retention is null (never retire), or absent from the scenario, is always too early.
 */
export const retentionWaited: Checker = {
  name: 'retention-waited',
  description: 'no stale or gone agent is retired from the index before its retention period (scaled for the fastest clock) has passed',
  // A wipe restarts heartbeat counters: a leader may have seen the same (incarnation, beat) long before the write
  // the trace last shows. Drift beyond the maximum needs no assumption: the bound uses the scenario's measured rates.
  assumptions: ['store-data-loss'],
  check(trace) {
    const out: Finding[] = [];
    for (const r of retirements(trace)) {
      if (r.marginMs >= -CLOCK_EPSILON_MS) continue;
      const period = r.state === 'gone' ? 'goneMs' : 'staleMs';
      const from = r.since ? `its ${r.since.event} at ${Math.round(r.since.t)} ms` : 'the start of the run (no heartbeat write traced)';
      out.push({
        t: r.t,
        message:
          r.keepMs === null
            ? `${r.node} retired ${r.agent} (record ${r.state}, incarnation ${r.incarnation}) from the agent index at ${Math.round(r.t)} ms although its retention (${period}) is never`
            : `${r.node} retired ${r.agent} (record ${r.state}, incarnation ${r.incarnation}) from the agent index at ${Math.round(r.t)} ms, ${Math.round(r.t - (r.since?.t ?? 0))} ms after ${from}: ${period} ${r.keepMs} ms allows it only from ${Math.round(r.earliest)} ms (${Math.round(-r.marginMs)} ms too early)`,
        nodes: [r.agent, r.node],
      });
    }
    return out;
  },
};

/** The agent checkers, to append to `defaultCheckers`. */
export const agentCheckers: readonly Checker[] = [noTaskLost, noTaskCompletedTwice, noStaleEpochRequeue, staleDetectionBound, noActiveAgentRetired, activeAgentsIndexed, retentionWaited];

export interface AgentRunStats {
  readonly tasks: number;
  readonly completed: number;
  readonly requeued: number;
  readonly staleMarks: number;
  /** Agents removed from the index (retired by a sweep). */
  readonly retired: number;
  /** Per stale or gone agent retired: real ms after the earliest instant its retention allowed (see `retirements`). */
  readonly retentionMarginsMs: number[];
  /** Real ms from an agent's last heartbeat write to the sweep that marked it stale. */
  readonly detectionMs: number[];
  readonly detectionBoundMs: number;
}

export function agentStats(trace: readonly TraceLine[]): AgentRunStats | undefined {
  const ctx = agentContext(trace);
  if (!ctx) return undefined;
  const lines = agentLines(trace);
  let tasks = 0;
  let requeued = 0;
  let staleMarks = 0;
  let retired = 0;
  for (const l of lines) {
    if (l.event === 'submit') tasks += ((l.detail as { tasks?: unknown[] } | undefined)?.tasks ?? []).length;
    if (l.event === 'index') retired += ((l.detail as { removed?: unknown[] } | undefined)?.removed ?? []).length;
    if (l.event === 'sweep' && l.applied) {
      const d = l.detail as { requeued?: unknown[]; marked?: unknown[] };
      requeued += d.requeued?.length ?? 0;
      staleMarks += d.marked?.length ?? 0;
    }
  }
  return {
    tasks,
    completed: new Set(lines.filter((l) => l.event === 'complete').map((l) => l.task)).size,
    requeued,
    staleMarks,
    retired,
    detectionMs: silences(trace)
      .filter((s) => s.markedAt !== undefined)
      .map((s) => s.markedAt! - s.since),
    detectionBoundMs: ctx.detectionBoundMs,
    retentionMarginsMs: retirements(trace).map((r) => r.marginMs),
  };
}
