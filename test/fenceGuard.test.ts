import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileLeaseStore } from '../src/adapters/FileLeaseStore.js';
import type { CallOptions, Json } from '../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../src/adapters/MemoryLeaseStore.js';
import { CorruptStateError, InvalidOptionsError, StaleTokenError } from '../src/errors.js';
import { FenceGuard } from '../src/FenceGuard.js';

describe('FenceGuard in memory', () => {
  it('admits equal and higher tokens and rejects a lower one with a typed error', () => {
    const guard = new FenceGuard();
    guard.admitSync(3);
    guard.admitSync(3);
    guard.admitSync(5);
    const err = (() => {
      try {
        guard.admitSync(4);
      } catch (e) {
        return e;
      }
    })();
    expect(StaleTokenError.is(err)).toBe(true);
    expect(err).toMatchObject({ code: 'ERR_STALE_TOKEN', token: 4, highWater: 5 });
    expect(guard.highWater).toBe(5);
  });

  it('rejects tokens that are not non-negative integers', async () => {
    const guard = new FenceGuard();
    for (const bad of [-1, 1.5, Number.NaN]) expect(() => guard.admitSync(bad)).toThrow(InvalidOptionsError);
    await expect(guard.admit(-2)).rejects.toThrow(InvalidOptionsError);
  });

  it('starts from a given high-water mark', () => {
    expect(() => new FenceGuard({ highWater: 9 }).admitSync(8)).toThrow(StaleTokenError);
  });
});

describe('FenceGuard with a store', () => {
  for (const [name, makeStore] of [
    ['memory', () => new MemoryLeaseStore()],
    ['file', () => new FileLeaseStore({ path: join(mkdtempSync(join(tmpdir(), 'fence-')), 'state.json') })],
  ] as const) {
    it(`${name}: a restarted guard remembers the mark`, async () => {
      const store = makeStore();
      const first = new FenceGuard({ store, key: 'resource/a' });
      await first.admit(7);
      const restarted = new FenceGuard({ store, key: 'resource/a' });
      await expect(restarted.admit(6)).rejects.toThrow(StaleTokenError);
      await restarted.admit(8);
      await expect(first.admit(7)).rejects.toThrow(StaleTokenError); // first learns of 8 through the store
      expect(() => restarted.admitSync(9)).toThrow(InvalidOptionsError);
      await store.close();
    });

    it(`${name}: two guards racing on one mark never let it go backwards`, async () => {
      const store = makeStore();
      const guards = Array.from({ length: 4 }, () => new FenceGuard({ store, key: 'resource/race' }));
      const tokens = [5, 3, 9, 1, 7, 9, 2, 8];
      await Promise.allSettled(tokens.map((t, i) => guards[i % guards.length]!.admit(t)));
      const entry = await store.read('resource/race');
      expect(entry?.value).toEqual({ highWater: 9 });
      await store.close();
    });
  }

  it('reports a malformed stored mark instead of overwriting it', async () => {
    const store = new MemoryLeaseStore();
    await store.compareAndSet('resource/bad', null, { highWater: 'lots' });
    await expect(new FenceGuard({ store, key: 'resource/bad' }).admit(1)).rejects.toThrow(CorruptStateError);
    expect((await store.read('resource/bad'))?.value).toEqual({ highWater: 'lots' });
  });
});

describe('createElector defaults', () => {
  it('uses the file store at statePath by default and closes it on stop', async () => {
    const { createElector } = await import('../src/createElector.js');
    const dir = mkdtempSync(join(tmpdir(), 'elector-'));
    const statePath = join(dir, 'orchestrator-state.json');
    const elector = createElector({ election: 'files', nodeId: 'solo', statePath, leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 });
    expect(elector.store.kind).toBe('file');
    elector.start();
    await new Promise<void>((resolve) => elector.subscribe((c) => c.state === 'leader' && resolve()));
    expect(elector.assertLeader()).toBe(1);
    await elector.stop();
    const reread = await new FileLeaseStore({ path: statePath }).read('fenced-leader/files/lease');
    expect(reread?.value).toMatchObject({ holder: null, epoch: 1 });
  });

  it('refuses to start on a corrupt state file and leaves it untouched', async () => {
    const { createElector } = await import('../src/createElector.js');
    const dir = mkdtempSync(join(tmpdir(), 'elector-'));
    const statePath = join(dir, 'orchestrator-state.json');
    writeFileSync(statePath, '{"format": "fenced-leader/v1", "entries": ', { mode: 0o600 });
    const errors: string[] = [];
    const elector = createElector({
      election: 'files',
      statePath,
      retryPeriodMs: 100,
      renewDeadlineMs: 1000,
      leaseDurationMs: 1500,
      logger: { info() {}, warn: (f: any) => errors.push(String(f.err)), error() {} },
    });
    elector.start();
    await new Promise((r) => setTimeout(r, 400));
    expect(elector.state()).toBe('follower');
    expect(errors.some((e) => e.includes(statePath))).toBe(true);
    await elector.stop();
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(statePath, 'utf8')).toBe('{"format": "fenced-leader/v1", "entries": ');
  });
});

describe('FenceGuard with a store: the persisted mark', () => {
  it('persists a token admitted at a constructor highWater above the stored mark, so a restarted guard rejects lower tokens', async () => {
    const store = new MemoryLeaseStore();
    // The resource once persisted mark 3 ...
    await new FenceGuard({ store, key: 'res' }).admit(3);
    // ... and on restart restores its own known mark 10 from its data, then admits the leader's token 10.
    const guard = new FenceGuard({ store, key: 'res', highWater: 10 });
    await guard.admit(10);
    expect(guard.highWater).toBe(10);
    // admit() promises "the raised mark is persisted before the call resolves, so a restart cannot forget it".
    expect((await store.read('res'))?.value).toEqual({ highWater: 10 });
    const restarted = new FenceGuard({ store, key: 'res' });
    await expect(restarted.admit(5)).rejects.toThrow(StaleTokenError);
  });

  it('highWater never goes backwards in memory when concurrent admits complete out of order', async () => {
    // A store whose compareAndSet replies are held until released, in an order the test chooses.
    class GatedStore extends MemoryLeaseStore {
      readonly held: Array<{ token: unknown; release: () => void }> = [];
      override compareAndSet(key: string, expected: string | null, value: Json, options?: CallOptions): Promise<string> {
        const applied = super.compareAndSet(key, expected, value, options); // applied now (linearized at call time)
        return new Promise<string>((resolve, reject) => {
          this.held.push({ token: (value as { highWater: number }).highWater, release: () => applied.then(resolve, reject) });
        });
      }
    }
    const store = new GatedStore();
    const guard = new FenceGuard({ store, key: 'res' });
    const tick = async () => {
      for (let i = 0; i < 20; i++) await Promise.resolve();
    };
    const a5 = guard.admit(5);
    const a6 = guard.admit(6);
    await tick();
    // Both CAS from the initial version: 5's applied, 6's conflicts. Deliver 6's conflict first:
    const first5 = store.held.find((h) => h.token === 5)!;
    const first6 = store.held.find((h) => h.token === 6)!;
    first6.release();
    await tick();
    // 6 reloaded (seeing 5's write) and retried; let the retry through.
    const retry6 = store.held.find((h) => h.token === 6 && h !== first6)!;
    retry6.release();
    await a6;
    expect(guard.highWater).toBe(6);
    // Only now does 5's (successful) reply arrive.
    first5.release();
    await a5;
    expect((await store.read('res'))?.value).toEqual({ highWater: 6 });
    expect(guard.highWater).toBe(6); // "the highest token admitted so far"
  });
});
