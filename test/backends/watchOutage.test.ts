import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdLeaseStore } from '../../src/adapters/EtcdLeaseStore.js';
import type { LeaseStore } from '../../src/adapters/LeaseStore.js';
import { PostgresLeaseStore } from '../../src/adapters/PostgresLeaseStore.js';
import { RedisLeaseStore } from '../../src/adapters/RedisLeaseStore.js';
import { TcpProxy } from '../helpers/tcpProxy.js';
import { sleep } from './freezeProxy.js';
import { DATABASE_URL, deleteRedisKeys, ETCD_ENDPOINTS, type Probe, probeEtcd, probePostgres, probeRedis, REDIS_URL, RUN_ID } from './servers.js';

const ETCD = ETCD_ENDPOINTS[0]!;
const PG_SCHEMA = `fl_wo_${RUN_ID}`;
const REDIS_PREFIX = `fl-test-wo:${RUN_ID}:`;
const ETCD_PREFIX = `fl-test-wo/${RUN_ID}/`;
const [redis, postgres, etcd] = await Promise.all([probeRedis(), probePostgres(), probeEtcd()]);

const pgVia = (port: number) => {
  const u = new URL(DATABASE_URL);
  u.hostname = '127.0.0.1';
  u.port = String(port);
  return u.toString();
};

const cases: Array<{ name: string; server: Probe; port: number; make: (port?: number) => LeaseStore }> = [
  {
    name: 'redis',
    server: redis,
    port: Number(new URL(REDIS_URL).port || 6379),
    make: (port) => new RedisLeaseStore({ url: port ? `redis://127.0.0.1:${port}` : REDIS_URL, keyPrefix: REDIS_PREFIX, timeoutMs: 1000 }),
  },
  {
    name: 'postgres',
    server: postgres,
    port: Number(new URL(DATABASE_URL).port || 5432),
    make: (port) => new PostgresLeaseStore({ connectionString: port ? pgVia(port) : DATABASE_URL, schema: PG_SCHEMA, timeoutMs: 1000 }),
  },
  {
    name: 'etcd',
    server: etcd,
    port: Number(new URL(ETCD).port || 2379),
    make: (port) => new EtcdLeaseStore({ hosts: port ? `http://127.0.0.1:${port}` : ETCD, prefix: ETCD_PREFIX, timeoutMs: 1000 }),
  },
];

describe('watch() across outages', () => {
  afterAll(async () => {
    if (redis.ok) {
      const r = new Redis(REDIS_URL);
      await deleteRedisKeys(r, REDIS_PREFIX);
      await r.quit();
    }
    if (postgres.ok) {
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${PG_SCHEMA}" CASCADE`);
      await c.end();
    }
    if (etcd.ok) {
      const e = new Etcd3({ hosts: ETCD });
      await e.delete().prefix(ETCD_PREFIX);
      e.close();
    }
  });

  for (const c of cases) {
    it.skipIf(!c.server.ok)(`${c.name}: a write made before the watch could connect is reported once it connects`, async () => {
      const proxy = await TcpProxy.start({ targetPort: c.port });
      const writer = c.make();
      await writer.read('warm'); // creates the schema for postgres
      proxy.cut('reset'); // the watching store cannot reach the server yet
      const watched = c.make(proxy.port);
      let calls = 0;
      const off = watched.watch!('k', () => {
        calls += 1;
      });
      try {
        await sleep(300);
        await writer.compareAndSet('k', null, 1); // the watcher's subscription is not live: no notification reaches it
        await sleep(300);
        expect(calls).toBe(0);
        proxy.heal();
        // Watchers are called once the subscription is first up, since notifications sent before are lost.
        await expect.poll(() => calls, { timeout: 8000 }).toBeGreaterThanOrEqual(1);
      } finally {
        off();
        await watched.close();
        await writer.close();
        await proxy.close();
      }
    });
  }

  for (const c of cases) {
    // PostgreSQL's LISTEN connection comes back on its reconnect backoff (several seconds), hence the long waits.
    it.skipIf(!c.server.ok)(`${c.name}: a watcher is called after the connection drops and comes back (a write missed meanwhile), and for writes after that`, async () => {
      const proxy = await TcpProxy.start({ targetPort: c.port });
      const writer = c.make();
      await writer.read('warm');
      const watched = c.make(proxy.port);
      let calls = 0;
      const off = watched.watch!('rw', () => {
        calls += 1;
      });
      try {
        await expect.poll(() => calls, { timeout: 5000 }).toBe(1); // the subscription is up
        await sleep(100);
        const v1 = await writer.compareAndSet('rw', null, 1);
        await expect.poll(() => calls, { timeout: 3000 }).toBe(2);
        proxy.cut('reset');
        await sleep(500);
        const v2 = await writer.compareAndSet('rw', v1, 2); // missed while disconnected
        proxy.heal();
        await expect.poll(() => calls, { timeout: 12_000 }).toBeGreaterThanOrEqual(3);
        const before = calls;
        await writer.compareAndSet('rw', v2, 3);
        await expect.poll(() => calls, { timeout: 3000 }).toBeGreaterThan(before);
      } finally {
        off();
        await watched.close();
        await writer.close();
        await proxy.close();
      }
    }, 30_000);
  }
});
