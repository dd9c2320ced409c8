/**
 * The handoff target deregisters between the sweep's read of it and its commit. The commit is
 * not refused (the target is no longer version-checked) and reserves the requeued task for a gone agent; the next
 * sweep drops the reservation, another agent claims it, and it is completed exactly once (old token refused).
 */
import { expect, it } from 'vitest';
import { Sweeper } from '../../src/agents/sweeper.js';
import { InterleavingStore, sweepRig, tasks } from './helpers.js';

it('a reservation for a target gone by the commit is dropped by the next sweep; the task completes once', async () => {
  const { clock, agentSide, link, registry } = sweepRig('s', (store) => new InterleavingStore(store));
  const sweeper = new Sweeper({ registry, clock, nodeId: 'o1', staleAfterMs: 600, sweepIntervalMs: 200, retention: { goneMs: 1, staleMs: null } });
  for (const id of ['x', 'y', 'z']) await agentSide.register({ id, role: 'builder', capabilities: [] });
  await agentSide.submitTasks(tasks(1));
  const old = (await agentSide.claim('x'))!;
  await agentSide.setHandoff({ nodeId: 'o1', epoch: 1 }, 'x', { note: 'to y', to: 'y' });
  await sweeper.observe();
  await clock.advance(300);
  await agentSide.heartbeat('y');
  await agentSide.heartbeat('z');
  await sweeper.observe();
  await clock.advance(350);
  link.beforeNextRead(registry.keys.board, async () => {
    await agentSide.deregister('y');
  });
  expect((await sweeper.sweepOnce(1)).kind).toBe('applied');
  expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: 'y' });
  expect(await agentSide.claim('z')).toBeUndefined(); // reserved for gone y
  await agentSide.heartbeat('z');
  await sweeper.observe();
  const next = await sweeper.sweepOnce(1);
  expect(next.kind).toBe('applied');
  expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ state: 'queued', assignee: null });
  const c = (await agentSide.claim('z'))!;
  await expect(agentSide.complete('x', 't1', old.claimToken)).rejects.toThrow();
  await agentSide.complete('z', 't1', c.claimToken);
  expect((await agentSide.readBoard()).board.tasks.t1).toMatchObject({ state: 'completed', completedBy: 'z' });
});
