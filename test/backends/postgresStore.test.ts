import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresLeaseStore, postgresLeaseStoreDdl } from '../../src/adapters/PostgresLeaseStore.js';
import { testAdapter } from '../../src/adapters/testAdapter.js';
import { CasMismatchError, StoreTimeoutError, StoreUnavailableError } from '../../src/errors.js';
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
      await new Promise((r) => setTimeout(r, 300));
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
