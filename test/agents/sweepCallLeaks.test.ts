/** The sweeper's bounded store calls must not leave abort listeners on the leader signal or timers on the clock. */
import { getEventListeners } from 'node:events';
import { expect, it } from 'vitest';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import { Sweeper } from '../../src/agents/sweeper.js';
import { leaseKey } from '../../src/machines/leaseRecord.js';
import { TestClock } from '../../src/TestClock.js';
import { FaultyLink } from '../helpers/faultyStore.js';

it('no listener or timer left behind by successful, failing and timed-out sweep calls', async () => {
  const clock = new TestClock();
  const shared = new MemoryLeaseStore();
  shared.commitSync([{ key: leaseKey('s'), expectedVersion: null, value: { holder: 'o1', epoch: 1, leaseDurationMs: 600_000, renewals: 0 } }]);
  const agentSide = new AgentRegistry(shared, 's', clock);
  const link = new FaultyLink(shared);
  const registry = new AgentRegistry(link, 's', clock);
  const sweeper = new Sweeper({ registry, clock, nodeId: 'o1', staleAfterMs: 600, sweepIntervalMs: 200, callTimeoutMs: 50 });
  for (const id of ['a', 'b', 'c']) await agentSide.register({ id, role: 'r', capabilities: [] });
  const ac = new AbortController();
  for (let i = 0; i < 20; i++) await sweeper.sweepOnce(1, ac.signal);
  link.mode = 'fail';
  for (let i = 0; i < 20; i++) await sweeper.sweepOnce(1, ac.signal).catch(() => undefined);
  link.mode = 'hang';
  for (let i = 0; i < 5; i++) {
    const p = sweeper.sweepOnce(1, ac.signal).catch(() => undefined);
    await clock.advance(60);
    await p;
  }
  link.mode = 'ok';
  for (let i = 0; i < 5; i++) await sweeper.observe(ac.signal);
  expect(getEventListeners(ac.signal, 'abort').length).toBe(0);
  expect(clock.pending().length).toBe(0);
});
