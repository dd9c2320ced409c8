import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileLeaseStore } from '../src/adapters/FileLeaseStore.js';

const WORKER = resolve(import.meta.dirname, 'fixtures/fileCasWorker.ts');

interface WorkerMessage {
  type: 'success' | 'done' | 'stalled';
  id: string;
  epoch?: number;
  epochs?: number[];
  mismatches?: number;
  pid?: number;
}

interface Worker {
  readonly id: string;
  readonly child: ChildProcess;
  readonly messages: WorkerMessage[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
  /** Resolves with the first message of this type. */
  next(type: WorkerMessage['type']): Promise<WorkerMessage>;
}

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

function startWorker(statePath: string, id: string, target: number, stallAfter?: number): Worker {
  const args = ['--import', 'tsx', WORKER, statePath, id, String(target)];
  if (stallAfter !== undefined) args.push(String(stallAfter));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const messages: WorkerMessage[] = [];
  const waiters: Array<{ type: WorkerMessage['type']; resolve: (m: WorkerMessage) => void }> = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      const message = JSON.parse(buffered.slice(0, newline)) as WorkerMessage;
      buffered = buffered.slice(newline + 1);
      messages.push(message);
      for (const waiter of waiters.filter((w) => w.type === message.type)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(message);
      }
      newline = buffered.indexOf('\n');
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((r) => {
    child.on('close', (code, signal) => r({ code, signal, stderr }));
  });
  const next = (type: WorkerMessage['type']) =>
    new Promise<WorkerMessage>((resolvePromise, reject) => {
      const seen = messages.find((m) => m.type === type);
      if (seen) return resolvePromise(seen);
      waiters.push({ type, resolve: resolvePromise });
      void exited.then(({ code, signal }) => reject(new Error(`worker ${id} exited (${code ?? signal}) before "${type}": ${stderr}`)));
    });
  return { id, child, messages, exited, next };
}

async function finalLease(statePath: string): Promise<{ epoch: number; holder: string }> {
  const store = new FileLeaseStore({ path: statePath });
  try {
    return (await store.read('lease/leader'))!.value as { epoch: number; holder: string };
  } finally {
    await store.close();
  }
}

async function newStatePath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fenced-leader-contention-'));
  dirs.push(dir);
  return join(dir, 'orchestrator-state.json');
}

describe('file store shared by several processes', () => {
  it('serialises compare-and-set across 6 processes: distinct epochs, no lost update', async () => {
    const statePath = await newStatePath();
    const perWorker = 40;
    const workers = Array.from({ length: 6 }, (_, i) => startWorker(statePath, `w${i}`, perWorker));
    const results = await Promise.all(workers.map((w) => w.exited));
    for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });

    const all: number[] = [];
    let mismatches = 0;
    for (const w of workers) {
      const done = w.messages.find((m) => m.type === 'done')!;
      expect(done.epochs).toHaveLength(perWorker);
      // A worker's own epochs rise: it always builds on a state at least as new as its previous write.
      expect(done.epochs).toEqual([...done.epochs!].sort((a, b) => a - b));
      all.push(...done.epochs!);
      mismatches += done.mismatches!;
    }
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort((a, b) => a - b)).toEqual(Array.from({ length: 6 * perWorker }, (_, i) => i + 1));
    const lease = await finalLease(statePath);
    expect(lease.epoch).toBe(6 * perWorker);
    // The winner of the last epoch is the process that reported it.
    expect(workers.find((w) => w.messages.some((m) => m.type === 'success' && m.epoch === lease.epoch))?.id).toBe(lease.holder);
    // Contention actually happened, so the CAS path under the lock was exercised, not just sequential writes.
    expect(mismatches).toBeGreaterThan(0);
    expect((await readdir(join(statePath, '..'))).sort()).toEqual(['orchestrator-state.json']);
  });

  it('recovers the lock of a process killed with SIGKILL mid-commit; the survivors finish', async () => {
    const statePath = await newStatePath();
    const perWorker = 25;
    const victim = startWorker(statePath, 'victim', 1_000, 5);
    const survivors = Array.from({ length: 4 }, (_, i) => startWorker(statePath, `s${i}`, perWorker));

    const stalled = await victim.next('stalled');
    // The victim is frozen inside its commit, holding the lock: the survivors are all blocked behind it now.
    const lock = JSON.parse(await readFile(`${statePath}.lock`, 'utf8')) as { pid: number };
    expect(lock.pid).toBe(stalled.pid);
    expect(lock.pid).toBe(victim.child.pid);
    const epochBeforeKill = (await finalLease(statePath)).epoch;
    victim.child.kill('SIGKILL');
    const victimExit = await victim.exited;
    expect(victimExit.signal).toBe('SIGKILL');

    const results = await Promise.all(survivors.map((w) => w.exited));
    for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });

    const victimEpochs = victim.messages.filter((m) => m.type === 'success').map((m) => m.epoch!);
    expect(victimEpochs).toHaveLength(5);
    const survivorEpochs = survivors.flatMap((w) => w.messages.find((m) => m.type === 'done')!.epochs!);
    expect(survivorEpochs).toHaveLength(4 * perWorker);
    // Progress after the kill: the survivors wrote past the epoch that was current while the lock was held.
    expect(Math.max(...survivorEpochs)).toBeGreaterThan(epochBeforeKill);
    const all = [...victimEpochs, ...survivorEpochs];
    expect(new Set(all).size).toBe(all.length);
    // The victim's stalled write never reached its rename, so it must not have landed: every epoch is accounted for.
    const lease = await finalLease(statePath);
    expect(lease.epoch).toBe(all.length);
    expect([...all].sort((a, b) => a - b)).toEqual(Array.from({ length: all.length }, (_, i) => i + 1));
    // The broken lock is gone, and so is the temp file the victim had written before it stalled.
    expect(await readdir(join(statePath, '..'))).toEqual(['orchestrator-state.json']);
  });
});
