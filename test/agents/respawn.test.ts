/**
 * Leader-aware respawn (issue 4): `onRespawnNeeded` fires on the leader for stale agents whose work the sweep
 * requeued, for the roles `respawn.roles` selects; an agent that went stale holding nothing raises a request only
 * with `respawn.idle`.
 */
import { describe, expect, it } from 'vitest';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { planSweep, type RespawnRequest, registerRecord } from '../../src/agents/logic.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import type { AgentRecord } from '../../src/agents/schema.js';
import { type Coordinator, type CoordinatorOptions, createCoordinator } from '../../src/createCoordinator.js';
import { CasMismatchError, InvalidOptionsError } from '../../src/errors.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { STALE_AFTER, SWEEP_INTERVAL, tasks, timing, World } from './helpers.js';

/**
 * Leader o1; builder b1 holding t1, builder b2 idle, reviewer r1 holding t2 (it only takes `review` tasks, so b1
 * takes t1). All three crash; returns the respawn requests o1 raised once all three are marked stale.
 */
async function crashThree(extra: Partial<CoordinatorOptions> = {}) {
  const world = new World();
  const o1 = world.coordinator('o1', extra);
  const requests: RespawnRequest[] = [];
  o1.onRespawnNeeded((r) => {
    requests.push(r);
  });
  o1.start();
  await world.clock.advance(0);
  const b1 = world.worker('b1', 100_000);
  const b2 = world.worker('b2', 100_000, 0);
  for (const w of [b1, b2]) await w.agent.start();
  await o1.submitTasks(tasks(1));
  await world.run(50);
  const r1 = world.worker('r1', 100_000, 1, 'reviewer');
  await r1.agent.start();
  await o1.submitTasks([{ id: 't2', kind: 'build', payload: null }]);
  await world.run(50);
  expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'b1' });
  expect(world.board().t2).toMatchObject({ state: 'claimed', claimedBy: 'r1' });
  for (const w of [b1, b2, r1]) w.crash();
  const done = await world.until(() => ['b1', 'b2', 'r1'].every((id) => world.agentRecord(id)?.state === 'stale'), 3000, 5);
  expect(done).toBeDefined();
  await world.run(20); // handlers run on a microtask after the sweep
  return { world, o1, requests: requests.sort((a, b) => a.agentId.localeCompare(b.agentId)) };
}

describe('onRespawnNeeded', () => {
  it('by default fires for stale agents of every role whose tasks were requeued, never for one that held nothing', async () => {
    const { world, o1, requests } = await crashThree();
    expect(requests.map((r) => [r.agentId, r.role, r.requeuedTaskIds])).toEqual([
      ['b1', 'builder', ['t1']],
      ['r1', 'reviewer', ['t2']],
    ]);
    expect(requests[0]).toMatchObject({ epoch: 1, handoff: { from: 'b1', by: 'o1', reason: 'stale' } });
    expect(o1.metrics().respawnRequests).toBe(2);
    expect(o1.metrics().staleAgentsMarked).toBe(3);
    // Later sweeps raise nothing more for agents already stale.
    await world.run(2000, 20);
    expect(requests).toHaveLength(2);
  });

  it('respawn.idle also fires for an agent that went stale holding nothing', async () => {
    const { requests } = await crashThree({ respawn: { idle: true } });
    expect(requests.map((r) => [r.agentId, r.requeuedTaskIds])).toEqual([
      ['b1', ['t1']],
      ['b2', []],
      ['r1', ['t2']],
    ]);
  });

  it('respawn.roles restricts requests to the listed roles, or to those a predicate accepts', async () => {
    expect((await crashThree({ respawn: { roles: ['reviewer'] } })).requests.map((r) => r.agentId)).toEqual(['r1']);
    expect((await crashThree({ respawn: { roles: [] } })).requests).toEqual([]);
    const seen: string[] = [];
    const byPredicate = await crashThree({
      respawn: {
        idle: true,
        roles: (role, request) => {
          seen.push(`${role}:${request.agentId}`);
          return role === 'builder';
        },
      },
    });
    expect(byPredicate.requests.map((r) => r.agentId)).toEqual(['b1', 'b2']);
    expect(seen.sort()).toEqual(['builder:b1', 'builder:b2', 'reviewer:r1']);
  });

  it('a throwing roles predicate requests nothing, is logged, and does not stop the sweep', async () => {
    const errors: string[] = [];
    const logger = { info() {}, warn() {}, error: (_: object, message: string) => errors.push(message) };
    const { world, requests } = await crashThree({
      logger,
      respawn: {
        roles: () => {
          throw new Error('boom');
        },
      },
    });
    expect(requests).toEqual([]);
    expect(errors.filter((m) => m.includes('respawn.roles predicate threw'))).toHaveLength(2);
    expect(world.board().t1).toMatchObject({ state: 'queued', requeues: 1 });
  });

  it('validates the respawn option', () => {
    const store = new MemoryLeaseStore();
    const attempt = (respawn: unknown) => {
      try {
        createCoordinator({ store, respawn } as CoordinatorOptions);
        return undefined;
      } catch (err) {
        return err;
      }
    };
    for (const bad of [{ roles: 'builder' }, { roles: [''] }, { idle: 'yes' }, { idel: true }]) {
      const err = attempt(bad);
      expect(InvalidOptionsError.is(err), JSON.stringify(bad)).toBe(true);
      expect((err as InvalidOptionsError).issues[0]!.path).toMatch(/^respawn/);
    }
  });

  it('rejects a misspelt top-level option instead of leaving its default in force', () => {
    try {
      createCoordinator({ store: new MemoryLeaseStore(), staleAfterMS: 60_000 } as unknown as CoordinatorOptions);
      expect.unreachable();
    } catch (err) {
      expect(InvalidOptionsError.is(err)).toBe(true);
      expect((err as InvalidOptionsError).issues).toEqual([
        expect.objectContaining({ code: 'unrecognized_keys', path: 'staleAfterMS', message: expect.stringContaining('did you mean "staleAfterMs"') }),
      ]);
    }
  });
});

/**
 * Delegates to the world's store. With `loseNextReply` set, the next commit reaches the store — which applies or
 * refuses it — and the caller gets an error either way (a timeout, a reset connection: the ambiguous case);
 * `lost` records what the store really did with each such commit.
 */
class LostReplyLink implements LeaseStore {
  readonly kind = 'lost-reply';
  loseNextReply = false;
  readonly lost: Array<'applied' | 'refused'> = [];
  constructor(private readonly inner: LeaseStore) {}
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
    if (!this.loseNextReply) return this.inner.commit(ops, options);
    this.loseNextReply = false;
    try {
      await this.inner.commit(ops, options);
      this.lost.push('applied');
    } catch (err) {
      if (!CasMismatchError.is(err)) throw err;
      this.lost.push('refused');
    }
    throw new Error('connection reset (injected: the reply was lost)');
  }
  async close(): Promise<void> {}
}

const marksStale = (ops: readonly unknown[]) => (ops as CommitOp[]).some((o) => (o.value as { state?: string } | undefined)?.state === 'stale');

/** Leader o1 on a LostReplyLink; `hook(link, o1)` runs before each sweep commit. */
async function lossyLeader(world: World, hook: (ops: readonly unknown[], link: LostReplyLink, o1: Coordinator) => Promise<void> | void, extra: Partial<CoordinatorOptions> = {}) {
  const link = new LostReplyLink(world.store);
  let o1: Coordinator | undefined;
  o1 = createCoordinator({
    election: 't',
    nodeId: 'o1',
    store: link,
    clock: world.clock,
    ...timing,
    staleAfterMs: STALE_AFTER,
    sweepIntervalMs: SWEEP_INTERVAL,
    beforeSweepCommit: (ops) => hook(ops, link, o1!),
    ...extra,
  });
  world.coordinators.push(o1);
  const requests: RespawnRequest[] = [];
  o1.onRespawnNeeded((r) => {
    requests.push(r);
  });
  o1.start();
  await world.clock.advance(0);
  expect(o1.isOrchestratorLeader()).toBe(true);
  return { link, o1, requests };
}

describe('onRespawnNeeded exactly once when a sweep commit gets no clean reply', () => {
  // Review finding (respawn 2): requests and counters followed only commits answered cleanly, so a sweep commit
  // applied with its reply lost raised nothing — and the next sweep found nothing left to requeue.
  it('fires for a crashed holder even when the sweep commit that requeued its work got no clean reply', async () => {
    const world = new World();
    const { link, o1, requests } = await lossyLeader(world, (ops, l) => {
      if (marksStale(ops)) l.loseNextReply = true;
    });
    const b1 = world.worker('b1', 100_000);
    await b1.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(50);
    expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'b1' });
    b1.crash();
    await world.until(() => world.agentRecord('b1')?.state === 'stale', 3000, 5);
    expect(world.board().t1).toMatchObject({ state: 'queued', requeues: 1 });
    expect(link.lost).toEqual(['applied']);
    await world.run(3000, 20); // many more sweeps
    for (let i = 0; i < 3; i++) await o1.sweepNow();
    await world.run(20);
    expect(requests.map((r) => [r.agentId, r.role, r.requeuedTaskIds, r.epoch])).toEqual([['b1', 'builder', ['t1'], 1]]);
    expect(requests[0]!.handoff).toMatchObject({ from: 'b1', by: 'o1', epoch: 1, reason: 'stale' });
    expect(o1.metrics()).toMatchObject({ respawnRequests: 1, staleAgentsMarked: 1, requeuedTasks: 1 });
    await o1.stop();
  });

  it('with respawn.idle, also for an agent marked stale holding nothing in a commit whose reply was lost', async () => {
    const world = new World();
    const { link, o1, requests } = await lossyLeader(
      world,
      (ops, l) => {
        if (marksStale(ops)) l.loseNextReply = true;
      },
      { respawn: { idle: true } },
    );
    const [b1, b2] = [world.worker('b1', 100_000), world.worker('b2', 100_000, 0)];
    for (const w of [b1, b2]) await w.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(50);
    for (const w of [b1, b2]) w.crash();
    await world.until(() => ['b1', 'b2'].every((id) => world.agentRecord(id)?.state === 'stale'), 3000, 5);
    await world.run(2000, 20);
    expect(link.lost.length).toBeGreaterThanOrEqual(1);
    expect(link.lost.every((o) => o === 'applied')).toBe(true);
    expect(requests.map((r) => [r.agentId, r.requeuedTaskIds]).sort()).toEqual([
      ['b1', ['t1']],
      ['b2', []],
    ]);
    expect(o1.metrics()).toMatchObject({ respawnRequests: 2, staleAgentsMarked: 2, requeuedTasks: 1 });
    await o1.stop();
  });

  it('a commit refused by the store whose reply was lost raises nothing; the later sweep that marks the agent raises once', async () => {
    const world = new World();
    const admin = new AgentRegistry(world.shared, 't', world.clock);
    let refusedOnce = false;
    const { link, o1, requests } = await lossyLeader(world, async (ops, l) => {
      if (refusedOnce || !marksStale(ops)) return;
      refusedOnce = true;
      // b1's record changes under the sweep (a last heartbeat), so the store refuses the commit; the reply is lost.
      await admin.heartbeat('b1');
      l.loseNextReply = true;
    });
    const b1 = world.worker('b1', 100_000);
    await b1.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(50);
    b1.crash();
    await world.until(() => refusedOnce, 3000, 5);
    await world.run(STALE_AFTER / 2, 10); // several sweeps and lease renewals: the refused commit is settled
    expect(link.lost).toEqual(['refused']);
    expect(world.agentRecord('b1')?.state).toBe('active');
    expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'b1', requeues: 0 });
    expect(requests).toEqual([]);
    expect(o1.metrics()).toMatchObject({ respawnRequests: 0, staleAgentsMarked: 0, requeuedTasks: 0 });
    // Silent since that heartbeat: a later sweep marks it and requeues t1, answered cleanly this time.
    await world.until(() => world.agentRecord('b1')?.state === 'stale', 3000, 5);
    await world.run(2000, 20);
    expect(requests.map((r) => [r.agentId, r.requeuedTaskIds])).toEqual([['b1', ['t1']]]);
    expect(o1.metrics()).toMatchObject({ respawnRequests: 1, staleAgentsMarked: 1, requeuedTasks: 1 });
    await o1.stop();
  });

  for (const loseReply of [false, true]) {
    it(`sweepNow inside the loop sweep's read-to-commit window joins that sweep: one commit, raises once${loseReply ? ', its reply lost' : ''}`, async () => {
      const world = new World();
      let nested: Promise<unknown> | undefined;
      let commits = 0;
      const { link, o1, requests } = await lossyLeader(world, (ops, l, self) => {
        if (!marksStale(ops)) return;
        commits += 1;
        if (nested) return;
        // One sweep at a time: sweepNow() shares the sweep in flight instead of planning a twin from the same reads
        // in the same millisecond (an identical stale mark and handoff, but its own commit).
        nested = self.sweepNow().catch((err: unknown) => err);
        if (loseReply) l.loseNextReply = true;
      });
      const b1 = world.worker('b1', 100_000);
      await b1.agent.start();
      await o1.submitTasks(tasks(1));
      await world.run(50);
      b1.crash();
      await world.until(() => world.agentRecord('b1')?.state === 'stale', 3000, 5);
      await world.run(2000, 10);
      if (loseReply) expect(String(await nested)).toMatch(/reply was lost/);
      else expect(await nested).toMatchObject({ kind: 'applied' });
      expect(commits).toBe(1);
      expect(link.lost).toEqual(loseReply ? ['applied'] : []);
      expect(requests.map((r) => r.agentId)).toEqual(['b1']);
      expect(o1.metrics()).toMatchObject({ respawnRequests: 1, staleAgentsMarked: 1, requeuedTasks: 1 });
      await o1.stop();
    });
  }

  it('a sweep refused by the fence (lease moved between read and commit) raises nothing; a follower never raises', async () => {
    const world = new World();
    let moved = false;
    const o1 = world.coordinator('o1', {
      beforeSweepCommit: (ops) => {
        if (moved || !marksStale(ops)) return;
        moved = true;
        const lease = world.shared.readSync(leaseKey('t'))!;
        world.shared.commitSync([{ key: leaseKey('t'), expectedVersion: lease.version, value: { ...(lease.value as object), holder: 'o9', epoch: 99, renewals: 0 } }]);
      },
    });
    const o2 = world.coordinator('o2');
    const requests: Array<[string, RespawnRequest]> = [];
    o1.onRespawnNeeded((r) => {
      requests.push(['o1', r]);
    });
    o2.onRespawnNeeded((r) => {
      requests.push(['o2', r]);
    });
    o1.start();
    await world.clock.advance(0);
    o2.start();
    const b1 = world.worker('b1', 100_000);
    await b1.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(50);
    b1.crash();
    await world.until(() => moved, 3000, 5);
    await world.run(200, 5);
    expect(world.agentRecord('b1')?.state).toBe('active');
    expect(requests).toEqual([]);
    expect(o1.metrics().sweeps.applied).toBe(0);
    for (const c of [o1, o2]) await c.stop();
  });
});

describe('planSweep respawns', () => {
  const AT = '2024-01-01T00:00:00.000Z';
  const leader = { nodeId: 'o1', epoch: 3 };
  const agent = (id: string, extra: Partial<AgentRecord> = {}): AgentRecord => ({ ...registerRecord(undefined, { id, role: 'builder', capabilities: [] }, AT), ...extra });

  it('asks to respawn an agent marked stale earlier whose leftover claim this sweep requeued, but not a deregistered one', () => {
    const earlier = agent('s', { state: 'stale' });
    const gone = agent('g', { state: 'gone' });
    const task = (id: string, holder: string) => ({
      id,
      seq: 0,
      kind: 'k',
      payload: null,
      state: 'claimed' as const,
      claimToken: 1,
      claimedBy: holder,
      claimedAt: AT,
      assignee: null,
      requeues: 0,
      handoff: null,
      completedBy: null,
      completedToken: null,
      completedAt: null,
      result: null,
      createdAt: AT,
    });
    const board = { nextSeq: 2, tasks: { x: task('x', 's'), y: { ...task('y', 'g'), seq: 1 } } };
    const plan = planSweep({ leader, now: 0, at: AT, staleAfterMs: 600, liveness: new Map(), agents: [{ record: earlier, version: '1' }, { record: gone, version: '2' }], board });
    expect(plan.requeued.map((r) => r.taskId)).toEqual(['x', 'y']);
    expect(plan.respawns.map((r) => [r.agentId, r.requeuedTaskIds])).toEqual([['s', ['x']]]);
    // No new requeue, no new request.
    const again = planSweep({ leader, now: 0, at: AT, staleAfterMs: 600, liveness: new Map(), agents: [{ record: earlier, version: '1' }], board: plan.board });
    expect(again.respawns).toEqual([]);
  });
});
