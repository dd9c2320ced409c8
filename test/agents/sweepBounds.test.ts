/**
 * Every store call of a sweep is bounded (src/agents/sweeper.ts): it is cut short after the lesser of
 * `sweepCallTimeoutMs` and the time left to the renew deadline, or as soon as the node leaves `leader`, even on a
 * store with no timeout of its own. A hung read ends the sweep and the next one runs; a hung commit has an unknown
 * outcome that a later sweep settles (applied exactly once when it was in fact applied).
 */
import { describe, expect, it } from 'vitest';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../../src/adapters/LeaseStore.js';
import type { RespawnRequest } from '../../src/agents/logic.js';
import { type Coordinator, type CoordinatorOptions, createCoordinator } from '../../src/createCoordinator.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { FaultyLink, type LinkMode } from '../helpers/faultyStore.js';
import { STALE_AFTER, SWEEP_INTERVAL, tasks, timing, World } from './helpers.js';

const LEASE = leaseKey('t');

interface TrackedCall {
  readonly op: 'read' | 'write';
  readonly keys: readonly string[];
  readonly at: number;
  /** Whether this call consumed a fault planned on `faults`. */
  readonly faulted: boolean;
  endedAt?: number;
  failed?: boolean;
}

/**
 * The coordinator's store, split in two: calls on the lease key alone (the elector's, and the sweep's lease check)
 * go straight to the shared store; every call touching an agent, index or board key goes through `faults`, a
 * FaultyLink whose one-shot `plan` makes the next such read or write hang ('hang') or apply without answering
 * ('drop-reply'). Neither path has a timeout of its own: only the sweeper's bound can end a hung call.
 */
class SweepPath implements LeaseStore {
  readonly kind = 'sweep-path';
  readonly faults: FaultyLink;
  readonly calls: TrackedCall[] = [];
  /** Forward no signal to `faults`: a store that never honours an abort. */
  ignoreSignal = false;
  constructor(
    private readonly inner: LeaseStore,
    private readonly world: World,
  ) {
    this.faults = new FaultyLink(inner);
  }
  get capabilities() {
    return { ...this.inner.capabilities, watch: false };
  }
  read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    if (key === LEASE) return this.inner.read(key, options);
    return this.track('read', [key], () => this.faults.read(key, this.ignoreSignal ? undefined : options));
  }
  compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return this.commit([{ key, expectedVersion, value }], options).then((v) => v[0]!);
  }
  commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    if (ops.every((op) => op.key === LEASE)) return this.inner.commit(ops, options);
    return this.track(
      'write',
      ops.map((op) => op.key),
      () => this.faults.commit(ops, this.ignoreSignal ? undefined : options),
    );
  }
  async close(): Promise<void> {}

  /** Makes the next read or write of the sweep path fail this way. */
  fault(op: 'read' | 'write', mode: LinkMode): void {
    this.faults.plan.push({ op, mode });
  }

  faulted(): TrackedCall[] {
    return this.calls.filter((c) => c.faulted);
  }

  private track<T>(op: 'read' | 'write', keys: readonly string[], call: () => Promise<T>): Promise<T> {
    const before = this.faults.plan.length;
    const promise = call();
    const entry: TrackedCall = { op, keys, at: this.world.clock.now(), faulted: this.faults.plan.length < before };
    this.calls.push(entry);
    promise.then(
      () => {
        entry.endedAt = this.world.clock.now();
      },
      () => {
        entry.endedAt = this.world.clock.now();
        entry.failed = true;
      },
    );
    return promise;
  }
}

/** Leader o1 on a SweepPath; worker a1 holding t1, then crashed (silent from now on). */
async function crashedHolder(extra: Partial<CoordinatorOptions> = {}) {
  const world = new World();
  const path = new SweepPath(world.store, world);
  const o1: Coordinator = createCoordinator({ election: 't', nodeId: 'o1', store: path, clock: world.clock, ...timing, staleAfterMs: STALE_AFTER, sweepIntervalMs: SWEEP_INTERVAL, ...extra });
  world.coordinators.push(o1);
  const requests: RespawnRequest[] = [];
  o1.onRespawnNeeded((r) => {
    requests.push(r);
  });
  o1.start();
  await world.clock.advance(0);
  const a1 = world.worker('a1', 100_000);
  await a1.agent.start();
  await o1.submitTasks(tasks(1));
  await world.run(300);
  expect(o1.isOrchestratorLeader()).toBe(true);
  expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'a1' });
  a1.crash();
  return { world, path, o1, a1, requests };
}

/** Advances until the faulted call has been made and has ended; returns it. */
async function faultedCallEnds(world: World, path: SweepPath, limitMs: number): Promise<TrackedCall> {
  expect(await world.until(() => path.faulted().length > 0, 2000, 5)).toBeDefined();
  const call = path.faulted()[0]!;
  await world.until(() => call.endedAt !== undefined, limitMs, 5);
  expect(call.endedAt, `the ${call.op} of ${call.keys.join(', ')} made at ${call.at} never ended`).toBeDefined();
  return call;
}

/** a1 is marked stale by o1 at epoch 1, t1 requeued once, and one respawn request was raised for it. */
async function cleanedUpOnce(world: World, o1: Coordinator, requests: readonly RespawnRequest[]) {
  expect(await world.until(() => world.agentRecord('a1')?.state === 'stale', 3000, 5)).toBeDefined();
  // Long enough for several more sweeps: nothing is counted or raised twice.
  await world.run(2000, 10);
  expect(o1.isOrchestratorLeader()).toBe(true);
  expect(world.board().t1).toMatchObject({ state: 'queued', requeues: 1, handoff: { by: 'o1', epoch: 1, from: 'a1' } });
  expect(requests.map((r) => [r.agentId, r.epoch, r.requeuedTaskIds])).toEqual([['a1', 1, ['t1']]]);
  expect(o1.metrics()).toMatchObject({ staleAgentsMarked: 1, requeuedTasks: 1, respawnRequests: 1 });
}

describe('sweep store calls are bounded', () => {
  it('a read that never answers is cut after sweepCallTimeoutMs, and the next sweep runs and does the cleanup', async () => {
    const { world, path, o1, requests } = await crashedHolder({ sweepCallTimeoutMs: 300 });
    path.fault('read', 'hang');
    const call = await faultedCallEnds(world, path, 2000);
    expect(call.failed).toBe(true);
    expect(call.endedAt! - call.at).toBeGreaterThanOrEqual(300);
    expect(call.endedAt! - call.at).toBeLessThanOrEqual(300 + 10);
    const sweepsAfter = path.calls.filter((c) => c.at >= call.endedAt!).length;
    expect(await world.until(() => path.calls.filter((c) => c.at >= call.endedAt!).length > sweepsAfter, SWEEP_INTERVAL + 20, 5)).toBeDefined();
    await cleanedUpOnce(world, o1, requests);
  });

  it('a store that ignores the abort signal is not waited for either (the sweep stops waiting; a late reply is dropped)', async () => {
    const { world, path, o1, requests } = await crashedHolder({ sweepCallTimeoutMs: 300 });
    path.ignoreSignal = true;
    path.fault('write', 'drop-reply');
    expect(await world.until(() => path.faulted().length > 0, 2000, 5)).toBeDefined();
    const call = path.faulted()[0]!;
    // The store never settles the call; the sweep must not be held by it: the next sweeps run and settle it applied.
    await cleanedUpOnce(world, o1, requests);
    expect(call.endedAt).toBeUndefined();
    expect(path.calls.filter((c) => c.at >= call.at + 300).length).toBeGreaterThan(0);
  });

  it('by default a call is cut no later than the renew deadline (time left), well before the 5 s call timeout', async () => {
    const { world, path, o1, requests } = await crashedHolder();
    path.fault('read', 'hang');
    const call = await faultedCallEnds(world, path, 2000);
    expect(call.failed).toBe(true);
    expect(call.endedAt! - call.at).toBeLessThanOrEqual(timing.renewDeadlineMs);
    await cleanedUpOnce(world, o1, requests);
  });

  it('a commit that never answers (and was not applied) is cut; a later sweep finds it refused and does the cleanup once', async () => {
    const { world, path, o1, requests } = await crashedHolder({ sweepCallTimeoutMs: 300 });
    path.fault('write', 'hang');
    const call = await faultedCallEnds(world, path, 2000);
    expect(call.op).toBe('write');
    expect(call.keys).toContain('fenced-leader/t/agents/a1');
    expect(call.endedAt! - call.at).toBeLessThanOrEqual(300 + 10);
    // The hung commit never reached the store: nothing was marked by it.
    expect(world.agentRecord('a1')?.state).toBe('active');
    await cleanedUpOnce(world, o1, requests);
  });

  it('a commit applied whose reply never comes is cut, then settled as applied exactly once (one respawn request)', async () => {
    const { world, path, o1, requests } = await crashedHolder({ sweepCallTimeoutMs: 300 });
    path.fault('write', 'drop-reply');
    const call = await faultedCallEnds(world, path, 2000);
    expect(call.op).toBe('write');
    expect(call.endedAt! - call.at).toBeLessThanOrEqual(300 + 10);
    // Applied by the store at once; learnt of only by a later sweep.
    expect(world.agentRecord('a1')?.state).toBe('stale');
    expect(requests).toEqual([]);
    await cleanedUpOnce(world, o1, requests);
    // Only one sweep commit marked a1: the settled one was not written again.
    expect(world.store.writes.filter((w) => w.key === 'fenced-leader/t/agents/a1' && (w.value as { state: string }).state === 'stale')).toHaveLength(1);
  });

  it('leaving leader aborts a sweep blocked on a store call at once (not at the call timeout)', async () => {
    const { world, path, o1 } = await crashedHolder({ sweepCallTimeoutMs: 60_000 });
    path.fault('read', 'hang');
    expect(await world.until(() => path.faulted().length > 0, 2000, 5)).toBeDefined();
    const call = path.faulted()[0]!;
    await world.run(20);
    expect(call.endedAt).toBeUndefined();
    const abortedBefore = o1.metrics().sweeps.aborted;
    const resignedAt = world.clock.now();
    let resigned: number | undefined;
    void o1.elector.resign().then(() => {
      resigned = world.clock.now();
    });
    await world.until(() => call.endedAt !== undefined && resigned !== undefined, 2000, 1);
    expect(call.endedAt, 'the hung read outlived the leadership').toBeDefined();
    expect(call.endedAt! - resignedAt).toBeLessThanOrEqual(5);
    expect(resigned! - resignedAt).toBeLessThanOrEqual(5);
    expect(o1.metrics().sweeps.aborted).toBe(abortedBefore + 1);
    expect(o1.isOrchestratorLeader()).toBe(false);
  });

  it('leaving leader mid-commit: the commit (applied, no reply) is cut and the sweep ends aborted; nothing is raised for it', async () => {
    const { world, path, o1, requests } = await crashedHolder({ sweepCallTimeoutMs: 60_000 });
    path.fault('write', 'drop-reply');
    expect(await world.until(() => path.faulted().length > 0, 2000, 5)).toBeDefined();
    const call = path.faulted()[0]!;
    const abortedBefore = o1.metrics().sweeps.aborted;
    const resignedAt = world.clock.now();
    void o1.elector.resign();
    await world.until(() => call.endedAt !== undefined, 2000, 1);
    expect(call.endedAt! - resignedAt).toBeLessThanOrEqual(5);
    expect(o1.metrics().sweeps.aborted).toBe(abortedBefore + 1);
    await world.run(1000);
    // Applied in the store; this node, no longer leader, never learns it at this epoch and raises nothing.
    expect(world.agentRecord('a1')?.state).toBe('stale');
    expect(requests).toEqual([]);
  });
});

describe("an observer's reads are bounded too (not leader work: by sweepCallTimeoutMs alone)", () => {
  async function follower() {
    const world = new World();
    const o1 = world.coordinator('o1');
    o1.start();
    await world.clock.advance(0);
    const path = new SweepPath(world.store, world);
    const o2: Coordinator = createCoordinator({ election: 't', nodeId: 'o2', store: path, clock: world.clock, ...timing, staleAfterMs: STALE_AFTER, sweepIntervalMs: SWEEP_INTERVAL, sweepCallTimeoutMs: 300 });
    world.coordinators.push(o2);
    o2.start();
    await world.run(300);
    expect(o1.isOrchestratorLeader()).toBe(true);
    expect(o2.isOrchestratorLeader()).toBe(false);
    return { world, path, o2 };
  }

  it('a hung read of the follower loop is cut after sweepCallTimeoutMs and the loop goes on', async () => {
    const { world, path } = await follower();
    path.fault('read', 'hang');
    const call = await faultedCallEnds(world, path, 2000);
    expect(call.failed).toBe(true);
    expect(call.endedAt! - call.at).toBeGreaterThanOrEqual(300);
    expect(call.endedAt! - call.at).toBeLessThanOrEqual(310);
    expect(await world.until(() => path.calls.some((c) => c.at > call.endedAt!), SWEEP_INTERVAL + 20, 5)).toBeDefined();
  });

  it('agentStatus() on a store that does not answer rejects with StoreTimeoutError after sweepCallTimeoutMs', async () => {
    const { world, path, o2 } = await follower();
    path.fault('read', 'hang');
    path.fault('read', 'hang');
    let settled: unknown;
    const status = o2.agentStatus().then(
      () => (settled = 'resolved'),
      (err: unknown) => (settled = err),
    );
    await world.until(() => settled !== undefined, 1000, 5);
    expect((settled as Error | undefined)?.name).toBe('StoreTimeoutError');
    await status;
  });
});
