import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisLeaseStore } from '../../src/adapters/RedisLeaseStore.js';
import { testAdapter } from '../../src/adapters/testAdapter.js';
import { CasMismatchError, CorruptStateError, StoreTimeoutError, StoreUnavailableError } from '../../src/errors.js';
import { TcpProxy } from '../helpers/tcpProxy.js';
import { CLOSED_PORT, deleteRedisKeys, probeRedis, REDIS_URL, RUN_ID, requireUnderCi } from './servers.js';

const server = await probeRedis();
const keyPrefix = `fl-test:${RUN_ID}:`;
const redisPort = Number(new URL(REDIS_URL).port || 6379);
const redisHost = new URL(REDIS_URL).hostname;

if (!requireUnderCi('Redis', server)) {
  testAdapter('redis', { skip: !server.ok && server.reason, create: () => new RedisLeaseStore({ url: REDIS_URL, keyPrefix }) });
}

describe.skipIf(!server.ok)('redis store specifics', () => {
  let store: RedisLeaseStore;
  let admin: Redis;

  beforeAll(() => {
    store = new RedisLeaseStore({ url: REDIS_URL, keyPrefix: `${keyPrefix}specific:` });
    admin = new Redis(REDIS_URL);
  });

  afterAll(async () => {
    await store?.close();
    // Remove everything this run wrote, conformance keys included.
    await deleteRedisKeys(admin, keyPrefix);
    await admin?.quit();
  });

  it('keeps versions rising for a key that was deleted and recreated', async () => {
    const v1 = await store.compareAndSet('gone', null, { n: 1 });
    const v2 = await store.compareAndSet('gone', v1, { n: 2 });
    expect(await admin.del(`${keyPrefix}specific:entry:gone`)).toBe(1);
    expect(await store.read('gone')).toBeUndefined();
    const v3 = await store.compareAndSet('gone', null, { n: 3 });
    expect(BigInt(v2)).toBeGreaterThan(BigInt(v1));
    expect(BigInt(v3)).toBeGreaterThan(BigInt(v2));
    // A CAS prepared against the deleted incarnation must not match the new one.
    await expect(store.compareAndSet('gone', v2, { n: 4 })).rejects.toSatisfy(CasMismatchError.is);
  });

  it('keeps versions rising when the counter itself is lost (a restart without persistence)', async () => {
    const v1 = await store.compareAndSet('wiped', null, { n: 1 });
    await admin.del(`${keyPrefix}specific:version-counter`, `${keyPrefix}specific:entry:wiped`);
    const v2 = await store.compareAndSet('wiped', null, { n: 2 });
    expect(BigInt(v2)).toBeGreaterThan(BigInt(v1));
  });

  it('stamps writes and reads with the Redis clock, plausibly close to this host', async () => {
    const before = Date.now();
    await store.compareAndSet('clock', null, { n: 1 });
    const entry = await store.read('clock');
    const after = Date.now();
    expect(entry!.readAtMs!).toBeGreaterThanOrEqual(entry!.writtenAtMs!);
    // Same host: allow generous skew, this only catches unit mistakes (seconds vs ms, microseconds).
    expect(Math.abs(entry!.writtenAtMs! - before)).toBeLessThan(5000);
    expect(Math.abs(entry!.readAtMs! - after)).toBeLessThan(5000);
  });

  it('notifies a watcher once per write of a committed key, and shares one subscription between watchers', async () => {
    const seen: string[] = [];
    const off1 = store.watch('shared', () => seen.push('a'));
    const off2 = store.watch('shared', () => seen.push('b'));
    // Each is called once when the subscription connection is first up (a write made before that would otherwise
    // go unnoticed); then once per write.
    await expect.poll(() => seen.length).toBe(2);
    await new Promise((r) => setTimeout(r, 150));
    seen.length = 0;
    await store.commit([{ key: 'shared', expectedVersion: null, value: 1 }]);
    await expect.poll(() => seen.length).toBe(2);
    off1();
    const entry = await store.read('shared');
    await store.compareAndSet('shared', entry!.version, 2);
    await expect.poll(() => seen.filter((s) => s === 'b').length).toBe(2);
    expect(seen.filter((s) => s === 'a')).toHaveLength(1);
    off2();
  });

  it('rejects with the abort reason when aborted mid-call, and with StoreTimeoutError when the budget runs out', async () => {
    const proxy = await TcpProxy.start({ targetHost: redisHost, targetPort: redisPort });
    const viaProxy = new RedisLeaseStore({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix: `${keyPrefix}proxy:`, timeoutMs: 1500 });
    try {
      await viaProxy.read('warm-up');
      proxy.cut('blackhole');
      const controller = new AbortController();
      const pending = viaProxy.compareAndSet('abort', null, { n: 1 }, { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('caller gave up')), 50);
      await expect(pending).rejects.toThrow('caller gave up');
      const timedOut = await viaProxy.read('abort').catch((e: unknown) => e);
      expect(StoreTimeoutError.is(timedOut)).toBe(true);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('rejects (rather than hangs) while the server is unreachable', async () => {
    const unreachable = new RedisLeaseStore({ url: `redis://127.0.0.1:${CLOSED_PORT}`, timeoutMs: 2000 });
    try {
      const started = Date.now();
      const err = await unreachable.read('x').catch((e: unknown) => e);
      expect(StoreUnavailableError.is(err)).toBe(true);
      const again = await unreachable.compareAndSet('x', null, 1).catch((e: unknown) => e);
      expect(StoreUnavailableError.is(again) || StoreTimeoutError.is(again)).toBe(true);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await unreachable.close();
    }
  });

  it('fails fast after the connection drops, and works again once Redis is back', async () => {
    const proxy = await TcpProxy.start({ targetHost: redisHost, targetPort: redisPort });
    const viaProxy = new RedisLeaseStore({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix: `${keyPrefix}proxy:` });
    try {
      const v1 = await viaProxy.compareAndSet('reconnect', null, { n: 1 });
      proxy.cut('reset');
      await expect.poll(() => viaProxy.read('reconnect').then(() => 'ok', (e: unknown) => (e as Error).name)).toBe('StoreUnavailableError');
      proxy.heal();
      await expect.poll(() => viaProxy.read('reconnect').then((e) => e?.version), { timeout: 10_000 }).toBe(v1);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('does not fall back to EVAL for a call already abandoned when its EVALSHA comes back NOSCRIPT', async () => {
    const proxy = await TcpProxy.start({ targetHost: redisHost, targetPort: redisPort });
    const viaProxy = new RedisLeaseStore({ url: `redis://127.0.0.1:${proxy.port}`, keyPrefix: `${keyPrefix}noscript:`, timeoutMs: 100 });
    try {
      const v1 = await viaProxy.compareAndSet('k', null, 'before');
      await admin.script('FLUSH');
      proxy.delay(150); // the EVALSHA arrives after 150 ms, its NOSCRIPT reply 150 ms later: past the 100 ms budget
      const err = await viaProxy.compareAndSet('k', v1, 'abandoned').catch((e: unknown) => e);
      expect(StoreTimeoutError.is(err)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 700));
      proxy.delay(0);
      // A fallback EVAL would have been sent ~300 ms in, well after the caller was told the call was over.
      expect((await viaProxy.read('k'))?.value).toBe('before');
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('leaves a caller-supplied client open on close', async () => {
    const client = new Redis(REDIS_URL);
    const borrowed = new RedisLeaseStore({ client, keyPrefix: `${keyPrefix}borrowed:` });
    await borrowed.compareAndSet('k', null, { n: 1 });
    borrowed.watch('k', () => {});
    await borrowed.close();
    expect(await client.ping()).toBe('PONG');
    await expect(borrowed.read('k')).rejects.toThrow(/closed/);
    await client.quit();
  });
});

describe.skipIf(!server.ok)('redis store: reconnects and stored data', () => {
  let admin: Redis;
  beforeAll(() => {
    admin = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await deleteRedisKeys(admin, keyPrefix);
    await admin?.quit();
  });

  it('reports a stored value that is not JSON as CorruptStateError naming the key, not a raw SyntaxError', async () => {
    const store = new RedisLeaseStore({ url: REDIS_URL, keyPrefix: `${keyPrefix}corrupt:` });
    try {
      await admin.hset(`${keyPrefix}corrupt:entry:k`, 'value', '{not json', 'version', '7', 'writtenAtMs', '1');
      const err = await store.read('k').catch((e: unknown) => e);
      expect(CorruptStateError.is(err)).toBe(true);
      expect((err as Error).message).toContain(`${keyPrefix}corrupt:entry:k`);
      expect(StoreUnavailableError.is(err)).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('a commit expecting a version of an absent key rejects with CasMismatchError naming that key', async () => {
    const store = new RedisLeaseStore({ url: REDIS_URL, keyPrefix: `${keyPrefix}mismatch:` });
    try {
      const v = await store.compareAndSet('n', null, { s: 'a' });
      const err = await store
        .commit([
          { key: 'n', expectedVersion: v },
          { key: 'other', expectedVersion: '1', value: 1 },
        ])
        .catch((e: unknown) => e);
      expect(CasMismatchError.is(err) && (err as CasMismatchError).key === 'other').toBe(true);
    } finally {
      await store.close();
    }
  });
});
