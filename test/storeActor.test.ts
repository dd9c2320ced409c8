import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { createStoreActors } from '../src/adapters/createStoreActors.js';
import type { CallOptions, Json, StoreEntry } from '../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../src/adapters/MemoryLeaseStore.js';
import { createElector } from '../src/createElector.js';
import { silentLogger } from '../src/logger.js';
import { electionMachine } from '../src/machines/electionMachine.js';
import { leaseKey } from '../src/machines/leaseRecord.js';
import { TestClock } from '../src/TestClock.js';

/** A memory store that records the signal of every call and can leave chosen calls unanswered. */
class RecordingStore extends MemoryLeaseStore {
  readonly signals: AbortSignal[] = [];
  hangNext = 0;
  private track<T>(options: CallOptions | undefined, call: () => Promise<T>): Promise<T> {
    this.signals.push(options!.signal!);
    if (this.hangNext > 0) {
      this.hangNext -= 1;
      return new Promise<T>(() => {});
    }
    return call();
  }
  override read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    return this.track(options, () => super.read(key));
  }
  override compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return this.track(options, () => super.compareAndSet(key, expectedVersion, value));
  }
}

describe('the elector store actor', () => {
  it('passes one signal to calls that settle, aborts the signal of an abandoned call, and uses a fresh one after', async () => {
    const clock = new TestClock();
    const store = new RecordingStore();
    // Another holder, so that this node keeps polling as a follower.
    store.commitSync([{ key: leaseKey('test'), expectedVersion: null, value: { holder: 'other', epoch: 1, leaseDurationMs: 60_000, renewals: 0 } }]);
    const elector = createElector({ election: 'test', nodeId: 'n1', store, clock, leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 });
    elector.start();
    await clock.advance(1000);
    const settled = store.signals.length;
    expect(settled).toBeGreaterThanOrEqual(5);
    expect(new Set(store.signals).size).toBe(1);
    expect(store.signals[0]!.aborted).toBe(false);

    store.hangNext = 1;
    await clock.advance(600);
    const hung = store.signals[settled]!;
    expect(hung.aborted).toBe(true);
    expect(String(hung.reason)).toMatch(/memory read of fenced-leader\/test\/lease was abandoned/);
    const after = store.signals.slice(settled + 1);
    expect(after.length).toBeGreaterThan(0);
    for (const signal of after) {
      expect(signal).not.toBe(hung);
      expect(signal.aborted).toBe(false);
    }
    await elector.stop();
  });
});

describe('electionMachine with createStoreActors, without createElector', () => {
  it('runs as the README says: provide the leaseStore actor, start, lead, renew', async () => {
    const clock = new TestClock();
    const store = new MemoryLeaseStore();
    const actor = createActor(electionMachine.provide({ actors: createStoreActors(store) }), {
      clock,
      input: {
        election: 'bare',
        nodeId: 'n1',
        key: leaseKey('bare'),
        timing: { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200, maxDriftRate: 0.01, requestTimeoutMs: 200 },
        onStale: 'rejoin',
        trustStoreClock: false,
        clock,
        logger: silentLogger,
      },
    }).start();
    await clock.advance(0);
    expect(actor.getSnapshot().matches('leader')).toBe(true);
    expect(actor.getSnapshot().context.epoch).toBe(1);
    await clock.advance(1000);
    expect(actor.getSnapshot().matches('leader')).toBe(true);
    expect((store.readSync(leaseKey('bare'))!.value as { renewals: number }).renewals).toBeGreaterThanOrEqual(4);
    actor.stop();
  });
});
