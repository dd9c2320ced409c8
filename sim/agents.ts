/**
 * Agents and tasks in the simulator (issue 4). Every orchestrator node runs the library's `Sweeper` (observer as a
 * follower, sweeper via `whileLeader`), every worker agent is a `createAgent` on a host of its own (a `SimProcess`,
 * so the fault schedule crashes, pauses, cuts off and drifts it like a node), and all of them talk to the shared
 * store through `SimLink`: a `LeaseStore` whose calls are simulated-network messages (latency, loss, duplication,
 * partitions) and whose promises resolve when the scheduler delivers the reply — the simulator then `settle()`s, so
 * the continuation runs at that same virtual instant. Calls that get no reply reject after `storeTimeoutMs` on the
 * caller's clock, as a real client's command timeout does (the write may or may not have been applied).
 *
 * The store side records what happened (`agent` trace lines), observed at the instant a write was applied, from the
 * records before and after: the checkers (sim/agentCheckers.ts) never trust what a client believes it did.
 */
import type { CommitOp, Json, LeaseStore, StoreEntry } from '../src/adapters/LeaseStore.js';
import type { MemoryLeaseStore } from '../src/adapters/MemoryLeaseStore.js';
import { type Agent, createAgent } from '../src/agents/agent.js';
import { addTasks, emptyBoard, type NewTask } from '../src/agents/logic.js';
import { AgentRegistry } from '../src/agents/registry.js';
import { type AgentRecord, agentKeys, type HandoffNote, type TaskBoard, type TaskRecord } from '../src/agents/schema.js';
import { Sweeper, type SweeperOptions, sleep } from '../src/agents/sweeper.js';
import type { ElectionClock } from '../src/clock.js';
import { CasMismatchError } from '../src/errors.js';
import { silentLogger } from '../src/logger.js';
import { agentCheckers } from './agentCheckers.js';
import { defaultCheckers } from './checkers.js';
import { type AgentSpec, pauseMargin, type Scenario } from './scenario.js';
import { type ProcessContext, resourceWriter, type SimEnvironment, type SimProcess, type SimResult, type SimulateOptions, simulate, type Workload } from './simulator.js';
import type { TraceLine } from './trace.js';

/** The election name the simulator uses (its lease key is `agentKeys(SIM_ELECTION).lease`). */
export const SIM_ELECTION = 'sim';
export const simKeys = agentKeys(SIM_ELECTION);
const agentPrefix = `${simKeys.index}/`;

/**
 * Deliberately broken variants, injected (nothing in src/ is modified) to show the checkers catch real bugs.
 * `sweeper` edits the options every node's Sweeper is built with (e.g. drop `isLeader`, or splice the lease
 * check-op out of the ops in `beforeCommit`); `complete` replaces an agent's completion call.
 */
export interface AgentMutants {
  readonly sweeper?: (options: SweeperOptions) => SweeperOptions;
  readonly complete?: (registry: AgentRegistry, agentId: string, taskId: string, claimToken: number) => Promise<unknown>;
  /** Edits each worker's agent right after `createAgent` (e.g. patch its registry to skip the claim recovery). */
  readonly agent?: (agent: Agent) => void;
  /** The sweeper ignores the end of leadership (whileLeader's signal): it keeps sweeping with its old token. */
  readonly ignoreLeadershipLoss?: boolean;
}

export interface AgentSimOptions extends Omit<SimulateOptions, 'processes' | 'environment'> {
  readonly mutants?: AgentMutants;
}

type Reply =
  | { type: 'ok'; value: unknown }
  | { type: 'conflict'; key: string; expected: string | null; actual: string | null }
  | { type: 'failed'; message: string };

export class StoreTimeoutError extends Error {
  constructor(ms: number) {
    super(`the store did not answer within ${ms} ms (the request may or may not have been applied)`);
  }
}

/** The store side of the agents' world: applies requests at the instant they arrive and records what changed. */
export class AgentWorld {
  store!: MemoryLeaseStore;
  env!: SimEnvironment;
  /** What each live agent process is working on (for the final snapshot), by agent id. */
  readonly working = new Map<string, ReadonlySet<string>>();

  attach(env: SimEnvironment): void {
    this.env = env;
    this.store = env.store;
  }

  private emit(line: Omit<TraceLine & { kind: 'agent' }, 't' | 'kind'>): void {
    this.env.emit({ t: this.env.now(), kind: 'agent', ...line } as TraceLine);
  }

  read(key: string): Reply {
    return { type: 'ok', value: this.store.readSync(key) };
  }

  commit(node: string, orchestrator: boolean, ops: readonly CommitOp[]): Reply {
    const before = new Map<string, StoreEntry | undefined>(ops.map((o) => [o.key, this.store.readSync(o.key)]));
    const lease = this.store.readSync(simKeys.lease)?.value as { holder?: string | null; epoch?: number } | undefined;
    const leaseChecked = ops.some((o) => o.key === simKeys.lease && o.value === undefined);
    try {
      const versions = this.store.commitSync(ops);
      this.record(node, orchestrator, ops, before, lease, leaseChecked, true);
      return { type: 'ok', value: versions };
    } catch (err) {
      if (!CasMismatchError.is(err)) return { type: 'failed', message: err instanceof Error ? err.message : String(err) };
      this.record(node, orchestrator, ops, before, lease, leaseChecked, false, err.key);
      return { type: 'conflict', key: err.key, expected: err.expectedVersion, actual: err.actualVersion };
    }
  }

  /** Seeds or extends the task board directly (a client outside the simulated network). */
  submit(tasks: readonly NewTask[]): void {
    const entry = this.store.readSync(simKeys.board);
    const board = (entry?.value as unknown as TaskBoard | undefined) ?? emptyBoard();
    const at = `t=${Math.round(this.env.now())}ms`;
    this.store.commitSync([{ key: simKeys.board, expectedVersion: entry?.version ?? null, value: addTasks(board, tasks, at) as unknown as Json }]);
    this.emit({ node: 'env', event: 'submit', detail: { tasks: tasks.map((t) => t.id) } });
  }

  snapshot(): void {
    const board = (this.store.readSync(simKeys.board)?.value as unknown as TaskBoard | undefined) ?? emptyBoard();
    const index = new Set((this.store.readSync(simKeys.index)?.value as { ids?: string[] } | undefined)?.ids ?? []);
    // Every agent record the store holds, indexed or not (a retired agent keeps its record: the store has no
    // delete), so a checker can tell an active agent that dropped out of the index.
    const agents: Record<string, { state: string; incarnation: number; alive: boolean; working: string[]; indexed: boolean }> = {};
    for (const key of this.store.keys()) {
      if (!key.startsWith(agentPrefix)) continue;
      const r = this.store.readSync(key)?.value as unknown as AgentRecord | undefined;
      if (r) agents[r.id] = { state: r.state, incarnation: r.incarnation, alive: this.env.alive(r.id), working: [...(this.working.get(r.id) ?? [])], indexed: index.has(r.id) };
    }
    const tasks: Record<string, { state: string; claimedBy: string | null; claimToken: number; completedBy: string | null }> = {};
    for (const t of Object.values(board.tasks)) tasks[t.id] = { state: t.state, claimedBy: t.claimedBy, claimToken: t.claimToken, completedBy: t.completedBy };
    this.emit({ node: 'env', event: 'final', detail: { tasks, agents } });
  }

  /**
   * An applied commit changed the agent index: who left it and who joined, each with its record as the store holds
   * it right after the commit (state, incarnation) and, for those removed, the tasks the board then shows claimed by
   * or reserved for them. `detail.sweep`: an orchestrator's sweep wrote it (a retirement, or an unindexed active
   * holder put back); otherwise an agent's registration.
   */
  private indexLine(
    node: string,
    orchestrator: boolean,
    change: { removed: string[]; added: string[]; size: number },
    lease: { holder?: string | null; epoch?: number } | undefined,
  ): Omit<TraceLine & { kind: 'agent' }, 't' | 'kind'> {
    const tasks = Object.values((this.store.readSync(simKeys.board)?.value as unknown as TaskBoard | undefined)?.tasks ?? {});
    const record = (id: string) => {
      const r = this.store.readSync(simKeys.agent(id))?.value as unknown as AgentRecord | undefined;
      return { agent: id, state: r?.state ?? null, incarnation: r?.incarnation ?? null };
    };
    const removed = change.removed.map((id) => ({
      ...record(id),
      claims: tasks.filter((t) => t.state === 'claimed' && t.claimedBy === id).map((t) => t.id),
      reserved: tasks.filter((t) => t.state === 'queued' && t.assignee === id).map((t) => t.id),
    }));
    return {
      node,
      event: 'index',
      detail: {
        sweep: orchestrator,
        removed,
        added: change.added.map(record),
        size: change.size,
        ...(orchestrator ? { lease: lease ? { holder: lease.holder ?? null, epoch: lease.epoch ?? null } : null } : {}),
      },
    };
  }

  private record(
    node: string,
    orchestrator: boolean,
    ops: readonly CommitOp[],
    before: Map<string, StoreEntry | undefined>,
    lease: { holder?: string | null; epoch?: number } | undefined,
    leaseChecked: boolean,
    applied: boolean,
    conflictKey?: string,
  ): void {
    const marked: Array<{ agent: string; incarnation: number; beat: number }> = [];
    const requeued: Array<{ task: string; from: string | null; token: number; handoff?: TracedHandoff }> = [];
    const epochs = new Set<number>();
    const lines: Array<Omit<TraceLine & { kind: 'agent' }, 't' | 'kind'>> = [];
    let indexChange: { removed: string[]; added: string[]; size: number } | undefined;
    for (const op of ops) {
      if (op.value === undefined) continue;
      const prev = before.get(op.key)?.value;
      if (op.key === simKeys.index) {
        const was = (prev as { ids?: string[] } | undefined)?.ids ?? [];
        const now = (op.value as { ids?: string[] }).ids ?? [];
        const removed = was.filter((id) => !now.includes(id));
        const added = now.filter((id) => !was.includes(id));
        if (removed.length > 0 || added.length > 0) indexChange = { removed, added, size: now.length };
      } else if (op.key.startsWith(agentPrefix)) {
        const a = op.value as unknown as AgentRecord;
        const b = prev as unknown as AgentRecord | undefined;
        const at = { agent: a.id, incarnation: a.incarnation, beat: a.beat };
        if (!b || a.incarnation !== b.incarnation) lines.push({ node, event: 'register', ...at });
        else if (a.state === 'gone' && b.state !== 'gone') lines.push({ node, event: 'deregister', ...at });
        else if (a.beat !== b.beat) lines.push({ node, event: 'heartbeat', ...at });
        else if (a.state === 'stale' && b.state !== 'stale') {
          marked.push(at);
          if (a.staleMark) epochs.add(a.staleMark.epoch);
        }
      } else if (op.key === simKeys.board) {
        const after = (op.value as unknown as TaskBoard).tasks;
        const was = (prev as unknown as TaskBoard | undefined)?.tasks ?? {};
        for (const a of Object.values(after)) {
          const b: TaskRecord | undefined = was[a.id];
          if (!b) continue;
          if (a.state === 'claimed' && (b.state !== 'claimed' || a.claimToken !== b.claimToken)) {
            const holder = this.store.readSync(simKeys.agent(a.claimedBy ?? ''))?.value as unknown as AgentRecord | undefined;
            lines.push({ node, event: 'claim', task: a.id, agent: a.claimedBy ?? '', token: a.claimToken, ...(holder ? { incarnation: holder.incarnation } : {}) });
          } else if (a.state === 'completed' && JSON.stringify(a) !== JSON.stringify(b)) {
            lines.push({ node, event: 'complete', task: a.id, agent: a.completedBy ?? '', token: a.completedToken ?? -1, detail: { claimToken: b.claimToken, claimedBy: b.claimedBy, wasState: b.state } });
          } else if (b.state === 'claimed' && a.state === 'queued') {
            if (!orchestrator) {
              lines.push({
                node,
                event: 'release',
                task: a.id,
                agent: b.claimedBy ?? '',
                token: b.claimToken,
                ...(a.handoff ? { detail: { handoff: tracedHandoff(a.handoff) } } : {}),
              });
            } else {
              requeued.push({ task: a.id, from: b.claimedBy, token: b.claimToken, ...(a.handoff ? { handoff: tracedHandoff(a.handoff) } : {}) });
              if (a.handoff) epochs.add(a.handoff.epoch);
            }
          }
        }
      }
    }
    if (!applied) {
      // Refused writes change nothing: only a refused sweep is worth a line (e.g. fenced by its lease check-op).
      if (orchestrator && (marked.length > 0 || requeued.length > 0 || ops.some((o) => o.key !== simKeys.lease && o.value !== undefined))) {
        this.emit({ node, event: 'sweep', applied: false, ...(epochs.size === 1 ? { epoch: [...epochs][0]! } : {}), detail: { conflict: conflictKey ?? null, leaseChecked } });
      }
      return;
    }
    for (const line of lines) this.emit(line);
    if (indexChange) this.emit(this.indexLine(node, orchestrator, indexChange, lease));
    if (orchestrator && (marked.length > 0 || requeued.length > 0)) {
      this.emit({
        node,
        event: 'sweep',
        applied: true,
        ...(epochs.size > 0 ? { epoch: Math.min(...epochs) } : {}),
        detail: { lease: lease ? { holder: lease.holder ?? null, epoch: lease.epoch ?? null } : null, leaseChecked, epochs: [...epochs], marked, requeued },
      });
    }
  }
}

/** The part of a task's handoff note a trace carries (the viewer lists it with the requeue or release). */
type TracedHandoff = Pick<HandoffNote, 'note' | 'reason' | 'to'>;

function tracedHandoff(handoff: HandoffNote): TracedHandoff {
  return { note: handoff.note, reason: handoff.reason, to: handoff.to };
}

/** A `LeaseStore` whose calls are messages over a host's simulated link (see the module comment). */
export class SimLink implements LeaseStore {
  readonly kind = 'simulated';
  readonly capabilities = { watch: false, storeClock: false, durable: false, multiProcess: true };
  private nextId = 1;
  constructor(
    private readonly host: ProcessContext,
    private readonly world: AgentWorld,
    private readonly timeoutMs: number,
    private readonly orchestrator: boolean,
  ) {}

  read(key: string): Promise<StoreEntry | undefined> {
    return this.call('read', () => this.world.read(key));
  }

  compareAndSet(key: string, expectedVersion: string | null, value: Json): Promise<string> {
    return this.commit([{ key, expectedVersion, value }]).then((v) => v[0]!);
  }

  commit(ops: readonly CommitOp[]): Promise<string[]> {
    const copy = ops.map((o) => ({ ...o }));
    return this.call('write', () => this.world.commit(this.host.nodeId, this.orchestrator, copy));
  }

  async close(): Promise<void> {}

  private call<T>(op: 'read' | 'write', apply: () => Reply): Promise<T> {
    const host = this.host;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const timer = host.clock.setTimeout(() => {
        if (done) return;
        done = true;
        reject(new StoreTimeoutError(this.timeoutMs));
        host.settle();
      }, this.timeoutMs);
      host.request<Reply>(op, this.nextId++, apply, (reply) => {
        if (done) return;
        done = true;
        host.clock.clearTimeout(timer);
        if (reply.type === 'ok') resolve(reply.value as T);
        else if (reply.type === 'conflict') reject(new CasMismatchError(reply.key, reply.expected, reply.actual));
        else reject(new Error(reply.message));
        host.settle();
      });
    });
  }
}

/** The host's clock, with every timer callback followed by a settle (timers resolve promises: `sleep`, timeouts). */
function settlingClock(host: ProcessContext): ElectionClock {
  const c = host.clock;
  return {
    now: () => c.now(),
    wallNow: () => c.wallNow(),
    setTimeout: (fn, ms) =>
      c.setTimeout(() => {
        fn();
        host.settle();
      }, ms),
    clearTimeout: (id) => c.clearTimeout(id),
  };
}

/** On every orchestrator node: the liveness observer while follower, the sweeper while leader (as createCoordinator wires them). */
export function agentSweeper(spec: AgentSpec, world: AgentWorld, mutants: AgentMutants = {}): Workload {
  return {
    name: 'agent-sweeper',
    start(host) {
      const clock = settlingClock(host);
      const registry = new AgentRegistry(new SimLink(host, world, spec.storeTimeoutMs, true), SIM_ELECTION, clock);
      const stallRng = host.rng.fork(77);
      const stall = spec.stall;
      let options: SweeperOptions = {
        registry,
        clock,
        nodeId: host.nodeId,
        logger: silentLogger,
        staleAfterMs: spec.staleAfterMs,
        sweepIntervalMs: spec.sweepIntervalMs,
        ...(spec.retention ? { retention: spec.retention } : {}),
        isLeader: () => host.elector.isLeader(),
        // "The orchestrator pauses / fails over mid-sweep": now and then a sweep stalls right before its commit.
        ...(stall && stall.chance > 0
          ? {
              beforeCommit: async () => {
                if (!stallRng.chance(stall.chance)) return;
                const since = host.realNow();
                const plannedMs = stallRng.int(1, stall.maxMs);
                // Recorded when it begins too: a node that crashes mid-stall never records its end.
                host.emit({ t: since, kind: 'agent', node: host.nodeId, event: 'stall', detail: { since, plannedMs, begin: true } });
                await sleep(clock, plannedMs);
                host.emit({ t: host.realNow(), kind: 'agent', node: host.nodeId, event: 'stall', detail: { since } });
              },
            }
          : {}),
      };
      if (mutants.sweeper) options = mutants.sweeper(options);
      const sweeper = new Sweeper(options);
      let leading = false;
      host.elector.whileLeader(async ({ token, signal }) => {
        leading = true;
        host.settle();
        signal.addEventListener('abort', () => host.settle(), { once: true });
        try {
          await sweeper.runAsLeader({ token, signal: mutants.ignoreLeadershipLoss ? new AbortController().signal : signal });
        } finally {
          leading = false;
        }
      });
      void sweeper.runAsObserver(new AbortController().signal, () => leading);
    },
  };
}

/**
 * A worker agent written naively, like examples/orchestrator/worker.ts: `createAgent` (register, heartbeat loop,
 * re-register when presumed dead) plus a claim → work → complete loop that completes once and drops the task on any
 * failure. The library keeps that from losing tasks: a claim applied while the caller saw a failure (lost reply; a
 * duplicated request whose copy conflicted and was retried) or whose completion failed without an answer is handed
 * back by the next `claim()`, and re-registering after a restart requeues the previous incarnation's claims.
 *
 * `recover: true` (off by default) re-enables the worker-side workaround used before the library fix: before claiming,
 * adopt a task the board says this worker holds.
 */
export function agentProcess(id: string, spec: AgentSpec, world: AgentWorld, mutants: AgentMutants = {}): SimProcess {
  return {
    id,
    start(host) {
      const clock = settlingClock(host);
      const link = new SimLink(host, world, spec.storeTimeoutMs, false);
      const agent = createAgent({ id, election: SIM_ELECTION, store: link, clock, heartbeatIntervalMs: spec.heartbeatIntervalMs, logger: silentLogger });
      mutants.agent?.(agent);
      const working = new Set<string>();
      world.working.set(id, working);
      const rng = host.rng.fork(5);
      agent.onPresumedDead(() => working.clear());

      const complete = async (taskId: string, token: number) => {
        // Once, like the example worker: on any failure the result is dropped (a completion that got no reply may or
        // may not have been applied; if not, the library hands the task back on the next claim).
        try {
          if (mutants.complete) await mutants.complete(agent.registry, id, taskId, token);
          else await agent.complete(taskId, token, { by: id });
        } catch {
          // StaleClaimError (handed to someone else), not active, a timeout, contention: drop it.
        }
      };
      const next = async (): Promise<{ taskId: string; token: number } | undefined> => {
        if (spec.recover === true) {
          // A claim can be applied while its caller saw a failure (no reply; or a duplicated request whose copy
          // then conflicted and was retried): the board is the only record of it. So are a previous
          // incarnation's claims after a quick restart.
          const { board } = await agent.registry.readBoard();
          const mine = Object.values(board.tasks).find((t) => t.state === 'claimed' && t.claimedBy === id);
          if (mine) return { taskId: mine.id, token: mine.claimToken };
        }
        const claimed = await agent.claim();
        return claimed ? { taskId: claimed.task.id, token: claimed.claimToken } : undefined;
      };
      void (async () => {
        for (;;) {
          try {
            await agent.start();
            break;
          } catch {
            await sleep(clock, spec.pollMs);
          }
        }
        for (;;) {
          await sleep(clock, spec.pollMs);
          if (agent.state() !== 'active') continue;
          try {
            const task = await next();
            if (!task) continue;
            working.add(task.taskId);
            await sleep(clock, rng.int(spec.workMs.min, spec.workMs.max));
            if (working.has(task.taskId)) await complete(task.taskId, task.token);
            working.delete(task.taskId);
          } catch {
            // Not active, a timeout, contention: try again next poll.
          }
        }
      })();
    },
  };
}

/** The workloads, processes, environment and checkers of an agent scenario. */
export function agentSimOptions(scenario: Scenario, options: AgentSimOptions = {}): SimulateOptions {
  const spec = scenario.agents;
  if (!spec) return options;
  const world = new AgentWorld();
  const mutants = options.mutants ?? {};
  const ids = agentIds(spec);
  const tasks = (from: number, count: number): NewTask[] => Array.from({ length: count }, (_, i) => ({ id: `t${from + i + 1}`, kind: 'work', payload: null }));
  return {
    ...options,
    workloads: options.workloads ?? [
      resourceWriter(scenario.work.intervalMs, scenario.work.durationMs, pauseMargin(scenario), scenario.timing.maxDriftRate),
      agentSweeper(spec, world, mutants),
    ],
    processes: ids.map((id) => agentProcess(id, spec, world, mutants)),
    environment: {
      start(env) {
        world.attach(env);
        world.submit(tasks(0, spec.tasks));
        let n = spec.tasks;
        for (const batch of spec.laterTasks ?? []) {
          const from = n;
          n += batch.count;
          env.at(batch.at, () => world.submit(tasks(from, batch.count)));
        }
      },
      end() {
        world.snapshot();
      },
    },
    checkers: options.checkers ?? [...defaultCheckers, ...agentCheckers],
  };
}

export function agentIds(spec: AgentSpec): string[] {
  return Array.from({ length: spec.count }, (_, i) => `a${i + 1}`);
}

/** Runs a scenario; with `scenario.agents`, agents and tasks join it and the agent checkers judge it too. */
export function simulateAgents(scenario: Scenario, options: AgentSimOptions = {}): Promise<SimResult> {
  return simulate(scenario, agentSimOptions(scenario, options));
}
