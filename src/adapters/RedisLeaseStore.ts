import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { CasMismatchError, StoreTimeoutError, StoreUnavailableError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { boundCall, type CallScope, validateTimeoutMs } from './callBounds.js';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreCapabilities, StoreEntry, Unsubscribe } from './LeaseStore.js';
import { assertStorableJson, assertStorableKey, closedError, corruptEntry } from './storable.js';

export interface RedisLeaseStoreOptions {
  /** Used when no `client` is given. Default `redis://127.0.0.1:6379`. */
  readonly url?: string;
  /**
   * An existing connection. The store never quits it (the caller owns it) and only duplicates it for the pub/sub
   * connection. Its offline-queue settings are the caller's; every call is still bounded by `timeoutMs`.
   */
  readonly client?: Redis;
  /**
   * Prepended to every Redis key and channel. Default `fenced-leader:`. On Redis Cluster put a hash tag in it
   * (`{fenced-leader}:`) so that a commit's keys and the version counter share one slot.
   */
  readonly keyPrefix?: string;
  /** Upper bound for one call, connecting included. Default 5000 ms. */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
}

/**
 * Both scripts read Redis TIME so that writtenAtMs and readAtMs come from one clock. Since Redis 5 scripts replicate
 * their effects rather than their source, so calling TIME before a write is allowed.
 *
 * The version counter is seeded from the server clock (in microseconds) when it is missing. Without persistence a
 * restarted Redis has lost the counter; seeding it from TIME keeps versions rising across the restart (unless the
 * server clock steps back by more than the restart took, or more than a million writes a second were sustained), so
 * a CAS prepared before the restart cannot match a key recreated after it. The layer above keeps epochs monotone
 * anyway; this only narrows the window. Numbers are formatted with %.0f because Lua 5.1's tostring switches to
 * exponent notation above 1e14.
 */
const MS_FROM_TIME = `local function now_ms(t) return t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) end`;

// KEYS: counter, entry_1..entry_n. ARGV: n, then per op: has_expected (1/0), expected, mode (w = write, c = check), value, channel.
const COMMIT_LUA = `${MS_FROM_TIME}
local n = tonumber(ARGV[1])
for i = 1, n do
  local base = 1 + (i - 1) * 5
  local actual = redis.call('HGET', KEYS[i + 1], 'version')
  if ARGV[base + 1] == '1' then
    if actual ~= ARGV[base + 2] then return {0, i, actual or ''} end
  elseif actual then
    return {0, i, actual}
  end
end
local t = redis.call('TIME')
local written = now_ms(t)
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tonumber(t[1]) * 1000000 + tonumber(t[2])))
end
local out = {1}
for i = 1, n do
  local base = 1 + (i - 1) * 5
  if ARGV[base + 3] == 'w' then
    local version = string.format('%.0f', redis.call('INCR', KEYS[1]))
    redis.call('HSET', KEYS[i + 1], 'value', ARGV[base + 4], 'version', version, 'writtenAtMs', written)
    redis.call('PUBLISH', ARGV[base + 5], '1')
    out[i + 1] = version
  else
    out[i + 1] = ARGV[base + 2]
  end
end
return out`;

// The single-key compareAndSet (the renewal path): the same checks and effects as COMMIT_LUA with one write op, kept
// as lean as those guarantees allow (measured in bench/backends.bench.ts): no helper closures, one string.format per
// number, the version counter with one INCR on the hot path (seeded from TIME when INCR answered 1, i.e. the counter
// was missing: the same versions as seeding first), the PUBLISH on every write. Every step is needed:
// - HGET + compare: the CAS itself;
// - TIME: writtenAtMs must move with every write, renewals included, or a reader trusting the store clock would see
//   a live lease as expired (readAtMs − writtenAtMs ≥ leaseDurationMs) and take it over;
// - INCR on the prefix-wide counter: versions never repeat, even for a key deleted and recreated;
// - PUBLISH on renewals too: a follower restarts its poll timer on each notification and counts the lease's age from
//   when it first saw the current version, so hearing of a renewal at once instead of at its next poll makes it
//   decide up to one retry period sooner after the leader dies (crash failover ≤ lease + retry, not lease + 2 × retry).
// KEYS: entry, counter. ARGV: has_expected (1/0), expected, value, channel.
// Returns the new version (a string), or {0, actual} on a mismatch.
/** Exported for bench/backends.bench.ts only (not part of the public entry): it times this script from a plain client. */
export const CAS_LUA = `local actual = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] == '1' then
  if actual ~= ARGV[2] then return {0, actual or ''} end
elseif actual then
  return {0, actual}
end
local t = redis.call('TIME')
local v = redis.call('INCR', KEYS[2])
if v == 1 then
  v = t[1] * 1000000 + t[2] + 1
  redis.call('SET', KEYS[2], string.format('%.0f', v))
end
local version = string.format('%.0f', v)
redis.call('HSET', KEYS[1], 'value', ARGV[3], 'version', version, 'writtenAtMs', string.format('%s%03d', t[1], math.floor(t[2] / 1000)))
redis.call('PUBLISH', ARGV[4], '1')
return version`;

// KEYS: entry. Returns {found, now_ms, value, version, writtenAtMs}.
const READ_LUA = `${MS_FROM_TIME}
local now = now_ms(redis.call('TIME'))
local fields = redis.call('HMGET', KEYS[1], 'value', 'version', 'writtenAtMs')
if not fields[2] then return {0, now} end
return {1, now, fields[1], fields[2], fields[3]}`;

class Script {
  readonly sha: string;
  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }
}

const COMMIT = new Script(COMMIT_LUA);
const CAS = new Script(CAS_LUA);
const READ = new Script(READ_LUA);

/**
 * A store on one Redis server (or a Cluster slot). Each key is a hash `{value, version, writtenAtMs}`; versions come
 * from one INCR counter per prefix, so they never repeat even when a key is deleted and recreated. compareAndSet and
 * commit are one Lua script: checked and applied atomically, in one round trip.
 *
 * Redis is durable only as far as its persistence is configured; `durable` is reported false because a default
 * Redis may lose acknowledged writes on restart.
 */
export class RedisLeaseStore implements LeaseStore {
  readonly kind = 'redis';
  readonly capabilities: StoreCapabilities = { watch: true, storeClock: true, durable: false, multiProcess: true, reusableSignal: true };
  private readonly client: Redis;
  private readonly ownsClient: boolean;
  private readonly prefix: string;
  /** The version counter shared by all keys under the prefix. */
  private readonly counter: string;
  private readonly timeoutMs: number;
  private readonly logger: Logger;
  private subscriber: Redis | undefined;
  private readonly watchers = new Map<string, Set<() => void>>();
  private lastError: Error | undefined;
  /** Set by a connection error, cleared by the next 'ready': while set, calls fail at once. */
  private failing = false;
  private closed = false;

  constructor(options: RedisLeaseStoreOptions = {}) {
    this.prefix = options.keyPrefix ?? 'fenced-leader:';
    this.counter = `${this.prefix}version-counter`;
    this.timeoutMs = validateTimeoutMs('RedisLeaseStore', options.timeoutMs, 5000);
    this.logger = options.logger ?? silentLogger;
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      this.client = new Redis(options.url ?? 'redis://127.0.0.1:6379', this.clientOptions());
      this.ownsClient = true;
    }
    // Without a listener ioredis prints every reconnect failure to stderr; keep the last one for error messages.
    this.client.on('error', this.onClientError);
    this.client.on('ready', this.onClientReady);
    this.client.on('close', this.onClientClose);
  }

  async read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    assertStorableKey(key);
    const entryKey = this.entryKey(key);
    const reply = (await this.run('read', options, (scope) => this.evalScript(READ, 1, [entryKey], scope))) as unknown[];
    const readAtMs = Number(reply[1]);
    if (Number(reply[0]) !== 1) return undefined;
    let value: Json;
    try {
      value = JSON.parse(String(reply[2])) as Json;
    } catch (err) {
      throw corruptEntry('redis', `"${entryKey}"`, `its value is not JSON: ${(err as Error).message}`, err);
    }
    return {
      value,
      version: String(reply[3]),
      writtenAtMs: Number(reply[4]),
      readAtMs,
    };
  }

  async compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    const json = JSON.stringify(value);
    assertStorableJson(key, json);
    const args = [this.entryKey(key), this.counter, expectedVersion === null ? '0' : '1', expectedVersion ?? '', json, this.channel(key)];
    const reply = (await this.run('compareAndSet', options, (scope) => this.evalScript(CAS, 2, args, scope))) as string | unknown[];
    if (typeof reply === 'string') return reply;
    const actual = String(reply[1]);
    throw new CasMismatchError(key, expectedVersion, actual === '' ? null : actual);
  }

  commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    return this.commitOps('commit', ops, options);
  }

  watch(key: string, onChange: () => void): Unsubscribe {
    if (this.closed) return () => {};
    const channel = this.channel(key);
    let set = this.watchers.get(channel);
    if (!set) {
      set = new Set();
      this.watchers.set(channel, set);
      this.ensureSubscriber()
        .subscribe(channel)
        .catch((err: unknown) => this.logger.warn({ err, key }, 'redis store: subscribing to changes failed'));
    }
    // A fresh wrapper per call, so the same callback may be registered twice and unsubscribed independently.
    const listener = () => onChange();
    set.add(listener);
    return () => {
      const current = this.watchers.get(channel);
      if (!current?.delete(listener) || current.size > 0) return;
      this.watchers.delete(channel);
      this.subscriber
        ?.unsubscribe(channel)
        .catch((err: unknown) => this.logger.debug?.({ err, key }, 'redis store: unsubscribe failed'));
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watchers.clear();
    const quits: Promise<unknown>[] = [];
    if (this.subscriber) quits.push(quit(this.subscriber, this.timeoutMs));
    if (this.ownsClient) quits.push(quit(this.client, this.timeoutMs));
    else {
      this.client.off('error', this.onClientError);
      this.client.off('ready', this.onClientReady);
      this.client.off('close', this.onClientClose);
    }
    await Promise.all(quits);
  }

  private async commitOps(operation: string, ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    if (ops.length === 0) return [];
    const keys = [this.counter];
    const args: string[] = [String(ops.length)];
    for (const op of ops) {
      keys.push(this.entryKey(op.key));
      const write = op.value !== undefined;
      const json = write ? JSON.stringify(op.value) : '';
      assertStorableJson(op.key, json);
      args.push(op.expectedVersion === null ? '0' : '1', op.expectedVersion ?? '', write ? 'w' : 'c', json, this.channel(op.key));
    }
    const reply = (await this.run(operation, options, (scope) => this.evalScript(COMMIT, keys.length, [...keys, ...args], scope))) as unknown[];
    if (Number(reply[0]) !== 1) {
      const op = ops[Number(reply[1]) - 1]!;
      const actual = String(reply[2]);
      throw new CasMismatchError(op.key, op.expectedVersion, actual === '' ? null : actual);
    }
    // Each op reports its key's version after the commit: for a key written twice, the last write's version.
    const written = new Map<string, string>();
    ops.forEach((op, i) => {
      if (op.value !== undefined) written.set(op.key, String(reply[i + 1]));
    });
    return ops.map((op) => written.get(op.key) ?? (op.expectedVersion as string));
  }

  /**
   * EVALSHA first; the full source only when the server has not seen the script (first use, or after a
   * restart/flush). `args` holds the `numKeys` keys, then the arguments.
   */
  private evalScript(script: Script, numKeys: number, args: string[], scope: CallScope): Promise<unknown> {
    return this.client.evalsha(script.sha, numKeys, ...args).catch((err: unknown) => {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      // The EVALSHA changed nothing; a call already abandoned must not start a fresh write now.
      if (scope.abandoned) throw err;
      return this.client.eval(script.lua, numKeys, ...args);
    });
  }

  /**
   * Bounds a call by `timeoutMs` and the caller's signal (see callBounds.ts: no timer or abort listener per call
   * unless it runs long). Waiting for the connection counts against the same budget, so nothing sits in a queue
   * while Redis is down. An abandoned command may still be applied by the server.
   */
  private run<T>(operation: string, options: CallOptions | undefined, work: (scope: CallScope) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(closedError('redis', 'RedisLeaseStore'));
    return boundCall(
      options?.signal,
      this.timeoutMs,
      () => new StoreTimeoutError(`redis ${operation}`, this.timeoutMs),
      (scope) => {
        // The hot path: connected, so no extra promise hop before the command is written.
        const ready = this.client.status === 'ready' ? work(scope) : this.connected(scope).then(() => work(scope));
        return ready.catch((err: unknown) => {
          throw this.toStoreError(err);
        });
      },
    );
  }

  /**
   * Resolves once the connection is ready. While a connection is being established for the first time (or the
   * caller's client is between attempts without a failure yet) it waits within the call's budget; once Redis has
   * refused or dropped us it rejects at once, so calls fail fast during an outage instead of piling up.
   */
  private connected(scope: CallScope): Promise<void> {
    const client = this.client;
    if (client.status === 'ready') return Promise.resolve();
    if (client.status === 'end') return Promise.reject(this.unavailable('the connection was closed'));
    if (this.failing) return Promise.reject(this.unavailable(`not connected to ${describe(client)}`));
    if (client.status === 'wait') client.connect().catch(() => {});
    return new Promise<void>((resolve, reject) => {
      const settle = (err?: Error) => {
        client.off('ready', onReady);
        client.off('error', onError);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => settle();
      const onError = () => settle(this.unavailable(`cannot connect to ${describe(client)}`));
      client.on('ready', onReady);
      client.on('error', onError);
      scope.onAbandon(() => settle(this.unavailable('abandoned')));
    });
  }

  private unavailable(detail: string): StoreUnavailableError {
    const suffix = this.lastError ? ` (${this.lastError.message})` : '';
    return new StoreUnavailableError('redis', `${detail}${suffix}`, { cause: this.lastError });
  }

  private toStoreError(err: unknown): unknown {
    if (err instanceof CasMismatchError || err instanceof StoreTimeoutError || err instanceof StoreUnavailableError) {
      return err;
    }
    const message = err instanceof Error ? err.message : String(err);
    return new StoreUnavailableError('redis', message, { cause: err });
  }

  private ensureSubscriber(): Redis {
    if (this.subscriber) return this.subscriber;
    // Subscriptions may wait for the connection: ioredis replays them on every reconnect (autoResubscribe).
    const subscriber = this.client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null, lazyConnect: false });
    subscriber.on('error', (err: Error) => this.logger.debug?.({ err }, 'redis store: subscriber connection error'));
    subscriber.on('message', (channel: string) => {
      for (const listener of [...(this.watchers.get(channel) ?? [])]) listener();
    });
    subscriber.on('ready', () => {
      // Messages published while we were disconnected are lost, and so are those published before the first
      // connection (watch() may be called while Redis is unreachable): tell every watcher to look again.
      for (const set of [...this.watchers.values()]) for (const listener of [...set]) listener();
    });
    this.subscriber = subscriber;
    return subscriber;
  }

  private clientOptions(): RedisOptions {
    return {
      // Fail at once while disconnected; run() waits for 'ready' within the call's own budget instead.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // A command whose reply was lost is ambiguous; resending it later would surprise the caller who gave up on it.
      autoResendUnfulfilledCommands: false,
      // No commandTimeout: run() already bounds every call by timeoutMs, and ioredis would arm a timer per command
      // (a few µs on every renewal). Like the call bound, it would not stop the server applying the command anyway.
      connectTimeout: this.timeoutMs,
      retryStrategy: (times: number) => Math.min(50 * 2 ** times, 2000),
    };
  }

  private readonly onClientError = (err: Error): void => {
    this.lastError = err;
    this.failing = true;
    this.logger.debug?.({ err }, 'redis store: connection error');
  };

  private readonly onClientReady = (): void => {
    this.failing = false;
  };

  // A server that shuts down cleanly closes the socket without an 'error'.
  private readonly onClientClose = (): void => {
    this.failing = true;
  };

  private entryKey(key: string): string {
    return `${this.prefix}entry:${key}`;
  }


  private channel(key: string): string {
    return `${this.prefix}changed:${key}`;
  }
}

function describe(client: Redis): string {
  const { host, port } = client.options;
  return `${host ?? '?'}:${port ?? '?'}`;
}

/** QUIT, waiting at most `timeoutMs` for its reply (the server may be unreachable), then drop the connection. */
async function quit(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([client.quit().catch(() => {}), new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }
  client.disconnect();
}
