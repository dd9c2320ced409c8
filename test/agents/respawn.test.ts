/**
 * Leader-aware respawn (issue 4): `onRespawnNeeded` fires on the leader for stale agents whose work the sweep
 * requeued, for the roles `respawn.roles` selects; an agent that went stale holding nothing raises a request only
 * with `respawn.idle`.
 */
import { describe, expect, it } from 'vitest';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { planSweep, type RespawnRequest, registerRecord } from '../../src/agents/logic.js';
import type { AgentRecord } from '../../src/agents/schema.js';
import { type CoordinatorOptions, createCoordinator } from '../../src/createCoordinator.js';
import { InvalidOptionsError } from '../../src/errors.js';
import { tasks, World } from './helpers.js';

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
