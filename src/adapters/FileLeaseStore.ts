import { randomBytes } from 'node:crypto';
// `promises` (a plain, mutable object) rather than a namespace import: the crash tests stall a child process
// inside a commit by patching one of these functions, which a frozen ES namespace would not allow.
import { closeSync, type FSWatcher, constants as fsConstants, promises as fsp, fstatSync, watch as fsWatch, lstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import { z } from 'zod';
import { CasMismatchError, CorruptStateError, InvalidOptionsError, type OptionIssue, StoreUnavailableError } from '../errors.js';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreCapabilities, StoreEntry, Unsubscribe } from './LeaseStore.js';
import { assertStorableKey, assertStorableValue, closedError } from './storable.js';

export const FILE_STORE_FORMAT = 'fenced-leader/v1';
export const DEFAULT_FILE_STORE_PATH = '.orchestrator/orchestrator-state.json';

export interface FileLeaseStoreOptions {
  /** The state file; relative paths resolve against the working directory at construction. */
  readonly path?: string;
  /** A lock older than this is broken even if its holder still runs (a commit takes milliseconds). */
  readonly lockStaleMs?: number;
  /** How long a commit waits for the lock before rejecting with `StoreUnavailableError`. */
  readonly lockTimeoutMs?: number;
  /** How often watchers stat the file, in case `fs.watch` misses an event or is unavailable. */
  readonly pollIntervalMs?: number;
}

const optionsSchema = z.object({
  path: z.string().min(1).default(DEFAULT_FILE_STORE_PATH),
  lockStaleMs: z.number().int().positive().default(10_000),
  lockTimeoutMs: z.number().int().positive().default(10_000),
  pollIntervalMs: z.number().int().positive().default(250),
});

const versionSchema = z.string().regex(/^[1-9][0-9]*$/, 'a positive integer in decimal');

const fileSchema = z
  .object({
    format: z.literal(FILE_STORE_FORMAT),
    nextVersion: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    entries: z.record(z.string(), z.object({ value: z.json(), version: versionSchema }).strict()),
  })
  .strict();

const lockSchema = z.object({
  pid: z.number().int().positive(),
  host: z.string(),
  token: z.string(),
  acquiredAtMs: z.number(),
});
type LockInfo = z.output<typeof lockSchema>;

/** Larger than any honest state file by orders of magnitude; refusing it beats exhausting memory on a hostile file. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

interface State {
  nextVersion: number;
  entries: Map<string, { value: Json; version: string }>;
}

/** What a lock file was when we looked at it, so we can later tell whether the file at the path is still that one. */
interface LockSnapshot {
  readonly ino: number;
  readonly mtimeMs: number;
  readonly raw: string;
  readonly info: LockInfo | undefined;
}

interface Subscription {
  readonly key: string;
  readonly onChange: () => void;
  /** Last observed version of the key: a version, 'absent', or 'unreadable'. */
  seen: string;
}

const ABSENT = '\u0000absent';
const UNREADABLE = '\u0000unreadable';

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? ((err as { code?: unknown }).code as string | undefined) : undefined;
}

function uniqueToken(): string {
  return randomBytes(12).toString('hex');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return errnoCode(err) !== 'ESRCH';
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('The operation was aborted');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolvePromise();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * The embedded default store: one JSON file shared by any number of processes on one host.
 *
 * Writers serialise on a lock file created with O_EXCL, then read, compare, write a temp file, fsync it and rename
 * it over the state file, so readers (which take no lock) always see a complete old or complete new file. Versions
 * come from a counter kept in the file, so they never repeat even across keys or after a key is rewritten.
 *
 * A file this store cannot understand is reported and never touched: every write path reads and validates the
 * current file first, and only a successful validation can lead to the rename that replaces it.
 */
export class FileLeaseStore implements LeaseStore {
  readonly kind = 'file';
  readonly capabilities: StoreCapabilities = { watch: true, storeClock: false, durable: true, multiProcess: true, reusableSignal: true };
  readonly path: string;
  private readonly dir: string;
  private readonly base: string;
  private readonly lockPath: string;
  private readonly breakGuardPath: string;
  private readonly lockStaleMs: number;
  private readonly lockTimeoutMs: number;
  private readonly pollIntervalMs: number;
  private readonly host = hostname();
  /** Commits from this instance queue here first, so they do not spin against each other on the lock file. */
  private localTail: Promise<void> = Promise.resolve();
  private closed = false;
  /** Set on the first commit and after breaking a stale lock: the moments leftovers of dead writers may exist. */
  private needsSweep = true;

  private readonly subscriptions = new Set<Subscription>();
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private lastSignature: string | undefined;
  private checking = false;
  private checkAgain = false;

  constructor(options: FileLeaseStoreOptions = {}) {
    const parsed = optionsSchema.safeParse(options);
    if (!parsed.success) {
      const issues: OptionIssue[] = parsed.error.issues.map((i) => ({
        path: i.path.join('.'),
        code: i.code,
        message: i.message,
      }));
      throw new InvalidOptionsError(issues);
    }
    this.path = resolve(parsed.data.path);
    this.dir = dirname(this.path);
    this.base = basename(this.path);
    this.lockPath = `${this.path}.lock`;
    this.breakGuardPath = `${this.path}.lock.break`;
    this.lockStaleMs = parsed.data.lockStaleMs;
    this.lockTimeoutMs = parsed.data.lockTimeoutMs;
    this.pollIntervalMs = parsed.data.pollIntervalMs;
  }

  async read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    this.assertUsable(options);
    assertStorableKey(key);
    const state = await abortable(this.readState(), options?.signal);
    const entry = state.entries.get(key);
    return entry ? { value: structuredClone(entry.value), version: entry.version } : undefined;
  }

  async compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    const [version] = await this.commit([{ key, expectedVersion, value }], options);
    return version!;
  }

  async commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    this.assertUsable(options);
    for (const op of ops) {
      if (op.value !== undefined && !z.json().safeParse(op.value).success) {
        // JSON.stringify would quietly turn NaN into null or drop undefined fields: the stored value would differ.
        throw new TypeError(`The value for "${op.key}" is not plain JSON (NaN, Infinity, undefined, functions... are not storable).`);
      }
      // What another store could not hold is refused here too, so moving to it cannot break a working setup.
      assertStorableValue(op.key, op.value ?? null);
    }
    const signal = options?.signal;
    const previous = this.localTail;
    let done!: () => void;
    this.localTail = new Promise<void>((r) => {
      done = r;
    });
    try {
      await abortable(previous, signal);
      const lock = await this.acquireLock(signal);
      let result: { versions: string[]; wrote: boolean };
      try {
        signal?.throwIfAborted();
        if (this.needsSweep) {
          this.needsSweep = false;
          await this.sweepLeftovers();
        }
        result = await this.commitLocked(ops, lock);
      } finally {
        await this.releaseLock(lock);
      }
      if (result.wrote) this.scheduleCheck();
      return result.versions;
    } finally {
      // Release our turn only after `previous` settles, so a caller that gave up while queued cannot let the next
      // caller overtake a commit that is still running.
      previous.then(done, done);
    }
  }

  watch(key: string, onChange: () => void): Unsubscribe {
    // As the other stores: a closed store registers nothing (nor starts polling again).
    if (this.closed) return () => {};
    const sub: Subscription = { key, onChange, seen: this.versionNowSync(key) };
    this.subscriptions.add(sub);
    this.startWatching();
    return () => {
      if (!this.subscriptions.delete(sub)) return;
      if (this.subscriptions.size === 0) this.stopWatching();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subscriptions.clear();
    this.stopWatching();
    await this.localTail;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Reading and validating

  private async readState(): Promise<State> {
    let handle: FileHandle;
    try {
      // O_NOFOLLOW: a symlink planted at the path must not redirect us (or, later, our rename) elsewhere.
      // O_NONBLOCK: a FIFO planted at the path must not hang the open.
      handle = await fsp.open(this.path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    } catch (err) {
      const code = errnoCode(err);
      // A fresh file starts its counter at the wall clock in microseconds, not at 1: a file that was deleted (or
      // restored from an old copy) must not hand out a version it already gave a different record, which would let
      // a compare-and-set — a FenceGuard's or a follower's — succeed against the wrong record.
      if (code === 'ENOENT') return { nextVersion: Date.now() * 1000, entries: new Map() };
      if (code === 'ELOOP') throw new CorruptStateError(this.path, 'it is a symbolic link, not a regular file', { cause: err });
      throw this.unavailable(`cannot open ${this.path} (${code ?? String(err)})`, err);
    }
    let text: string;
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) throw new CorruptStateError(this.path, `it is ${describeKind(stats)}, not a regular file`);
      if (stats.size > MAX_FILE_BYTES) throw new CorruptStateError(this.path, `it is ${stats.size} bytes, larger than any state file`);
      text = await handle.readFile('utf8');
    } catch (err) {
      if (CorruptStateError.is(err)) throw err;
      const code = errnoCode(err);
      if (code === 'EISDIR') throw new CorruptStateError(this.path, 'it is a directory, not a regular file', { cause: err });
      throw this.unavailable(`cannot read ${this.path} (${code ?? String(err)})`, err);
    } finally {
      await handle.close().catch(() => {});
    }
    return this.parseState(text);
  }

  private parseState(text: string): State {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new CorruptStateError(this.path, `invalid JSON: ${(err as Error).message}`, { cause: err });
    }
    const parsed = fileSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
      throw new CorruptStateError(this.path, `unexpected shape at ${where}: ${issue.message}`, { cause: parsed.error });
    }
    // Built from the raw object, not zod's output: zod copies records by assignment, which would turn a key named
    // "__proto__" into a prototype change and silently lose the entry.
    const rawEntries = (raw as { entries: Record<string, { value: Json; version: string }> }).entries;
    const entries = new Map<string, { value: Json; version: string }>();
    for (const [key, entry] of Object.entries(rawEntries)) {
      // A version at or past the counter means the counter could hand it out again: versions would repeat.
      if (Number(entry.version) >= parsed.data.nextVersion) {
        throw new CorruptStateError(this.path, `entry "${key}" has version ${entry.version}, not below nextVersion ${parsed.data.nextVersion}`);
      }
      entries.set(key, { value: entry.value, version: entry.version });
    }
    return { nextVersion: parsed.data.nextVersion, entries };
  }

  private versionNowSync(key: string): string {
    // Synchronous so the baseline is taken before watch() returns: a write right after subscribing must notify.
    let text: string;
    try {
      const fd = openSync(this.path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
      try {
        if (!fstatSync(fd).isFile()) return UNREADABLE;
        text = readFileSync(fd, 'utf8');
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      return errnoCode(err) === 'ENOENT' ? ABSENT : UNREADABLE;
    }
    try {
      return this.parseState(text).entries.get(key)?.version ?? ABSENT;
    } catch {
      return UNREADABLE;
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Writing

  private async commitLocked(ops: readonly CommitOp[], lock: LockInfo): Promise<{ versions: string[]; wrote: boolean }> {
    const state = await this.readState();
    for (const op of ops) {
      const actual = state.entries.get(op.key)?.version ?? null;
      if (actual !== op.expectedVersion) throw new CasMismatchError(op.key, op.expectedVersion, actual);
    }
    if (!ops.some((op) => op.value !== undefined)) return { versions: ops.map((op) => op.expectedVersion as string), wrote: false };

    // Each op reports its key's version after the commit: for a key written twice, the last write's version (a check
    // op on a key the commit writes, too).
    const written = new Map<string, string>();
    for (const op of ops) {
      if (op.value === undefined) continue;
      const version = String(state.nextVersion++);
      state.entries.set(op.key, { value: structuredClone(op.value), version });
      written.set(op.key, version);
    }
    const versions = ops.map((op) => written.get(op.key) ?? (op.expectedVersion as string));
    if (state.nextVersion > Number.MAX_SAFE_INTEGER) throw this.unavailable('the version counter is exhausted');

    const body = `${JSON.stringify(
      { format: FILE_STORE_FORMAT, nextVersion: state.nextVersion, entries: Object.fromEntries(state.entries) },
      null,
      2,
    )}\n`;
    await this.replaceFile(body, lock);
    return { versions, wrote: true };
  }

  private async replaceFile(body: string, lock: LockInfo): Promise<void> {
    const tempPath = `${this.path}.${process.pid}.${uniqueToken()}.tmp`;
    let renamed = false;
    try {
      // 'wx': never reuse (or follow a symlink planted at) an existing name.
      const handle = await fsp.open(tempPath, 'wx', 0o600);
      try {
        await handle.writeFile(body, 'utf8');
        await handle.sync();
      } finally {
        await handle.close();
      }
      // A holder that stalled past lockStaleMs may have had its lock broken; renaming now could overwrite a
      // commit made under the new holder, so give up instead (nothing has been changed yet).
      const current = await this.snapshotLock(this.lockPath);
      if (current?.info?.token !== lock.token) {
        throw this.unavailable(`lost the lock on ${this.lockPath} while committing (held longer than lockStaleMs=${this.lockStaleMs})`);
      }
      // The check above and the rename are two steps: a breaker could act between them once the lock is
      // lockStaleMs old. Committing only while the lock is younger than half that leaves the other half as a
      // margin, so an overwrite needs this process to stall for lockStaleMs / 2 between two adjacent calls — the
      // same kind of pause bound the lease protocol states (docs/protocol.md).
      const heldMs = Date.now() - lock.acquiredAtMs;
      if (heldMs > this.lockStaleMs / 2) {
        throw this.unavailable(
          `held the lock on ${this.lockPath} for ${heldMs} ms, more than half of lockStaleMs=${this.lockStaleMs}: gave up rather than risk overwriting a commit made after the lock was broken; nothing was changed, retry`,
        );
      }
      await fsp.rename(tempPath, this.path);
      renamed = true;
    } catch (err) {
      if (!renamed) await fsp.unlink(tempPath).catch(() => {});
      if (StoreUnavailableError.is(err) || CorruptStateError.is(err)) throw err;
      throw this.unavailable(`cannot write ${this.path} (${errnoCode(err) ?? String(err)}); the previous file is intact`, err);
    }
    // Without this the rename itself may not survive a power cut. Its failure is not reported: the new file is
    // already visible to every reader, and claiming the commit failed would be a lie.
    await fsyncDir(this.dir);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The inter-process lock
  //
  // The lock is `<path>.lock`, created with O_EXCL and holding { pid, host, token, acquiredAtMs }. Its holder
  // removes it when done. A holder killed mid-commit leaves it behind; it is stale when its pid is gone (only
  // trusted when the host matches: another host or PID namespace could reuse the number) or it is older than
  // lockStaleMs.
  //
  // Breaking a stale lock is where naive schemes fail. "Check it is stale, then unlink it" lets two breakers both
  // see the same stale lock L1; the first unlinks it, a third process creates a fresh lock L2, and the second
  // breaker's unlink then deletes L2 — two live holders. POSIX has no "unlink if still the same file", so:
  //   1. Breakers first take a second, short-lived O_EXCL guard (`<path>.lock.break`), so at most one breaker acts
  //      at a time; the others back off and look again afterwards, by which time they see L2, which is live.
  //   2. Under the guard, the breaker re-reads the lock and checks it is still the very file it judged stale (inode,
  //      mtime and contents: inode numbers alone are reused), then renames it to a unique name rather than
  //      unlinking it. Rename moves whatever is at the path atomically, so the breaker can inspect exactly what it
  //      took: the stale lock is then deleted; anything else (only possible if an age-stale but live holder
  //      released and someone re-acquired in between) is linked straight back, which fails rather than clobbers
  //      if the name was taken again meanwhile.
  // The guard can itself be left behind by a breaker killed inside its few microseconds; it is broken the same way
  // (by pid or age) with the rename-and-verify step, which is enough given how short it is held.

  private async acquireLock(signal: AbortSignal | undefined): Promise<LockInfo> {
    const deadline = Date.now() + this.lockTimeoutMs;
    let attempt = 0;
    let madeDir = false;
    for (;;) {
      signal?.throwIfAborted();
      const info: LockInfo = { pid: process.pid, host: this.host, token: uniqueToken(), acquiredAtMs: Date.now() };
      const created = await this.tryCreate(this.lockPath, info);
      if (created === 'ok') return info;
      if (created === 'no-dir') {
        if (madeDir) throw this.unavailable(`cannot create the lock ${this.lockPath}: its directory keeps disappearing`);
        await this.makeDir();
        madeDir = true;
        continue;
      }
      const existing = await this.snapshotLock(this.lockPath);
      if (existing && this.isStale(existing)) {
        await this.breakStale(existing);
        this.needsSweep = true;
        continue;
      }
      if (Date.now() >= deadline) {
        const holder = existing?.info ? `pid ${existing.info.pid} on ${existing.info.host}` : 'an unknown process';
        throw this.unavailable(
          `timed out after ${this.lockTimeoutMs} ms waiting for the lock ${this.lockPath}, held by ${holder}; if no such process runs, the lock is broken after lockStaleMs=${this.lockStaleMs}`,
        );
      }
      attempt += 1;
      const backoff = Math.min(2 ** Math.min(attempt, 6), 50);
      await sleep(Math.min(backoff / 2 + Math.random() * backoff, Math.max(1, deadline - Date.now())), signal);
    }
  }

  /**
   * Deletes temp files of writers that died mid-commit. Only called while holding the lock, and any temp file then
   * belongs to a dead writer or to one whose lock was broken as stale; removing the latter's only makes its rename
   * fail, which its own lock check would have done anyway. Moved-aside lock files are transient for a live breaker,
   * so only old ones go.
   */
  private async sweepLeftovers(): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(this.dir);
    } catch {
      return;
    }
    const escaped = this.base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const temp = new RegExp(`^${escaped}\\.\\d+\\.[0-9a-f]{24}\\.tmp$`);
    const aside = new RegExp(`^${escaped}\\.lock(\\.break)?\\.\\d+\\.[0-9a-f]{24}\\.stale$`);
    for (const name of names) {
      const full = resolve(this.dir, name);
      try {
        if (temp.test(name)) await fsp.unlink(full);
        else if (aside.test(name) && Date.now() - (await fsp.lstat(full)).mtimeMs > this.lockStaleMs) await fsp.unlink(full);
      } catch {
        // Gone already, or not ours to remove: either way nothing to do.
      }
    }
  }

  private async tryCreate(path: string, info: LockInfo): Promise<'ok' | 'exists' | 'no-dir'> {
    let handle: FileHandle;
    try {
      handle = await fsp.open(path, 'wx', 0o600);
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'EEXIST') return 'exists';
      if (code === 'ENOENT') return 'no-dir';
      throw this.unavailable(`cannot create the lock ${path} (${code ?? String(err)})`, err);
    }
    try {
      await handle.writeFile(JSON.stringify(info), 'utf8');
    } catch (err) {
      await handle.close().catch(() => {});
      await fsp.unlink(path).catch(() => {});
      throw this.unavailable(`cannot write the lock ${path} (${errnoCode(err) ?? String(err)})`, err);
    }
    await handle.close().catch(() => {});
    return 'ok';
  }

  private async makeDir(): Promise<void> {
    try {
      await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw this.unavailable(`cannot create the directory ${this.dir} (${errnoCode(err) ?? String(err)})`, err);
    }
  }

  private async snapshotLock(path: string): Promise<LockSnapshot | undefined> {
    let handle: FileHandle;
    try {
      handle = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw this.unavailable(`cannot read the lock ${path} (${errnoCode(err) ?? String(err)})`, err);
    }
    try {
      const stats = await handle.stat();
      const raw = stats.isFile() && stats.size < 4096 ? await handle.readFile('utf8') : '';
      let info: LockInfo | undefined;
      try {
        const result = lockSchema.safeParse(JSON.parse(raw));
        info = result.success ? result.data : undefined;
      } catch {
        // Empty or torn: its creator may be between open and write, or died there; only its age can tell.
        info = undefined;
      }
      return { ino: stats.ino, mtimeMs: stats.mtimeMs, raw, info };
    } finally {
      await handle.close().catch(() => {});
    }
  }

  private isStale(lock: LockSnapshot): boolean {
    const since = lock.info ? Math.max(lock.info.acquiredAtMs, lock.mtimeMs) : lock.mtimeMs;
    if (Date.now() - since > this.lockStaleMs) return true;
    return lock.info !== undefined && lock.info.host === this.host && !isAlive(lock.info.pid);
  }

  private async breakStale(observed: LockSnapshot): Promise<void> {
    const guard: LockInfo = { pid: process.pid, host: this.host, token: uniqueToken(), acquiredAtMs: Date.now() };
    const created = await this.tryCreate(this.breakGuardPath, guard);
    if (created !== 'ok') {
      const other = await this.snapshotLock(this.breakGuardPath);
      if (other && this.isStale(other)) await this.removeIfSame(this.breakGuardPath, other);
      return;
    }
    try {
      const current = await this.snapshotLock(this.lockPath);
      if (current && sameLock(current, observed) && this.isStale(current)) await this.removeIfSame(this.lockPath, current);
    } finally {
      await this.removeIfSame(this.breakGuardPath, undefined, guard.token);
    }
  }

  /** Removes the file at `path` only if it is `expected` (or carries `token`); see the lock notes above. */
  private async removeIfSame(path: string, expected: LockSnapshot | undefined, token?: string): Promise<void> {
    const aside = `${path}.${process.pid}.${uniqueToken()}.stale`;
    try {
      await fsp.rename(path, aside);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw this.unavailable(`cannot move ${path} aside (${errnoCode(err) ?? String(err)})`, err);
    }
    const taken = await this.snapshotLock(aside);
    const ours = taken !== undefined && (token !== undefined ? taken.info?.token === token : expected !== undefined && sameLock(taken, expected));
    if (!ours) {
      // link() fails with EEXIST instead of replacing: if the name was taken again meanwhile, that holder keeps it.
      await fsp.link(aside, path).catch(() => {});
    }
    await fsp.unlink(aside).catch(() => {});
  }

  private async releaseLock(lock: LockInfo): Promise<void> {
    try {
      await this.removeIfSame(this.lockPath, undefined, lock.token);
    } catch {
      // Leaving the lock behind only delays others until they find our pid gone or the lock old; the commit's
      // outcome is already decided and must not be masked by this.
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Watching

  private startWatching(): void {
    if (!this.pollTimer) {
      this.lastSignature = this.signatureSync();
      this.pollTimer = setInterval(() => this.poll(), this.pollIntervalMs);
      this.pollTimer.unref();
    }
    this.armWatcher();
  }

  private armWatcher(): void {
    if (this.watcher) return;
    try {
      // persistent: false, so a watcher alone never keeps the process alive.
      const watcher = fsWatch(this.dir, { persistent: false }, (_event, filename) => {
        if (filename === null || filename === this.base) this.scheduleCheck();
      });
      watcher.on('error', () => {
        // Typically the directory was removed; polling carries on and re-arms once it is back.
        watcher.close();
        if (this.watcher === watcher) this.watcher = undefined;
      });
      this.watcher = watcher;
    } catch {
      // No directory yet, or no inotify watches left: the poll covers both.
    }
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  private poll(): void {
    if (!this.watcher) this.armWatcher();
    fsp.lstat(this.path).then(
      (stats) => this.onSignature(`${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`),
      (err: unknown) => this.onSignature(`error:${errnoCode(err)}`),
    );
  }

  private signatureSync(): string {
    try {
      const stats = lstatSync(this.path);
      return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
    } catch (err) {
      return `error:${errnoCode(err)}`;
    }
  }

  private onSignature(signature: string): void {
    if (signature === this.lastSignature) return;
    this.lastSignature = signature;
    this.scheduleCheck();
  }

  private scheduleCheck(): void {
    if (this.subscriptions.size === 0) return;
    if (this.checking) {
      this.checkAgain = true;
      return;
    }
    this.checking = true;
    void this.runChecks();
  }

  private async runChecks(): Promise<void> {
    try {
      do {
        this.checkAgain = false;
        let state: State | undefined;
        try {
          state = await this.readState();
        } catch {
          state = undefined;
        }
        for (const sub of [...this.subscriptions]) {
          const now = state ? (state.entries.get(sub.key)?.version ?? ABSENT) : UNREADABLE;
          if (now === sub.seen) continue;
          sub.seen = now;
          if (!this.subscriptions.has(sub)) continue;
          try {
            sub.onChange();
          } catch {
            // One listener's bug must not starve the others of notifications.
          }
        }
      } while (this.checkAgain && this.subscriptions.size > 0);
    } finally {
      this.checking = false;
    }
  }

  private assertUsable(options?: CallOptions): void {
    if (this.closed) throw closedError(`file (${this.path})`, 'FileLeaseStore');
    options?.signal?.throwIfAborted();
  }

  private unavailable(detail: string, cause?: unknown): StoreUnavailableError {
    return new StoreUnavailableError(`file (${this.path})`, detail, cause === undefined ? undefined : { cause });
  }
}

function sameLock(a: LockSnapshot, b: LockSnapshot): boolean {
  return a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.raw === b.raw;
}

function describeKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some platforms and filesystems refuse fsync on a directory (EINVAL, EISDIR, EPERM); nothing better exists.
  }
}
