import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { agentStats } from './agentCheckers.js';
import { simulateAgents } from './agents.js';
import type { Violation } from './checkers.js';
import { type GenerateOptions, generateScenario } from './scenario.js';

/** What one scenario of a campaign reports back (small: traces stay in the worker). */
export interface ScenarioOutcome {
  readonly seed: number;
  readonly violations: Violation[];
  readonly simulatedMs: number;
  readonly availability: number;
  readonly failovers: number[];
  readonly epochs: number;
  readonly transitions: number;
  readonly events: number;
  readonly acceptedWrites: number;
  readonly rejectedWrites: number;
  /** With `--agents`: tasks, completions, requeues, stale marks and detection latencies (real ms). */
  readonly agents?: { tasks: number; completed: number; requeued: number; staleMarks: number; retired: number; detectionMs: number[]; detectionBoundMs: number };
}

export async function runOne(seed: number, options: GenerateOptions): Promise<ScenarioOutcome> {
  const r = await simulateAgents(generateScenario(seed, options), { traceStore: false });
  const agents = agentStats(r.trace);
  return {
    ...(agents ? { agents } : {}),
    seed,
    violations: r.violations,
    simulatedMs: r.stats.simulatedMs,
    availability: r.stats.availability,
    failovers: r.stats.failovers,
    epochs: r.stats.epochs,
    transitions: r.transitions,
    events: r.events,
    acceptedWrites: r.stats.acceptedWrites,
    rejectedWrites: r.stats.rejectedWrites,
  };
}

export interface CampaignOptions {
  readonly seeds: readonly number[];
  readonly generate: GenerateOptions;
  /** Worker threads (default: one per core, at most the number of seeds); 0 or 1 runs in this thread. */
  readonly workers?: number;
  readonly onOutcome?: (o: ScenarioOutcome) => void;
}

/**
 * Runs many seeds, spread over worker threads. Each seed is an independent deterministic run, so the outcomes are
 * the same whatever the thread count; they are returned in seed order.
 */
export async function runCampaign(o: CampaignOptions): Promise<ScenarioOutcome[]> {
  const threads = Math.min(o.workers ?? availableParallelism(), o.seeds.length);
  const results: ScenarioOutcome[] = [];
  if (threads <= 1) {
    for (const seed of o.seeds) {
      const r = await runOne(seed, o.generate);
      results.push(r);
      o.onOutcome?.(r);
    }
    return results;
  }
  const queue = [...o.seeds];
  const fromSource = import.meta.url.endsWith('.ts');
  const workerUrl = new URL(fromSource ? './campaignWorker.ts' : './campaignWorker.js', import.meta.url);
  // From TypeScript sources (tsx, vitest) a worker must register the TypeScript loader itself: workers do not inherit it.
  // A run allocates a snapshot per transition and a trace line per message, all short-lived: with V8's default young
  // generation, scavenges took a fifth of the time; a larger one made campaigns ~40 % faster (see the session note).
  const workerOptions = { workerData: { generate: o.generate }, resourceLimits: { maxYoungGenerationSizeMb: 256 } };
  // The loader is resolved from this module, not from the worker's cwd: the bin may run from any directory. (Its
  // ESM entry: createRequire would find the CommonJS one, whose register() then fails to find its own loader.)
  const tsxApi = fromSource ? import.meta.resolve('tsx/esm/api') : '';
  const spawn = () =>
    fromSource
      ? new Worker(`import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); });`, { eval: true, ...workerOptions })
      : new Worker(workerUrl, workerOptions);
  await Promise.all(
    Array.from({ length: threads }, async () => {
      const worker = spawn();
      try {
        for (;;) {
          const seed = queue.shift();
          if (seed === undefined) break;
          const r = await new Promise<ScenarioOutcome>((resolve, reject) => {
            worker.once('message', resolve);
            worker.once('error', reject);
            worker.postMessage(seed);
          });
          worker.removeAllListeners('error');
          results.push(r);
          o.onOutcome?.(r);
        }
      } finally {
        await worker.terminate();
      }
    }),
  );
  return results.sort((a, b) => a.seed - b.seed);
}
