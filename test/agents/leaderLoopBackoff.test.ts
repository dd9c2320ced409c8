/**
 * The leader loop after a sweep that did not complete. `nextSweepDelay` is 1 ms once an active agent is overdue
 * (firstSeenAt + staleAfterMs <= now); a sweep that fails fast (here the board read is refused at once, e.g.
 * connection refused) never marks it, so sleeping that delay retried every millisecond — 1001 board reads and
 * warnings per virtual second — for as long as the fault lasted. Now the loop waits a full `sweepIntervalMs` after a
 * sweep that threw, aborted or was rejected for contention — backing off from an eighth of `sweepIntervalMs` up to a
 * full one — and marks the agent once the store is back.
 */
import { expect, it } from 'vitest';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../../src/adapters/LeaseStore.js';
import type { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { failureBackoff, Sweeper } from '../../src/agents/sweeper.js';
import { sweepRig } from './helpers.js';

class BoardDown implements LeaseStore {
  readonly kind = 'board-down';
  boardReads = 0;
  down = false;
  constructor(private readonly inner: MemoryLeaseStore) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  read(key: string, o?: CallOptions): Promise<StoreEntry | undefined> {
    if (this.down && key.endsWith('/tasks')) {
      this.boardReads++;
      return Promise.reject(new Error('connection refused (injected)'));
    }
    return this.inner.read(key, o);
  }
  compareAndSet(key: string, v: string | null, value: Json, o?: CallOptions): Promise<string> {
    return this.inner.compareAndSet(key, v, value, o);
  }
  commit(ops: readonly CommitOp[], o?: CallOptions): Promise<string[]> {
    return this.inner.commit(ops, o);
  }
  async close(): Promise<void> {}
}

it('failureBackoff doubles from an eighth of the interval up to the interval', () => {
  expect([1, 2, 3, 4, 5, 40].map((n) => failureBackoff(n, 200))).toEqual([25, 50, 100, 200, 200, 200]);
  expect(failureBackoff(1, 5)).toBe(1);
});

it('a sweep that fails fast while an agent is overdue does not retry every millisecond', async () => {
  const { clock, agentSide, link, registry } = sweepRig('s', (store) => new BoardDown(store));
  let warnings = 0;
  const logger = { debug() {}, info() {}, warn() { warnings++; }, error() {}, child() { return logger; } } as never;
  const sweeper = new Sweeper({ registry, clock, nodeId: 'o1', staleAfterMs: 600, sweepIntervalMs: 200, logger });
  await agentSide.register({ id: 'x', role: 'builder', capabilities: [] });
  await sweeper.observe();
  await clock.advance(700); // x is overdue
  link.down = true;
  const ac = new AbortController();
  const loop = sweeper.runAsLeader({ token: 1, signal: ac.signal });
  for (let i = 0; i < 100; i++) await clock.advance(10); // 1 s of virtual time
  ac.abort();
  await clock.advance(10);
  await loop;
  // Backing off 25, 50, 100, then every 200 ms (sweepIntervalMs): 8 reads in the second, not 1001.
  expect(link.boardReads).toBeLessThanOrEqual(10);
  expect(warnings).toBeLessThanOrEqual(10);
});

it('after the fault, the next sweep marks the overdue agent (within one interval)', async () => {
  const { clock, agentSide, link, registry } = sweepRig('s', (store) => new BoardDown(store));
  const sweeper = new Sweeper({ registry, clock, nodeId: 'o1', staleAfterMs: 600, sweepIntervalMs: 200 });
  await agentSide.register({ id: 'x', role: 'builder', capabilities: [] });
  await sweeper.observe();
  await clock.advance(700);
  link.down = true;
  const ac = new AbortController();
  const loop = sweeper.runAsLeader({ token: 1, signal: ac.signal });
  for (let i = 0; i < 30; i++) await clock.advance(10);
  link.down = false;
  for (let i = 0; i < 21; i++) await clock.advance(10);
  expect((await agentSide.readAgent('x'))!.record.state).toBe('stale');
  ac.abort();
  await clock.advance(10);
  await loop;
});
