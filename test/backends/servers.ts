import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { it } from 'vitest';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const ETCD_ENDPOINTS = (process.env.ETCD_ENDPOINTS ?? 'http://127.0.0.1:2379')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

/** A port nothing listens on: connecting is refused at once. */
export const CLOSED_PORT = 1;

const PROBE_TIMEOUT_MS = 2000;

/** Unique per test run, so concurrent runs (other engineers, CI shards) never share keys or schemas. */
export const RUN_ID = `${process.pid}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

export interface Probe {
  readonly ok: boolean;
  /** Why the server is considered absent; empty when ok. */
  readonly reason: string;
}

function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  return Promise.race([
    work,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), PROBE_TIMEOUT_MS)),
  ]);
}

async function probe(label: string, check: () => Promise<void>): Promise<Probe> {
  try {
    await withTimeout(check(), label);
    return { ok: true, reason: '' };
  } catch (err) {
    return { ok: false, reason: `no ${label} (${err instanceof Error ? err.message : String(err)})` };
  }
}

export function probeRedis(): Promise<Probe> {
  return probe(`Redis at ${REDIS_URL}`, async () => {
    const client = new Redis(REDIS_URL, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    let cause: Error | undefined;
    client.on('error', (err: Error) => {
      cause ??= err;
    });
    try {
      // ioredis rejects with a bare "Connection is closed."; the 'error' event says why.
      await client.connect().catch((err: Error) => {
        throw cause ?? err;
      });
      await client.ping();
    } finally {
      client.disconnect();
    }
  });
}

export function probePostgres(): Promise<Probe> {
  return probe(`PostgreSQL at ${redact(DATABASE_URL)}`, async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: PROBE_TIMEOUT_MS });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('select 1');
    } finally {
      await client.end().catch(() => {});
    }
  });
}

export function probeEtcd(): Promise<Probe> {
  return probe(`etcd at ${ETCD_ENDPOINTS.join(',')}`, async () => {
    const client = new Etcd3({ hosts: ETCD_ENDPOINTS, dialTimeout: PROBE_TIMEOUT_MS });
    try {
      await client
        .get('fenced-leader-probe')
        .options({ deadline: Date.now() + PROBE_TIMEOUT_MS })
        .string();
    } finally {
      client.close();
    }
  });
}

/**
 * Under CI=true a missing server is a failure, never a silent skip: registers a failing test and returns true.
 * Elsewhere returns false and the caller skips with `probe.reason`.
 */
export function requireUnderCi(name: string, probe: Probe): boolean {
  if (probe.ok || process.env.CI !== 'true') return false;
  it(`${name} is available`, () => {
    throw new Error(`${name} is required under CI=true: ${probe.reason}`);
  });
  return true;
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}

/** Deletes every key under `prefix` (SCAN, not KEYS: the server may hold other data). */
export async function deleteRedisKeys(admin: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) await admin.del(...keys);
  } while (cursor !== '0');
}
