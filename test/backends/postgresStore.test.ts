import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresLeaseStore, postgresLeaseStoreDdl } from '../../src/adapters/PostgresLeaseStore.js';
import { testAdapter } from '../../src/adapters/testAdapter.js';
import { CasMismatchError, StoreTimeoutError, StoreUnavailableError } from '../../src/errors.js';
import { TcpProxy } from '../helpers/tcpProxy.js';
import { FreezeProxy, sleep, within } from './freezeProxy.js';
import { CLOSED_PORT, DATABASE_URL, probePostgres, RUN_ID, requireUnderCi } from './servers.js';

const server = await probePostgres();
const schema = `fl_test_${RUN_ID}`;
const customSchema = `fl_custom_${RUN_ID}`;

if (!requireUnderCi('PostgreSQL', server)) {
  testAdapter('postgres', {
    skip: !server.ok && server.reason,
    create: () => new PostgresLeaseStore({ connectionString: DATABASE_URL, schema }),
  });
}

describe.skipIf(!server.ok)('postgres store specifics', () => {
  let store: PostgresLeaseStore;
  let admin: pg.Client;

  beforeAll(async () => {
    store = new PostgresLeaseStore({ connectionString: DATABASE_URL, schema, table: 'entries' });
    admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
  });

  afterAll(async () => {
    await store?.close();
    // Dropping the run's schemas removes the conformance suite's rows too.
    await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin?.query(`DROP SCHEMA IF EXISTS "${customSchema}" CASCADE`);
    await admin?.end();
  });

  it('creates its table idempotently, also in a custom schema and from several stores at once', async () => {
    const stores = Array.from({ length: 4 }, () => new PostgresLeaseStore({ connectionString: DATABASE_URL, schema: customSchema, table: 'leases' }));
    try {
      const versions = await Promise.all(stores.map((s, i) => s.compareAndSet(`k${i}`, null, { i })));
      expect(new Set(versions).size).toBe(4);
      const { rows } = await admin.query(
        `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'leases' ORDER BY ordinal_position`,
        [customSchema],
      );
      expect(rows).toEqual([
        { column_name: 'key', data_type: 'text' },
        { column_name: 'value', data_type: 'jsonb' },
        { column_name: 'version', data_type: 'bigint' },
        { column_name: 'written_at', data_type: 'timestamp with time zone' },
      ]);
      // Applying the documented DDL again by hand is harmless.
      await admin.query(postgresLeaseStoreDdl(customSchema, 'leases'));
      await admin.query(postgresLeaseStoreDdl(customSchema, 'leases'));
      const fresh = new PostgresLeaseStore({ connectionString: DATABASE_URL, schema: customSchema, table: 'leases' });
      expect((await fresh.read('k0'))?.value).toEqual({ i: 0 });
      await fresh.close();
      const triggers = await admin.query(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = $1::regclass`, [`"${customSchema}"."leases"`]);
      expect(triggers.rows[0].n).toBe(1);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('rejects schema and table names that would need quoting', () => {
    expect(() => new PostgresLeaseStore({ schema: 'Bad"; drop table x; --' })).toThrow(TypeError);
    expect(() => new PostgresLeaseStore({ table: 'Entries' })).toThrow(/must match/);
    expect(() => postgresLeaseStoreDdl('ok', '1bad')).toThrow(TypeError);
  });

  it('takes versions from a sequence, so they keep rising for a deleted and recreated key', async () => {
    const v1 = await store.compareAndSet('gone', null, { n: 1 });
    await admin.query(`DELETE FROM "${schema}".entries WHERE key = 'gone'`);
    const v2 = await store.compareAndSet('gone', null, { n: 2 });
    expect(BigInt(v2)).toBeGreaterThan(BigInt(v1));
    await expect(store.compareAndSet('gone', v1, { n: 3 })).rejects.toSatisfy(CasMismatchError.is);
  });

  it('stamps writes and reads with the PostgreSQL clock, plausibly close to this host', async () => {
    const before = Date.now();
    await store.compareAndSet('clock', null, { n: 1 });
    const entry = await store.read('clock');
    const after = Date.now();
    expect(entry!.readAtMs!).toBeGreaterThanOrEqual(entry!.writtenAtMs!);
    expect(Math.abs(entry!.writtenAtMs! - before)).toBeLessThan(5000);
    expect(Math.abs(entry!.readAtMs! - after)).toBeLessThan(5000);
  });

  it('notifies watchers in another store instance, and only after the transaction commits', async () => {
    const other = new PostgresLeaseStore({ connectionString: DATABASE_URL, schema });
    try {
      let calls = 0;
      other.watch('cross', () => {
        calls += 1;
      });
      // One call once LISTEN is up (a write made before that would otherwise go unnoticed); then one per commit.
      await expect.poll(() => calls).toBe(1);
      await new Promise((r) => setTimeout(r, 100));
      calls = 0;
      await admin.query('BEGIN');
      await admin.query(`INSERT INTO ${`"${schema}".entries`} (key, value, version) VALUES ('cross', '1', nextval('"${schema}"."entries_version_seq"'))`);
      await new Promise((r) => setTimeout(r, 200));
      expect(calls).toBe(0);
      await admin.query('COMMIT');
      await expect.poll(() => calls).toBe(1);
      const entry = await store.read('cross');
      await store.commit([{ key: 'cross', expectedVersion: entry!.version, value: 2 }]);
      await expect.poll(() => calls).toBe(2);
    } finally {
      await other.close();
    }
  });

  it('lets exactly one of many concurrent multi-key commits win, without deadlocks', async () => {
    const va = await store.compareAndSet('tx-a', null, 0);
    const vb = await store.compareAndSet('tx-b', null, 0);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => {
        const ops = [
          { key: 'tx-a', expectedVersion: va, value: i },
          { key: 'tx-b', expectedVersion: vb, value: i },
          { key: `tx-new-${i % 2}`, expectedVersion: null, value: i },
        ];
        return store.commit(i % 2 ? ops.reverse() : ops);
      }),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(CasMismatchError.is(r.reason)).toBe(true);
    const a = await store.read('tx-a');
    const b = await store.read('tx-b');
    expect(a?.value).toBe(b?.value);
  });

  it('rejects promptly with the abort reason while blocked on a lock, and rolls the commit back', async () => {
    const v = await store.compareAndSet('locked', null, { n: 1 });
    const blocker = new pg.Client({ connectionString: DATABASE_URL });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query(`SELECT 1 FROM ${`"${schema}".entries`} WHERE key = 'locked' FOR UPDATE`);
      const controller = new AbortController();
      const pending = store.commit([{ key: 'locked', expectedVersion: v, value: { n: 2 } }], { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('caller gave up')), 100);
      await expect(pending).rejects.toThrow('caller gave up');

      const timedOut = new PostgresLeaseStore({ connectionString: DATABASE_URL, schema, timeoutMs: 500 });
      const err = await timedOut.commit([{ key: 'locked', expectedVersion: v, value: { n: 3 } }]).catch((e: unknown) => e);
      expect(StoreTimeoutError.is(err)).toBe(true);
      await timedOut.close();

      await blocker.query('COMMIT');
      // Both abandoned transactions lost their connection before committing: nothing was applied.
      await new Promise((r) => setTimeout(r, 300));
      expect(await store.read('locked')).toMatchObject({ value: { n: 1 }, version: v });
    } finally {
      await blocker.end();
    }
  });

  it('rejects (rather than hangs) while the server is unreachable', async () => {
    const url = new URL(DATABASE_URL);
    url.port = String(CLOSED_PORT);
    const unreachable = new PostgresLeaseStore({ connectionString: url.toString(), schema, timeoutMs: 2000 });
    try {
      const started = Date.now();
      const err = await unreachable.read('x').catch((e: unknown) => e);
      expect(StoreUnavailableError.is(err) || StoreTimeoutError.is(err)).toBe(true);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await unreachable.close();
    }
  });

  it('leaves a caller-supplied pool open on close', async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL });
    const borrowed = new PostgresLeaseStore({ pool, schema });
    await borrowed.compareAndSet('borrowed', null, 1);
    borrowed.watch('borrowed', () => {});
    await borrowed.close();
    expect((await pool.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await pool.end();
  });

});

describe.skipIf(!server.ok)('postgres store under concurrency and partitions', () => {
  const pgPort = Number(new URL(DATABASE_URL).port || 5432);
  const viaPort = (port: number) => {
    const u = new URL(DATABASE_URL);
    u.hostname = '127.0.0.1';
    u.port = String(port);
    return u.toString();
  };
  let admin: pg.Client;
  const schemas: string[] = [];
  const freshSchema = (label: string) => {
    const s = `fl_${label}_${RUN_ID}`;
    schemas.push(s);
    return s;
  };

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
  });
  afterAll(async () => {
    for (const s of schemas) await admin?.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch(() => {});
    await admin?.end();
  });

  it('many concurrent commits over overlapping keys, absent and present, in opposite orders: no deadlock, only mismatches', async () => {
    const s = freshSchema('overlap');
    const stores = Array.from({ length: 4 }, () => new PostgresLeaseStore({ connectionString: DATABASE_URL, schema: s, timeoutMs: 10_000 }));
    try {
      await stores[0]!.compareAndSet('a', null, 0);
      const keys = ['a', 'b', 'c', 'd'];
      const errors: unknown[] = [];
      let applied = 0;
      await Promise.all(
        Array.from({ length: 80 }, async (_, i) => {
          const store = stores[i % stores.length]!;
          const [k1, k2] = i % 2 ? [keys[i % 4]!, keys[(i + 1) % 4]!] : [keys[(i + 1) % 4]!, keys[i % 4]!];
          try {
            const [e1, e2] = [await store.read(k1), await store.read(k2)];
            await store.commit([
              { key: k1, expectedVersion: e1?.version ?? null, value: { by: i } },
              { key: k2, expectedVersion: e2?.version ?? null, value: { by: i } },
            ]);
            applied++;
          } catch (err) {
            if (!CasMismatchError.is(err)) errors.push(err);
          }
        }),
      );
      expect(errors).toEqual([]);
      expect(applied).toBeGreaterThan(0);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  }, 60_000);

  it('commit is all-or-nothing with check-only "must be absent" ops under concurrency (no write skew)', async () => {
    // Commit A: "y must be absent" (check only), create x. Commit B: "x must be absent" (check only), create y.
    // In any serial order the second one fails with CasMismatchError. Absent rows cannot be locked by
    // SELECT ... FOR UPDATE: without a lock per key both transactions pass their checks and both commit.
    const s = freshSchema('skew');
    const proxy = await TcpProxy.start({ targetPort: pgPort });
    const a = new PostgresLeaseStore({ connectionString: viaPort(proxy.port), schema: s });
    const b = new PostgresLeaseStore({ connectionString: viaPort(proxy.port), schema: s });
    try {
      await a.read('warm');
      await b.read('warm');
      proxy.delay(20); // widen the window between each transaction's checks and its COMMIT
      let bothWon = 0;
      for (let i = 0; i < 5; i++) {
        const x = `x${i}`;
        const y = `y${i}`;
        const results = await Promise.allSettled([
          a.commit([
            { key: y, expectedVersion: null },
            { key: x, expectedVersion: null, value: 'A' },
          ]),
          b.commit([
            { key: x, expectedVersion: null },
            { key: y, expectedVersion: null, value: 'B' },
          ]),
        ]);
        if (results.every((r) => r.status === 'fulfilled')) bothWon += 1;
        for (const r of results) if (r.status === 'rejected') expect(CasMismatchError.is(r.reason)).toBe(true);
      }
      expect(bothWon).toBe(0);
    } finally {
      proxy.delay(0);
      await a.close();
      await b.close();
      await proxy.close();
    }
  });

  it('close() returns within timeoutMs even when the server stops answering (partition, half-open TCP)', async () => {
    const proxy = await FreezeProxy.start(pgPort);
    const store = new PostgresLeaseStore({ connectionString: viaPort(proxy.port), schema: freshSchema('close'), timeoutMs: 1000 });
    try {
      await store.compareAndSet('k', null, 1);
      await store.read('k'); // dedicated connection up
      const off = store.watch('k', () => {}); // LISTEN connection up
      await sleep(300);
      proxy.freeze();
      const started = performance.now();
      const outcome = await within(store.close(), 5000);
      off();
      expect(outcome).not.toBe('timeout');
      expect(performance.now() - started).toBeLessThan(2500);
    } finally {
      await proxy.close();
    }
  });

  it('several stores creating one fresh schema at once all succeed', async () => {
    const s = freshSchema('ddl');
    const stores = Array.from({ length: 6 }, () => new PostgresLeaseStore({ connectionString: DATABASE_URL, schema: s }));
    try {
      const results = await Promise.allSettled(stores.map((st, i) => st.commit([{ key: `k${i}`, expectedVersion: null, value: i }])));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    } finally {
      await Promise.all(stores.map((st) => st.close()));
    }
  });

  it('versions never repeat after TRUNCATE by an operator', async () => {
    const s = freshSchema('trunc');
    const store = new PostgresLeaseStore({ connectionString: DATABASE_URL, schema: s });
    try {
      const v1 = await store.compareAndSet('t', null, 1);
      await admin.query(`TRUNCATE "${s}".entries RESTART IDENTITY`);
      const v2 = await store.compareAndSet('t', null, 2);
      expect(v2).not.toBe(v1);
      await expect(store.compareAndSet('t', v1, 3)).rejects.toSatisfy(CasMismatchError.is);
    } finally {
      await store.close();
    }
  });

  it('rejects a value with U+0000 as a TypeError before any statement, not as StoreUnavailableError', async () => {
    // jsonb cannot hold it; reported as an outage, the elector would retry it forever.
    const proxy = await TcpProxy.start({ targetPort: pgPort });
    const store = new PostgresLeaseStore({ connectionString: viaPort(proxy.port), schema: freshSchema('nul'), timeoutMs: 1000 });
    try {
      await store.read('warm');
      proxy.cut('blackhole'); // a statement sent now would time out instead
      const err = await store.compareAndSet('nul', null, { s: 'a\u0000b' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TypeError);
      expect(StoreUnavailableError.is(err)).toBe(false);
      expect((err as Error).message).toMatch(/U\+0000/);
    } finally {
      proxy.heal();
      await store.close();
      await proxy.close();
    }
  });
});
