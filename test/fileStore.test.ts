import { spawn } from 'node:child_process';
import { promises as fsPromises } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_FILE_STORE_PATH, FileLeaseStore, type FileLeaseStoreOptions } from '../src/adapters/FileLeaseStore.js';
import { testAdapter } from '../src/adapters/testAdapter.js';
import { CasMismatchError, CorruptStateError, InvalidOptionsError, StoreUnavailableError } from '../src/errors.js';

const conformanceDir = await mkdtemp(join(tmpdir(), 'fenced-leader-conformance-'));
testAdapter('file', { create: () => new FileLeaseStore({ path: join(conformanceDir, 'orchestrator-state.json') }) });
afterAll(() => rm(conformanceDir, { recursive: true, force: true }));

let dir: string;
let statePath: string;
const stores: FileLeaseStore[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fenced-leader-file-'));
  statePath = join(dir, 'orchestrator-state.json');
});

afterEach(async () => {
  vi.restoreAllMocks();
  for (const s of stores.splice(0)) await s.close();
  await chmod(dir, 0o700).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

function open(options: FileLeaseStoreOptions = {}): FileLeaseStore {
  const store = new FileLeaseStore({ path: statePath, ...options });
  stores.push(store);
  return store;
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected the call to reject');
    },
    (err: unknown) => err,
  );
}

/** The pid of a process that has certainly exited (and been reaped). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  child.kill('SIGKILL');
  await exited;
  return child.pid!;
}

function lockBody(pid: number, acquiredAtMs: number, host = hostname()): string {
  return JSON.stringify({ pid, host, token: 'planted', acquiredAtMs });
}

const isRoot = process.getuid?.() === 0;
const fromRepo = (path: string) => resolve(import.meta.dirname, '..', path);

describe('FileLeaseStore: files on disk', () => {
  it('defaults to .orchestrator/orchestrator-state.json under the working directory', () => {
    expect(new FileLeaseStore().path).toBe(resolve(DEFAULT_FILE_STORE_PATH));
    expect(DEFAULT_FILE_STORE_PATH).toBe('.orchestrator/orchestrator-state.json');
  });

  it('rejects invalid options with a typed error', () => {
    expect(() => new FileLeaseStore({ lockTimeoutMs: -1 })).toThrow(InvalidOptionsError);
    expect(() => new FileLeaseStore({ pollIntervalMs: 0.5 })).toThrow(InvalidOptionsError);
  });

  it('creates a missing parent directory 0700 and writes the state file 0600 in the documented format', async () => {
    statePath = join(dir, 'nested', 'deeper', 'orchestrator-state.json');
    const store = open();
    const v1 = await store.compareAndSet('a', null, { n: 1 });
    const v2 = await store.compareAndSet('b', null, { n: 2 });
    await store.compareAndSet('a', v1, { n: 3 });
    expect((await stat(join(dir, 'nested', 'deeper'))).mode & 0o777).toBe(0o700);
    expect((await stat(statePath)).mode & 0o777).toBe(0o600);
    const first = Number(v1);
    expect(JSON.parse(await readFile(statePath, 'utf8'))).toEqual({
      format: 'fenced-leader/v1',
      nextVersion: first + 3,
      entries: { a: { value: { n: 3 }, version: String(first + 2) }, b: { value: { n: 2 }, version: v2 } },
    });
    // No temp file, lock or break guard is left behind.
    expect(await readdir(join(dir, 'nested', 'deeper'))).toEqual(['orchestrator-state.json']);
  });

  it('never reissues a version after the state file was deleted', async () => {
    const store = open();
    const before = await store.compareAndSet('k', null, { n: 1 });
    await rm(statePath);
    const after = await store.compareAndSet('k', null, { n: 2 });
    expect(Number(after)).toBeGreaterThan(Number(before));
  });

  it('keeps versions rising across keys and across store instances, so a version never repeats', async () => {
    const first = open();
    const seen = new Set<string>();
    let v = await first.compareAndSet('k', null, { n: 0 });
    seen.add(v);
    for (let i = 1; i <= 5; i++) {
      v = await first.compareAndSet('k', v, { n: i });
      seen.add(v);
      seen.add(await first.compareAndSet(`other-${i}`, null, { i }));
    }
    const second = open();
    expect(await second.read('k')).toEqual({ value: { n: 5 }, version: v });
    const next = await second.compareAndSet('k', v, { n: 6 });
    expect(seen.has(next)).toBe(false);
    expect(Number(next)).toBeGreaterThan(Math.max(...[...seen].map(Number)));
  });

  it('round-trips a key named __proto__ and rejects values that are not plain JSON', async () => {
    const store = open();
    const v = await store.compareAndSet('__proto__', null, { polluted: false });
    expect(await open().read('__proto__')).toEqual({ value: { polluted: false }, version: v });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await expect(store.compareAndSet('nan', null, { n: Number.NaN })).rejects.toThrow(TypeError);
    expect(await store.read('nan')).toBeUndefined();
  });

  it('removes temp files left by writers that died mid-commit, and nothing else', async () => {
    const orphan = `${statePath}.4242.${'ab'.repeat(12)}.tmp`;
    await writeFile(orphan, '{"half": ');
    await writeFile(`${statePath}.bak`, 'operator backup');
    await writeFile(join(dir, 'unrelated.1.tmp'), 'not ours');
    await open().compareAndSet('k', null, { n: 1 });
    expect((await readdir(dir)).sort()).toEqual(['orchestrator-state.json', 'orchestrator-state.json.bak', 'unrelated.1.tmp']);
  });

  it('reads a missing file as empty without creating anything', async () => {
    statePath = join(dir, 'missing', 'orchestrator-state.json');
    expect(await open().read('k')).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });

  it('applies a commit whose ops only check versions without rewriting the file', async () => {
    const store = open();
    const v = await store.compareAndSet('k', null, { n: 1 });
    const before = await stat(statePath);
    expect(await store.commit([{ key: 'k', expectedVersion: v }])).toEqual([v]);
    expect((await stat(statePath)).ino).toBe(before.ino);
  });
});

describe('FileLeaseStore: corrupt or hostile files are reported and never touched', () => {
  async function expectUntouchedAfterReadAndWrite(expectedCode: string): Promise<void> {
    const before = await readFile(statePath);
    const store = open();
    const readErr = await failure(store.read('k'));
    expect((readErr as { code?: string }).code).toBe(expectedCode);
    expect((readErr as Error).message).toContain(statePath);
    if (CorruptStateError.is(readErr)) expect(readErr.path).toBe(statePath);
    const writeErr = await failure(store.compareAndSet('k', null, { n: 1 }));
    expect((writeErr as { code?: string }).code).toBe(expectedCode);
    const commitErr = await failure(store.commit([{ key: 'x', expectedVersion: null, value: 1 }]));
    expect((commitErr as { code?: string }).code).toBe(expectedCode);
    expect(await readFile(statePath)).toEqual(before);
    expect(await readdir(dir)).toEqual(['orchestrator-state.json']);
  }

  it('invalid JSON → CorruptStateError naming the path; bytes unchanged after reads and write attempts', async () => {
    await writeFile(statePath, '{"format": "fenced-leader/v1", "nextVersion": 3, "entr');
    await expectUntouchedAfterReadAndWrite(CorruptStateError.code);
  });

  it('an empty file is corrupt, not an empty store (it would otherwise be overwritten)', async () => {
    await writeFile(statePath, '');
    await expectUntouchedAfterReadAndWrite(CorruptStateError.code);
  });

  it.each([
    ['a JSON array', []],
    ['the wrong format tag', { format: 'fenced-leader/v0', nextVersion: 1, entries: {} }],
    ['no nextVersion', { format: 'fenced-leader/v1', entries: {} }],
    ['a fractional nextVersion', { format: 'fenced-leader/v1', nextVersion: 1.5, entries: {} }],
    ['a numeric entry version', { format: 'fenced-leader/v1', nextVersion: 5, entries: { k: { value: 1, version: 3 } } }],
    ['an entry without a value', { format: 'fenced-leader/v1', nextVersion: 5, entries: { k: { version: '3' } } }],
    ['an entry version the counter would reissue', { format: 'fenced-leader/v1', nextVersion: 3, entries: { k: { value: 1, version: '3' } } }],
    ['unknown top-level fields', { format: 'fenced-leader/v1', nextVersion: 1, entries: {}, extra: true }],
  ])('wrong shape (%s) → CorruptStateError, file unchanged', async (_label, content) => {
    await writeFile(statePath, JSON.stringify(content));
    await expectUntouchedAfterReadAndWrite(CorruptStateError.code);
  });

  it('a directory at the path → CorruptStateError; the directory and its contents stay', async () => {
    await mkdir(statePath);
    await writeFile(join(statePath, 'inside'), 'keep me');
    const store = open();
    const readErr = await failure(store.read('k'));
    expect(CorruptStateError.is(readErr) && readErr.path).toBe(statePath);
    const writeErr = await failure(store.compareAndSet('k', null, { n: 1 }));
    expect(CorruptStateError.is(writeErr)).toBe(true);
    expect((await lstat(statePath)).isDirectory()).toBe(true);
    expect(await readFile(join(statePath, 'inside'), 'utf8')).toBe('keep me');
    expect(await readdir(dir)).toEqual(['orchestrator-state.json']);
  });

  it('a symlink at the path → CorruptStateError; neither the link nor its target is changed', async () => {
    const target = join(dir, 'elsewhere.json');
    const valid = JSON.stringify({ format: 'fenced-leader/v1', nextVersion: 1, entries: {} });
    await writeFile(target, valid);
    await symlink(target, statePath);
    const store = open();
    const readErr = await failure(store.read('k'));
    expect(CorruptStateError.is(readErr) && readErr.path).toBe(statePath);
    expect(CorruptStateError.is(await failure(store.compareAndSet('k', null, { n: 1 })))).toBe(true);
    expect((await lstat(statePath)).isSymbolicLink()).toBe(true);
    expect(await readlink(statePath)).toBe(target);
    expect(await readFile(target, 'utf8')).toBe(valid);
    expect((await readdir(dir)).sort()).toEqual(['elsewhere.json', 'orchestrator-state.json']);
  });

  it('a path whose parent is a regular file → StoreUnavailableError naming the path; the file is unchanged', async () => {
    const parent = join(dir, 'not-a-dir');
    await writeFile(parent, 'plain file');
    statePath = join(parent, 'orchestrator-state.json');
    const store = open();
    for (const call of [store.read('k'), store.compareAndSet('k', null, { n: 1 })]) {
      const err = await failure(call);
      expect(StoreUnavailableError.is(err)).toBe(true);
      expect((err as Error).message).toContain(parent);
    }
    expect(await readFile(parent, 'utf8')).toBe('plain file');
  });

  it('an unreadable file → StoreUnavailableError naming the path; the file stays as it was', async () => {
    const content = JSON.stringify({ format: 'fenced-leader/v1', nextVersion: 1, entries: {} });
    await writeFile(statePath, content);
    await chmod(statePath, 0o000);
    if (!isRoot) {
      const err = await failure(open().read('k'));
      expect(StoreUnavailableError.is(err)).toBe(true);
      expect((err as Error).message).toContain(statePath);
    } else {
      // Root reads anything: show it to an unprivileged user instead, in a child process.
      await chmod(dir, 0o755);
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', fromRepo('test/fixtures/fileStoreRead.ts'), statePath, 'k'], {
          uid: 65534,
          gid: 65534,
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.on('error', reject);
        child.on('exit', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`exit ${code}: ${stderr}`))));
      });
      const result = JSON.parse(out.trim().split('\n').at(-1)!) as { ok: boolean; unavailable: boolean; message: string };
      expect(result).toMatchObject({ ok: false, unavailable: true });
      expect(result.message).toContain(statePath);
    }
    await chmod(statePath, 0o600);
    expect(await readFile(statePath, 'utf8')).toBe(content);
  }, 30_000);

  it('a failed write leaves the previous file intact, removes its temp file and releases the lock', async () => {
    const store = open();
    const v = await store.compareAndSet('k', null, { n: 1 });
    const before = await readFile(statePath);
    const realRename = fsPromises.rename;
    let refused = 0;
    const rename = vi.spyOn(fsPromises, 'rename').mockImplementation(async (from, to) => {
      if (String(to) !== statePath) return realRename(from, to);
      refused += 1;
      throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
    });
    const err = await failure(store.compareAndSet('k', v, { n: 2 }));
    rename.mockRestore();
    expect(refused).toBe(1);
    expect(StoreUnavailableError.is(err)).toBe(true);
    expect((err as Error).message).toContain('intact');
    expect(await readFile(statePath)).toEqual(before);
    // The lock was released, so the next write does not wait for it to go stale.
    const started = Date.now();
    await store.compareAndSet('k', v, { n: 3 });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect((await store.read('k'))?.value).toEqual({ n: 3 });
    expect(await readdir(dir)).toEqual(['orchestrator-state.json']);
  });
});

describe('FileLeaseStore: the inter-process lock', () => {
  it('breaks a lock left by a killed process at once (dead pid), long before lockStaleMs', async () => {
    await writeFile(`${statePath}.lock`, lockBody(await deadPid(), Date.now()));
    const store = open({ lockStaleMs: 600_000, lockTimeoutMs: 5_000 });
    const started = Date.now();
    await store.compareAndSet('k', null, { n: 1 });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await store.read('k'))?.value).toEqual({ n: 1 });
    expect(await readdir(dir)).toEqual(['orchestrator-state.json']);
  });

  it('gives up a commit that held the lock for more than half of lockStaleMs, changing nothing; a retry succeeds', async () => {
    const store = open({ lockStaleMs: 400, lockTimeoutMs: 5_000 });
    const v1 = await store.compareAndSet('k', null, { n: 1 });
    // Stall this process between taking the lock and committing (writing the temp file), past lockStaleMs / 2.
    const realOpen = fsPromises.open;
    fsPromises.open = (async (...args: Parameters<typeof realOpen>) => {
      if (String(args[0]).endsWith('.tmp')) await new Promise((resolve) => setTimeout(resolve, 300));
      return realOpen(...args);
    }) as typeof realOpen;
    let err: unknown;
    try {
      err = await failure(store.compareAndSet('k', v1, { n: 2 }));
    } finally {
      fsPromises.open = realOpen;
    }
    expect(StoreUnavailableError.is(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/more than half of lockStaleMs=400.*nothing was changed, retry/);
    expect((await store.read('k'))?.value).toEqual({ n: 1 });
    await store.compareAndSet('k', v1, { n: 2 });
    expect((await store.read('k'))?.value).toEqual({ n: 2 });
    expect(await readdir(dir)).toEqual(['orchestrator-state.json']);
  });

  it('breaks a lock older than lockStaleMs even if its pid is alive', async () => {
    await writeFile(`${statePath}.lock`, lockBody(process.pid, Date.now() - 60_000));
    await utimes(`${statePath}.lock`, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    await open({ lockStaleMs: 1_000, lockTimeoutMs: 5_000 }).compareAndSet('k', null, { n: 1 });
    expect(await readdir(dir)).toEqual(['orchestrator-state.json']);
  });

  it('judges an unparseable lock by its mtime only', async () => {
    await writeFile(`${statePath}.lock`, '');
    const fresh = await failure(open({ lockStaleMs: 60_000, lockTimeoutMs: 200 }).compareAndSet('k', null, { n: 1 }));
    expect(StoreUnavailableError.is(fresh)).toBe(true);
    const old = new Date(Date.now() - 120_000);
    await utimes(`${statePath}.lock`, old, old);
    await open({ lockStaleMs: 60_000, lockTimeoutMs: 2_000 }).compareAndSet('k', null, { n: 1 });
  });

  it('does not trust a dead pid recorded by another host (pid numbers are per host)', async () => {
    await writeFile(`${statePath}.lock`, lockBody(await deadPid(), Date.now(), `not-${hostname()}`));
    const err = await failure(open({ lockStaleMs: 60_000, lockTimeoutMs: 300 }).compareAndSet('k', null, { n: 1 }));
    expect(StoreUnavailableError.is(err)).toBe(true);
  });

  it('times out with StoreUnavailableError while a live lock is held, leaving lock and file alone', async () => {
    const seed = open();
    await seed.compareAndSet('k', null, { n: 1 });
    const before = await readFile(statePath);
    const lock = lockBody(process.pid, Date.now());
    await writeFile(`${statePath}.lock`, lock);
    const started = Date.now();
    const err = await failure(open({ lockTimeoutMs: 300 }).compareAndSet('k', null, { n: 2 }));
    const waited = Date.now() - started;
    expect(StoreUnavailableError.is(err)).toBe(true);
    expect((err as Error).message).toContain(`${statePath}.lock`);
    expect((err as Error).message).toContain(`pid ${process.pid}`);
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(3_000);
    expect(await readFile(`${statePath}.lock`, 'utf8')).toBe(lock);
    expect(await readFile(statePath)).toEqual(before);
    // Reads take no lock, so they still work while it is held.
    expect((await seed.read('k'))?.value).toEqual({ n: 1 });
  });

  it('rejects promptly when aborted while waiting for the lock', async () => {
    await writeFile(`${statePath}.lock`, lockBody(process.pid, Date.now()));
    const controller = new AbortController();
    const started = Date.now();
    const pending = failure(open({ lockTimeoutMs: 30_000 }).compareAndSet('k', null, { n: 1 }, { signal: controller.signal }));
    setTimeout(() => controller.abort(new Error('caller gave up')), 50);
    const err = await pending;
    expect((err as Error).message).toBe('caller gave up');
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await readdir(dir)).toEqual(['orchestrator-state.json.lock']);
  });

  it('serialises concurrent commits from several instances in one process', async () => {
    const a = open();
    const b = open();
    const v0 = await a.compareAndSet('k', null, { n: 0 });
    const outcomes = await Promise.allSettled([a, b, a, b, a, b].map((s, i) => s.compareAndSet('k', v0, { n: i })));
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes) if (o.status === 'rejected') expect(CasMismatchError.is(o.reason)).toBe(true);
  });
});

describe('FileLeaseStore: watch', () => {
  function nextCall(): { fn: () => void; called: Promise<void>; count: () => number } {
    let count = 0;
    let resolveCalled!: () => void;
    const called = new Promise<void>((r) => {
      resolveCalled = r;
    });
    return {
      fn: () => {
        count += 1;
        resolveCalled();
      },
      called,
      count: () => count,
    };
  }

  function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms))]);
  }

  it('notifies a watcher of a write made through another instance (as another process would)', async () => {
    const watcher = open();
    const writer = open();
    const call = nextCall();
    watcher.watch('k', call.fn);
    await writer.compareAndSet('k', null, { n: 1 });
    await within(call.called, 3_000, 'no notification');
  });

  it('falls back to polling when the directory does not exist yet, and notices the file appearing', async () => {
    statePath = join(dir, 'later', 'orchestrator-state.json');
    const watcher = open({ pollIntervalMs: 20 });
    const call = nextCall();
    watcher.watch('k', call.fn);
    await open().compareAndSet('k', null, { n: 1 });
    await within(call.called, 3_000, 'no notification');
  });

  it('does not call back for writes to other keys', async () => {
    const watcher = open({ pollIntervalMs: 20 });
    const writer = open();
    const watched = nextCall();
    const unrelated = nextCall();
    watcher.watch('watched', watched.fn);
    watcher.watch('unrelated', unrelated.fn);
    await writer.compareAndSet('watched', null, { n: 1 });
    await within(watched.called, 3_000, 'no notification');
    await new Promise((r) => setTimeout(r, 150));
    expect(unrelated.count()).toBe(0);
  });

  it('stops calling back after close()', async () => {
    const watcher = open({ pollIntervalMs: 20 });
    const writer = open();
    const call = nextCall();
    watcher.watch('k', call.fn);
    await watcher.close();
    await writer.compareAndSet('k', null, { n: 1 });
    await new Promise((r) => setTimeout(r, 200));
    expect(call.count()).toBe(0);
    await expect(watcher.read('k')).rejects.toThrow(/closed/);
  });

  it('never keeps the process alive', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, 'fixtures/fileStoreWatchExit.ts'), statePath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      expect(await within(exit, 10_000, 'the process did not exit')).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(out).toBe('watching\n');
  });
});
