import { createHash } from 'node:crypto';
import pg from 'pg';
import { CasMismatchError, StoreTimeoutError, StoreUnavailableError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { boundCall, validateTimeoutMs } from './callBounds.js';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreCapabilities, StoreEntry, Unsubscribe } from './LeaseStore.js';
import { assertStorableJson, assertStorableKey, closedError } from './storable.js';

export interface PostgresLeaseStoreOptions {
  /** Used when no `pool` is given. Default `postgres://postgres@127.0.0.1:5432/postgres`. */
  readonly connectionString?: string;
  /** An existing pool. The store never ends it (the caller owns it); the LISTEN connection reuses its settings. */
  readonly pool?: pg.Pool;
  /** Default `fenced_leader`. Must match /^[a-z_][a-z0-9_]*$/. */
  readonly schema?: string;
  /** Default `entries`. Must match /^[a-z_][a-z0-9_]*$/. */
  readonly table?: string;
  /**
   * Run `postgresLeaseStoreDdl` on first use when the table or its trigger is missing. Default true; set false when
   * the application's role may not create objects and the DDL is applied by migrations instead.
   */
  readonly createSchema?: boolean;
  /** Upper bound for one call, waiting for a pooled connection included. Default 5000 ms. */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;
// Leaves room for the suffixes below within PostgreSQL's 63-byte identifier limit.
const MAX_IDENTIFIER_LENGTH = 48;

function identifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name) || name.length > MAX_IDENTIFIER_LENGTH) {
    throw new TypeError(
      `PostgresLeaseStore ${what} "${name}" must match ${IDENTIFIER} and be at most ${MAX_IDENTIFIER_LENGTH} characters.`,
    );
  }
  return `"${name}"`;
}

/** The LISTEN/NOTIFY channel of a table: `schema.table` (at most 63 bytes, as NOTIFY requires). */
export function postgresLeaseStoreChannel(schema: string, table: string): string {
  const channel = `${schema}.${table}`;
  if (channel.length > 63) throw new TypeError(`PostgresLeaseStore channel "${channel}" exceeds 63 bytes; shorten the schema or table name.`);
  return channel;
}

/**
 * The DDL the store applies on first use (idempotent; serialised across processes by an advisory lock in the store).
 * Apply it from migrations instead and pass `createSchema: false` where the application role may not create objects.
 *
 * - versions come from a sequence, so they never repeat, even for a key deleted and recreated;
 * - the trigger NOTIFYs on every change, in the writing transaction, so watchers hear of commits only (and of writes
 *   made by hand, too). NOTIFY payloads are limited to 8000 bytes: for an absurdly long key the payload is empty,
 *   which listeners take as "recheck everything".
 *
 * Requires PostgreSQL 11 or later (EXECUTE FUNCTION).
 */
export function postgresLeaseStoreDdl(schema: string, table: string): string {
  const s = identifier(schema, 'schema');
  const t = identifier(table, 'table');
  const channel = postgresLeaseStoreChannel(schema, table);
  const qualified = `${s}.${t}`;
  const sequence = `${s}."${table}_version_seq"`;
  const fn = `${s}."${table}_notify"`;
  return `CREATE SCHEMA IF NOT EXISTS ${s};
CREATE SEQUENCE IF NOT EXISTS ${sequence};
CREATE TABLE IF NOT EXISTS ${qualified} (
  key text PRIMARY KEY,
  value jsonb NOT NULL,
  version bigint NOT NULL,
  written_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $fl$
DECLARE
  changed text := CASE WHEN TG_OP = 'DELETE' THEN OLD.key ELSE NEW.key END;
BEGIN
  PERFORM pg_notify('${channel}', CASE WHEN octet_length(changed) < 7900 THEN changed ELSE '' END);
  RETURN NULL;
END
$fl$;
DO $fl$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '${table}_notify' AND tgrelid = '${qualified}'::regclass) THEN
    CREATE TRIGGER "${table}_notify" AFTER INSERT OR UPDATE OR DELETE ON ${qualified}
      FOR EACH ROW EXECUTE FUNCTION ${fn}();
  END IF;
END
$fl$;`;
}

// Deadlock and serialisation failures abort the whole transaction, so retrying cannot apply anything twice.
const RETRYABLE = new Set(['40P01', '40001']);
const COMMIT_ATTEMPTS = 3;

/**
 * A store in one PostgreSQL table. compareAndSet is one conditional statement; commit is one transaction that locks
 * the existing rows in key order (so concurrent commits cannot deadlock on them), compares, writes and commits, or
 * rolls back on the first mismatch. Times come from the server: `written_at` is the writing transaction's now(),
 * `readAtMs` is clock_timestamp() at the read.
 */
export class PostgresLeaseStore implements LeaseStore {
  readonly kind = 'postgres';
  readonly capabilities: StoreCapabilities = { watch: true, storeClock: true, durable: true, multiProcess: true, reusableSignal: true };
  readonly channel: string;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly schema: string;
  private readonly table: string;
  private readonly qualified: string;
  private readonly sequence: string;
  private readonly statements: { read: Prepared; create: Prepared; update: Prepared };
  private readonly createSchema: boolean;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private schemaReady: Promise<void> | undefined;
  private schemaDone = false;
  /** The dedicated connection for single statements (read, compareAndSet), used whenever it is idle. */
  private hot: pg.Client | undefined;
  private hotBusy = false;
  private hotConnecting = false;
  private readonly watchers = new Map<string, Set<() => void>>();
  private listener: pg.Client | undefined;
  private listenerRetry: ReturnType<typeof setTimeout> | undefined;
  private readonly poolClients = new Set<pg.PoolClient>();
  private closed = false;

  constructor(options: PostgresLeaseStoreOptions = {}) {
    this.schema = options.schema ?? 'fenced_leader';
    this.table = options.table ?? 'entries';
    this.qualified = `${identifier(this.schema, 'schema')}.${identifier(this.table, 'table')}`;
    this.sequence = `${identifier(this.schema, 'schema')}."${this.table}_version_seq"`;
    this.channel = postgresLeaseStoreChannel(this.schema, this.table);
    // Built once: the renewal path only binds values to a named statement.
    const cas = (write: string) =>
      new Prepared(`WITH w AS (${write})
      SELECT (SELECT version::text FROM w) AS written, (SELECT version::text FROM ${this.qualified} WHERE key = $1) AS seen`);
    this.statements = {
      read: new Prepared(`SELECT value::text AS value, version::text AS version,
                  (extract(epoch FROM written_at) * 1000)::float8 AS written_at_ms,
                  (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS read_at_ms
             FROM ${this.qualified} WHERE key = $1`),
      // Both compare-and-set forms report the version they saw in the same statement, so a mismatch costs no second
      // round trip. The trigger NOTIFYs on every write, renewals included (see postgresLeaseStoreDdl).
      create: cas(`INSERT INTO ${this.qualified} (key, value, version, written_at)
             VALUES ($1, $2::jsonb, nextval('${this.sequence}'), now())
           ON CONFLICT (key) DO NOTHING RETURNING version`),
      update: cas(`UPDATE ${this.qualified} SET value = $2::jsonb, version = nextval('${this.sequence}'), written_at = now()
            WHERE key = $1 AND version::text = $3 RETURNING version`),
    };
    this.createSchema = options.createSchema ?? true;
    this.timeoutMs = validateTimeoutMs('PostgresLeaseStore', options.timeoutMs, 5000);
    this.logger = options.logger ?? silentLogger;
    if (options.pool) {
      this.pool = options.pool;
      this.ownsPool = false;
    } else {
      this.pool = new pg.Pool({
        connectionString: options.connectionString ?? 'postgres://postgres@127.0.0.1:5432/postgres',
        connectionTimeoutMillis: this.timeoutMs,
        // Server-side bounds, so an abandoned statement or transaction cannot hold row locks for long.
        statement_timeout: this.timeoutMs,
        idle_in_transaction_session_timeout: Math.max(2 * this.timeoutMs, 10_000),
      });
      this.ownsPool = true;
    }
    // An idle pooled connection that dies emits 'error' on the pool; unhandled, that would crash the process.
    this.pool.on('error', this.onPoolError);
    if (this.ownsPool) {
      // Known so that close() can destroy their sockets when the server no longer answers.
      this.pool.on('connect', (client) => this.poolClients.add(client));
      this.pool.on('remove', (client) => this.poolClients.delete(client));
    }
  }

  async read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    assertStorableKey(key);
    const { rows } = await this.withStatement('read', options, (client) =>
      client.query<{ value: string; version: string; written_at_ms: number; read_at_ms: number }>(this.statements.read.with([key])),
    );
    const row = rows[0];
    if (!row) return undefined;
    return { value: JSON.parse(row.value) as Json, version: row.version, writtenAtMs: row.written_at_ms, readAtMs: row.read_at_ms };
  }

  async compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    const json = JSON.stringify(value);
    // jsonb and text cannot hold U+0000 (nor unpaired surrogates): a caller error, not an outage to retry.
    assertStorableJson(key, json);
    const query =
      expectedVersion === null ? this.statements.create.with([key, json]) : this.statements.update.with([key, json, expectedVersion]);
    const { rows } = await this.withStatement('compareAndSet', options, (client) =>
      client.query<{ written: string | null; seen: string | null }>(query),
    );
    const row = rows[0]!;
    if (row.written !== null) return row.written;
    // A create that lost to a concurrent insert still in flight at our snapshot sees no row; read what won.
    const actual = row.seen ?? (expectedVersion === null ? ((await this.read(key, options))?.version ?? null) : null);
    throw new CasMismatchError(key, expectedVersion, actual);
  }

  async commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    if (ops.length === 0) return [];
    // A key written twice in one commit keeps its last value; each value is serialised (and checked) once.
    const lastJson = new Map<string, string>();
    for (const op of ops) {
      if (op.value === undefined) assertStorableKey(op.key);
      else {
        const json = JSON.stringify(op.value);
        assertStorableJson(op.key, json);
        lastJson.set(op.key, json);
      }
    }
    return this.withClient('commit', options, async (client) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.commitOnce(client, ops, lastJson);
        } catch (err) {
          if (CasMismatchError.is(err)) throw err;
          await client.query('ROLLBACK').catch(() => {});
          if (attempt < COMMIT_ATTEMPTS && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
          throw err;
        }
      }
    });
  }

  watch(key: string, onChange: () => void): Unsubscribe {
    if (this.closed) return () => {};
    let set = this.watchers.get(key);
    if (!set) {
      set = new Set();
      this.watchers.set(key, set);
    }
    const listener = () => onChange();
    set.add(listener);
    this.ensureListener();
    return () => {
      const current = this.watchers.get(key);
      if (current?.delete(listener) && current.size === 0) this.watchers.delete(key);
    };
  }

  /**
   * Ends the LISTEN connection, the dedicated connection and (when the store created it) the pool, together, each
   * within `timeoutMs`: a connection whose server no longer answers (a partition, a half-open socket) would make
   * pg's end() wait forever for a goodbye, so its socket is destroyed once the time is up.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchers.clear();
    clearTimeout(this.listenerRetry);
    const listener = this.listener;
    this.listener = undefined;
    const hot = this.hot;
    this.hot = undefined;
    const ends: Promise<void>[] = [];
    if (listener) ends.push(this.endWithin(listener.end(), [listener]));
    if (hot) ends.push(this.endWithin(hot.end(), [hot]));
    if (this.ownsPool) ends.push(this.endWithin(this.pool.end(), this.poolClients));
    else this.pool.off('error', this.onPoolError);
    await Promise.all(ends);
  }

  private async endWithin(ending: Promise<unknown>, clients: Iterable<pg.ClientBase>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const gaveUp = await Promise.race([
      ending.then(
        () => false,
        () => false,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), this.timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!gaveUp) return;
    this.logger.warn({ timeoutMs: this.timeoutMs }, 'postgres store: a connection did not close in time; destroying its socket');
    for (const client of [...clients]) (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }

  private async commitOnce(client: pg.PoolClient, ops: readonly CommitOp[], lastJson: ReadonlyMap<string, string>): Promise<string[]> {
    const keys = [...new Set(ops.map((op) => op.key))].sort();
    // Row locks cannot cover a key that is absent, so two commits each requiring a key the other creates to be
    // absent would both pass their checks (write skew). A transaction-level advisory lock per key, taken before the
    // checks and in one global order (so commits cannot deadlock on them), serialises every commit that shares a key.
    // A separate statement from the SELECT below, so that the SELECT's snapshot is taken once the locks are held.
    // compareAndSet takes none: it reads and writes its one key in one statement, so it cannot take part in a skew.
    const lockIds = [...new Set(keys.map((key) => this.lockId(key)))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    await client.query(`BEGIN; SELECT pg_advisory_xact_lock(id) FROM unnest('{${lockIds.join(',')}}'::bigint[]) AS l(id)`);
    const { rows } = await client.query<{ key: string; version: string }>(
      `SELECT key, version::text AS version FROM ${this.qualified} WHERE key = ANY($1::text[]) ORDER BY key FOR UPDATE`,
      [keys],
    );
    const actual = new Map(rows.map((r) => [r.key, r.version]));
    for (const op of ops) {
      const found = actual.get(op.key) ?? null;
      if (found !== op.expectedVersion) {
        await client.query('ROLLBACK');
        throw new CasMismatchError(op.key, op.expectedVersion, found);
      }
    }
    // Every op on a key written twice reports the resulting version.
    const written = new Map<string, string>();
    for (const key of [...lastJson.keys()].sort()) {
      const json = lastJson.get(key)!;
      const result = actual.has(key)
        ? await client.query<{ version: string }>(
            `UPDATE ${this.qualified} SET value = $2::jsonb, version = nextval('${this.sequence}'), written_at = now()
              WHERE key = $1 RETURNING version::text AS version`,
            [key, json],
          )
        : await client.query<{ version: string }>(
            `INSERT INTO ${this.qualified} (key, value, version, written_at)
               VALUES ($1, $2::jsonb, nextval('${this.sequence}'), now())
             ON CONFLICT (key) DO NOTHING RETURNING version::text AS version`,
            [key, json],
          );
      const version = result.rows[0]?.version;
      if (version === undefined) {
        // Absent rows cannot be locked: a concurrent commit created this key after our SELECT.
        await client.query('ROLLBACK');
        const { rows: now } = await client.query<{ version: string }>(
          `SELECT version::text AS version FROM ${this.qualified} WHERE key = $1`,
          [key],
        );
        const op = ops.find((o) => o.key === key)!;
        throw new CasMismatchError(key, op.expectedVersion, now[0]?.version ?? null);
      }
      written.set(key, version);
    }
    await client.query('COMMIT');
    return ops.map((op) => written.get(op.key) ?? (op.expectedVersion as string));
  }

  /** The advisory lock id of a key: 64 bits of a hash of schema, table and key (a collision only serialises more). */
  private lockId(key: string): bigint {
    return createHash('sha256').update(`fenced-leader\0${this.schema}.${this.table}\0${key}`).digest().readBigInt64BE(0);
  }

  /**
   * Runs one statement on the dedicated connection when it is idle (no pool checkout: the renewal path), else on a
   * pooled connection, so concurrent calls never queue behind each other. Same bounds as `withClient`: an abandoned
   * call destroys the connection it was using.
   */
  private withStatement<T>(operation: string, options: CallOptions | undefined, fn: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const hot = this.schemaDone && !this.closed && !options?.signal?.aborted ? this.takeHot() : undefined;
    if (!hot) return this.withClient(operation, options, fn);
    return boundCall(
      options?.signal,
      this.timeoutMs,
      () => new StoreTimeoutError(`postgres ${operation}`, this.timeoutMs),
      (scope) => {
        // Only a statement still running makes the connection unusable. Once it has answered, the connection is
        // healthy and may already serve the next call: an abandon noticed after that (an abort that raced the
        // reply) must not close it under that call.
        let answered = false;
        scope.onAbandon(() => {
          if (!answered) this.dropHot(hot);
        });
        return fn(hot).then(
          (result) => {
            answered = true;
            if (this.hot === hot) this.hotBusy = false;
            return result;
          },
          (err: unknown) => {
            answered = true;
            // A statement error (constraint, timeout) leaves the connection usable; a broken socket emits 'error'.
            if (this.hot === hot) this.hotBusy = false;
            throw toStoreError(err);
          },
        );
      },
    );
  }

  /** The dedicated connection if it is connected and idle (marking it busy); otherwise starts connecting it. */
  private takeHot(): pg.Client | undefined {
    const hot = this.hot;
    if (hot && !this.hotBusy) {
      this.hotBusy = true;
      return hot;
    }
    if (!hot && !this.hotConnecting) this.connectHot();
    return undefined;
  }

  /** Connects the dedicated connection in the background; calls use the pool meanwhile. Retried by the next call. */
  private connectHot(): void {
    this.hotConnecting = true;
    const client = new pg.Client(this.pool.options);
    const lost = (err: unknown) => {
      this.logger.debug?.({ err }, 'postgres store: dedicated connection lost');
      this.dropHot(client);
    };
    client.on('error', lost);
    client.on('end', () => lost(new Error('connection ended')));
    client.connect().then(
      () => {
        this.hotConnecting = false;
        if (this.closed) client.end().catch(() => {});
        else {
          this.hot = client;
          this.hotBusy = false;
        }
      },
      (err: unknown) => {
        this.hotConnecting = false;
        this.logger.debug?.({ err }, 'postgres store: dedicated connection failed; using the pool');
        client.end().catch(() => {});
      },
    );
  }

  private dropHot(client: pg.Client): void {
    if (this.hot === client) {
      this.hot = undefined;
      this.hotBusy = false;
    }
    // With a query in flight pg destroys the socket rather than waiting for the server.
    client.end().catch(() => {});
  }

  /**
   * Runs `fn` on a pooled connection within `timeoutMs` and the caller's signal. When the call is abandoned the
   * connection is destroyed rather than returned, which also rolls back a transaction still open on it. An
   * abandoned single statement may still be applied by the server: that is the ambiguous outcome callers handle.
   */
  private withClient<T>(operation: string, options: CallOptions | undefined, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(closedError('postgres', 'PostgresLeaseStore'));
    return boundCall(
      options?.signal,
      this.timeoutMs,
      () => new StoreTimeoutError(`postgres ${operation}`, this.timeoutMs),
      async (scope) => {
        try {
          await this.ensureSchema();
          const client = await this.pool.connect();
          let released = false;
          const release = (destroy: boolean) => {
            if (released) return;
            released = true;
            client.release(destroy ? new Error(`fenced-leader: ${operation} abandoned`) : undefined);
          };
          if (scope.abandoned) {
            release(false);
            throw new Error('abandoned');
          }
          scope.onAbandon(() => release(true));
          try {
            return await fn(client);
          } finally {
            release(false);
          }
        } catch (err) {
          throw toStoreError(err);
        }
      },
    );
  }

  private ensureSchema(): Promise<void> {
    if (!this.createSchema) {
      this.schemaDone = true;
      return Promise.resolve();
    }
    this.schemaReady ??= this.applyDdl().then(
      () => {
        this.schemaDone = true;
      },
      (err: unknown) => {
        this.schemaReady = undefined;
        throw err;
      },
    );
    return this.schemaReady;
  }

  private async applyDdl(): Promise<void> {
    const client = await this.pool.connect();
    try {
      // Skip the DDL (and its privileges) when another process already created everything.
      const { rows } = await client.query<{ ready: boolean }>(
        `SELECT to_regclass($1) IS NOT NULL
            AND EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = $2 AND tgrelid = to_regclass($1)) AS ready`,
        [this.qualified, `${this.table}_notify`],
      );
      if (rows[0]?.ready) return;
      await client.query('BEGIN');
      // Concurrent CREATE ... IF NOT EXISTS can still collide on the catalogs' unique indexes; serialise them.
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('fenced-leader ddl'))`);
      await client.query(postgresLeaseStoreDdl(this.schema, this.table));
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * One dedicated connection LISTENs for the table's channel. When it drops it is re-established with backoff, and
   * every watcher is called once it is back, since notifications sent in between are lost; likewise once it is first
   * up, for writes made before that.
   */
  private ensureListener(attempt = 0): void {
    if (this.closed || this.listener || this.listenerRetry) return;
    const client = new pg.Client(this.pool.options);
    this.listener = client;
    const retry = (err: unknown) => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => {});
      if (this.closed) return;
      this.logger.debug?.({ err }, 'postgres store: LISTEN connection lost; reconnecting');
      const delay = Math.min(100 * 2 ** attempt, 5000);
      this.listenerRetry = setTimeout(() => {
        this.listenerRetry = undefined;
        if (this.watchers.size > 0) this.ensureListener(attempt + 1);
      }, delay);
      this.listenerRetry.unref?.();
    };
    client.on('error', retry);
    client.on('end', () => retry(new Error('connection ended')));
    client.on('notification', (message) => {
      const key = message.payload ?? '';
      const targets = key === '' ? [...this.watchers.values()] : [this.watchers.get(key) ?? new Set()];
      for (const set of targets) for (const listener of [...set]) listener();
    });
    client
      .connect()
      .then(() => client.query(`LISTEN "${this.channel}"`))
      .then(() => {
        // Also on the first connection: a write made before LISTEN took effect (the server unreachable meanwhile,
        // or only slow to answer) sent no notification to us.
        for (const set of [...this.watchers.values()]) for (const listener of [...set]) listener();
        attempt = 0;
      })
      .catch(retry);
  }

  private readonly onPoolError = (err: Error): void => {
    this.logger.warn({ err }, 'postgres store: idle pooled connection failed');
  };
}

/**
 * A named (server-side prepared) statement: the hot paths — read and compareAndSet — skip parsing and planning after
 * the first use on each connection, which is most of the gap between a renewal and a bare UPDATE. The name is derived
 * from the text, so stores with different schemas sharing a pool never collide.
 */
class Prepared {
  readonly name: string;
  constructor(readonly text: string) {
    this.name = `fl_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
  }

  with(values: unknown[]): pg.QueryConfig {
    return { name: this.name, text: this.text, values };
  }
}

function toStoreError(err: unknown): unknown {
  if (err instanceof CasMismatchError || err instanceof StoreTimeoutError || err instanceof StoreUnavailableError) return err;
  const message = err instanceof Error ? err.message || (err as { code?: string }).code || err.name : String(err);
  return new StoreUnavailableError('postgres', message, { cause: err });
}
