import { getEventListeners } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CasMismatchError, StoreUnavailableError } from '../errors.js';
import type { Json, LeaseStore } from './LeaseStore.js';

export interface TestAdapterOptions {
  /** Creates a fresh store. Called once per suite; keys are namespaced per test so stores may be shared. */
  readonly create: () => Promise<LeaseStore> | LeaseStore;
  /** When set, the suite is skipped with this reason printed loudly (e.g. "no Redis at redis://127.0.0.1:6379"). */
  readonly skip?: string | false;
}

let uniqueCounter = 0;
function uniqueKey(label: string): string {
  uniqueCounter += 1;
  return `conformance/${process.pid}/${uniqueCounter}/${label}`;
}

/**
 * The one conformance suite every adapter must pass. An adapter's test file is one call:
 * `testAdapter('redis', { create: () => new RedisLeaseStore({ url }) })`.
 */
export function testAdapter(name: string, options: TestAdapterOptions): void {
  if (options.skip) {
    console.warn(`\n!!! SKIPPING ${name} store conformance: ${options.skip}\n`);
    describe.skip(`${name} store conformance`, () => {
      it('skipped', () => {});
    });
    return;
  }
  describe(`${name} store conformance`, () => {
    let store: LeaseStore;
    beforeAll(async () => {
      store = await options.create();
    });
    afterAll(async () => {
      await store?.close();
    });

    it('declares its capabilities and a kind', () => {
      expect(typeof store.kind).toBe('string');
      for (const flag of ['watch', 'storeClock', 'durable', 'multiProcess'] as const) {
        expect(typeof store.capabilities[flag]).toBe('boolean');
      }
      expect(typeof store.watch === 'function').toBe(store.capabilities.watch);
    });

    it('reads an absent key as undefined', async () => {
      expect(await store.read(uniqueKey('absent'))).toBeUndefined();
    });

    it('creates from absent, then reads back the value and version', async () => {
      const key = uniqueKey('create');
      const version = await store.compareAndSet(key, null, { holder: 'a', epoch: 1 });
      expect(typeof version).toBe('string');
      const entry = await store.read(key);
      expect(entry?.value).toEqual({ holder: 'a', epoch: 1 });
      expect(entry?.version).toBe(version);
    });

    it('rejects a create when the key exists, with a typed mismatch naming the actual version', async () => {
      const key = uniqueKey('create-twice');
      const v1 = await store.compareAndSet(key, null, { n: 1 });
      const err = await store.compareAndSet(key, null, { n: 2 }).catch((e: unknown) => e);
      expect(CasMismatchError.is(err)).toBe(true);
      expect((err as CasMismatchError).code).toBe('ERR_CAS_MISMATCH');
      expect((err as CasMismatchError).actualVersion).toBe(v1);
      expect((await store.read(key))?.value).toEqual({ n: 1 });
    });

    it('updates only from the current version; every write yields a new version', async () => {
      const key = uniqueKey('update');
      const v1 = await store.compareAndSet(key, null, { n: 1 });
      const v2 = await store.compareAndSet(key, v1, { n: 2 });
      expect(v2).not.toBe(v1);
      const stale = await store.compareAndSet(key, v1, { n: 3 }).catch((e: unknown) => e);
      expect(CasMismatchError.is(stale)).toBe(true);
      const v3 = await store.compareAndSet(key, v2, { n: 2 });
      expect(v3).not.toBe(v2);
      expect(await store.read(key)).toMatchObject({ value: { n: 2 }, version: v3 });
    });

    it('rejects an update of an absent key', async () => {
      const key = uniqueKey('update-absent');
      const err = await store.compareAndSet(key, '12345', { n: 1 }).catch((e: unknown) => e);
      expect(CasMismatchError.is(err)).toBe(true);
      expect(await store.read(key)).toBeUndefined();
    });

    it('round-trips JSON values exactly', async () => {
      const key = uniqueKey('json');
      const value = { s: 'ünïcødé "q"', n: -1.5, big: 2 ** 52, t: true, f: false, z: null, a: [1, [2, { b: [] }]], o: {} };
      await store.compareAndSet(key, null, value);
      expect((await store.read(key))?.value).toEqual(value);
    });

    it('commits several keys all-or-nothing', async () => {
      const a = uniqueKey('tx-a');
      const b = uniqueKey('tx-b');
      const va = await store.compareAndSet(a, null, { n: 1 });
      const [va2, vb] = await store.commit([
        { key: a, expectedVersion: va, value: { n: 2 } },
        { key: b, expectedVersion: null, value: { n: 1 } },
      ]);
      expect((await store.read(a))?.version).toBe(va2);
      expect((await store.read(b))?.version).toBe(vb);
      // b's expectation is stale: nothing at all may be applied, not even a's write.
      const err = await store
        .commit([
          { key: a, expectedVersion: va2!, value: { n: 3 } },
          { key: b, expectedVersion: null, value: { n: 9 } },
        ])
        .catch((e: unknown) => e);
      expect(CasMismatchError.is(err)).toBe(true);
      expect((err as CasMismatchError).key).toBe(b);
      expect((await store.read(a))?.value).toEqual({ n: 2 });
      expect((await store.read(b))?.value).toEqual({ n: 1 });
    });

    it("reports each op's key version after the commit, also for a key written twice or checked and written", async () => {
      const key = uniqueKey('twice');
      const [first, second] = await store.commit([
        { key, expectedVersion: null, value: { n: 1 } },
        { key, expectedVersion: null, value: { n: 2 } },
      ]);
      const entry = await store.read(key);
      expect(entry).toMatchObject({ value: { n: 2 }, version: second });
      expect(first).toBe(entry!.version);
      const [checked, rewritten] = await store.commit([
        { key, expectedVersion: entry!.version },
        { key, expectedVersion: entry!.version, value: { n: 3 } },
      ]);
      expect(rewritten).not.toBe(entry!.version);
      expect(checked).toBe(rewritten);
      expect((await store.read(key))?.version).toBe(rewritten);
    });

    it('rejects a key or value holding U+0000 or an unpaired surrogate with a TypeError, before writing anything', async () => {
      // PostgreSQL cannot store them; every store refuses them alike, as a caller error (not an outage to retry).
      const key = uniqueKey('unstorable');
      const unstorable: Json[] = [{ s: 'a\u0000b' }, ['\ud800'], { 'k\u0000': 1 }, 'x\udc00y'];
      for (const value of unstorable) {
        await expect(store.compareAndSet(key, null, value)).rejects.toBeInstanceOf(TypeError);
        await expect(store.commit([{ key, expectedVersion: null, value }])).rejects.toBeInstanceOf(TypeError);
      }
      await expect(store.compareAndSet(`${key}\u0000`, null, 1)).rejects.toBeInstanceOf(TypeError);
      await expect(store.read(`${key}\ud800`)).rejects.toBeInstanceOf(TypeError);
      expect(await store.read(key)).toBeUndefined();
      // Look-alikes are fine: an escaped backslash before "u0000", a paired surrogate, other control characters.
      const fine = { s: '\\u0000 \\\\ud800 \ud83d\ude00 \u0001' };
      await store.compareAndSet(key, null, fine);
      expect((await store.read(key))?.value).toEqual(fine);
    });

    it('checks a version without writing it (fencing a write on another key)', async () => {
      const lease = uniqueKey('check-lease');
      const data = uniqueKey('check-data');
      const vl = await store.compareAndSet(lease, null, { epoch: 1 });
      const [checked, vd] = await store.commit([
        { key: lease, expectedVersion: vl },
        { key: data, expectedVersion: null, value: { by: 1 } },
      ]);
      expect(checked).toBe(vl);
      expect((await store.read(lease))?.version).toBe(vl);
      await store.compareAndSet(lease, vl, { epoch: 2 });
      const err = await store
        .commit([
          { key: lease, expectedVersion: vl },
          { key: data, expectedVersion: vd!, value: { by: 1, again: true } },
        ])
        .catch((e: unknown) => e);
      expect(CasMismatchError.is(err)).toBe(true);
      expect((await store.read(data))?.value).toEqual({ by: 1 });
    });

    it('lets exactly one of many concurrent writers win each version', async () => {
      const key = uniqueKey('race');
      const v0 = await store.compareAndSet(key, null, { epoch: 0 });
      const attempts = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => store.compareAndSet(key, v0, { epoch: 1, holder: `n${i}` })),
      );
      const won = attempts.filter((a) => a.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const lost of attempts.filter((a) => a.status === 'rejected')) {
        expect(CasMismatchError.is((lost as PromiseRejectedResult).reason)).toBe(true);
      }
    });

    it('leaves no abort listener behind on a settled call when it declares reusableSignal', async (context) => {
      if (store.capabilities.reusableSignal !== true) return context.skip();
      const { signal } = new AbortController();
      const key = uniqueKey('signal');
      const version = await store.compareAndSet(key, null, { n: 1 }, { signal });
      await store.read(key, { signal });
      await expect(store.compareAndSet(key, null, { n: 2 }, { signal })).rejects.toSatisfy(CasMismatchError.is);
      await store.commit([{ key, expectedVersion: version, value: { n: 3 } }], { signal });
      expect(getEventListeners(signal, 'abort')).toHaveLength(0);
    });

    it('after close(): calls reject with StoreUnavailableError, watch() registers nothing, close() again is harmless', async () => {
      const closed = await options.create();
      const key = uniqueKey('closed');
      await closed.read(key);
      await closed.close();
      await closed.close();
      const errors = await Promise.all([
        closed.read(key).catch((e: unknown) => e),
        closed.compareAndSet(key, null, 1).catch((e: unknown) => e),
        closed.commit([{ key, expectedVersion: null, value: 1 }]).catch((e: unknown) => e),
      ]);
      for (const err of errors) {
        expect(StoreUnavailableError.is(err)).toBe(true);
        expect((err as Error).message).toMatch(/is closed; create a new store/);
      }
      if (!closed.watch) return;
      let calls = 0;
      const off = closed.watch(key, () => {
        calls += 1;
      });
      await store.compareAndSet(key, null, { n: 1 });
      await new Promise((r) => setTimeout(r, 300));
      off();
      expect(calls).toBe(0);
    });

    it('rejects promptly when the signal is already aborted', async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(store.read(uniqueKey('aborted'), { signal: controller.signal })).rejects.toBeDefined();
    });

    it('reports store-clock times when it declares storeClock', async () => {
      const key = uniqueKey('clock');
      await store.compareAndSet(key, null, { n: 1 });
      const entry = await store.read(key);
      if (store.capabilities.storeClock) {
        expect(typeof entry?.writtenAtMs).toBe('number');
        expect(typeof entry?.readAtMs).toBe('number');
        expect(entry!.readAtMs!).toBeGreaterThanOrEqual(entry!.writtenAtMs!);
      } else {
        expect(entry?.writtenAtMs).toBeUndefined();
      }
    });

    it('notifies a watcher after a write, and not after it unsubscribes', async () => {
      if (!store.watch) return;
      const key = uniqueKey('watch');
      let calls = 0;
      let resolveFirst!: () => void;
      const first = new Promise<void>((r) => {
        resolveFirst = r;
      });
      const unsubscribe = store.watch(key, () => {
        calls += 1;
        resolveFirst();
      });
      // Backends that subscribe over the network need a moment before the subscription is live.
      await new Promise((r) => setTimeout(r, 150));
      await store.compareAndSet(key, null, { n: 1 });
      await Promise.race([first, new Promise((_, reject) => setTimeout(() => reject(new Error('no watch event within 5 s')), 5000))]);
      expect(calls).toBeGreaterThanOrEqual(1);
      unsubscribe();
      await new Promise((r) => setTimeout(r, 100));
      const before = calls;
      const entry = await store.read(key);
      await store.compareAndSet(key, entry!.version, { n: 2 });
      await new Promise((r) => setTimeout(r, 300));
      expect(calls).toBe(before);
    });
  });
}
