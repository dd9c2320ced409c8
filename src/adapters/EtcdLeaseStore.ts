import { Etcd3, GRPCDeadlineExceededError, type IOptions, isRecoverableError, type Namespace, type Watcher } from 'etcd3';
import { CasMismatchError, StoreTimeoutError, StoreUnavailableError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { boundCall, validateTimeoutMs } from './callBounds.js';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreCapabilities, StoreEntry, Unsubscribe } from './LeaseStore.js';
import { assertStorableJson, assertStorableKey, closedError, corruptEntry } from './storable.js';

export interface EtcdLeaseStoreOptions {
  /** Used when no `client` is given. Default: `ETCD_ENDPOINTS` (comma-separated), else `http://127.0.0.1:2379`. */
  readonly hosts?: string | string[];
  /**
   * An existing client. The store never closes it (the caller owns it). Note that etcd3's default fault handling
   * retries failed calls up to three times; a retried transaction that had in fact been applied then reports a
   * mismatch, and its default circuit breaker fails every call for 5 s after three consecutive failures (with one
   * host: for 5 s after the server is back). Stores that create their own client turn the retries off, use no breaker
   * with one host and a 250 ms one with several, and cap watch reconnect backoff at 1 s.
   */
  readonly client?: Etcd3;
  /** Prepended to every key (an etcd3 namespace). Default `fenced-leader/`. */
  readonly prefix?: string;
  /** Upper bound for one call (also sent as the gRPC deadline). Default 5000 ms. */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

type FaultHandling = NonNullable<IOptions['faultHandling']>;
type GlobalPolicy = NonNullable<FaultHandling['global']>;
type HostPolicy = ReturnType<NonNullable<FaultHandling['host']>>;
type WatchBackoff = NonNullable<FaultHandling['watchBackoff']>;

/**
 * Runs each call exactly once. etcd3's default global policy retries "recoverable" failures, which include a
 * connection lost after the request was sent: replaying a compare-and-set that was already applied would turn a
 * success into a spurious CasMismatchError, and a mismatch must mean "not applied". The caller retries instead.
 * Only `execute` is used by etcd3, so this minimal object is enough.
 */
const neverAborted = new AbortController().signal;
const runOnce = {
  // One shared, never-aborted signal: a fresh AbortController per call costs microseconds and etcd3 never aborts it.
  execute: <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T) => Promise.resolve().then(() => fn({ signal: neverAborted })),
} as unknown as GlobalPolicy;

/**
 * How long a host that failed `HOST_BREAKER_FAILURES` times in a row is skipped (with several hosts) before one call
 * probes it again. etcd3's default breaker skips it for 5 s, and with a single host that means every call fails
 * for up to 5 s after the server is back, so a healed partition or a restarted server kept the elector waiting.
 */
export const HOST_BREAKER_HALF_OPEN_MS = 250;
const HOST_BREAKER_FAILURES = 3;

/**
 * The per-host policy for clients the store creates. With one host there is nothing to fail over to, so no breaker:
 * each call goes to the server and succeeds as soon as it is reachable again. With several hosts, a small breaker
 * steers calls away from a host that keeps failing (etcd3 tries the next host only when a breaker refused the call),
 * and lets one call probe it again after `HOST_BREAKER_HALF_OPEN_MS`. Only `execute` is used by etcd3.
 */
function hostPolicy(hostCount: number): () => HostPolicy {
  if (hostCount <= 1) return () => runOnce as unknown as HostPolicy;
  return () => {
    let failures = 0;
    let openUntil = 0;
    let probing = false;
    const execute = async <T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> => {
      const now = performance.now();
      const open = failures >= HOST_BREAKER_FAILURES;
      if (open && (now < openUntil || probing)) throw new StoreUnavailableError('etcd', 'host skipped after repeated failures');
      if (open) probing = true;
      try {
        const result = await fn({ signal: neverAborted });
        failures = 0;
        return result;
      } catch (err) {
        if (err instanceof Error && isRecoverableError(err)) {
          failures++;
          if (failures >= HOST_BREAKER_FAILURES) openUntil = performance.now() + HOST_BREAKER_HALF_OPEN_MS;
        }
        throw err;
      } finally {
        if (open) probing = false;
      }
    };
    return { execute } as unknown as HostPolicy;
  };
}

/** Watch reconnects back off from 100 ms to at most 1 s (etcd3's default grows to 30 s, long after a short outage). */
function watchBackoff(delay = 100): WatchBackoff {
  return { duration: delay, next: () => watchBackoff(Math.min(delay * 2, 1000)) };
}

function defaultHosts(): string[] {
  const fromEnv = (process.env.ETCD_ENDPOINTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return fromEnv.length > 0 ? fromEnv : ['http://127.0.0.1:2379'];
}

// mod_revision is a positive int64. Anything else can never match; a non-canonical form such as "012" must not
// match revision 12 either, since versions are compared as opaque strings.
const REVISION = /^[1-9][0-9]{0,18}$/;

/**
 * A store on etcd v3. A key's version is its mod_revision; compareAndSet and commit are one etcd transaction that
 * compares every expected revision (create_revision = 0 for "absent") and then puts, or else reads the keys back so a
 * mismatch can name the actual versions, all in one round trip.
 *
 * storeClock is false: etcd responses carry revisions and raft terms but no time, and etcd offers no way to read
 * its clock, so expiry must be judged by the elector's own monotonic clock.
 */
export class EtcdLeaseStore implements LeaseStore {
  readonly kind = 'etcd';
  readonly capabilities: StoreCapabilities = { watch: true, storeClock: false, durable: true, multiProcess: true, reusableSignal: true };
  private readonly client: Etcd3;
  private readonly ownsClient: boolean;
  private readonly ns: Namespace;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private readonly watchers = new Set<() => void>();
  private closed = false;

  constructor(options: EtcdLeaseStoreOptions = {}) {
    this.timeoutMs = validateTimeoutMs('EtcdLeaseStore', options.timeoutMs, 5000);
    this.logger = options.logger ?? silentLogger;
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      const hosts = options.hosts ?? defaultHosts();
      this.client = new Etcd3({
        hosts,
        dialTimeout: this.timeoutMs,
        faultHandling: { global: runOnce, host: hostPolicy(typeof hosts === 'string' ? 1 : hosts.length), watchBackoff: watchBackoff() },
      });
      this.ownsClient = true;
    }
    this.prefix = options.prefix ?? 'fenced-leader/';
    this.ns = this.client.namespace(this.prefix);
  }

  async read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    assertStorableKey(key);
    const response = await this.run('read', options, (deadline) => this.ns.get(key).options({ deadline }).exec());
    const kv = response.kvs[0];
    if (!kv) return undefined;
    let value: Json;
    try {
      value = JSON.parse(kv.value.toString('utf8')) as Json;
    } catch (err) {
      throw corruptEntry('etcd', `"${this.prefix}${key}"`, `its value is not JSON: ${(err as Error).message}`, err);
    }
    return { value, version: kv.mod_revision };
  }

  async compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return (await this.commitOps('compareAndSet', [{ key, expectedVersion, value }], options))[0]!;
  }

  commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    return this.commitOps('commit', ops, options);
  }

  watch(key: string, onChange: () => void): Unsubscribe {
    if (this.closed) return () => {};
    let cancelled = false;
    let watcher: Watcher | undefined;
    const notify = () => {
      if (!cancelled) onChange();
    };
    const stop = () => {
      if (cancelled) return;
      cancelled = true;
      this.watchers.delete(stop);
      watcher?.cancel().catch((err: unknown) => this.logger.debug?.({ err, key }, 'etcd store: cancelling a watch failed'));
    };
    this.watchers.add(stop);
    this.ns
      .watch()
      .key(key)
      .create()
      .then((created) => {
        watcher = created;
        created.on('put', notify);
        created.on('delete', notify);
        // etcd3 resumes a broken watch from its last revision, so nothing is lost; a spurious call is cheap insurance.
        let disconnected = false;
        created.on('disconnected', () => {
          disconnected = true;
        });
        created.on('connected', () => {
          if (disconnected) notify();
          disconnected = false;
        });
        // An EventEmitter without an 'error' listener throws.
        created.on('error', (err) => this.logger.warn({ err, key }, 'etcd store: watch error'));
        if (cancelled) {
          cancelled = false;
          stop();
          return;
        }
        // The watch starts at the revision current when it connected: a write made between watch() and now (etcd
        // unreachable meanwhile, or only slow to answer) produced no event. Look once.
        notify();
      })
      .catch((err: unknown) => this.logger.warn({ err, key }, 'etcd store: creating a watch failed'));
    return stop;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const stop of [...this.watchers]) stop();
    if (this.ownsClient) this.client.close();
  }

  private async commitOps(operation: string, ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    if (ops.length === 0) return [];
    const keys = [...new Set(ops.map((op) => op.key))];
    // A key written twice in one commit keeps its last value (etcd rejects two puts of one key in a transaction).
    const lastValue = new Map<string, string>();
    for (const op of ops) {
      const json = op.value === undefined ? '' : JSON.stringify(op.value);
      assertStorableJson(op.key, json);
      if (op.value !== undefined) lastValue.set(op.key, json);
    }

    const response = await this.run(operation, options, (deadline) => {
      const [first, ...rest] = ops.map(
        (op) =>
          (op.expectedVersion === null
            ? [op.key, 'Create', '==', 0]
            : REVISION.test(op.expectedVersion)
              ? [op.key, 'Mod', '==', op.expectedVersion]
              : [op.key, 'Mod', '<', 0]) as [string, 'Create' | 'Mod', '==' | '<', string | number],
      );
      const txn = this.ns.if(...first!).options({ deadline });
      for (const compare of rest) txn.and(...compare);
      return txn
        .then(...[...lastValue].map(([key, json]) => this.ns.put(key).value(json)))
        .else(...keys.map((key) => this.ns.get(key)))
        .commit();
    });

    if (response.succeeded) {
      const revision = response.header.revision;
      // Each op reports its key's version afterwards: the transaction's revision for every key it wrote.
      return ops.map((op) => (lastValue.has(op.key) ? revision : (op.expectedVersion as string)));
    }
    const actual = new Map(keys.map((key, i) => [key, response.responses[i]?.response_range?.kvs[0]?.mod_revision ?? null]));
    const failed = ops.find((op) => actual.get(op.key) !== op.expectedVersion) ?? ops[0]!;
    throw new CasMismatchError(failed.key, failed.expectedVersion, actual.get(failed.key) ?? null);
  }

  /**
   * Bounds a call by `timeoutMs` (also the gRPC deadline) and the caller's signal. An abandoned transaction may still
   * be applied by etcd: that is the ambiguous outcome callers handle.
   */
  private run<T>(operation: string, options: CallOptions | undefined, work: (deadline: Date) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(closedError('etcd', 'EtcdLeaseStore'));
    const deadline = new Date(Date.now() + this.timeoutMs);
    return boundCall(
      options?.signal,
      this.timeoutMs,
      () => new StoreTimeoutError(`etcd ${operation}`, this.timeoutMs),
      () =>
        work(deadline).catch((err: unknown) => {
          throw toStoreError(operation, this.timeoutMs, err);
        }),
    );
  }
}

function toStoreError(operation: string, timeoutMs: number, err: unknown): unknown {
  if (err instanceof CasMismatchError || err instanceof StoreTimeoutError || err instanceof StoreUnavailableError) return err;
  // etcd3's error classes do not set `name`, hence instanceof.
  if (err instanceof GRPCDeadlineExceededError) return new StoreTimeoutError(`etcd ${operation}`, timeoutMs);
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new StoreUnavailableError('etcd', message, { cause: err });
}
