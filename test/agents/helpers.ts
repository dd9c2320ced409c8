import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { type Agent, createAgent } from '../../src/agents/agent.js';
import { StaleClaimError } from '../../src/agents/errors.js';
import type { ClaimFilter } from '../../src/agents/logic.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import { type Coordinator, type CoordinatorOptions, createCoordinator } from '../../src/createCoordinator.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { TestClock } from '../../src/TestClock.js';
import { FaultyLink } from '../helpers/faultyStore.js';

export const timing = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 };
export const STALE_AFTER = 600;
export const SWEEP_INTERVAL = 200;
export const HEARTBEAT = 100;

/** Records every successful write per key, with the virtual time it was applied. */
export class RecordingStore implements LeaseStore {
  readonly kind = 'recording';
  readonly writes: Array<{ at: number; key: string; value: Json }> = [];
  constructor(
    readonly inner: MemoryLeaseStore,
    private readonly clock: TestClock,
  ) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    return this.inner.read(key, options);
  }
  compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return this.commit([{ key, expectedVersion, value }], options).then((v) => v[0]!);
  }
  async commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    const versions = await this.inner.commit(ops, options);
    for (const op of ops) if (op.value !== undefined) this.writes.push({ at: this.clock.now(), key: op.key, value: op.value });
    return versions;
  }
  watch(key: string, onChange: () => void) {
    return this.inner.watch(key, onChange);
  }
  async close(): Promise<void> {}
}

export interface Completion {
  readonly taskId: string;
  readonly agentId: string;
  readonly token: number;
  readonly at: number;
}

/** A simulated worker process: heartbeat loop (in the Agent) plus a claim/work/complete loop on the test clock. */
export class Worker {
  readonly agent: Agent;
  readonly link: FaultyLink;
  readonly inFlight = new Map<string, { token: number; doneAt: number }>();
  crashed = false;
  constructor(
    readonly id: string,
    private readonly world: World,
    private readonly workMs: number,
    private readonly concurrency = 1,
    role = 'builder',
    /** What `claim()` asks for (default: any kind). */
    public filter: ClaimFilter = {},
  ) {
    this.link = new FaultyLink(world.store);
    this.agent = createAgent({ id, election: 't', role, capabilities: ['build'], store: this.link, clock: world.clock, heartbeatIntervalMs: HEARTBEAT });
    this.agent.onPresumedDead(() => this.inFlight.clear());
  }
  /** Called by the world every step. */
  async tick(): Promise<void> {
    if (this.crashed || this.agent.state() !== 'active') return;
    const now = this.world.clock.now();
    for (const [taskId, { token, doneAt }] of [...this.inFlight]) {
      if (doneAt > now) continue;
      this.inFlight.delete(taskId);
      try {
        await this.agent.complete(taskId, token, { by: this.id });
        this.world.completions.push({ taskId, agentId: this.id, token, at: this.world.clock.now() });
      } catch (err) {
        if (!StaleClaimError.is(err)) throw err;
        this.world.rejections.push({ taskId, agentId: this.id, token, at: this.world.clock.now() });
      }
    }
    while (this.inFlight.size < this.concurrency) {
      const claimed = await this.agent.claim(this.filter).catch(() => undefined);
      if (!claimed) break;
      this.inFlight.set(claimed.task.id, { token: claimed.claimToken, doneAt: now + this.workMs });
    }
  }
  /** kill -9: no deregistration, no more heartbeats or completions; its store link goes dead. */
  crash(): void {
    this.crashed = true;
    this.link.mode = 'hang';
  }
}

export class World {
  readonly clock = new TestClock();
  readonly shared = new MemoryLeaseStore();
  readonly store: RecordingStore;
  readonly coordinators: Coordinator[] = [];
  readonly links: FaultyLink[] = [];
  readonly workers: Worker[] = [];
  readonly completions: Completion[] = [];
  readonly rejections: Completion[] = [];

  constructor() {
    this.store = new RecordingStore(this.shared, this.clock);
  }

  coordinator(nodeId: string, extra: Partial<CoordinatorOptions> = {}): Coordinator {
    const link = new FaultyLink(this.store);
    const c = createCoordinator({ election: 't', nodeId, store: link, clock: this.clock, ...timing, staleAfterMs: STALE_AFTER, sweepIntervalMs: SWEEP_INTERVAL, ...extra });
    this.coordinators.push(c);
    this.links.push(link);
    return c;
  }

  worker(id: string, workMs = 300, concurrency = 1, role = 'builder', filter: ClaimFilter = {}): Worker {
    const w = new Worker(id, this, workMs, concurrency, role, filter);
    this.workers.push(w);
    return w;
  }

  leaders(): Coordinator[] {
    return this.coordinators.filter((c) => c.isOrchestratorLeader());
  }

  async run(ms: number, step = 10, each?: () => void | Promise<void>): Promise<void> {
    const end = this.clock.now() + ms;
    while (this.clock.now() < end) {
      await this.clock.advance(step);
      for (const w of this.workers) await w.tick();
      await each?.();
    }
  }

  /** Advances until `predicate` holds; returns the virtual time, or undefined after `limitMs`. */
  async until(predicate: () => boolean, limitMs: number, step = 10): Promise<number | undefined> {
    const end = this.clock.now() + limitMs;
    while (this.clock.now() < end) {
      await this.run(step, step);
      if (predicate()) return this.clock.now();
    }
    return undefined;
  }

  agentRecord(id: string): { state: string; beat: number } | undefined {
    return this.shared.readSync(`fenced-leader/t/agents/${id}`)?.value as { state: string; beat: number } | undefined;
  }

  board(): Record<string, { state: string; claimedBy: string | null; claimToken: number; handoff: { note: string; epoch: number; by: string; to: string | null } | null; requeues: number; completedBy: string | null; assignee: string | null }> {
    return ((this.shared.readSync('fenced-leader/t/tasks')?.value as { tasks?: object } | undefined)?.tasks ?? {}) as never;
  }
}

export function tasks(n: number, prefix = 't') {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i + 1}`, kind: 'build', payload: { n: i + 1 } }));
}

/** Delegates to the shared store; runs `run` once, right before the next read of `key` is answered. */
export class InterleavingStore implements LeaseStore {
  readonly kind = 'interleaving';
  private hook: { key: string; run: () => Promise<void> } | undefined;
  constructor(private readonly inner: MemoryLeaseStore) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  beforeNextRead(key: string, run: () => Promise<void>): void {
    this.hook = { key, run };
  }
  async read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    const hook = this.hook;
    if (hook && hook.key === key) {
      this.hook = undefined;
      await hook.run();
    }
    return this.inner.read(key, options);
  }
  compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return this.inner.compareAndSet(key, expectedVersion, value, options);
  }
  commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    return this.inner.commit(ops, options);
  }
  async close(): Promise<void> {}
}

/**
 * The sweep-race rig: a shared memory store in which o1 holds the lease at epoch 1, an agent-side registry on it, and
 * the sweeper-side registry through `wrap(shared)` (a link that interleaves or fails calls).
 */
export function sweepRig<L extends LeaseStore>(election: string, wrap: (shared: MemoryLeaseStore) => L, leaseDurationMs = 600_000) {
  const clock = new TestClock();
  const shared = new MemoryLeaseStore();
  shared.commitSync([{ key: leaseKey(election), expectedVersion: null, value: { holder: 'o1', epoch: 1, leaseDurationMs, renewals: 0 } }]);
  const agentSide = new AgentRegistry(shared, election, clock);
  const link = wrap(shared);
  const registry = new AgentRegistry(link, election, clock);
  return { clock, shared, agentSide, link, registry };
}
