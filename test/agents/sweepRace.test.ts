/**
 * A sweep decides requeues from agent states it read before the board. If an agent it read as stale re-registers
 * and claims a task in between, the board the sweep then reads shows that task claimed by an agent it believes
 * stale; the commit must be refused (the agent's record changed) so the live agent keeps its claim.
 */
import { describe, expect, it } from 'vitest';
import type { CommitOp, } from '../../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import { Sweeper } from '../../src/agents/sweeper.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { TestClock } from '../../src/TestClock.js';
import { InterleavingStore, sweepRig, tasks } from './helpers.js';

const ELECTION = 's';
const STALE_AFTER = 600;


describe('sweep commit checks the agents its requeues relied on', () => {
  it('does not requeue a task claimed by an agent that re-registered after the sweep read it as stale', async () => {
    const { clock, agentSide, link, registry } = sweepRig(ELECTION, (store) => new InterleavingStore(store), 60_000);
    const commits: CommitOp[][] = [];
    const sweeper = new Sweeper({
      registry,
      clock,
      nodeId: 'o1',
      staleAfterMs: STALE_AFTER,
      sweepIntervalMs: 200,
      beforeCommit: (ops) => {
        commits.push([...ops]);
      },
    });
    const x = { id: 'x', role: 'builder', capabilities: ['build'] };

    // x registers, then goes silent and is marked stale by a sweep.
    await agentSide.register(x);
    await sweeper.observe();
    await clock.advance(STALE_AFTER + 100);
    expect((await sweeper.sweepOnce(1)).kind).toBe('applied');
    expect((await agentSide.readAgent('x'))!.record.state).toBe('stale');
    await agentSide.submitTasks(tasks(1));

    // The next sweep reads the agents (x stale); before it reads the board, x restarts and claims t1.
    let claimToken: number | undefined;
    link.beforeNextRead(registry.keys.board, async () => {
      await agentSide.register(x);
      claimToken = (await agentSide.claim('x'))?.claimToken;
    });
    const outcome = await sweeper.sweepOnce(1);
    expect(claimToken).toBeDefined();

    // The first attempt planned to requeue t1 from "stale" x, with a check on x's record; it was refused, and the
    // re-read found x active: nothing to do.
    expect(outcome.kind).toBe('noop');
    const { board } = await agentSide.readBoard();
    expect(board.tasks.t1).toMatchObject({ state: 'claimed', claimedBy: 'x', claimToken, requeues: 0 });
    expect((await agentSide.readAgent('x'))!.record.state).toBe('active');
    expect(commits.at(-1)).toContainEqual({ key: registry.keys.agent('x'), expectedVersion: expect.any(String) });
    await expect(agentSide.complete('x', 't1', claimToken!, { ok: true })).resolves.toMatchObject({ state: 'completed', completedBy: 'x' });
  });
});

describe('a reservation for a handoff target: the target is not version-checked (its heartbeats must not block the sweep)', () => {
  async function setup() {
    const clock = new TestClock();
    const shared = new MemoryLeaseStore();
    shared.commitSync([{ key: leaseKey(ELECTION), expectedVersion: null, value: { holder: 'o1', epoch: 1, leaseDurationMs: 60_000, renewals: 0 } }]);
    const registry = new AgentRegistry(shared, ELECTION, clock);
    let hook: (() => Promise<void>) | undefined;
    const commits: CommitOp[][] = [];
    const sweeper = new Sweeper({
      registry,
      clock,
      nodeId: 'o1',
      staleAfterMs: STALE_AFTER,
      sweepIntervalMs: 200,
      beforeCommit: async (ops) => {
        commits.push([...ops]);
        const run = hook;
        hook = undefined;
        await run?.();
      },
    });
    // x holds t1, with an operator's handoff note naming y as the target; y is active.
    for (const id of ['x', 'y']) await registry.register({ id, role: 'builder', capabilities: [] });
    await registry.submitTasks(tasks(1));
    expect((await registry.claim('x'))?.task.id).toBe('t1');
    await registry.setHandoff({ nodeId: 'o1', epoch: 1 }, 'x', { note: 'draining x', to: 'y' });
    await sweeper.observe();
    await clock.advance(STALE_AFTER / 2);
    await registry.heartbeat('y'); // y keeps beating, x has gone silent
    await sweeper.observe();
    await clock.advance(STALE_AFTER / 2 + 50);
    return { registry, sweeper, commits, duringSweep: (run: () => Promise<void>) => (hook = run) };
  }

  it('the reservation of a target that deregistered mid-sweep is dropped by the next sweep; the task then goes to anyone', async () => {
    const { registry, sweeper, commits, duringSweep } = await setup();
    duringSweep(async () => {
      await registry.deregister('y');
      await registry.register({ id: 'z', role: 'builder', capabilities: [] });
    });
    // The sweep planned from y active: it reserves t1 for y and commits at once (y's key is not in the commit).
    const first = await sweeper.sweepOnce(1);
    expect(first).toMatchObject({ kind: 'applied', attempts: 1 });
    expect(commits[0]!.map((op) => op.key)).not.toContain(registry.keys.agent('y'));
    expect((await registry.readAgent('x'))!.record.state).toBe('stale');
    expect((await registry.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: 'y', requeues: 1, handoff: { from: 'x', to: 'y', reason: 'stale' } });
    // Until the next sweep the reservation holds: nobody else can claim t1.
    expect(await registry.claim('z')).toBeUndefined();
    // The next sweep sees y gone and drops the reservation, checking y at the version read.
    const second = await sweeper.sweepOnce(1);
    expect(second).toMatchObject({ kind: 'applied', attempts: 1 });
    expect(commits.at(-1)).toContainEqual({ key: registry.keys.agent('y'), expectedVersion: expect.any(String) });
    expect((await registry.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: null, requeues: 1, handoff: { to: 'y' } });
    expect((await registry.claim('z'))?.task.id).toBe('t1');
  });

  it("a target's heartbeat in the sweep's read-to-commit window costs nothing: the reservation lands on the first attempt", async () => {
    const { registry, sweeper, commits, duringSweep } = await setup();
    duringSweep(async () => {
      await registry.heartbeat('y');
    });
    const outcome = await sweeper.sweepOnce(1);
    expect(outcome).toMatchObject({ kind: 'applied', attempts: 1 });
    expect(commits).toHaveLength(1);
    expect((await registry.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: 'y' });
    expect((await registry.claim('y'))?.task.id).toBe('t1');
  });
});
