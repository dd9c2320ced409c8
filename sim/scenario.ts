import type { ClockSpec } from './clock.js';
import { Rng } from './rng.js';

/** A scheduled fault. Times are real (virtual) milliseconds since the run began; `node` is a 0-based host index. */
export type FaultSpec =
  /** Cut the node from the store: `both`, only its requests (`to-store`), or only the replies (`from-store`). */
  | { kind: 'partition'; at: number; node: number; durationMs: number; direction: 'both' | 'to-store' | 'from-store' }
  /** A partition that goes up and down every `periodMs` for `durationMs`. */
  | { kind: 'flap'; at: number; node: number; durationMs: number; periodMs: number }
  /** GC / SIGSTOP: timers and handlers frozen, clocks keep running. */
  | { kind: 'pause'; at: number; node: number; durationMs: number }
  /** Process dies (memory lost, no release) and restarts as a new elector after `durationMs`. */
  | { kind: 'crash'; at: number; node: number; durationMs: number }
  /** Step of the node's wall clock (the monotonic clock is unaffected). */
  | { kind: 'clock-jump'; at: number; node: number; jumpMs: number }
  /** The node's drift rate changes to `driftRate` for `durationMs`, then returns to its base rate. */
  | { kind: 'drift'; at: number; node: number; durationMs: number; driftRate: number }
  /** Message loss / duplication on every store link for `durationMs`. */
  | { kind: 'loss'; at: number; durationMs: number; requestLoss: number; replyLoss: number; duplicate: number }
  /** The store forgets everything (a Redis without persistence restarting). */
  | { kind: 'store-wipe'; at: number }
  /**
   * Every write the node sends to the protected resource during `durationMs` sits `delayMs` longer in the network
   * (a queue on the resource link): it lands well past the node's deadline. Within the assumptions — network delay
   * is not one — so fencing must reject such a write once a successor has written.
   */
  | {
      kind: 'resource-delay';
      at: number;
      node: number;
      durationMs: number;
      delayMs: number;
      /** `leader`: hit whichever node is in `leader` at `at` (a nemesis aimed at the leader; `node` if none leads). */
      target?: 'leader';
      /** Also cut the node from the store (both ways) for this long from `at`, long enough to lose the lease. */
      cutMs?: number;
    };

export type FaultKind = FaultSpec['kind'];
export const FAULT_CLASSES = ['partition', 'skew', 'drift', 'pause', 'crash', 'loss', 'delay'] as const;
export type FaultClass = (typeof FAULT_CLASSES)[number] | 'wipe';

export interface SimTiming {
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly maxDriftRate: number;
  readonly requestTimeoutMs?: number;
}

export interface Scenario {
  readonly seed: number;
  readonly nodes: number;
  readonly durationMs: number;
  readonly timing: SimTiming;
  readonly network: {
    /** One-way latency is drawn in [min, max], skewed towards min (u³), with one message in eight in the slow half. */
    readonly minLatencyMs: number;
    readonly maxLatencyMs: number;
  };
  readonly clocks: readonly ClockSpec[];
  readonly faults: readonly FaultSpec[];
  /** The protected resource checks tokens with a FenceGuard; `false` accepts every write (for the pipeline test). */
  readonly fencing: boolean;
  /** Build the machine without option validation (deliberately unsafe timing). */
  readonly unsafeTiming?: boolean;
  /** Leader work: every `intervalMs` a leader claims its token and, `durationMs` later, sends a fenced write. */
  readonly work: { readonly intervalMs: number; readonly durationMs: number };
  /** The stated pause margin: pauses up to this long are within the assumptions. */
  readonly pauseMarginMs?: number;
  readonly onStale?: 'rejoin' | 'shutdown';
  /** Worker agents and a task board (sim/agents.ts); agent `i` runs on host `nodes + i` (clock `clocks[nodes + i]`). */
  readonly agents?: AgentSpec;
}

/** Agents and tasks in a scenario: faults whose `node` is ≥ `nodes` hit agent `node - nodes`. */
export interface AgentSpec {
  readonly count: number;
  /** Tasks on the board at the start, and later batches (real ms). */
  readonly tasks: number;
  readonly laterTasks?: readonly { readonly at: number; readonly count: number }[];
  readonly heartbeatIntervalMs: number;
  readonly staleAfterMs: number;
  readonly sweepIntervalMs: number;
  /** A worker polls for work every `pollMs` and works `workMs` (uniform) on each task. */
  readonly pollMs: number;
  readonly workMs: { readonly min: number; readonly max: number };
  /** A store call without a reply rejects after this long on the caller's clock (a client's command timeout). */
  readonly storeTimeoutMs: number;
  /** A sweep stalls right before its commit with this chance, up to `maxMs` (the orchestrator pauses mid-sweep). */
  readonly stall?: { readonly chance: number; readonly maxMs: number };
  /** Opt-in worker-side workaround from before the library fix: adopt the claims the board says a worker holds (default false). */
  readonly recover?: boolean;
  /**
   * The sweeper's `RetentionPolicy`: agents down longer than `staleMs` are retired from the index, and register
   * again when they come back (absent: never retired, as in scenarios recorded before retention existed).
   */
  readonly retention?: { readonly goneMs: number | null; readonly staleMs: number | null };
}

/** Default agent timing relative to the election's: heart-beat ~ retry period, stale after ~ one lease. */
export function defaultAgentSpec(t: SimTiming, maxLatencyMs: number, count = 3, tasks = 8): AgentSpec {
  const heartbeatIntervalMs = Math.max(20, Math.round(t.retryPeriodMs / 2));
  const staleAfterMs = Math.max(heartbeatIntervalMs * 4, t.leaseDurationMs);
  return {
    count,
    tasks,
    heartbeatIntervalMs,
    staleAfterMs,
    sweepIntervalMs: Math.max(10, Math.round(staleAfterMs / 4)),
    pollMs: 50,
    workMs: { min: 100, max: 1500 },
    storeTimeoutMs: Math.max(50, 4 * maxLatencyMs + 20),
    stall: { chance: 0.1, maxMs: 2 * t.leaseDurationMs },
    // Shorter than the longest agent outage the fault schedule draws (3 × staleAfterMs), so some runs retire an
    // agent that later comes back and registers again.
    retention: { goneMs: 2 * staleAfterMs, staleMs: 2 * staleAfterMs },
  };
}

export const DEFAULT_TIMING: SimTiming = { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 200, maxDriftRate: 0.01 };

/** The margin between the longest a leader may believe it leads and the earliest a follower may take over (real ms). */
export function exclusivityMarginMs(t: SimTiming): number {
  return t.leaseDurationMs / (1 + t.maxDriftRate) - t.renewDeadlineMs / (1 - t.maxDriftRate);
}

export function pauseMargin(s: Scenario): number {
  return s.pauseMarginMs ?? Math.max(0, Math.floor(exclusivityMarginMs(s.timing)));
}

export function requestTimeout(t: SimTiming): number {
  return t.requestTimeoutMs ?? t.retryPeriodMs;
}

export interface GenerateOptions {
  nodes?: number;
  durationMs?: number;
  timing?: Partial<SimTiming>;
  faults?: readonly FaultClass[] | 'all' | 'none';
  /** Faults per simulated minute (default 12). */
  faultRate?: number;
  /** Allow drift beyond maxDriftRate and pauses beyond the margin (runs then record violated assumptions). */
  breakAssumptions?: boolean;
  fencing?: boolean;
  unsafeTiming?: boolean;
  minLatencyMs?: number;
  maxLatencyMs?: number;
  /** Worker agents (and three tasks per agent): they crash, pause and are cut off too. */
  agents?: number;
}

export function faultClasses(f: GenerateOptions['faults']): FaultClass[] {
  if (f === undefined || f === 'all') return [...FAULT_CLASSES];
  if (f === 'none') return [];
  return [...f];
}

/** The quiet tail of a run: long enough after the last fault heals for the liveness checker to judge. */
export function quietTailMs(s: Pick<Scenario, 'timing' | 'network'>, slowest = 1 - s.timing.maxDriftRate): number {
  return Math.ceil(livenessBoundMs(s.timing, s.network.maxLatencyMs, slowest) * 1.25) + 100;
}

/**
 * Liveness bound, derived from the machine (real ms after the last fault healed, k = 1 / slowest clock rate,
 * RTT = 2 × max one-way latency):
 * - a node's pending request may have been lost: it times out after requestTimeout, waits retryPeriod, reads again
 *   (+RTT); a write still in flight at the heal (≤ one-way latency) may change the version once more, costing one
 *   more read cycle: the first reply showing the final version arrives by k·(requestTimeout + retry) + 2·RTT + one-way;
 * - it then waits leaseDuration on its own clock, and only notices at the next read reply: + k·(lease + retry) + RTT;
 * - the compare-and-set (its own or a rival's that won) is answered within one more RTT.
 */
export function livenessBoundMs(t: SimTiming, maxLatencyMs: number, slowestRate = 1 - t.maxDriftRate): number {
  const k = 1 / slowestRate;
  const rtt = 2 * maxLatencyMs;
  return k * (requestTimeout(t) + 2 * t.retryPeriodMs + t.leaseDurationMs) + 4 * rtt + maxLatencyMs;
}

/**
 * Stale-agent detection bound, derived from the Sweeper (real ms from an agent's last heartbeat write, or from the
 * moment a node starts leading if later; k = 1/slowest clock rate, RTT = 2 × max one-way latency, one sweep's reads
 * = lease + index + N agents + board = (N+3)·RTT):
 * - the sweep in progress when the last beat lands may have read the agent just before it (≤ one sweep + its
 *   commit), then the leader sleeps at most one sweep interval (k·I), and the next sweep's fold first sees the final
 *   beat (≤ one sweep): silence is counted from that fold on the leader's clock;
 * - the leader sleeps until the agent could be stale (nextSweepDelay, ceil'd), k·staleAfter after the fold; a sweep
 *   already running then may fold a hair too early (≤ one sweep, a noop), and the next one marks it (≤ one sweep)
 *   with a commit that lands within one more one-way latency.
 * Each sweep commit refused on a version conflict (a claim or completion raced it) costs one more sweep + commit.
 */
export function detectionBoundMs(a: Pick<AgentSpec, 'count' | 'staleAfterMs' | 'sweepIntervalMs'>, maxLatencyMs: number, slowestRate: number): number {
  const k = 1 / slowestRate;
  const rtt = 2 * maxLatencyMs;
  return k * (a.staleAfterMs + a.sweepIntervalMs + 2) + 4 * sweepReadMs(a, maxLatencyMs) + 2 * rtt;
}

/** The reads of one sweep: lease, agent index, each agent, board. */
export function sweepReadMs(a: Pick<AgentSpec, 'count'>, maxLatencyMs: number): number {
  return (a.count + 3) * 2 * maxLatencyMs;
}

/** After the last fault: a leader (liveness bound), then the detection bound, then the requeue's commit. */
export function agentSettleMs(s: Pick<Scenario, 'timing' | 'network'> & { agents: AgentSpec }, slowest = 1 - s.timing.maxDriftRate): number {
  return livenessBoundMs(s.timing, s.network.maxLatencyMs, slowest) + detectionBoundMs(s.agents, s.network.maxLatencyMs, slowest) + s.agents.storeTimeoutMs / slowest;
}

/** A scenario drawn from a seed: the CLI's campaigns and `replay --seed` use this. */
export function generateScenario(seed: number, o: GenerateOptions = {}): Scenario {
  const rng = new Rng(seed ^ 0x5eed5eed);
  const timing: SimTiming = { ...DEFAULT_TIMING, ...o.timing };
  const nodes = o.nodes ?? 5;
  const durationMs = o.durationMs ?? 60_000;
  const classes = faultClasses(o.faults);
  const network = { minLatencyMs: o.minLatencyMs ?? 1, maxLatencyMs: o.maxLatencyMs ?? 40 };
  const rho = timing.maxDriftRate;
  const clocks: ClockSpec[] = [];
  for (let i = 0; i < nodes; i++) {
    const skew = classes.includes('skew') || classes.includes('drift');
    const wobble = skew ? rng.range(0, rho * 0.3) : 0;
    const drift = classes.includes('drift') ? rng.range(-(rho - wobble), rho - wobble) * 0.999 : 0;
    clocks.push({
      offsetMs: skew ? Math.floor(rng.range(0, 1e9)) : 0,
      driftRate: drift,
      wobbleRate: wobble,
      wobblePeriodMs: rng.int(500, 5000),
      wallStartMs: 1_700_000_000_000 + (skew ? Math.floor(rng.range(-3.6e6, 3.6e6)) : 0),
    });
  }
  const margin = Math.max(0, Math.floor(exclusivityMarginMs(timing)));
  const agents = o.agents && o.agents > 0 ? defaultAgentSpec(timing, network.maxLatencyMs, o.agents, o.agents * 2) : undefined;
  const quiet = quietTailMs({ timing, network }) + (agents ? Math.ceil(agentSettleMs({ timing, network, agents }) * 1.25) : 0);
  const faultEnd = Math.max(0, durationMs - quiet);
  const count = Math.round(((o.faultRate ?? 12) * durationMs) / 60_000);
  const faults: FaultSpec[] = [];
  const busyUntil = new Array<number>(nodes).fill(0);
  // Resource-link delays are drawn from a stream of their own (below), so adding them left every other fault of a
  // seed as it was.
  const pool: FaultClass[] = classes.filter((c) => c !== 'delay');
  if (classes.length > 0 && o.faults !== undefined && o.faults !== 'all' && (o.faults as readonly string[]).includes('wipe')) pool.push('wipe');
  for (let n = 0; n < count && pool.length > 0 && faultEnd > 0; n++) {
    const cls = rng.pick(pool);
    const node = rng.int(0, nodes - 1);
    const at = Math.floor(rng.range(500, Math.max(501, faultEnd - 100)));
    const maxDur = Math.max(1, faultEnd - at);
    const dur = (lo: number, hi: number) => Math.max(1, Math.min(maxDur, Math.floor(rng.range(lo, hi))));
    if (cls !== 'loss' && cls !== 'wipe' && busyUntil[node]! > at) continue;
    let f: FaultSpec;
    switch (cls) {
      case 'partition': {
        const r = rng.next();
        f =
          r < 0.2
            ? { kind: 'flap', at, node, durationMs: dur(500, 6000), periodMs: rng.int(50, 800) }
            : { kind: 'partition', at, node, durationMs: dur(100, 5000), direction: r < 0.6 ? 'both' : r < 0.8 ? 'to-store' : 'from-store' };
        break;
      }
      case 'pause': {
        const long = o.breakAssumptions && rng.chance(0.5);
        f = { kind: 'pause', at, node, durationMs: long ? dur(margin + 1, margin + 4000) : dur(1, Math.max(2, margin)) };
        break;
      }
      case 'crash':
        f = { kind: 'crash', at, node, durationMs: dur(1, 4000) };
        break;
      case 'skew':
        f = { kind: 'clock-jump', at, node, jumpMs: Math.floor(rng.range(-3.6e6, 3.6e6)) };
        break;
      case 'drift': {
        const beyond = o.breakAssumptions && rng.chance(0.5);
        const w = clocks[node]!.wobbleRate;
        const rate = beyond ? (rng.chance(0.5) ? 1 : -1) * rng.range(rho * 3, Math.min(0.5, rho * 30 + 0.1)) : rng.range(-(rho - w), rho - w) * 0.999;
        f = { kind: 'drift', at, node, durationMs: dur(500, 10_000), driftRate: rate };
        break;
      }
      case 'loss':
        f = { kind: 'loss', at, durationMs: dur(200, 4000), requestLoss: rng.range(0, 0.5), replyLoss: rng.range(0, 0.5), duplicate: rng.range(0, 0.3) };
        break;
      default:
        f = { kind: 'store-wipe', at };
    }
    if ('node' in f && 'durationMs' in f) busyUntil[node] = at + f.durationMs + 1;
    faults.push(f);
  }
  if (classes.includes('delay')) {
    // About as many as of each other class: every write the node sends in the window lands a lease or more late;
    // mostly aimed at the leader and paired with a cut from the store, so a successor writes before they land.
    const drng = new Rng(seed ^ 0x0de1a7ed);
    const n = Math.round(((o.faultRate ?? 12) * durationMs) / 60_000 / FAULT_CLASSES.length);
    for (let i = 0; i < n && faultEnd > 600; i++) {
      const at = Math.floor(drng.range(500, faultEnd - 100));
      const maxDur = Math.max(1, faultEnd - at);
      const aimed = drng.chance(0.75);
      faults.push({
        kind: 'resource-delay',
        at,
        node: drng.int(0, nodes - 1),
        durationMs: Math.min(maxDur, Math.floor(drng.range(200, 4000))),
        delayMs: Math.floor(drng.range(timing.renewDeadlineMs + timing.leaseDurationMs, 4 * timing.leaseDurationMs)),
        ...(aimed ? { target: 'leader' as const, cutMs: Math.min(maxDur, Math.floor(drng.range(1.5, 3) * timing.leaseDurationMs)) } : {}),
      });
    }
  }
  if (agents) {
    // Agents on hosts nodes.., with their own clocks and faults, from a separate random stream.
    const arng = new Rng(seed ^ 0x0a9e7750);
    for (let j = 0; j < agents.count; j++) {
      const skew = classes.includes('skew') || classes.includes('drift');
      const wobble = skew ? arng.range(0, rho * 0.3) : 0;
      clocks.push({
        offsetMs: skew ? Math.floor(arng.range(0, 1e9)) : 0,
        driftRate: classes.includes('drift') ? arng.range(-(rho - wobble), rho - wobble) * 0.999 : 0,
        wobbleRate: wobble,
        wobblePeriodMs: arng.int(500, 5000),
        wallStartMs: 1_700_000_000_000,
      });
    }
    const agentClasses = classes.filter((c) => c === 'crash' || c === 'pause' || c === 'partition');
    const agentBusy = new Array<number>(agents.count).fill(0);
    const n = Math.round(((o.faultRate ?? 12) * durationMs) / 60_000);
    for (let i = 0; i < n && agentClasses.length > 0 && faultEnd > 600; i++) {
      const cls = arng.pick(agentClasses);
      const j = arng.int(0, agents.count - 1);
      const at = Math.floor(arng.range(500, faultEnd - 100));
      const durationMs = Math.max(1, Math.min(faultEnd - at, Math.floor(arng.range(1, 3 * agents.staleAfterMs))));
      if (agentBusy[j]! > at) continue;
      agentBusy[j] = at + durationMs + 1;
      faults.push(
        cls === 'partition'
          ? { kind: 'partition', at, node: nodes + j, durationMs, direction: arng.chance(0.6) ? 'both' : arng.chance(0.5) ? 'to-store' : 'from-store' }
          : { kind: cls, at, node: nodes + j, durationMs },
      );
    }
    // A batch of tasks every two seconds through the fault window keeps workers busy while faults strike.
    const laterTasks: Array<{ at: number; count: number }> = [];
    for (let at = 2000; at < faultEnd; at += 2000) laterTasks.push({ at, count: agents.count });
    (agents as { laterTasks?: AgentSpec['laterTasks'] }).laterTasks = laterTasks;
  }
  faults.sort((a, b) => a.at - b.at);
  return {
    ...(agents ? { agents } : {}),
    seed,
    nodes,
    durationMs,
    timing,
    network,
    clocks,
    faults,
    fencing: o.fencing ?? true,
    unsafeTiming: o.unsafeTiming ?? false,
    work: { intervalMs: 50, durationMs: 10 },
  };
}

/** Assumptions a scenario breaks on purpose, derived from the scenario itself (not from what happened). */
export function violatedAssumptions(s: Scenario): string[] {
  const out = new Set<string>();
  const rho = s.timing.maxDriftRate;
  const t = s.timing;
  if (s.unsafeTiming && t.renewDeadlineMs * (1 + rho) >= t.leaseDurationMs * (1 - rho)) out.add('unsafe-timing');
  const beyond = (drift: number, wobble: number) => Math.abs(drift) + wobble > rho + 1e-12;
  s.clocks.forEach((c) => {
    if (beyond(c.driftRate, c.wobbleRate)) out.add('drift-beyond-max');
  });
  // Agents' hosts (index ≥ nodes) pause as long as they like: that is what the agent checkers are about.
  const electionFault = (f: FaultSpec) => !('node' in f) || f.node < s.nodes;
  // Liveness needs replies to beat their timeouts: a round trip shorter than requestTimeoutMs.
  if (2 * s.network.maxLatencyMs >= requestTimeout(t)) out.add('slow-network');
  const margin = pauseMargin(s);
  // Overlapping pauses of one node freeze it for their union: judge that, not each pause alone.
  const frozenUntil = new Map<number, { start: number; end: number }>();
  for (const f of [...s.faults].sort((a, b) => a.at - b.at)) {
    if (f.kind === 'drift' && beyond(f.driftRate, s.clocks[f.node]?.wobbleRate ?? 0)) out.add('drift-beyond-max');
    if (f.kind === 'store-wipe') out.add('store-data-loss');
    if (f.kind === 'pause' && electionFault(f)) {
      const prev = frozenUntil.get(f.node);
      const span = prev && f.at <= prev.end ? { start: prev.start, end: Math.max(prev.end, f.at + f.durationMs) } : { start: f.at, end: f.at + f.durationMs };
      frozenUntil.set(f.node, span);
      if (span.end - span.start > margin) out.add('long-pause');
    }
  }
  return [...out].sort();
}
