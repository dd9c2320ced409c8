/**
 * A handoff note can reserve a requeued task for a target agent. The sweep relies on that target being active, but
 * does not version-check it: a live target heart-beats, and each heartbeat changes its version, so a check would
 * refuse every sweep attempt whose read-to-commit window a heartbeat falls in — and hold up every stale mark and
 * requeue of that sweep for as long as the target lives. (A target gone by the commit loses its reservation at the
 * next sweep: see sweepRace.test.ts; one that stays but never claims loses it staleAfterMs after it was made: see
 * reservationExpiry.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { createAgent } from '../../src/agents/agent.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import { Sweeper } from '../../src/agents/sweeper.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { TestClock } from '../../src/TestClock.js';
import { InterleavingStore, sweepRig, tasks, World } from './helpers.js';

const ELECTION = 's';
const STALE_AFTER = 600;

async function setup(withHandoff: boolean) {
  const { clock, agentSide, link, registry } = sweepRig(ELECTION, (store) => new InterleavingStore(store));
  const sweeper = new Sweeper({ registry, clock, nodeId: 'o1', staleAfterMs: STALE_AFTER, sweepIntervalMs: 200 });
  for (const id of ['x', 'y']) await agentSide.register({ id, role: 'builder', capabilities: [] });
  await agentSide.submitTasks(tasks(1));
  expect((await agentSide.claim('x'))?.task.id).toBe('t1');
  if (withHandoff) await agentSide.setHandoff({ nodeId: 'o1', epoch: 1 }, 'x', { note: 'draining x', to: 'y' });
  await sweeper.observe();
  await clock.advance(STALE_AFTER / 2);
  await agentSide.heartbeat('y');
  await sweeper.observe();
  await clock.advance(STALE_AFTER / 2 + 50);
  // y is alive: it beats once in every sweep attempt's read-to-commit window (here: while the sweep reads the board,
  // i.e. after it read y's record). Re-armed on every read of the board, so every attempt sees one heartbeat.
  const arm = () =>
    link.beforeNextRead(registry.keys.board, async () => {
      await agentSide.heartbeat('y');
      arm();
    });
  arm();
  return { sweeper, agentSide, clock };
}

describe('a live handoff target heart-beating in every sweep window', () => {
  it('control: without a handoff note the same heartbeats do not stop the sweep', async () => {
    const { sweeper, agentSide } = await setup(false);
    const outcome = await sweeper.sweepOnce(1);
    expect(outcome).toMatchObject({ kind: 'applied', attempts: 1 });
    expect((await agentSide.readAgent('x'))!.record.state).toBe('stale');
    expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued' });
  });

  it('does not stop the sweep either: the stale agent is marked and its task requeued, reserved for the target, at the first attempt', async () => {
    const { sweeper, agentSide } = await setup(true);
    const outcome = await sweeper.sweepOnce(1);
    expect(outcome).toMatchObject({ kind: 'applied', attempts: 1 });
    expect((await agentSide.readAgent('x'))!.record.state).toBe('stale');
    expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: 'y', handoff: { from: 'x', to: 'y' } });
    expect((await agentSide.claim('y'))?.task.id).toBe('t1');
  });
});

/** The shared store seen over a link where every call takes `delayMs` (a remote store, ~1 RTT per call). */
class SlowLink implements LeaseStore {
  readonly kind = 'slow';
  constructor(
    private readonly inner: MemoryLeaseStore,
    private readonly clock: TestClock,
    private readonly delayMs: number,
  ) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  private wait() {
    return new Promise<void>((r) => this.clock.setTimeout(r, this.delayMs));
  }
  async read(key: string, _o?: CallOptions): Promise<StoreEntry | undefined> {
    await this.wait();
    return this.inner.read(key);
  }
  async compareAndSet(key: string, expectedVersion: string | null, value: Json): Promise<string> {
    await this.wait();
    return this.inner.compareAndSet(key, expectedVersion, value);
  }
  async commit(ops: readonly CommitOp[]): Promise<string[]> {
    await this.wait();
    return this.inner.commit(ops);
  }
  async close(): Promise<void> {}
}

describe('the same with real heartbeat timers and a store ~10 ms away', () => {
  for (const withHandoff of [false, true]) {
    it(`${withHandoff ? 'with' : 'without'} a handoff note to a live agent, a dead holder is detected within 10 s, no sweep refused`, async () => {
      const clock = new TestClock();
      const shared = new MemoryLeaseStore();
      shared.commitSync([{ key: leaseKey(ELECTION), expectedVersion: null, value: { holder: 'o1', epoch: 1, leaseDurationMs: 600_000, renewals: 0 } }]);
      const direct = new AgentRegistry(shared, ELECTION, clock);
      const registry = new AgentRegistry(new SlowLink(shared, clock, 10), ELECTION, clock);
      const outcomes: string[] = [];
      const expired: string[] = [];
      const sweeper = new Sweeper({
        registry,
        clock,
        nodeId: 'o1',
        staleAfterMs: STALE_AFTER,
        sweepIntervalMs: 200,
        onOutcome: (o) => {
          outcomes.push(o.kind === 'rejected' ? `rejected:${o.reason}` : o.kind);
          if (o.kind === 'applied') expired.push(...o.plan.expired.map((e) => `${e.taskId}:${e.assignee}`));
        },
      });
      // Twelve live workers heart-beating every 100 ms (a sweep reads ~15 keys: ~150 ms from reading w0 to committing).
      const workers = Array.from({ length: 12 }, (_, i) => createAgent({ id: `w${i}`, election: ELECTION, store: shared, clock, heartbeatIntervalMs: 100 }));
      for (const w of workers) await w.start();
      await direct.register({ id: 'x', role: 'builder', capabilities: [] });
      await direct.submitTasks(tasks(1));
      expect((await direct.claim('x'))?.task.id).toBe('t1');
      if (withHandoff) await direct.setHandoff({ nodeId: 'o1', epoch: 1 }, 'x', { note: 'draining x', to: 'w0' });
      const controller = new AbortController();
      const loop = sweeper.runAsLeader({ token: 1, signal: controller.signal });
      for (let t = 0; t < 10_000; t += 10) await clock.advance(10);
      controller.abort();
      await clock.advance(1000);
      await loop;
      for (const w of workers) await w.stop({ deregister: false });
      expect(outcomes).toContain('applied');
      expect(outcomes.filter((o) => o.startsWith('rejected'))).toEqual([]);
      expect((await direct.readAgent('x'))!.record.state).toBe('stale');
      // w0 never claims (these workers only heart-beat): its reservation expired staleAfterMs after it was made, in
      // a sweep no heartbeat refused either; the note still names it.
      expect(expired).toEqual(withHandoff ? ['t1:w0'] : []);
      expect((await direct.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: null, handoff: { from: 'x', to: withHandoff ? 'w0' : null } });
    });
  }
});

describe('a manual handoff note lives as long as the incarnation it was set on', () => {
  it("once consumed, it is not re-applied to a later incarnation's work (neither the note nor the reservation)", async () => {
    const world = new World();
    const o1 = world.coordinator('o1');
    o1.start();
    await world.clock.advance(0);
    const a1 = world.worker('a1', 100_000);
    const a3 = world.worker('a3', 100_000, 0); // an idle target
    for (const w of [a1, a3]) await w.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(50);
    await o1.setHandoff('a1', { note: 'host-3 is being drained', to: 'a3' });
    a1.crash();
    await world.until(() => world.board().t1!.state === 'queued', 3000, 5);
    expect(world.board().t1).toMatchObject({ assignee: 'a3', handoff: { note: expect.stringContaining('host-3 is being drained') } });

    // Later a1 is restarted on a healthy host (a new incarnation), takes new work, and crashes for another reason.
    const a1b = world.worker('a1', 100_000);
    await a1b.agent.start();
    expect((await o1.agentStatus()).find((s) => s.id === 'a1')).toMatchObject({ incarnation: 2, handoff: null });
    await o1.submitTasks([{ id: 't2', kind: 'build', payload: null }]);
    await world.run(50);
    expect(world.board().t2).toMatchObject({ state: 'claimed', claimedBy: 'a1' });
    a1b.crash();
    await world.until(() => world.board().t2!.state === 'queued', 3000, 5);
    const t2 = world.board().t2!;
    expect(t2.handoff!.note).not.toMatch(/host-3 is being drained/);
    expect(t2.handoff).toMatchObject({ reason: 'stale', to: null });
    expect(t2.assignee).toBeNull();
    await o1.stop();
  });
});
