/**
 * Backend benchmarks (`npm run bench -- backends`). Per backend, in one run on the same server:
 * - renewal latency (issue 5: p50/p99 ÷ "a bare client round trip of the same kind", target ≤ 1.2): the store's
 *   compareAndSet renewing a lease record as the elector does (with an AbortSignal; the signal is built before the
 *   clock starts, so this is the store's cost), against two baselines on a separate plain client of the same library,
 *   carrying the same JSON:
 *     bare write  — Redis SET, PostgreSQL a prepared single-row UPDATE (autocommit: one WAL flush, like the renewal),
 *                   etcd a put, file write-temp-then-rename;
 *     hand CAS    — the conditional write a user would write without this library: Redis EVALSHA of a minimal
 *                   compare-version-and-set script (HGET, compare, HSET), PostgreSQL a prepared
 *                   `UPDATE … SET version = version + 1 … WHERE id = 1 AND version = $1`, etcd a txn comparing
 *                   mod_revision then put;
 *   plus "renew + new signal": the same renewal with `new AbortController().signal` built inside the timed region, which
 *   is what the elector's store actors pay per call for a store that does not declare `reusableSignal` (the shipped
 *   stores all declare it, so the elector reuses one signal).
 *   All four are measured interleaved (A,B,C,D, then B,C,D,A, …: each round rotates the order), so machine and server
 *   load hit them alike; BENCH_RENEWALS samples (default 2000) after 200 warm-up rounds.
 * - graceful handoff: resign() → the waiting follower is leader (timings 6000/4000/2000, so only watch can make it
 *   fast);
 * - crash failover with the default test timings (1500/1000/200): the leader's actor is stopped without releasing,
 *   time until the follower leads, divided by its bound leaseDurationMs + retryPeriodMs.
 * Servers come from REDIS_URL, DATABASE_URL, ETCD_ENDPOINTS; a missing server is reported and skipped.
 * FENCED_LEADER_BENCH_QUICK=1: 300 samples, 3 handoffs, 2 failovers.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { percentile } from '../sim/stats.js';
import { FileLeaseStore } from '../src/adapters/FileLeaseStore.js';
import type { LeaseStore } from '../src/adapters/LeaseStore.js';
import { CAS_LUA as REDIS_STORE_CAS } from '../src/adapters/RedisLeaseStore.js';
import { createElector, type Elector } from '../src/createElector.js';
import type { LeaseRecord } from '../src/machines/leaseRecord.js';
import { type BackendName, openStore } from '../test/fixtures/backendStores.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ETCD_URL = (process.env.ETCD_ENDPOINTS ?? 'http://127.0.0.1:2379').split(',')[0]!.trim();

const QUICK = process.env.FENCED_LEADER_BENCH_QUICK === '1';
const RENEWALS = Number(process.env.BENCH_RENEWALS ?? (QUICK ? 300 : 2000));
const WARMUP = QUICK ? 50 : 200;
const HANDOFFS = Number(process.env.BENCH_HANDOFFS ?? (QUICK ? 3 : 10));
const FAILOVERS = Number(process.env.BENCH_FAILOVERS ?? (QUICK ? 2 : 4));
const TEST_TIMING = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 };
const HANDOFF_TIMING = { leaseDurationMs: 6000, renewDeadlineMs: 4000, retryPeriodMs: 2000 };

interface Bare {
  /** A bare single-key write of `json` (the same payload as the renewal). */
  write(json: string): Promise<unknown>;
  /** A hand-written compare-version-and-set of `json` (keeps its own version); absent where there is none. */
  cas?(json: string): Promise<unknown>;
  /** The store's own conditional write, sent by the plain client (what the store adds on top is then its client code). */
  own?(json: string): Promise<unknown>;
  close(): Promise<void>;
}

interface Subject {
  readonly name: string;
  store(): LeaseStore;
  bare(): Promise<Bare>;
  cleanup(): Promise<void>;
}

interface Stats {
  p50: number;
  p99: number;
}

interface Row {
  backend: string;
  renew: Stats;
  renewFreshSignal: Stats;
  bareWrite: Stats;
  handCas: Stats | undefined;
  ownScript: Stats | undefined;
  /** renew p50 ÷ baseline p50 within each of BLOCKS consecutive slices of the run: how much the figure moves with load. */
  blockRatios: { bare: number[]; cas: number[] };
  handoffP50: number;
  handoffMax: number;
  failoverP50: number;
  failoverMax: number;
  failoverRatioMax: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const quiet = { info: () => {}, warn: () => {}, error: () => {} };

function quantile(values: number[], q: number): number {
  return percentile([...values].sort((a, b) => a - b), q * 100);
}

async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const started = performance.now();
  while (!predicate()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(1);
  }
  return performance.now();
}

/** Resolves with the time (performance.now()) of the elector's next transition into leader. */
function nextLeadership(elector: Elector): Promise<number> {
  return new Promise((resolve) => {
    const off = elector.subscribe((change) => {
      if (change.state === 'leader') {
        off();
        resolve(performance.now());
      }
    });
  });
}

function serverSubject(backend: BackendName, url: string, ns: string, bare: () => Promise<Bare>, cleanup: () => Promise<void>): Subject {
  return { name: backend, store: () => openStore({ backend, url, ns }), bare, cleanup };
}

function subjects(runId: string, fileDir: string): Subject[] {
  const redis = serverSubject(
    'redis',
    REDIS_URL,
    runId,
    async () => {
      const client = new Redis(REDIS_URL);
      await client.ping();
      const bareKey = `fl-bench:${runId}:bare`;
      const casKey = `fl-bench:${runId}:cas`;
      const cas = (await client.script(
        'LOAD',
        `if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'value', ARGV[3])
return 1`,
      )) as string;
      await client.hset(casKey, 'version', '0', 'value', '{}');
      let version = 0;
      const own = (await client.script('LOAD', REDIS_STORE_CAS)) as string;
      const ownKey = `fl-bench:${runId}:own`;
      let ownVersion = (await client.evalsha(own, 2, ownKey, `fl-bench:${runId}:counter`, '0', '', '{}', `fl-bench:${runId}:channel`)) as string;
      return {
        write: (json) => client.set(bareKey, json),
        own: async (json) => {
          const reply = await client.evalsha(own, 2, ownKey, `fl-bench:${runId}:counter`, '1', ownVersion, json, `fl-bench:${runId}:channel`);
          if (typeof reply !== 'string') throw new Error('own script lost');
          ownVersion = reply;
        },
        cas: async (json) => {
          if ((await client.evalsha(cas, 1, casKey, String(version), String(version + 1), json)) !== 1) throw new Error('hand CAS lost');
          version++;
        },
        close: async () => void (await client.quit()),
      };
    },
    async () => {
      const admin = new Redis(REDIS_URL);
      const keys = await admin.keys(`fl-test:${runId}:*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.del(`fl-bench:${runId}:bare`, `fl-bench:${runId}:cas`, `fl-bench:${runId}:own`, `fl-bench:${runId}:counter`);
      await admin.quit();
    },
  );
  const postgres = serverSubject(
    'postgres',
    DATABASE_URL,
    runId,
    async () => {
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      const schema = `"fl_${runId}"`;
      await client.query(`CREATE TABLE IF NOT EXISTS ${schema}.bare (id int PRIMARY KEY, value jsonb NOT NULL)`);
      await client.query(`INSERT INTO ${schema}.bare VALUES (1, '{}') ON CONFLICT DO NOTHING`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${schema}.cas (id int PRIMARY KEY, value jsonb NOT NULL, version bigint NOT NULL)`);
      await client.query(`INSERT INTO ${schema}.cas VALUES (1, '{}', 0) ON CONFLICT DO NOTHING`);
      const update = `UPDATE ${schema}.bare SET value = $1::jsonb WHERE id = 1`;
      const cas = `UPDATE ${schema}.cas SET value = $2::jsonb, version = version + 1 WHERE id = 1 AND version = $1 RETURNING version`;
      let version = '0';
      return {
        write: (json) => client.query({ name: 'bench_update', text: update, values: [json] }),
        cas: async (json) => {
          const { rows } = await client.query<{ version: string }>({ name: 'bench_cas', text: cas, values: [version, json] });
          if (!rows[0]) throw new Error('hand CAS lost');
          version = rows[0].version;
        },
        close: () => client.end(),
      };
    },
    async () => {
      const admin = new pg.Client({ connectionString: DATABASE_URL });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS "fl_${runId}" CASCADE`);
      await admin.end();
    },
  );
  const etcd = serverSubject(
    'etcd',
    ETCD_URL,
    runId,
    async () => {
      const client = new Etcd3({ hosts: ETCD_URL });
      const bareKey = `fl-test/${runId}/bare`;
      const casKey = `fl-test/${runId}/cas`;
      let revision = (await client.put(casKey).value('{}').exec()).header.revision;
      return {
        write: (json) => client.put(bareKey).value(json).exec(),
        cas: async (json) => {
          const response = await client.if(casKey, 'Mod', '==', revision).then(client.put(casKey).value(json)).commit();
          if (!response.succeeded) throw new Error('hand CAS lost');
          revision = response.header.revision;
        },
        close: async () => client.close(),
      };
    },
    async () => {
      const admin = new Etcd3({ hosts: ETCD_URL });
      await admin.delete().prefix(`fl-test/${runId}/`);
      admin.close();
    },
  );
  const statePath = join(fileDir, 'state.json');
  const file: Subject = {
    name: 'file',
    store: () => new FileLeaseStore({ path: statePath }),
    bare: async () => {
      const scratch = join(fileDir, 'bare.json');
      await fsp.writeFile(scratch, '{}');
      return {
        write: async (json) => {
          const tmp = `${scratch}.tmp`;
          await fsp.writeFile(tmp, json);
          await fsp.rename(tmp, scratch);
        },
        close: async () => {},
      };
    },
    cleanup: async () => {},
  };
  return [redis, postgres, etcd, file];
}

type Latency = Pick<Row, 'renew' | 'renewFreshSignal' | 'bareWrite' | 'handCas' | 'ownScript' | 'blockRatios'>;
const BLOCKS = 5;

function blockRatios(renew: number[], baseline: number[] | undefined): number[] {
  if (!baseline) return [];
  const size = Math.floor(renew.length / BLOCKS);
  return Array.from({ length: BLOCKS }, (_, b) => {
    const slice = (xs: number[]) => xs.slice(b * size, (b + 1) * size);
    return quantile(slice(renew), 0.5) / quantile(slice(baseline), 0.5);
  });
}

/** A baseline call timed like the renewals: returns its start time once it has settled. */
function timed(call: (json: string) => Promise<unknown>): (json: string) => Promise<number> {
  return async (json) => {
    const t = performance.now();
    await call(json);
    return t;
  };
}

function stats(samples: number[]): Stats {
  return { p50: quantile(samples, 0.5), p99: quantile(samples, 0.99) };
}

async function renewalLatency(subject: Subject): Promise<Latency> {
  const store = subject.store();
  const bare = await subject.bare();
  try {
    const key = `fenced-leader/bench-renew-${randomBytes(3).toString('hex')}/lease`;
    const now = new Date().toISOString();
    let record: LeaseRecord = { holder: 'bench', epoch: 1, leaseDurationMs: 15_000, renewals: 0, acquiredAt: now, renewedAt: now };
    let version = await store.compareAndSet(key, null, record);
    // renew, renew + new signal, bare write, then the optional baselines; interleaved, each round rotated, so every
    // kind takes every position equally often.
    const measured: ((json: string) => Promise<number>)[] = [
      async () => {
        const signal = new AbortController().signal; // the elector passes a signal; built before the clock starts
        const t = performance.now();
        version = await store.compareAndSet(key, version, record, { signal });
        return t;
      },
      async () => {
        const t = performance.now();
        version = await store.compareAndSet(key, version, record, { signal: new AbortController().signal });
        return t;
      },
      timed(bare.write),
    ];
    const casAt = bare.cas ? measured.push(timed(bare.cas)) - 1 : undefined;
    const ownAt = bare.own ? measured.push(timed(bare.own)) - 1 : undefined;
    const kinds = measured.length;
    const samples: number[][] = Array.from({ length: kinds }, () => []);
    const took: number[] = new Array(kinds).fill(0);
    for (let i = 0; i < RENEWALS + WARMUP; i++) {
      record = { ...record, renewals: record.renewals + 1, renewedAt: new Date().toISOString() };
      const json = JSON.stringify(record);
      for (let k = 0; k < kinds; k++) {
        const which = (i + k) % kinds;
        const t = await measured[which]!(json);
        took[which] = performance.now() - t;
      }
      if (i >= WARMUP) for (let k = 0; k < kinds; k++) samples[k]!.push(took[k]!);
    }
    return {
      renew: stats(samples[0]!),
      renewFreshSignal: stats(samples[1]!),
      bareWrite: stats(samples[2]!),
      handCas: casAt === undefined ? undefined : stats(samples[casAt]!),
      ownScript: ownAt === undefined ? undefined : stats(samples[ownAt]!),
      blockRatios: { bare: blockRatios(samples[0]!, samples[2]!), cas: blockRatios(samples[0]!, casAt === undefined ? undefined : samples[casAt]!) },
    };
  } finally {
    await bare.close();
    await store.close();
  }
}

async function handoff(subject: Subject): Promise<number[]> {
  const election = `bench-handoff-${randomBytes(3).toString('hex')}`;
  const stores = [subject.store(), subject.store()];
  const [a, b] = stores.map((store, i) => createElector({ election, nodeId: `n${i}`, store, logger: quiet, ...HANDOFF_TIMING })) as [Elector, Elector];
  const times: number[] = [];
  try {
    a.start();
    await until(() => a.isLeader(), 10_000, 'first leader');
    b.start();
    await until(() => b.leader()?.holder === 'n0', 10_000, 'follower to see the leader');
    let [leader, follower] = [a, b];
    for (let i = 0; i < HANDOFFS; i++) {
      await sleep(150); // the follower is in its retry wait; its watch is live
      const won = nextLeadership(follower);
      const t0 = performance.now();
      await leader.resign();
      const at = await Promise.race([won, sleep(HANDOFF_TIMING.leaseDurationMs * 2).then(() => Number.NaN)]);
      times.push(at - t0);
      leader.campaign();
      await until(() => leader.leader()?.holder === follower.nodeId && leader.state() === 'follower', 10_000, 'old leader to follow');
      [leader, follower] = [follower, leader];
    }
  } finally {
    await Promise.all([a.stop(), b.stop()]);
    await Promise.all(stores.map((s) => s.close()));
  }
  return times;
}

async function failover(subject: Subject): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < FAILOVERS; i++) {
    const election = `bench-failover-${randomBytes(3).toString('hex')}`;
    const stores = [subject.store(), subject.store()];
    const [a, b] = stores.map((store, n) => createElector({ election, nodeId: `n${n}`, store, logger: quiet, ...TEST_TIMING })) as [Elector, Elector];
    try {
      a.start();
      await until(() => a.isLeader(), 10_000, 'first leader');
      b.start();
      await until(() => b.leader()?.holder === 'n0', 10_000, 'follower to see the leader');
      // Crash at a random point of the renewal cycle.
      await sleep(500 + Math.random() * TEST_TIMING.retryPeriodMs);
      const won = nextLeadership(b);
      const t0 = performance.now();
      a.actor.stop();
      times.push((await won) - t0);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await Promise.all(stores.map((s) => s.close()));
    }
  }
  return times;
}

async function reachable(subject: Subject): Promise<string | undefined> {
  const store = subject.store();
  try {
    await Promise.race([store.read('fenced-leader/bench-probe'), sleep(3000).then(() => Promise.reject(new Error('timed out')))]);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    await store.close().catch(() => {});
  }
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

export async function main(): Promise<void> {
  const runId = `bench_${process.pid}_${randomBytes(3).toString('hex')}`;
  const fileDir = await mkdtemp(join(tmpdir(), 'fl-bench-'));
  const rows: Row[] = [];
  const bound = TEST_TIMING.leaseDurationMs + TEST_TIMING.retryPeriodMs;
  try {
    for (const subject of subjects(runId, fileDir)) {
      const missing = await reachable(subject);
      if (missing) {
        console.log(`!!! ${subject.name}: skipped, server unreachable (${missing})`);
        continue;
      }
      try {
        const latency = await renewalLatency(subject);
        const handoffs = await handoff(subject);
        const failovers = await failover(subject);
        rows.push({
          backend: subject.name,
          ...latency,
          handoffP50: quantile(handoffs, 0.5),
          handoffMax: Math.max(...handoffs),
          failoverP50: quantile(failovers, 0.5),
          failoverMax: Math.max(...failovers),
          failoverRatioMax: Math.max(...failovers) / bound,
        });
        console.log(`${subject.name}: handoffs ${handoffs.map((t) => fmt(t, 1)).join(' ')} ms; failovers ${failovers.map((t) => fmt(t, 0)).join(' ')} ms`);
      } finally {
        await subject.cleanup();
      }
    }
  } finally {
    await rm(fileDir, { recursive: true, force: true });
  }

  const ms = (n: number | undefined) => (n === undefined ? '—' : `${fmt(n, 3)} ms`);
  const ratio = (a: number, b: number | undefined) => (b === undefined ? '—' : fmt(a / b));
  console.log(`\nrenewal latency, ${RENEWALS} interleaved samples of each after ${WARMUP} warm-up rounds (issue 5 target: renew ÷ bare ≤ 1.2)`);
  console.log(`  renew       = store.compareAndSet renewing the lease record, AbortSignal built before the clock starts (the store's cost)`);
  console.log(`  bare write  = Redis SET / PostgreSQL prepared single-row UPDATE / etcd put / file write+rename, same JSON, plain client`);
  console.log(`  hand CAS    = Redis EVALSHA of HGET-compare-HSET / PostgreSQL prepared UPDATE … WHERE version = $1 / etcd txn(mod_revision ==) put`);
  console.log(`  own script  = Redis only: the store's own compare-and-set script, EVALSHA from the plain client (renew ÷ own = the store's client-side cost)`);
  console.log(`  renew+signal = renew with new AbortController().signal inside the timed region (what the elector pays per call for a store without reusableSignal)\n`);
  printTable(
    ['backend', 'renew p50', 'renew p99', 'bare p50', 'bare p99', '÷bare p50', '÷bare p99', 'CAS p50', 'CAS p99', '÷CAS p50', '÷CAS p99', 'own p50', '÷own p50', 'renew+signal p50', 'p99', '÷bare p50', '÷bare p99'],
    rows.map((r) => [
      r.backend,
      ms(r.renew.p50),
      ms(r.renew.p99),
      ms(r.bareWrite.p50),
      ms(r.bareWrite.p99),
      ratio(r.renew.p50, r.bareWrite.p50),
      ratio(r.renew.p99, r.bareWrite.p99),
      ms(r.handCas?.p50),
      ms(r.handCas?.p99),
      ratio(r.renew.p50, r.handCas?.p50),
      ratio(r.renew.p99, r.handCas?.p99),
      ms(r.ownScript?.p50),
      ratio(r.renew.p50, r.ownScript?.p50),
      ms(r.renewFreshSignal.p50),
      ms(r.renewFreshSignal.p99),
      ratio(r.renewFreshSignal.p50, r.bareWrite.p50),
      ratio(r.renewFreshSignal.p99, r.bareWrite.p99),
    ]),
  );
  const spread = (xs: number[]) => (xs.length === 0 ? '—' : `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))} (median ${fmt(quantile(xs, 0.5))})`);
  console.log(`\nrenew p50 ÷ baseline p50 in each of ${BLOCKS} consecutive slices of the samples (how much the ratio moves with load):`);
  for (const r of rows) console.log(`  ${r.backend.padEnd(8)} ÷bare ${spread(r.blockRatios.bare)}   ÷CAS ${spread(r.blockRatios.cas)}`);
  console.log(`\nhandoff: resign() → follower leads (timings ${Object.values(HANDOFF_TIMING).join('/')} ms; target ≤ 50 ms)`);
  console.log(`failover: leader crash → follower leads (timings ${Object.values(TEST_TIMING).join('/')} ms), ÷ bound ${bound} ms (target ≤ 1.05)\n`);
  printTable(
    ['backend', 'handoff p50', 'handoff max', 'failover p50', 'failover max', 'max ÷ bound'],
    rows.map((r) => [
      r.backend,
      `${fmt(r.handoffP50, 1)} ms`,
      `${fmt(r.handoffMax, 1)} ms`,
      `${fmt(r.failoverP50, 0)} ms`,
      `${fmt(r.failoverMax, 0)} ms`,
      fmt(r.failoverRatioMax, 3),
    ]),
  );
}

function printTable(header: string[], table: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of table) console.log(line(row));
}
