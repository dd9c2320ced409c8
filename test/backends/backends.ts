/**
 * The three server backends behind one shape, for the elector-level suites (faults, handoff, store clock,
 * multi-process) and the benchmarks: how to probe the server, where it listens (so a TcpProxy can stand in front of
 * it), how to build a store in a private namespace (optionally through another port), and how to clean up after.
 */
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry, Unsubscribe } from '../../src/adapters/LeaseStore.js';
import { type BackendName, openStore, type StoreRecipe } from '../fixtures/backendStores.js';
import { DATABASE_URL, ETCD_ENDPOINTS, type Probe, probeEtcd, probePostgres, probeRedis, REDIS_URL } from './servers.js';

export type { BackendName, StoreRecipe };

export interface StoreSpec {
  /** Namespace: Redis key prefix, PostgreSQL schema, etcd key prefix. Letters, digits and _ only. */
  readonly ns: string;
  /** Connect to this loopback port instead of the server's own (a TcpProxy in front of it). */
  readonly port?: number;
  readonly timeoutMs?: number;
}

export interface Backend {
  readonly name: BackendName;
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** Whether reads report the store's own clock (the trustStoreClock mode applies). */
  readonly storeClock: boolean;
  probe(): Promise<Probe>;
  create(spec: StoreSpec): LeaseStore;
  /** Serialisable recipe for a child process: `openStore(recipe)` builds the same store there. */
  recipe(spec: StoreSpec): StoreRecipe;
  /** Removes everything stored under the namespace. */
  cleanup(ns: string): Promise<void>;
  /** A bare round trip of the same kind as a store call, on a separate plain client (for benchmarks). */
  bareClient(): Promise<{ roundTrip(): Promise<unknown>; close(): Promise<void> }>;
}

const redisUrl = new URL(REDIS_URL);
const pgUrl = new URL(DATABASE_URL);
const etcdUrl = new URL(ETCD_ENDPOINTS[0]!);

export const redis: Backend = {
  name: 'redis',
  label: 'Redis',
  host: redisUrl.hostname,
  port: Number(redisUrl.port || 6379),
  storeClock: true,
  probe: probeRedis,
  create: (spec) => openStore(redis.recipe(spec)),
  recipe: (spec) => ({ backend: 'redis', url: REDIS_URL, ...spec }),
  async cleanup(ns) {
    const admin = new Redis(REDIS_URL);
    try {
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `fl-test:${ns}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await admin.del(...keys);
      } while (cursor !== '0');
    } finally {
      await admin.quit();
    }
  },
  async bareClient() {
    const client = new Redis(REDIS_URL);
    await client.ping();
    return {
      // A trivial script: the same command path (EVALSHA) as the store's compare-and-set.
      roundTrip: () => client.eval('return 1', 0),
      close: async () => {
        await client.quit();
      },
    };
  },
};

export const postgres: Backend = {
  name: 'postgres',
  label: 'PostgreSQL',
  host: pgUrl.hostname,
  port: Number(pgUrl.port || 5432),
  storeClock: true,
  probe: probePostgres,
  create: (spec) => openStore(postgres.recipe(spec)),
  recipe: (spec) => ({ backend: 'postgres', url: DATABASE_URL, ...spec }),
  async cleanup(ns) {
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    try {
      await admin.query(`DROP SCHEMA IF EXISTS "fl_${ns}" CASCADE`);
    } finally {
      await admin.end();
    }
  },
  async bareClient() {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    return {
      roundTrip: () => client.query('SELECT 1'),
      close: () => client.end(),
    };
  },
};

export const etcd: Backend = {
  name: 'etcd',
  label: 'etcd',
  host: etcdUrl.hostname,
  port: Number(etcdUrl.port || 2379),
  storeClock: false,
  probe: probeEtcd,
  create: (spec) => openStore(etcd.recipe(spec)),
  recipe: (spec) => ({ backend: 'etcd', url: ETCD_ENDPOINTS[0]!, ...spec }),
  async cleanup(ns) {
    const admin = new Etcd3({ hosts: ETCD_ENDPOINTS });
    try {
      await admin.delete().prefix(`fl-test/${ns}/`);
    } finally {
      admin.close();
    }
  },
  async bareClient() {
    const client = new Etcd3({ hosts: ETCD_ENDPOINTS });
    await client.get('fl-bench-probe').string();
    return {
      roundTrip: () => client.get('fl-bench-probe').string(),
      close: async () => client.close(),
    };
  },
};

export const backends: Record<BackendName, Backend> = { redis, postgres, etcd };


/** One store call as seen by the caller: when it started and settled (performance.now()), and how. */
export interface CallRecord {
  readonly op: 'read' | 'compareAndSet' | 'commit';
  readonly key: string;
  readonly start: number;
  end: number | undefined;
  ok: boolean | undefined;
  /** compareAndSet/commit: the version(s) written. */
  result?: unknown;
}

/** Delegates to a store and records every call's timing, so a test can find "the last successful renewal start". */
export class RecordingStore implements LeaseStore {
  readonly calls: CallRecord[] = [];
  constructor(readonly inner: LeaseStore) {}
  get kind() {
    return this.inner.kind;
  }
  get capabilities() {
    return this.inner.capabilities;
  }
  read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    return this.track('read', key, () => this.inner.read(key, options));
  }
  compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return this.track('compareAndSet', key, () => this.inner.compareAndSet(key, expectedVersion, value, options));
  }
  commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    return this.track('commit', ops[0]?.key ?? '', () => this.inner.commit(ops, options));
  }
  watch(key: string, onChange: () => void): Unsubscribe {
    return this.inner.watch!(key, onChange);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  /** Calls that have not settled yet, with how long they have been running. */
  pending(now = performance.now()): Array<CallRecord & { age: number }> {
    return this.calls.filter((c) => c.end === undefined).map((c) => ({ ...c, age: now - c.start }));
  }
  private track<T>(op: CallRecord['op'], key: string, call: () => Promise<T>): Promise<T> {
    const record: CallRecord = { op, key, start: performance.now(), end: undefined, ok: undefined };
    this.calls.push(record);
    const promise = call();
    promise.then(
      (result) => {
        record.end = performance.now();
        record.ok = true;
        record.result = result;
      },
      () => {
        record.end = performance.now();
        record.ok = false;
      },
    );
    return promise;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `predicate` every 5 ms until it holds; rejects with `what` after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now();
  while (!predicate()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
  return performance.now();
}
