import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdLeaseStore } from '../../src/adapters/EtcdLeaseStore.js';
import { testAdapter } from '../../src/adapters/testAdapter.js';
import { CasMismatchError, CorruptStateError, StoreTimeoutError, StoreUnavailableError } from '../../src/errors.js';
import { TcpProxy } from '../helpers/tcpProxy.js';
import { within } from './freezeProxy.js';
import { CLOSED_PORT, ETCD_ENDPOINTS, probeEtcd, RUN_ID, requireUnderCi } from './servers.js';

const server = await probeEtcd();
const prefix = `fl-test/${RUN_ID}/`;

if (!requireUnderCi('etcd', server)) {
  testAdapter('etcd', {
    skip: !server.ok && server.reason,
    create: () => new EtcdLeaseStore({ hosts: ETCD_ENDPOINTS, prefix }),
  });
}

describe.skipIf(!server.ok)('etcd store specifics', () => {
  let store: EtcdLeaseStore;
  let admin: Etcd3;

  beforeAll(() => {
    store = new EtcdLeaseStore({ hosts: ETCD_ENDPOINTS, prefix: `${prefix}specific/` });
    admin = new Etcd3({ hosts: ETCD_ENDPOINTS });
  });

  afterAll(async () => {
    await store?.close();
    await admin?.delete().prefix(prefix);
    admin?.close();
  });

  it('uses the key mod_revision as its version and declares no store clock', async () => {
    const version = await store.compareAndSet('rev', null, { n: 1 });
    const raw = await admin.get(`${prefix}specific/rev`).exec();
    expect(raw.kvs[0]?.mod_revision).toBe(version);
    expect(JSON.parse(raw.kvs[0]!.value.toString())).toEqual({ n: 1 });
    expect(store.capabilities.storeClock).toBe(false);
    expect((await store.read('rev'))?.readAtMs).toBeUndefined();
  });

  it('versions keep rising for a key that was deleted and recreated', async () => {
    const v1 = await store.compareAndSet('gone', null, 1);
    await admin.delete().key(`${prefix}specific/gone`);
    const v2 = await store.compareAndSet('gone', null, 2);
    expect(BigInt(v2)).toBeGreaterThan(BigInt(v1));
    await expect(store.compareAndSet('gone', v1, 3)).rejects.toSatisfy(CasMismatchError.is);
  });

  it('treats malformed versions as never matching, including a non-canonical spelling of the current one', async () => {
    const v = await store.compareAndSet('odd', null, 1);
    for (const bogus of [`0${v}`, 'abc', '-1', '']) {
      const err = await store.compareAndSet('odd', bogus, 2).catch((e: unknown) => e);
      expect(CasMismatchError.is(err)).toBe(true);
      expect((err as CasMismatchError).actualVersion).toBe(v);
    }
  });

  it('keeps the last value when one commit writes a key twice', async () => {
    const [a, b] = await store.commit([
      { key: 'twice', expectedVersion: null, value: 1 },
      { key: 'twice', expectedVersion: null, value: 2 },
    ]);
    expect(a).toBe(b);
    expect(await store.read('twice')).toMatchObject({ value: 2, version: b });
  });

  it('rejects with the abort reason when aborted mid-call, and with StoreTimeoutError when the budget runs out', async () => {
    const target = new URL(ETCD_ENDPOINTS[0]!);
    const proxy = await TcpProxy.start({ targetHost: target.hostname, targetPort: Number(target.port || 2379) });
    const viaProxy = new EtcdLeaseStore({ hosts: `http://127.0.0.1:${proxy.port}`, prefix: `${prefix}proxy/`, timeoutMs: 1000 });
    try {
      await viaProxy.read('warm-up');
      proxy.cut('blackhole');
      const controller = new AbortController();
      const pending = viaProxy.compareAndSet('abort', null, 1, { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('caller gave up')), 50);
      await expect(pending).rejects.toThrow('caller gave up');
      const err = await viaProxy.read('abort').catch((e: unknown) => e);
      expect(StoreTimeoutError.is(err), String(err)).toBe(true);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('rejects (rather than hangs) while the server is unreachable', async () => {
    const unreachable = new EtcdLeaseStore({ hosts: `http://127.0.0.1:${CLOSED_PORT}`, timeoutMs: 2000 });
    try {
      const started = Date.now();
      const err = await unreachable.read('x').catch((e: unknown) => e);
      expect(StoreUnavailableError.is(err) || StoreTimeoutError.is(err)).toBe(true);
      const again = await unreachable.commit([{ key: 'x', expectedVersion: null, value: 1 }]).catch((e: unknown) => e);
      expect(StoreUnavailableError.is(again) || StoreTimeoutError.is(again)).toBe(true);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await unreachable.close();
    }
  });

  it('with several hosts, stops sending calls to one that keeps failing', async () => {
    // A dead host first in the list: etcd3 shuffles hosts per call and moves on to the next one only when the host's
    // breaker refuses the call, so after three consecutive failures on it nearly every call must succeed.
    const twoHosts = new EtcdLeaseStore({ hosts: [`http://127.0.0.1:${CLOSED_PORT}`, ...ETCD_ENDPOINTS], prefix, timeoutMs: 2000 });
    try {
      let failures = 0;
      for (let i = 0; i < 40; i++) await twoHosts.read('multi').catch(() => failures++);
      expect(failures).toBeLessThanOrEqual(4);
    } finally {
      await twoHosts.close();
    }
  });

  it('leaves a caller-supplied client open on close', async () => {
    const client = new Etcd3({ hosts: ETCD_ENDPOINTS });
    const borrowed = new EtcdLeaseStore({ client, prefix: `${prefix}borrowed/` });
    await borrowed.compareAndSet('k', null, 1);
    borrowed.watch('k', () => {});
    await borrowed.close();
    expect(await client.get(`${prefix}borrowed/k`).string()).toBe('1');
    client.close();
  });
});

describe.skipIf(!server.ok)('etcd store: reconnects and stored data', () => {
  const endpoint = ETCD_ENDPOINTS[0]!;
  const etcdPort = Number(new URL(endpoint).port || 2379);
  let admin: Etcd3;
  beforeAll(() => {
    admin = new Etcd3({ hosts: endpoint });
  });
  afterAll(async () => {
    await admin?.delete().prefix(prefix);
    admin?.close();
  });

  it('a call through a blackholed link rejects within timeoutMs with StoreTimeoutError/StoreUnavailableError', async () => {
    const proxy = await TcpProxy.start({ targetPort: etcdPort });
    const viaProxy = new EtcdLeaseStore({ hosts: `http://127.0.0.1:${proxy.port}`, prefix: `${prefix}bh/`, timeoutMs: 800 });
    try {
      await viaProxy.read('x');
      proxy.cut('blackhole');
      const started = performance.now();
      const err = await within(viaProxy.compareAndSet('x', null, 1).catch((e: unknown) => e), 5000);
      expect(err).not.toBe('timeout');
      expect(StoreTimeoutError.is(err) || StoreUnavailableError.is(err)).toBe(true);
      expect(performance.now() - started).toBeLessThan(1500);
      proxy.heal();
      await expect.poll(() => viaProxy.read('x').then(() => 'ok', (e: unknown) => String(e)), { timeout: 10_000 }).toBe('ok');
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('reports a stored value that is not JSON as CorruptStateError naming the key, not a raw SyntaxError', async () => {
    const store = new EtcdLeaseStore({ hosts: endpoint, prefix: `${prefix}corrupt/` });
    try {
      await admin.put(`${prefix}corrupt/k`).value('{not json');
      const err = await store.read('k').catch((e: unknown) => e);
      expect(CorruptStateError.is(err)).toBe(true);
      expect((err as Error).message).toContain(`${prefix}corrupt/k`);
    } finally {
      await store.close();
    }
  });
});
