import { describe, expect, it } from 'vitest';
import type { CommitOp } from '../../src/adapters/LeaseStore.js';
import { StaleClaimError } from '../../src/agents/errors.js';
import type { RespawnRequest } from '../../src/agents/logic.js';
import { NotLeaderError } from '../../src/errors.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { HEARTBEAT, STALE_AFTER, SWEEP_INTERVAL, tasks, timing, World } from './helpers.js';

async function leaderWorld(workers: string[], workMs = 300) {
  const world = new World();
  const o1 = world.coordinator('o1');
  o1.start();
  await world.clock.advance(0);
  expect(o1.isOrchestratorLeader()).toBe(true);
  const ws = workers.map((id) => world.worker(id, workMs));
  for (const w of ws) await w.agent.start();
  return { world, o1, ws };
}

describe('stale-agent detection', () => {
  for (const [label, silenceAt] of [
    ['right after a heartbeat', 0],
    ['just before the next heartbeat', HEARTBEAT - 5],
    ['mid-interval', 37],
  ] as const) {
    it(`marks a silent agent stale within staleAfterMs + one sweep interval of its last heartbeat (${label})`, async () => {
      const { world } = await leaderWorld(['a1', 'a2']);
      await world.run(1000);
      // Align to a heartbeat of a1, then let it die `silenceAt` ms later (before its next beat).
      const beats = () => world.store.writes.filter((w) => w.key.endsWith('/agents/a1'));
      const count = beats().length;
      await world.until(() => beats().length > count, 500, 1);
      await world.run(silenceAt, 1);
      world.workers[0]!.crash();
      const lastBeat = beats().at(-1)!.at;
      const detectedAt = await world.until(() => world.agentRecord('a1')?.state === 'stale', 5000, 1);
      expect(detectedAt).toBeDefined();
      const latency = detectedAt! - lastBeat;
      expect(latency).toBeGreaterThanOrEqual(STALE_AFTER);
      expect(latency).toBeLessThanOrEqual(STALE_AFTER + SWEEP_INTERVAL);
      expect(world.agentRecord('a2')?.state).toBe('active');
    });
  }

  it('never marks an agent that keeps heart-beating, over a long run', async () => {
    const { world, o1 } = await leaderWorld(['a1', 'a2', 'a3']);
    await world.run(10_000, 50);
    for (const id of ['a1', 'a2', 'a3']) expect(world.agentRecord(id)?.state).toBe('active');
    expect(o1.metrics().staleAgentsMarked).toBe(0);
    const status = await o1.agentStatus();
    expect(status.map((s) => [s.id, s.state])).toEqual([
      ['a1', 'active'],
      ['a2', 'active'],
      ['a3', 'active'],
    ]);
    expect(Math.max(...status.map((s) => s.lastSeenAgeMs!))).toBeLessThanOrEqual(HEARTBEAT + SWEEP_INTERVAL);
  });
});

describe('sweeps are conditioned on the leader lease', () => {
  it("a paused ex-leader's sweep is rejected as a whole when the lease moved on meanwhile", async () => {
    const world = new World();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const held: CommitOp[][] = [];
    const o1 = world.coordinator('o1', {
      beforeSweepCommit: async (ops) => {
        if (held.length > 0) return;
        held.push([...(ops as CommitOp[])]);
        await gate;
      },
    });
    const respawns: RespawnRequest[] = [];
    o1.onRespawnNeeded((r) => {
      respawns.push(r);
    });
    o1.start();
    await world.clock.advance(0);
    const [a1] = [world.worker('a1', 100_000), world.worker('a2', 100_000)];
    for (const w of world.workers) await w.agent.start();
    await o1.submitTasks(tasks(2));
    await world.run(200);
    const before = world.board();
    expect(before.t1).toMatchObject({ state: 'claimed', claimedBy: 'a1' });
    a1!.crash();
    await world.until(() => held.length > 0, 2000, 5);
    expect(held[0]![0]).toEqual({ key: leaseKey('t'), expectedVersion: expect.any(String) }); // check-only lease op first
    // While o1 is paused, its lease is taken over (as after its expiry) by o2 at a higher epoch.
    const lease = world.shared.readSync(leaseKey('t'))!;
    world.shared.commitSync([
      { key: leaseKey('t'), expectedVersion: lease.version, value: { ...(lease.value as object), holder: 'o2', epoch: 2, renewals: 0 } },
    ]);
    const writesBefore = world.store.writes.length;
    release();
    await world.run(50, 5);
    // Nothing of the sweep was applied: a1 is still active in the store, its task still claimed by it.
    expect(world.agentRecord('a1')!.state).toBe('active');
    expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'a1', requeues: 0 });
    expect(world.store.writes.slice(writesBefore).filter((w) => !w.key.endsWith('/agents/a2'))).toEqual([]);
    expect(o1.metrics().sweeps.rejected).toBeGreaterThanOrEqual(1);
    expect(o1.metrics().staleAgentsMarked).toBe(0);
    expect(respawns).toEqual([]);
  });

  it('a renewal between read and commit makes the sweep re-read and retry, still as leader', async () => {
    const world = new World();
    let renewedOnce = false;
    const o1 = world.coordinator('o1', {
      beforeSweepCommit: async () => {
        if (renewedOnce) return;
        renewedOnce = true;
        // Same holder, same epoch, new version: what a renewal does.
        const lease = world.shared.readSync(leaseKey('t'))!;
        world.shared.commitSync([{ key: leaseKey('t'), expectedVersion: lease.version, value: lease.value }]);
      },
    });
    o1.start();
    await world.clock.advance(0);
    const a1 = world.worker('a1', 100_000);
    await a1.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(100);
    a1.crash();
    await world.until(() => world.agentRecord('a1')?.state === 'stale', 3000, 5);
    expect(renewedOnce).toBe(true);
    expect(world.board().t1).toMatchObject({ state: 'queued', requeues: 1 });
    expect(world.board().t1!.handoff!.note).toContain('requeued by orchestrator o1 at epoch 1 because agent a1 stopped heart-beating');
  });

  it('a fenced leader (cut off from the store) stops sweeping; the new leader does the cleanup at a higher epoch', async () => {
    const world = new World();
    const [o1, o2] = [world.coordinator('o1'), world.coordinator('o2')];
    o1.start();
    await world.clock.advance(0);
    o2.start();
    const a1 = world.worker('a1', 100_000);
    const a2 = world.worker('a2', 100_000);
    for (const w of [a1, a2]) await w.agent.start();
    await o1.submitTasks(tasks(2));
    await world.run(300);
    expect(o1.isOrchestratorLeader()).toBe(true);
    world.links[0]!.mode = 'hang';
    a1.crash();
    const fenced = await world.until(() => o1.elector.state() !== 'leader', 2000, 5);
    expect(fenced).toBeDefined();
    await world.until(() => world.agentRecord('a1')?.state === 'stale', 5000, 5);
    const t1 = world.board().t1!;
    expect(t1.handoff).toMatchObject({ by: 'o2', epoch: 2 });
    expect(o1.metrics().staleAgentsMarked).toBe(0);
    expect(o2.metrics().staleAgentsMarked).toBe(1);
    await expect(o1.setHandoff('a2', 'x')).rejects.toThrow(NotLeaderError);
  });
});

describe('handoff and claim tokens', () => {
  it('completion with an old claim token is rejected after the task was handed to another agent', async () => {
    const { world, o1, ws } = await leaderWorld(['a1', 'a2'], 100_000);
    await o1.submitTasks(tasks(1));
    await world.run(50);
    const [a1, a2] = ws as [typeof ws[0], typeof ws[0]];
    const holder = world.board().t1!.claimedBy === 'a1' ? a1 : a2;
    const other = holder === a1 ? a2 : a1;
    const oldToken = holder.inFlight.get('t1')!.token;
    // The holder pauses (stops heart-beating) but its process lives on.
    holder.link.mode = 'hang';
    await world.until(() => world.board().t1!.claimedBy === other.id, 3000, 5);
    expect(world.board().t1!.claimToken).toBe(oldToken + 1);
    holder.link.mode = 'ok';
    const err = await holder.agent.complete('t1', oldToken).catch((e: unknown) => e);
    expect(StaleClaimError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: 'ERR_STALE_CLAIM', taskId: 't1', claimToken: oldToken, currentToken: oldToken + 1, currentHolder: other.id });
    expect(world.board().t1!.state).toBe('claimed');
  });

  it('setHandoff is leader-only, records why/to whom/epoch, and requeued tasks carry it to the named agent', async () => {
    const world = new World();
    const o1 = world.coordinator('o1');
    const o2 = world.coordinator('o2');
    o1.start();
    await world.clock.advance(0);
    o2.start();
    const [a1, a2, a3] = [world.worker('a1', 100_000), world.worker('a2', 100_000, 0), world.worker('a3', 100_000, 0)];
    for (const w of [a1, a2, a3]) await w.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(50);
    await expect(o2.setHandoff('a1', 'x')).rejects.toThrow(NotLeaderError);
    const note = await o1.setHandoff('a1', { note: 'host-3 is being drained', to: 'a3' });
    expect(note).toMatchObject({ from: 'a1', to: 'a3', by: 'o1', epoch: 1, reason: 'manual' });
    expect((await o1.agentStatus()).find((s) => s.id === 'a1')!.handoff).toEqual(note);
    a1.crash();
    await world.until(() => world.board().t1!.state === 'queued', 3000, 5);
    expect(world.board().t1).toMatchObject({ assignee: 'a3', handoff: { to: 'a3', epoch: 1, by: 'o1' } });
    expect(world.board().t1!.handoff!.note).toMatch(/^host-3 is being drained \(requeued by orchestrator o1 at epoch 1/);
    // a2 may not take work reserved for a3; a3 may.
    expect(await a2.agent.claim()).toBeUndefined();
    expect((await a3.agent.claim())!.task.id).toBe('t1');
  });

  it('an agent presumed dead learns it on its next heartbeat and comes back as a new incarnation, without its old claims', async () => {
    const { world, o1, ws } = await leaderWorld(['a1'], 100_000);
    await o1.submitTasks(tasks(1));
    await world.run(50);
    const a1 = ws[0]!;
    expect(a1.inFlight.size).toBe(1);
    a1.link.mode = 'hang'; // partitioned: its store calls never answer
    await world.until(() => world.agentRecord('a1')?.state === 'stale', 3000, 5);
    let told = false;
    a1.agent.onPresumedDead(() => {
      told = true;
    });
    a1.link.mode = 'ok';
    await world.until(() => world.agentRecord('a1')?.state === 'active', 3000, 5);
    expect(told).toBe(true);
    expect((world.agentRecord('a1') as unknown as { incarnation: number }).incarnation).toBe(2);
    expect(a1.inFlight.size).toBe(1); // re-claimed the requeued task under a new token
    expect(world.board().t1!.claimToken).toBe(2);
  });
});

describe('failover', () => {
  it('no task is lost or completed twice when the leader and a worker crash together', async () => {
    const world = new World();
    const os = ['o1', 'o2', 'o3'].map((id) => world.coordinator(id));
    const respawns = new Map<string, RespawnRequest[]>();
    for (const o of os) {
      respawns.set(o.nodeId, []);
      o.onRespawnNeeded((r) => {
        respawns.get(o.nodeId)!.push(r);
      });
    }
    os[0]!.start();
    await world.clock.advance(0);
    for (const o of os.slice(1)) o.start();
    for (const id of ['w1', 'w2', 'w3', 'w4']) world.worker(id, 400, 2);
    for (const w of world.workers) await w.agent.start();
    await os[0]!.submitTasks(tasks(24));
    await world.run(500);
    const victim = world.workers.find((w) => w.inFlight.size > 0)!;
    const victimTasks = [...victim.inFlight.keys()];
    expect(victimTasks.length).toBeGreaterThan(0);
    // Crash the leader and a worker at the same instant.
    const oldLeader = world.leaders()[0]!;
    const crashIndex = os.indexOf(oldLeader);
    world.links[crashIndex]!.mode = 'hang';
    oldLeader.elector.actor.stop();
    victim.crash();
    const crashedAt = world.clock.now();
    const newLeaderAt = await world.until(() => world.leaders().some((l) => l !== oldLeader), 5000, 10);
    expect(newLeaderAt).toBeDefined();
    const newLeader = world.leaders().find((l) => l !== oldLeader)!;
    expect(newLeader.elector.fencingToken()).toBeGreaterThan(oldLeader.elector.actor.getSnapshot().context.epoch!);
    const detectedAt = await world.until(() => world.agentRecord(victim.id)?.state === 'stale', 5000, 10);
    // The new leader observed heartbeats while still a follower, on its own clock: it needs no fresh
    // staleAfterMs of history and marks the dead worker in its first sweeps after taking over.
    expect(detectedAt! - newLeaderAt!).toBeLessThanOrEqual(SWEEP_INTERVAL);
    expect(detectedAt! - crashedAt).toBeLessThanOrEqual(Math.max(STALE_AFTER + SWEEP_INTERVAL, timing.leaseDurationMs + 2 * timing.retryPeriodMs) + HEARTBEAT);
    await world.until(() => Object.values(world.board()).every((t) => t.state === 'completed'), 20_000, 20);
    const board = world.board();
    expect(Object.values(board).every((t) => t.state === 'completed')).toBe(true);
    const ids = world.completions.map((c) => c.taskId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort()).toEqual(Object.keys(board).sort());
    for (const id of victimTasks) {
      expect(board[id]!.handoff).toMatchObject({ from: victim.id, by: newLeader.nodeId, reason: 'stale' });
      expect(board[id]!.completedBy).not.toBe(victim.id);
    }
    // Respawn requests were raised on the new leader only, for the dead worker with its requeued tasks.
    for (const o of os) {
      if (o === newLeader) expect(respawns.get(o.nodeId)!.map((r) => [r.agentId, [...r.requeuedTaskIds].sort()])).toEqual([[victim.id, [...victimTasks].sort()]]);
      else expect(respawns.get(o.nodeId)).toEqual([]);
    }
  });
});
