/**
 * 8 real processes contend for one election on each backend, with random SIGKILLs (often of the current leader)
 * and restarts. Every process logs its acquisitions and its FenceGuard-admitted writes; afterwards:
 * - every epoch was acquired by exactly one process;
 * - every admitted write carried an epoch its own process had acquired;
 * - the admitted tokens, in the store's order of the guard record's versions, never go backwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Backend, etcd, postgres, redis, sleep } from './backends.js';
import { RUN_ID, requireUnderCi } from './servers.js';

const CONTENDER = fileURLToPath(new URL('../fixtures/backendContender.ts', import.meta.url));
const PROCESSES = 8;
const RUN_MS = Number(process.env.FENCED_LEADER_MP_MS ?? 12_000);

interface Line {
  type: 'ready' | 'acquired' | 'write' | 'rejected' | 'error';
  node: string;
  pid: number;
  epoch?: number;
  token?: number;
  version?: string;
  highWater?: number;
  message?: string;
}

interface Contender {
  node: string;
  child: ChildProcess;
  lines: Line[];
  stderr: string;
  exited: Promise<void>;
}

function startContender(recipe: object, election: string, node: string, guardKey: string): Contender {
  const child = spawn(process.execPath, ['--import', 'tsx', CONTENDER, JSON.stringify(recipe), election, node, guardKey], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const contender: Contender = { node, child, lines: [], stderr: '', exited: new Promise((r) => child.once('exit', () => r())) };
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      // A SIGKILL can cut a line short; only whole lines count.
      try {
        contender.lines.push(JSON.parse(line) as Line);
      } catch {}
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    contender.stderr += chunk;
  });
  return contender;
}

async function kill(contender: Contender): Promise<void> {
  contender.child.kill('SIGKILL');
  await contender.exited;
}

async function mpSuite(backend: Backend): Promise<void> {
  const server = await backend.probe();
  if (requireUnderCi(backend.label, server)) return;
  if (!server.ok) console.warn(`\n!!! SKIPPING ${backend.label} multi-process test: ${server.reason}\n`);
  describe(`${backend.label}: ${PROCESSES} processes with random kills`, () => {
    it.skipIf(!server.ok)(
      'every epoch is held by exactly one process, and admitted tokens never go backwards in store order',
      async () => {
        const ns = `mp_${RUN_ID}`;
        const election = `mp-${backend.name}-${randomBytes(4).toString('hex')}`;
        const guardKey = `resource/${election}/high-water`;
        const recipe = backend.recipe({ ns });
        // Create the schema/table once up front, so eight processes do not all race to do it.
        const setup = backend.create({ ns });
        await setup.read(guardKey);

        const all: Contender[] = [];
        const live = new Map<number, Contender>();
        let restarts = 0;
        const launch = (slot: number) => {
          const c = startContender(recipe, election, `p${slot}-${restarts++}`, guardKey);
          all.push(c);
          live.set(slot, c);
        };
        try {
          for (let slot = 0; slot < PROCESSES; slot++) launch(slot);
          // Let the processes start (tsx on a small machine takes a moment) before the clock of the run starts.
          const started = performance.now();
          while (![...live.values()].every((c) => c.lines.some((l) => l.type === 'ready'))) {
            if (performance.now() - started > 30_000) throw new Error('contenders did not start');
            await sleep(50);
          }

          const end = performance.now() + RUN_MS;
          let kills = 0;
          while (performance.now() < end) {
            await sleep(700 + Math.random() * 900);
            // Two kills in three hit the current leader, to force failovers; the rest hit anyone.
            const leaderSlot = [...live].find(([, c]) => latestLeader(all) === c.node)?.[0];
            const slot =
              leaderSlot !== undefined && Math.random() < 2 / 3 ? leaderSlot : Math.floor(Math.random() * PROCESSES);
            await kill(live.get(slot)!);
            kills += 1;
            launch(slot);
          }
          // Let the last leader settle in and write a little.
          await sleep(2500);
          console.log(`${backend.label}: ${kills} kills, ${all.length} processes`);
        } finally {
          await Promise.all([...live.values()].map(kill));
          await setup.close();
        }

        const lines = all.flatMap((c) => c.lines);
        const errors = all.filter((c) => /Error/.test(c.stderr)).map((c) => `${c.node}: ${c.stderr.slice(0, 500)}`);
        expect(errors, 'contender stderr').toEqual([]);

        // Every epoch held by exactly one process.
        const holders = new Map<number, Set<string>>();
        for (const l of lines.filter((x) => x.type === 'acquired')) {
          const set = holders.get(l.epoch!) ?? new Set<string>();
          set.add(`${l.node}#${l.pid}`);
          holders.set(l.epoch!, set);
        }
        const shared = [...holders].filter(([, set]) => set.size > 1);
        expect(shared, 'epochs acquired by more than one process').toEqual([]);
        expect(holders.size, 'distinct epochs (failovers happened)').toBeGreaterThanOrEqual(3);

        // Every admitted write carried an epoch its own process acquired.
        const writes = lines.filter((l) => l.type === 'write');
        const foreign = writes.filter((w) => !holders.get(w.token!)?.has(`${w.node}#${w.pid}`));
        expect(foreign, 'writes with a token the writer never acquired').toEqual([]);
        expect(writes.length).toBeGreaterThan(20);

        // In the store's order (the guard record's versions rise with every write), tokens never go backwards.
        const ordered = [...writes].sort((x, y) => {
          const a = BigInt(x.version!);
          const b = BigInt(y.version!);
          return a < b ? -1 : a > b ? 1 : 0;
        });
        const backwards = ordered.filter((w, i) => i > 0 && w.token! < ordered[i - 1]!.token!);
        expect(backwards, 'admitted tokens going backwards in store order').toEqual([]);
        // One version, one token: admissions decided at the same record agree on it.
        const byVersion = new Map<string, Set<number>>();
        for (const w of writes) byVersion.set(w.version!, (byVersion.get(w.version!) ?? new Set()).add(w.token!));
        expect([...byVersion].filter(([, t]) => t.size > 1)).toEqual([]);

        const rejected = lines.filter((l) => l.type === 'rejected').length;
        const failed = lines.filter((l) => l.type === 'error').length;
        console.log(
          `${backend.label}: ${holders.size} epochs, ${writes.length} admitted writes, ${rejected} stale rejections, ${failed} failed write attempts`,
        );
        await backend.cleanup(ns);
      },
      90_000,
    );
  });
}

function latestLeader(all: Contender[]): string | undefined {
  let best: Line | undefined;
  for (const c of all) for (const l of c.lines) if (l.type === 'acquired' && (!best || l.epoch! > best.epoch!)) best = l;
  return best?.node;
}

await mpSuite(redis);
await mpSuite(postgres);
await mpSuite(etcd);
