import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { CallOptions, Json, StoreCapabilities, StoreEntry } from '../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../src/adapters/MemoryLeaseStore.js';
import { createElector } from '../src/createElector.js';
import { leaseKey } from '../src/machines/leaseRecord.js';
import { TestClock } from '../src/TestClock.js';

/**
 * A third-party store written the common way: it races each call against the caller's signal with a
 * `{ once: true }` listener and never removes it. It does not declare `reusableSignal`, so it must get a fresh
 * signal per call; reusing one would pile a listener per settled call onto it (found in review).
 */
class OnceListenerStore extends MemoryLeaseStore {
  readonly signals = new Set<AbortSignal>();
  constructor() {
    super();
    (this as { capabilities: StoreCapabilities }).capabilities = { ...this.capabilities, reusableSignal: false };
  }
  private race<T>(options: CallOptions | undefined, call: Promise<T>): Promise<T> {
    const signal = options?.signal;
    if (!signal) return call;
    this.signals.add(signal);
    return new Promise<T>((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      call.then(resolve, reject);
    });
  }
  override read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    return this.race(options, super.read(key));
  }
  override compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return this.race(options, super.compareAndSet(key, expectedVersion, value));
  }
}

describe('stores that do not declare reusableSignal', () => {
  it('get a fresh signal per call, so listeners they never remove do not pile up', async () => {
    const clock = new TestClock();
    const store = new OnceListenerStore();
    // Another holder with a long lease: this node keeps polling as a follower, every call settles, none is aborted.
    store.commitSync([{ key: leaseKey('t'), expectedVersion: null, value: { holder: 'other', epoch: 1, leaseDurationMs: 600_000, renewals: 0 } }]);
    const elector = createElector({ election: 't', nodeId: 'n1', store, clock, leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 });
    elector.start();
    await clock.advance(200 * 100); // ~100 polls
    const worst = Math.max(...[...store.signals].map((s) => getEventListeners(s, 'abort').length));
    await elector.stop();
    expect(store.signals.size).toBeGreaterThanOrEqual(90);
    expect(worst).toBeLessThanOrEqual(1);
  });
});
