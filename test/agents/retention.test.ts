/**
 * Retention: the leader's sweep retires agents that are not coming back (deregistered ones after `retention.goneMs`,
 * stale ones that never re-registered after `retention.staleMs`) from the registry index, in a fenced commit that
 * checks each retired agent's record at the version read, so the index does not grow without bound.
 */
import { describe, expect, it } from 'vitest';
import type { CommitOp, Json, } from '../../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { addTasks, claimNext, emptyBoard, observeAgents, planSweep, registerRecord } from '../../src/agents/logic.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import type { AgentRecord } from '../../src/agents/schema.js';
import { Sweeper } from '../../src/agents/sweeper.js';
import { type CoordinatorOptions, createCoordinator, defaultStaleRetentionMs } from '../../src/createCoordinator.js';
import { InvalidOptionsError } from '../../src/errors.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { TestClock } from '../../src/TestClock.js';
import { InterleavingStore, STALE_AFTER, tasks, World } from './helpers.js';

const GONE_MS = 2000;
const STALE_MS = 3000;
const retention = { goneMs: GONE_MS, staleMs: STALE_MS };
const indexIds = (world: World) => ((world.shared.readSync('fenced-leader/t/agents')?.value as { ids: string[] } | undefined)?.ids ?? []).slice().sort();

async function leaderWorld(extra: Partial<CoordinatorOptions> = {}) {
  const world = new World();
  const o1 = world.coordinator('o1', { retention, ...extra });
  o1.start();
  await world.clock.advance(0);
  expect(o1.isOrchestratorLeader()).toBe(true);
  return { world, o1 };
}

describe('retention of agents that are not coming back', () => {
  it('retires a deregistered agent from the index after retention.goneMs, not before; its record keeps its counters', async () => {
    const { world, o1 } = await leaderWorld();
    const [a1, a2] = [world.worker('a1', 100_000), world.worker('a2', 100_000)];
    for (const w of [a1, a2]) await w.agent.start();
    await world.run(300);
    await a1.agent.stop();
    const goneAt = world.clock.now();
    expect((await o1.agentStatus()).map((s) => [s.id, s.state])).toEqual([
      ['a1', 'gone'],
      ['a2', 'active'],
    ]);
    const retiredAt = await world.until(() => !indexIds(world).includes('a1'), GONE_MS * 3, 10);
    expect(retiredAt).toBeDefined();
    // On the leader's clock, from when it first saw the deregistration (at most one observation interval late).
    expect(retiredAt! - goneAt).toBeGreaterThanOrEqual(GONE_MS);
    expect(retiredAt! - goneAt).toBeLessThanOrEqual(GONE_MS + 2 * 200 + 20);
    expect(indexIds(world)).toEqual(['a2']);
    expect((await o1.agentStatus()).map((s) => s.id)).toEqual(['a2']);
    expect(o1.metrics().retiredAgents).toBe(1);
    expect(o1.metricsText()).toMatch(/^fenced_leader_retired_agents_total\{election="t",node="o1"\} 1$/m);
    // The key keeps its last record (the store has no delete): a later registration continues its incarnation.
    expect(world.agentRecord('a1')).toMatchObject({ state: 'gone' });
    const again = world.worker('a1', 100_000);
    await again.agent.start();
    expect(world.agentRecord('a1')).toMatchObject({ state: 'active', incarnation: 2 });
    expect(indexIds(world)).toEqual(['a1', 'a2']);
  });

  it('retires a stale agent that never came back after retention.staleMs; if it returns later it registers again and gets work', async () => {
    const { world, o1 } = await leaderWorld();
    const a1 = world.worker('a1', 100_000);
    await a1.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(100);
    expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'a1' });
    a1.link.mode = 'hang'; // partitioned for a long time
    await world.until(() => world.agentRecord('a1')?.state === 'stale', 3000, 10);
    expect(world.board().t1).toMatchObject({ state: 'queued', requeues: 1 });
    expect(indexIds(world)).toEqual(['a1']);
    await world.until(() => !indexIds(world).includes('a1'), STALE_MS * 2, 10);
    expect(indexIds(world)).toEqual([]);
    expect(o1.metrics().retiredAgents).toBe(1);
    a1.link.mode = 'ok';
    await world.until(() => world.agentRecord('a1')?.state === 'active', 3000, 10);
    expect(indexIds(world)).toEqual(['a1']);
    expect(world.agentRecord('a1')).toMatchObject({ incarnation: 2 });
    await world.until(() => world.board().t1!.state === 'claimed', 3000, 10);
    expect(world.board().t1).toMatchObject({ claimedBy: 'a1', claimToken: 2 });
  });

  it('with null retention keeps gone and stale agents indexed forever', async () => {
    const { world, o1 } = await leaderWorld({ retention: { goneMs: null, staleMs: null } });
    const [a1, a2] = [world.worker('a1', 100_000), world.worker('a2', 100_000)];
    for (const w of [a1, a2]) await w.agent.start();
    await a1.agent.stop();
    a2.crash();
    await world.run(10_000, 50);
    expect(indexIds(world)).toEqual(['a1', 'a2']);
    expect((await o1.agentStatus()).map((s) => s.state)).toEqual(['gone', 'stale']);
    expect(o1.metrics().retiredAgents).toBe(0);
  });

  it("a retirement is fenced: a deposed leader's retire commit is refused as a whole", async () => {
    let moveLease = false;
    const held: CommitOp[][] = [];
    const world = new World();
    const o1 = world.coordinator('o1', {
      retention,
      beforeSweepCommit: (ops) => {
        const list = ops as CommitOp[];
        if (!moveLease || !list.some((o) => o.key === 'fenced-leader/t/agents')) return;
        held.push([...list]);
        moveLease = false;
        const lease = world.shared.readSync(leaseKey('t'))!;
        world.shared.commitSync([{ key: leaseKey('t'), expectedVersion: lease.version, value: { ...(lease.value as object), holder: 'o2', epoch: 2, renewals: 0 } }]);
      },
    });
    o1.start();
    await world.clock.advance(0);
    const a1 = world.worker('a1', 100_000);
    await a1.agent.start();
    await a1.agent.stop();
    moveLease = true;
    await world.until(() => held.length > 0, GONE_MS * 3, 10);
    // lease check-op first, the retired agent checked at the version read, the index written at the version read
    expect(held[0]![0]).toEqual({ key: leaseKey('t'), expectedVersion: expect.any(String) });
    expect(held[0]).toContainEqual({ key: 'fenced-leader/t/agents/a1', expectedVersion: expect.any(String) });
    expect(held[0]).toContainEqual({ key: 'fenced-leader/t/agents', expectedVersion: expect.any(String), value: { ids: [], commit: expect.stringMatching(/^o1\/1\/\d+$/) } });
    await world.run(500, 10);
    expect(indexIds(world)).toEqual(['a1']);
    expect(o1.metrics().retiredAgents).toBe(0);
  });

  it('an agent that re-registers between the sweep read and its commit is not retired', async () => {
    let raced = false;
    const world = new World();
    let a1: ReturnType<World['worker']> | undefined;
    const commits: CommitOp[][] = [];
    const o1 = world.coordinator('o1', {
      retention,
      beforeSweepCommit: async (ops) => {
        commits.push([...(ops as CommitOp[])]);
        if (raced || !(ops as CommitOp[]).some((o) => o.key === 'fenced-leader/t/agents')) return;
        raced = true;
        await a1!.agent.register(); // a new incarnation, after the sweep read it as gone
      },
    });
    o1.start();
    await world.clock.advance(0);
    a1 = world.worker('a1', 100_000);
    await a1.agent.start();
    await a1.agent.stop();
    await world.until(() => raced, GONE_MS * 3, 10);
    await world.run(50, 10);
    expect(world.agentRecord('a1')).toMatchObject({ state: 'active', incarnation: 2 });
    expect(indexIds(world)).toEqual(['a1']);
    expect(o1.metrics().retiredAgents).toBe(0);
  });
});


function sweepWorld() {
  const clock = new TestClock();
  const shared = new MemoryLeaseStore();
  shared.commitSync([{ key: leaseKey('s'), expectedVersion: null, value: { holder: 'o1', epoch: 1, leaseDurationMs: 60_000, renewals: 0 } }]);
  const registry = new AgentRegistry(shared, 's', clock);
  const sweeper = new Sweeper({ registry, clock, nodeId: 'o1', staleAfterMs: STALE_AFTER, sweepIntervalMs: 200, retention: { goneMs: 1000, staleMs: 2000 } });
  return { clock, shared, registry, sweeper };
}

describe('registration against a concurrent retirement', () => {
  it('re-adds the id when a sweep retires it between the registration reading the index and committing', async () => {
    const { clock, shared, sweeper } = sweepWorld();
    const link = new InterleavingStore(shared);
    const agentSide = new AgentRegistry(link, 's', clock);
    const x = { id: 'x', role: 'builder', capabilities: [] };
    await agentSide.register(x);
    await agentSide.deregister('x');
    await sweeper.observe();
    await clock.advance(1000);
    // x registers again: it reads the index (x listed); before it reads its record, the sweep retires x.
    let swept: string | undefined;
    link.beforeNextRead(agentSide.keys.agent('x'), async () => {
      const outcome = await sweeper.sweepOnce(1);
      swept = outcome.kind === 'applied' ? outcome.plan.retired.join(',') : outcome.kind;
    });
    await agentSide.register(x);
    expect(swept).toBe('x');
    expect((shared.readSync(agentSide.keys.index)!.value as { ids: string[] }).ids).toEqual(['x']);
    expect(shared.readSync(agentSide.keys.agent('x'))!.value).toMatchObject({ state: 'active', incarnation: 2 });
  });
});

describe('sweeps and unindexed holders', () => {
  it('requeues a task the board shows claimed by an agent missing from the index, checking its real record', async () => {
    const { clock, shared, registry, sweeper } = sweepWorld();
    await registry.register({ id: 'x', role: 'builder', capabilities: [] });
    await registry.submitTasks(tasks(1));
    await registry.claim('x');
    // As an older version's registration race could leave it: x is stale, claims t1, and is not in the index.
    const x = await registry.readAgent('x');
    shared.commitSync([
      { key: registry.keys.agent('x'), expectedVersion: x!.version, value: { ...x!.record, state: 'stale' } as unknown as Json },
      { key: registry.keys.index, expectedVersion: (await registry.readIndex()).version, value: { ids: [] } },
    ]);
    await clock.advance(10);
    const outcome = await sweeper.sweepOnce(1);
    expect(outcome.kind).toBe('applied');
    expect((await registry.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', requeues: 1 });
  });

  it('puts an active holder missing from the index back in it, so its liveness is judged again', async () => {
    const { shared, registry, sweeper } = sweepWorld();
    await registry.register({ id: 'x', role: 'builder', capabilities: [] });
    await registry.submitTasks(tasks(1));
    await registry.claim('x');
    shared.commitSync([{ key: registry.keys.index, expectedVersion: (await registry.readIndex()).version, value: { ids: [] } }]);
    const outcome = await sweeper.sweepOnce(1);
    expect(outcome.kind).toBe('applied');
    expect((await registry.readIndex()).index.ids).toEqual(['x']);
    expect((await registry.readBoard()).board.tasks.t1).toMatchObject({ state: 'claimed', claimedBy: 'x' });
  });

  it("an active holder put back in the index is not version-checked: its heartbeats in every sweep's window hold nothing up", async () => {
    const clock = new TestClock();
    const shared = new MemoryLeaseStore();
    shared.commitSync([{ key: leaseKey('s'), expectedVersion: null, value: { holder: 'o1', epoch: 1, leaseDurationMs: 60_000, renewals: 0 } }]);
    const registry = new AgentRegistry(shared, 's', clock);
    // x beats between every sweep attempt's read of its record and the commit.
    const sweeper = new Sweeper({ registry, clock, nodeId: 'o1', staleAfterMs: STALE_AFTER, sweepIntervalMs: 200, beforeCommit: () => registry.heartbeat('x').then(() => undefined) });
    for (const id of ['x', 'd']) await registry.register({ id, role: 'builder', capabilities: [] });
    await registry.submitTasks(tasks(1));
    await registry.claim('x');
    shared.commitSync([{ key: registry.keys.index, expectedVersion: (await registry.readIndex()).version, value: { ids: ['d'] } }]);
    await sweeper.observe();
    await clock.advance(STALE_AFTER + 50); // d has gone silent
    const outcome = await sweeper.sweepOnce(1);
    expect(outcome).toMatchObject({ kind: 'applied', attempts: 1 });
    expect((await registry.readIndex()).index.ids).toEqual(['d', 'x']);
    expect((await registry.readAgent('d'))!.record.state).toBe('stale');
    expect((await registry.readAgent('x'))!.record.state).toBe('active');
  });
});

describe('planSweep retention', () => {
  const AT = '2024-01-01T00:00:00.000Z';
  const leader = { nodeId: 'o1', epoch: 3 };
  const agent = (id: string, extra: Partial<AgentRecord> = {}): AgentRecord => ({ ...registerRecord(undefined, { id, role: 'builder', capabilities: [] }, AT), ...extra });

  it('retires gone and stale agents only after their retention on the observer clock, never one just marked', () => {
    const gone = agent('g', { state: 'gone' });
    const stale = agent('s', { state: 'stale' });
    const silent = agent('n'); // active but silent: marked now, retired no earlier than a later sweep
    const agents = [gone, stale, silent].map((record, i) => ({ record, version: String(i + 1) }));
    const liveness = observeAgents(new Map(), [gone, stale, silent], 0);
    const input = { leader, at: AT, staleAfterMs: 600, liveness, agents, board: undefined, index: { ids: ['g', 's', 'n'], version: 'i1' }, retention: { goneMs: 1000, staleMs: 2000 } };
    expect(planSweep({ ...input, now: 999 }).retired).toEqual([]);
    const at1000 = planSweep({ ...input, now: 1000 });
    expect(at1000.retired).toEqual(['g']);
    expect(at1000.index).toEqual({ expectedVersion: 'i1', ids: ['s', 'n'] });
    expect(at1000.agentChecks).toEqual([{ id: 'g', expectedVersion: '1' }]);
    const at5000 = planSweep({ ...input, now: 5000 });
    expect(at5000.retired).toEqual(['g', 's']);
    expect(at5000.agentWrites.map((w) => w.id)).toEqual(['n']);
    expect(planSweep({ ...input, now: 5000, retention: { goneMs: null, staleMs: null } }).retired).toEqual([]);
    expect(planSweep({ ...input, now: 5000, retention: undefined }).index).toBeUndefined();
  });

  it('retires a gone agent in the commit that requeues its leftover claim; never an active agent, reserved for or not', () => {
    const gone = agent('g', { state: 'gone' });
    let board = addTasks(emptyBoard(), [{ id: 'x', kind: 'k', payload: null }], AT);
    board = claimNext(board, 'g', {}, AT)!.board;
    const liveness = observeAgents(new Map(), [gone], 0);
    const plan = planSweep({ leader, now: 5000, at: AT, staleAfterMs: 600, liveness, agents: [{ record: gone, version: '1' }], board, index: { ids: ['g'], version: 'i' }, retention: { goneMs: 1, staleMs: 1 } });
    expect(plan.requeued.map((r) => r.taskId)).toEqual(['x']);
    expect(plan.retired).toEqual(['g']); // nothing is held once requeued in the same commit
    const reserved = { ...board, tasks: { x: { ...board.tasks.x!, state: 'queued' as const, claimedBy: null, assignee: 'a' } } };
    const active = agent('a');
    const keep = planSweep({
      leader,
      now: 5000,
      at: AT,
      staleAfterMs: 600_000,
      liveness: observeAgents(new Map(), [active], 0),
      agents: [{ record: active, version: '1' }],
      board: reserved,
      index: { ids: ['a'], version: 'i' },
      retention: { goneMs: 1, staleMs: 1 },
    });
    expect(keep.retired).toEqual([]);
  });
});

describe('retention option', () => {
  it('validates it', () => {
    const store = new MemoryLeaseStore();
    const attempt = (extra: Partial<CoordinatorOptions>) => {
      try {
        createCoordinator({ store, staleAfterMs: 10_000, ...extra });
        return undefined;
      } catch (err) {
        return err;
      }
    };
    for (const bad of [{ goneMs: 0 }, { goneMs: 1.5 }, { goneMs: Number.POSITIVE_INFINITY }, { staleMs: -1 }, { staleMs: 4000 }, { staleMs: 10_000 }, { keepMs: 1 }]) {
      const err = attempt({ retention: bad } as Partial<CoordinatorOptions>);
      expect(InvalidOptionsError.is(err), JSON.stringify(bad)).toBe(true);
      expect((err as InvalidOptionsError).issues[0]!.path).toMatch(/^retention/);
    }
    expect(InvalidOptionsError.is(attempt({ retention: null } as never))).toBe(true);
    expect(attempt({ retention: { goneMs: null, staleMs: null } })).toBeUndefined();
    expect(attempt({ retention: { staleMs: 10_001 } })).toBeUndefined();
  });

  it('a user who only raises staleAfterMs above 1 h (never touching retention) gets a valid configuration', () => {
    // The default staleMs adapts: max(1 h, 2 × staleAfterMs). Only a staleMs given explicitly must exceed staleAfterMs.
    const make = (extra: Partial<CoordinatorOptions>) => () => createCoordinator({ store: new MemoryLeaseStore(), clock: new TestClock(), sweepIntervalMs: 1000, ...extra });
    expect(make({ staleAfterMs: 2 * 3_600_000 })).not.toThrow();
    expect(make({ staleAfterMs: 2 * 3_600_000, retention: { goneMs: 1000 } })).not.toThrow();
    expect(make({ staleAfterMs: 2 * 3_600_000, retention: { staleMs: null } })).not.toThrow();
    expect(make({ staleAfterMs: 2 * 3_600_000, retention: { staleMs: 3_600_000 } })).toThrow(InvalidOptionsError);
    expect(defaultStaleRetentionMs(10_000)).toBe(3_600_000);
    expect(defaultStaleRetentionMs(2 * 3_600_000)).toBe(4 * 3_600_000);
  });
});
