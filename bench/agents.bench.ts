/**
 * Task-board contention (`npm run bench -- agents`). The board is one store key: every claim and every completion
 * is a compare-and-set of the whole board, so concurrent workers conflict on it and retry (re-read, re-plan, write
 * again; `ContentionError` after MAX_ATTEMPTS). Per store and worker count, W registered agents drain a board of
 * T tasks as fast as they can (claim → complete, no work in between: the worst case for contention) and we report:
 * - tasks/s, and the speed-up over one worker;
 * - board writes attempted per task (2 without contention: one claim, one completion) and conflicts per task;
 * - claim latency p50/p99 (one `claim()` call, retries included) and claims that gave up (`ContentionError`).
 * Stores: the memory store as is (CPU only: each read validates, each write copies, the whole board) and behind
 * ~1 ms of latency per call (a network store's round trip), and the file store with one `FileLeaseStore` per worker
 * on the same file (as separate processes would have). Also printed: the cost of one validated read of a board of
 * T tasks, which every claim and completion pays at least once whatever the contention.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { percentile } from '../sim/stats.js';
import { FileLeaseStore } from '../src/adapters/FileLeaseStore.js';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../src/adapters/MemoryLeaseStore.js';
import { ContentionError } from '../src/agents/errors.js';
import { AgentRegistry } from '../src/agents/registry.js';
import { agentKeys } from '../src/agents/schema.js';
import { realClock } from '../src/clock.js';
import { CasMismatchError } from '../src/errors.js';

const ELECTION = 'bench';
const BOARD = agentKeys(ELECTION).board;
const WORKERS = (process.env.BENCH_AGENT_WORKERS ?? '1,4,8,16').split(',').map(Number);
const TASKS = Number(process.env.BENCH_AGENT_TASKS ?? 200);
const LATENCY_MS = Number(process.env.BENCH_AGENT_LATENCY_MS ?? 1);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Counts board writes and board conflicts; optionally delays each call (before it reaches the store). */
class Counting implements LeaseStore {
  readonly kind = 'counting';
  constructor(
    private readonly inner: LeaseStore,
    private readonly counters: { boardWrites: number; boardConflicts: number },
    private readonly delayMs = 0,
  ) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  async read(key: string, options?: CallOptions): Promise<StoreEntry | undefined> {
    if (this.delayMs > 0) await sleep(this.delayMs);
    return this.inner.read(key, options);
  }
  compareAndSet(key: string, expectedVersion: string | null, value: Json, options?: CallOptions): Promise<string> {
    return this.commit([{ key, expectedVersion, value }], options).then((v) => v[0]!);
  }
  async commit(ops: readonly CommitOp[], options?: CallOptions): Promise<string[]> {
    if (this.delayMs > 0) await sleep(this.delayMs);
    const board = ops.some((o) => o.key === BOARD && o.value !== undefined);
    if (board) this.counters.boardWrites += 1;
    try {
      return await this.inner.commit(ops, options);
    } catch (err) {
      if (board && CasMismatchError.is(err) && err.key === BOARD) this.counters.boardConflicts += 1;
      throw err;
    }
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

interface Row {
  store: string;
  workers: number;
  tasks: number;
  seconds: number;
  tasksPerSec: number;
  speedup: number;
  writesPerTask: number;
  conflictsPerTask: number;
  claimP50: number;
  claimP99: number;
  gaveUp: number;
}

async function drain(name: string, stores: (i: number) => LeaseStore, workers: number, delayMs: number): Promise<Omit<Row, 'speedup'>> {
  const counters = { boardWrites: 0, boardConflicts: 0 };
  const setup = new AgentRegistry(stores(-1), ELECTION, realClock);
  const registries = Array.from({ length: workers }, (_, i) => new AgentRegistry(new Counting(stores(i), counters, delayMs), ELECTION, realClock));
  for (let i = 0; i < workers; i++) await setup.register({ id: `w${i + 1}`, role: 'worker', capabilities: [] });
  await setup.submitTasks(Array.from({ length: TASKS }, (_, i) => ({ id: `t${i + 1}`, kind: 'work', payload: { n: i } })));
  const claimMs: number[] = [];
  let gaveUp = 0;
  let completed = 0;
  const started = performance.now();
  await Promise.all(
    registries.map(async (registry, i) => {
      const id = `w${i + 1}`;
      for (;;) {
        const t0 = performance.now();
        let claimed: Awaited<ReturnType<AgentRegistry['claim']>>;
        try {
          claimed = await registry.claim(id);
        } catch (err) {
          if (!ContentionError.is(err)) throw err;
          gaveUp += 1;
          continue;
        }
        claimMs.push(performance.now() - t0);
        if (!claimed) return;
        for (;;) {
          try {
            await registry.complete(id, claimed.task.id, claimed.claimToken, null);
            completed += 1;
            break;
          } catch (err) {
            if (!ContentionError.is(err)) throw err;
            gaveUp += 1;
          }
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  if (completed !== TASKS) throw new Error(`${name}: ${completed} of ${TASKS} tasks completed`);
  const sorted = claimMs.sort((a, b) => a - b);
  return {
    store: name,
    workers,
    tasks: TASKS,
    seconds,
    tasksPerSec: TASKS / seconds,
    writesPerTask: counters.boardWrites / TASKS,
    conflictsPerTask: counters.boardConflicts / TASKS,
    claimP50: percentile(sorted, 50),
    claimP99: percentile(sorted, 99),
    gaveUp,
  };
}

const fmt = (n: number, d = 1) => n.toFixed(d);

/** ms per validated read of a board of `TASKS` queued tasks (what `readBoard` pays on every call). */
async function boardReadMs(): Promise<number> {
  const store = new MemoryLeaseStore();
  const registry = new AgentRegistry(store, ELECTION, realClock);
  await registry.submitTasks(Array.from({ length: TASKS }, (_, i) => ({ id: `t${i + 1}`, kind: 'work', payload: { n: i } })));
  for (let i = 0; i < 20; i++) await registry.readBoard();
  const n = 200;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await registry.readBoard();
  return (performance.now() - t0) / n;
}

export async function main(): Promise<void> {
  const rows: Row[] = [];
  for (const kind of ['memory', 'memory-latency', 'file'] as const) {
    let base: number | undefined;
    for (const workers of WORKERS) {
      let dir: string | undefined;
      let stores: (i: number) => LeaseStore;
      const opened: LeaseStore[] = [];
      if (kind !== 'file') {
        const shared = new MemoryLeaseStore();
        stores = () => shared;
      } else {
        dir = await mkdtemp(join(tmpdir(), 'fenced-leader-agents-bench-'));
        const path = join(dir, 'state.json');
        stores = () => {
          const s = new FileLeaseStore({ path });
          opened.push(s);
          return s;
        };
      }
      const name = kind === 'memory' ? 'memory' : kind === 'memory-latency' ? `memory +${LATENCY_MS} ms/call` : 'file';
      const row = await drain(name, stores, workers, kind === 'memory-latency' ? LATENCY_MS : 0);
      base ??= row.tasksPerSec;
      rows.push({ ...row, speedup: row.tasksPerSec / base });
      for (const s of opened) await s.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  }
  console.log(`board contention: ${TASKS} tasks drained by W workers (claim → complete, no work); ideal 2 board writes per task`);
  console.log(`one validated read of a ${TASKS}-task board: ${fmt(await boardReadMs(), 2)} ms`);
  console.log('store                 W   tasks/s  speed-up  writes/task  conflicts/task  claim p50  claim p99  gave up');
  for (const r of rows) {
    console.log(
      `${r.store.padEnd(20)} ${String(r.workers).padStart(2)} ${fmt(r.tasksPerSec, 0).padStart(9)} ${fmt(r.speedup, 2).padStart(9)} ${fmt(r.writesPerTask, 2).padStart(12)} ${fmt(r.conflictsPerTask, 2).padStart(15)} ${`${fmt(r.claimP50)} ms`.padStart(10)} ${`${fmt(r.claimP99)} ms`.padStart(10)} ${String(r.gaveUp).padStart(8)}`,
    );
  }
}
