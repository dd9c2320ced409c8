/**
 * A reservation expires. A handoff note naming a target (`setHandoff(agentId, { note, to })`) makes the sweep queue
 * the stale agent's task reserved for that target; only the target may claim it. A target that is alive but never
 * claims it — its claim filter excludes the task's kind — used to block the task for as long as it lived. The leader
 * now remembers, on its own clock, when it first saw each reservation, and the sweep drops one first seen
 * `staleAfterMs` ago (the handoff note stays): the target had as long to claim it as an agent has to heartbeat.
 */
import { describe, expect, it } from 'vitest';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import {
  addTasks,
  claimNext,
  emptyBoard,
  nextSweepDelay,
  observeAgents,
  observeReservations,
  planSweep,
  registerRecord,
  type SweepInput,
} from '../../src/agents/logic.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import type { AgentRecord, TaskBoard } from '../../src/agents/schema.js';
import { Sweeper } from '../../src/agents/sweeper.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { TestClock } from '../../src/TestClock.js';
import { STALE_AFTER, SWEEP_INTERVAL, tasks, World } from './helpers.js';

const AT = '2024-01-01T00:00:00.000Z';

describe('planSweep: reservation expiry (pure)', () => {
  const agent = (id: string, extra: Partial<AgentRecord> = {}): AgentRecord => ({ ...registerRecord(undefined, { id, role: 'builder', capabilities: [] }, AT), ...extra });
  /** t1 requeued from x (requeues 1), reserved for live y. */
  const reservedBoard = (): TaskBoard => {
    let b = addTasks(emptyBoard(), [{ id: 't1', kind: 'build', payload: null }], AT);
    b = claimNext(b, 'x', {}, AT)!.board;
    const handoff = { note: 'to y', reason: 'stale' as const, from: 'x', to: 'y', by: 'o1', epoch: 1, at: AT };
    return { ...b, tasks: { t1: { ...b.tasks.t1!, state: 'queued', claimedBy: null, claimedAt: null, assignee: 'y', requeues: 1, handoff } } };
  };
  const input = (board: TaskBoard, now: number, seenAt: number): SweepInput => {
    const y = agent('y');
    return {
      leader: { nodeId: 'o1', epoch: 1 },
      now,
      at: AT,
      staleAfterMs: 600,
      // y heart-beats: always just seen, never stale.
      liveness: observeAgents(new Map(), [y], now),
      reservations: observeReservations(new Map(), board, seenAt),
      agents: [{ record: y, version: 'vy' }],
      board,
    };
  };

  it('keeps a reservation for a live target until it was first seen staleAfterMs ago, then drops it (note kept)', () => {
    const board = reservedBoard();
    const early = planSweep(input(board, 1000 + 599, 1000));
    expect(early.board).toBeUndefined();
    expect(early.expired).toEqual([]);
    const due = planSweep(input(board, 1000 + 600, 1000));
    expect(due.expired).toEqual([{ taskId: 't1', assignee: 'y' }]);
    expect(due.board?.tasks.t1).toMatchObject({ state: 'queued', assignee: null, requeues: 1, handoff: { to: 'y', note: 'to y' } });
    // Nothing about the live target is relied on (its heartbeats would refuse the commit); the board version is.
    expect(due.agentChecks).toEqual([]);
    expect(due.agentWrites).toEqual([]);
  });

  it('a reservation is identified by task, assignee and requeue count: a new one of the same task starts again', () => {
    const board = reservedBoard();
    const seen = observeReservations(new Map(), board, 1000);
    expect(observeReservations(seen, board, 1500).get('t1')!.firstSeenAt).toBe(1000);
    const again: TaskBoard = { ...board, tasks: { t1: { ...board.tasks.t1!, requeues: 2 } } };
    expect(observeReservations(seen, again, 1500).get('t1')!.firstSeenAt).toBe(1500);
    const other: TaskBoard = { ...board, tasks: { t1: { ...board.tasks.t1!, assignee: 'z' } } };
    expect(observeReservations(seen, other, 1500).get('t1')!.firstSeenAt).toBe(1500);
    // Remembered for requeue 1, but the board shows requeue 2: not expired.
    const plan = planSweep({ ...input(again, 5000, 0), reservations: seen });
    expect(plan.board).toBeUndefined();
    // Claimed (assignee cleared): forgotten.
    expect(observeReservations(seen, claimNext(board, 'y', {}, AT)!.board, 1500).size).toBe(0);
  });

  it('the leader wakes for the expiry, not a full interval later', () => {
    const board = reservedBoard();
    const reservations = observeReservations(new Map(), board, 1000);
    expect(nextSweepDelay(new Map(), [], 1000, 600, 10_000, reservations)).toBe(600);
    expect(nextSweepDelay(new Map(), [], 1550, 600, 10_000, reservations)).toBe(50);
  });
});

/** Leader o1; x holds t1 and crashes with a handoff note to y; z is idle and claims any kind. */
async function handoffToLiveTarget() {
  const world = new World();
  const o1 = world.coordinator('o1');
  o1.start();
  await world.clock.advance(0);
  const x = world.worker('x', 100_000);
  await x.agent.start();
  await o1.submitTasks(tasks(1));
  await world.run(50);
  expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'x' });
  // y is alive (heart-beats) but its claim filter excludes the task's kind.
  const y = world.worker('y', 100, 1, 'builder', { kinds: ['review'] });
  const z = world.worker('z', 100);
  for (const w of [y, z]) await w.agent.start();
  await o1.setHandoff('x', { note: 'x drains; y takes over', to: 'y' });
  x.crash();
  const reservedAt = await world.until(() => world.board().t1?.assignee === 'y', 3000, 5);
  expect(reservedAt).toBeDefined();
  return { world, o1, y, z, reservedAt: reservedAt! };
}

describe('a live handoff target that never claims', () => {
  it('(the review finding) its claim filter excludes the kind: after ~staleAfterMs + one sweep the task goes to another agent, completed once', async () => {
    const { world, o1, reservedAt } = await handoffToLiveTarget();
    expect(world.board().t1).toMatchObject({ state: 'queued', handoff: { from: 'x', to: 'y' } });
    const claimedAt = await world.until(() => world.board().t1?.state !== 'queued', 5 * STALE_AFTER, 5);
    expect(claimedAt).toBeDefined();
    const waited = claimedAt! - reservedAt;
    expect(waited).toBeGreaterThanOrEqual(STALE_AFTER - 5);
    expect(waited).toBeLessThanOrEqual(STALE_AFTER + SWEEP_INTERVAL);
    expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'z', handoff: { from: 'x', to: 'y' } });
    expect(world.agentRecord('y')?.state).toBe('active');
    await world.run(500);
    expect(world.board().t1).toMatchObject({ state: 'completed', completedBy: 'z' });
    expect(world.completions.filter((c) => c.taskId === 't1')).toEqual([expect.objectContaining({ agentId: 'z' })]);
    expect(world.rejections).toEqual([]);
    expect(o1.metrics().sweeps.rejected).toBe(0);
  });

  it('a target that claims within staleAfterMs keeps its reservation; nobody else gets the task', async () => {
    const { world, y, reservedAt } = await handoffToLiveTarget();
    // z keeps asking for any task meanwhile; y takes `build` tasks again 500 ms into its reservation.
    await world.run(500 - (world.clock.now() - reservedAt), 5);
    expect(world.board().t1).toMatchObject({ state: 'queued', assignee: 'y' });
    y.filter = {};
    const claimedAt = await world.until(() => world.board().t1?.state !== 'queued', 5 * STALE_AFTER, 5);
    expect(claimedAt! - reservedAt).toBeLessThan(STALE_AFTER);
    expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'y' });
    await world.run(3 * STALE_AFTER);
    expect(world.board().t1).toMatchObject({ state: 'completed', completedBy: 'y' });
    expect(world.completions.filter((c) => c.taskId === 't1')).toEqual([expect.objectContaining({ agentId: 'y' })]);
  });
});

describe('the expiry drop at the store', () => {
  async function reserved() {
    const clock = new TestClock();
    const shared = new MemoryLeaseStore();
    shared.commitSync([{ key: leaseKey('s'), expectedVersion: null, value: { holder: 'o1', epoch: 1, leaseDurationMs: 600_000, renewals: 0 } }]);
    const agentSide = new AgentRegistry(shared, 's', clock);
    const registry = new AgentRegistry(shared, 's', clock);
    let beforeCommit: (() => Promise<void>) | undefined;
    const sweeper = (nodeId: string) =>
      new Sweeper({ registry, clock, nodeId, staleAfterMs: 600, sweepIntervalMs: 200, beforeCommit: () => beforeCommit?.() });
    const o1 = sweeper('o1');
    for (const id of ['x', 'y', 'z']) await agentSide.register({ id, role: 'builder', capabilities: [] });
    await agentSide.submitTasks(tasks(1));
    await agentSide.claim('x');
    await agentSide.setHandoff({ nodeId: 'o1', epoch: 1 }, 'x', { note: 'to y', to: 'y' });
    await o1.observe();
    const beat = async (ms: number) => {
      for (let t = 0; t < ms; t += 100) {
        await clock.advance(100);
        for (const id of ['y', 'z']) await agentSide.heartbeat(id);
      }
    };
    await beat(700);
    expect((await o1.sweepOnce(1)).kind).toBe('applied');
    expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: 'y' });
    return { clock, shared, agentSide, o1, sweeper, beat, setBeforeCommit: (f: typeof beforeCommit) => (beforeCommit = f) };
  }

  it('is version-checked on the board: a target that claims between the read and the commit keeps the task', async () => {
    const { agentSide, o1, beat, setBeforeCommit } = await reserved();
    await beat(600);
    let claimed = false;
    setBeforeCommit(async () => {
      if (claimed) return;
      claimed = true;
      expect((await agentSide.claim('y'))?.task.id).toBe('t1');
    });
    const outcome = await o1.sweepOnce(1);
    expect(claimed).toBe(true);
    // The drop was refused on the board version; the re-read finds nothing left to do.
    expect(outcome.kind).toBe('noop');
    expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ state: 'claimed', claimedBy: 'y' });
  });

  it('a new leader counts from its own first read of the reservation (later, never earlier)', async () => {
    const { clock, agentSide, beat, sweeper } = await reserved();
    await beat(400);
    const o2 = sweeper('o2');
    const lease = { holder: 'o2', epoch: 2, leaseDurationMs: 600_000, renewals: 0 };
    const current = (await agentSide.store.read(leaseKey('s')))!;
    await agentSide.store.commit([{ key: leaseKey('s'), expectedVersion: current.version, value: lease }]);
    const takeover = clock.now();
    expect((await o2.sweepOnce(2)).kind).toBe('noop'); // first sees the reservation now
    await beat(500);
    expect((await o2.sweepOnce(2)).kind).toBe('noop'); // 900 ms after it was made, 500 ms after o2 saw it
    expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ assignee: 'y' });
    await beat(100);
    expect(clock.now() - takeover).toBe(600);
    const outcome = await o2.sweepOnce(2);
    expect(outcome).toMatchObject({ kind: 'applied', plan: { expired: [{ taskId: 't1', assignee: 'y' }] } });
    expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: null, handoff: { to: 'y' } });
    expect((await agentSide.claim('z'))?.task.id).toBe('t1');
  });
});
