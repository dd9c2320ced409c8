/**
 * Twin sweep commits (review findings): two sweeps at the same epoch planned in the same millisecond write identical
 * stale marks (node, epoch, time, silence). Sweep A read x and w silent and planned to mark both; w heart-beat before
 * sweep B read it, so B planned to mark x only. The store applied B and never A, both replies lost. Settling A first
 * (in the order sent) found "its" mark of x — B's — and judged A applied: a respawn request for w, alive and never
 * marked, and staleAgentsMarked counting writes that never happened. Now each sweep commit carries an id stamped into
 * what it writes and witnesses match by id; and a Sweeper runs one sweep at a time (a concurrent sweepOnce joins it).
 */
import { describe, expect, it } from 'vitest';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import { Sweeper } from '../../src/agents/sweeper.js';
import type { AppliedSweep } from '../../src/agents/unknownCommits.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { TestClock } from '../../src/TestClock.js';
import { tasks } from './helpers.js';

/** Delegates to the shared store; `commitFault(n)` decides what happens to the n-th commit. */
class FaultyLink implements LeaseStore {
  readonly kind = 'faulty-link';
  commits = 0;
  constructor(
    private readonly inner: MemoryLeaseStore,
    private readonly commitFault: (n: number, ops: readonly CommitOp[], inner: MemoryLeaseStore) => Promise<string[]> | undefined,
  ) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  read(key: string, o?: CallOptions): Promise<StoreEntry | undefined> {
    return this.inner.read(key, o);
  }
  compareAndSet(key: string, v: string | null, value: Json, o?: CallOptions): Promise<string> {
    return this.inner.compareAndSet(key, v, value, o);
  }
  commit(ops: readonly CommitOp[], o?: CallOptions): Promise<string[]> {
    return this.commitFault(++this.commits, ops, this.inner) ?? this.inner.commit(ops, o);
  }
  async close(): Promise<void> {}
}

const flush = async () => {
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
};

/** x and w each hold a task and are overdue; returns the sweeper (o1, epoch 1) talking through `link`. */
async function setup(fault: ConstructorParameters<typeof FaultyLink>[1], callTimeoutMs = 5_000) {
  const clock = new TestClock();
  const shared = new MemoryLeaseStore();
  shared.commitSync([{ key: leaseKey('s'), expectedVersion: null, value: { holder: 'o1', epoch: 1, leaseDurationMs: 600_000, renewals: 0 } }]);
  const agentSide = new AgentRegistry(shared, 's', clock);
  const link = new FaultyLink(shared, fault);
  const applied: AppliedSweep[] = [];
  const sweeper = new Sweeper({ registry: new AgentRegistry(link, 's', clock), clock, nodeId: 'o1', staleAfterMs: 600, sweepIntervalMs: 200, callTimeoutMs, onApplied: (a) => applied.push(a) });
  for (const id of ['x', 'w']) await agentSide.register({ id, role: 'builder', capabilities: [] });
  await agentSide.submitTasks(tasks(2));
  expect((await agentSide.claim('x'))?.task.id).toBe('t1');
  expect((await agentSide.claim('w'))?.task.id).toBe('t2');
  await sweeper.observe();
  await clock.advance(650);
  const reported = () => ({
    marked: applied.flatMap((s) => s.plan.agentWrites.map((w) => w.id)),
    respawned: applied.flatMap((s) => s.respawns.map((r) => r.agentId)),
  });
  return { clock, agentSide, link, sweeper, applied, reported };
}

const reset = () => Promise.reject(new Error('connection reset (injected)'));

describe('twin sweep commits', () => {
  it('consecutive sweeps in the same millisecond, both replies lost: the applied twin is found by its own id, the other is not taken as applied', async () => {
    // Commit 1 (A: x and w) never reaches the store; commit 2 (B: x only) is applied, its reply lost.
    const { agentSide, link, sweeper, applied, reported } = await setup((n, ops, inner) => {
      if (n === 1) return reset();
      if (n === 2) return inner.commit(ops).then(reset);
      return undefined;
    });
    expect(String(await sweeper.sweepOnce(1).catch((e: unknown) => e))).toMatch(/reset/);
    await agentSide.heartbeat('w'); // w is alive after all
    expect(String(await sweeper.sweepOnce(1).catch((e: unknown) => e))).toMatch(/reset/); // same millisecond
    expect(link.commits).toBe(2);
    expect((await agentSide.readAgent('w'))!.record.state).toBe('active');
    expect((await agentSide.readAgent('x'))!.record.staleMark).toMatchObject({ by: 'o1', epoch: 1, commit: 'o1/1/2' });
    expect((await agentSide.readBoard()).board.tasks.t1!.handoff).toMatchObject({ commit: 'o1/1/2' });

    await sweeper.sweepOnce(1); // settles both: B applied, A still unknown (the lease has not moved)
    expect(applied.map((a) => [a.plan.commit, a.recovered])).toEqual([['o1/1/2', true]]);
    expect(reported()).toEqual({ marked: ['x'], respawned: ['x'] });
    expect((await agentSide.readBoard()).board.tasks.t2!.state).toBe('claimed');
  });

  it('the late reply of the applied twin: counted once, nothing for the live agent', async () => {
    // Commit 1 (A: x and w) never applied (reset); commit 2 (B: x only) applied, its reply held back.
    let release: (() => void) | undefined;
    const { agentSide, link, sweeper, reported } = await setup((n, ops, inner) => {
      if (n === 1) return reset();
      if (n === 2) {
        const done = inner.commit(ops);
        return new Promise((resolve) => {
          release = () => void done.then(resolve);
        });
      }
      return undefined;
    });
    expect(String(await sweeper.sweepOnce(1).catch((e: unknown) => e))).toMatch(/reset/);
    await agentSide.heartbeat('w');
    const b = sweeper.sweepOnce(1); // B: plans x only; its commit is applied, the reply slow
    await flush();
    expect(link.commits).toBe(2);
    const c = sweeper.sweepOnce(1); // while B is in flight: joins B instead of settling A against B's writes
    expect(c).toBe(b);
    release!();
    expect(await b).toMatchObject({ kind: 'applied' });
    await sweeper.sweepOnce(1); // settles A: not visible by its id, lease unchanged -> still unknown
    expect(reported()).toEqual({ marked: ['x'], respawned: ['x'] });
  });

  it('concurrent sweepOnce calls share one sweep: one commit, one outcome (sweepNow beside the loop)', async () => {
    // The reviewer's case: two overlapping sweeps whose commits both hung (the first never applied, the second
    // applied). One sweep at a time now: the second call joins the first, so there is a single commit.
    const { clock, agentSide, link, sweeper, reported } = await setup((n) => {
      if (n === 1) return new Promise(() => {}); // never answers (ignores the signal), never applied
      return undefined;
    }, 50);
    const a = sweeper.sweepOnce(1).catch((e: unknown) => e);
    await flush();
    await agentSide.heartbeat('w');
    const b = sweeper.sweepOnce(1).catch((e: unknown) => e);
    await flush();
    expect(link.commits).toBe(1);
    await clock.advance(50);
    expect(String(await a)).toMatch(/timed out|timeout/i);
    expect(await b).toBe(await a);
    // Commit 1 never applied: nothing is stale, nothing reported.
    expect((await agentSide.readAgent('x'))!.record.state).toBe('active');
    expect(await sweeper.sweepOnce(1)).toMatchObject({ kind: 'applied' }); // marks x afresh (w beat since)
    expect(link.commits).toBe(2);
    expect(reported()).toEqual({ marked: ['x'], respawned: ['x'] });
  });

  it('a sweep at another epoch waits for the one in flight', async () => {
    let release: (() => void) | undefined;
    const order: string[] = [];
    const { sweeper } = await setup((n, ops, inner) => {
      order.push(`commit ${n}`);
      if (n === 1) {
        const done = inner.commit(ops);
        return new Promise((resolve) => {
          release = () => void done.then(resolve);
        });
      }
      return undefined;
    });
    const first = sweeper.sweepOnce(1);
    await flush();
    const second = sweeper.sweepOnce(2).then((o) => {
      order.push(`epoch 2 ${o.kind}`);
      return o;
    });
    await flush();
    expect(order).toEqual(['commit 1']);
    release!();
    expect(await first).toMatchObject({ kind: 'applied' });
    expect(await second).toMatchObject({ kind: 'rejected', reason: 'not-leader' }); // the lease is at epoch 1
    expect(order).toEqual(['commit 1', 'epoch 2 rejected']);
  });
});
