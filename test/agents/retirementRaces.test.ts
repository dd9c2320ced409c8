/**
 * Retirement races: a retired agent coming back with old claims, a brand-new agent registering while
 * a retiring sweep is between its read and commit, and two sweeps of the same leader (sweepNow + loop) retiring.
 */
import { describe, expect, it } from 'vitest';
import { Sweeper } from '../../src/agents/sweeper.js';
import { InterleavingStore, STALE_AFTER, tasks, World } from '../agents/helpers.js';
import { sweepRig } from './helpers.js';

const retention = { goneMs: 2000, staleMs: 3000 };
const indexIds = (world: World) => ((world.shared.readSync('fenced-leader/t/agents')?.value as { ids: string[] } | undefined)?.ids ?? []).slice().sort();

describe('retirement races', () => {
  it('a retired stale agent that comes back cannot complete its old claim, and registers as a fresh incarnation', async () => {
    const world = new World();
    const o1 = world.coordinator('o1', { retention });
    o1.start();
    await world.clock.advance(0);
    const a1 = world.worker('a1', 5_000);
    await a1.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(50);
    const old = world.board().t1!;
    expect(old).toMatchObject({ state: 'claimed', claimedBy: 'a1' });
    a1.link.mode = 'hang'; // paused / partitioned, still "working" on t1 with token old.claimToken
    const a2 = world.worker('a2', 100_000);
    await a2.agent.start();
    await world.until(() => world.board().t1!.claimedBy === 'a2', 3000, 10);
    await world.until(() => !indexIds(world).includes('a1'), 10_000, 10);
    expect(indexIds(world)).toEqual(['a2']);
    // a1 comes back: its in-flight completion of t1 (old token) must be refused.
    a1.link.mode = 'ok';
    // Before any heartbeat tells it, the zombie completes with its old token: refused (token moved on to a2's claim).
    await expect(a1.agent.complete('t1', old.claimToken, { by: 'a1' })).rejects.toMatchObject({ name: expect.stringMatching(/StaleClaim/) });
    await world.run(6000, 10);
    expect(world.completions.filter((c) => c.taskId === 't1' && c.agentId === 'a1')).toEqual([]);
    expect(world.board().t1).toMatchObject({ claimedBy: 'a2', state: 'claimed' });
    expect(world.agentRecord('a1')).toMatchObject({ state: 'active', incarnation: 2 });
    expect(indexIds(world)).toEqual(['a1', 'a2']);
    await o1.stop();
  });

  it('a brand-new agent registering between a retiring sweep read and its commit stays indexed', async () => {
    const { clock, shared, agentSide, link, registry } = sweepRig('s', (store) => new InterleavingStore(store), 60_000);
    const sweeper = new Sweeper({ registry, clock, nodeId: 'o1', staleAfterMs: STALE_AFTER, sweepIntervalMs: 200, retention: { goneMs: 1000, staleMs: 2000 } });
    await agentSide.register({ id: 'x', role: 'b', capabilities: [] });
    await agentSide.deregister('x');
    await sweeper.observe();
    await clock.advance(1000);
    link.beforeNextRead(registry.keys.board, async () => {
      await agentSide.register({ id: 'n', role: 'b', capabilities: [] });
    });
    const outcome = await sweeper.sweepOnce(1);
    expect(outcome).toMatchObject({ kind: 'applied', attempts: 2, plan: { retired: ['x'] } });
    expect((shared.readSync(registry.keys.index)!.value as { ids: string[] }).ids).toEqual(['n']);
  });

  it('sweepNow racing the loop retires once (metrics count it once, the index stays consistent)', async () => {
    const world = new World();
    const o1 = world.coordinator('o1', { retention });
    o1.start();
    await world.clock.advance(0);
    const [a1, a2] = [world.worker('a1', 100_000), world.worker('a2', 100_000)];
    for (const w of [a1, a2]) await w.agent.start();
    await world.run(100);
    await a1.agent.stop();
    await world.run(retention.goneMs - 30, 10);
    const manual = [o1.sweepNow(), o1.sweepNow()];
    await world.run(300, 5);
    await Promise.all(manual);
    await world.run(300, 10);
    expect(indexIds(world)).toEqual(['a2']);
    expect(o1.metrics().retiredAgents).toBe(1);
    await o1.stop();
  });
});
