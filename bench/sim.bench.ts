// Simulator throughput (scenarios per minute on worker threads) and overhead (wall time per simulated machine
// transition ÷ a bare XState send on the same machine), measured in the same run.
import { availableParallelism } from 'node:os';
import { createActor, fromCallback } from 'xstate';
import { runCampaign } from '../sim/campaign.js';
import { generateScenario } from '../sim/scenario.js';
import { simulate } from '../sim/simulator.js';
import { silentLogger } from '../src/logger.js';
import { electionMachine } from '../src/machines/electionMachine.js';
import { leaseKey } from '../src/machines/leaseRecord.js';

const DEFAULT = { nodes: 5, durationMs: 60_000, faults: 'all' as const, timing: { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 200 } };

/** µs per transition of the bare machine: follower.reading ⇄ follower.waiting driven by direct sends. */
function bareSendMicros(iterations: number): number {
  const clock = { setTimeout: () => 0, clearTimeout: () => {}, now: () => 0, wallNow: () => 0 };
  const machine = electionMachine.provide({
    actors: { leaseStore: fromCallback(() => {}) } as any,
  });
  const actor = createActor(machine, {
    id: 'bare',
    clock,
    input: {
      election: 'bench',
      nodeId: 'n1',
      key: leaseKey('bench'),
      timing: { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 200, maxDriftRate: 0.01, requestTimeoutMs: 200 },
      onStale: 'rejoin',
      trustStoreClock: false,
      clock,
      logger: silentLogger,
    },
  }).start();
  const entry = { version: '7', value: { holder: 'n2', epoch: 3, leaseDurationMs: 1000, renewals: 0 } };
  const drive = (n: number) => {
    for (let i = 0; i < n; i++) {
      // reading -> waiting (the lease is held, not yet expired); LEASE_CHANGED: waiting -> reading.
      actor.send({ type: 'lease.read', requestId: actor.getSnapshot().context.requestId, entry });
      actor.send({ type: 'LEASE_CHANGED' });
    }
  };
  drive(2000);
  const t0 = performance.now();
  drive(iterations);
  const ms = performance.now() - t0;
  actor.stop();
  return (ms * 1000) / (iterations * 2);
}

export async function main(): Promise<void> {
  const quick = process.env.FENCED_LEADER_BENCH_QUICK === '1';
  // Overhead, single thread.
  for (let seed = 1; seed <= 3; seed++) await simulate(generateScenario(seed, DEFAULT), { traceStore: false }); // warm-up
  const runs = quick ? 5 : 20;
  let transitions = 0;
  const t0 = performance.now();
  for (let seed = 100; seed < 100 + runs; seed++) transitions += (await simulate(generateScenario(seed, DEFAULT), { traceStore: false })).transitions;
  const simMs = performance.now() - t0;
  const perTransition = (simMs * 1000) / transitions;
  const bare = bareSendMicros(quick ? 5000 : 50_000);
  console.log(`single thread: ${(simMs / runs).toFixed(1)} ms per scenario, ${Math.round(transitions / runs)} transitions each`);
  console.log(`simulated transition: ${perTransition.toFixed(1)} µs wall; bare XState send on electionMachine: ${bare.toFixed(1)} µs`);
  console.log(`overhead ratio (target ≤ 2): ${(perTransition / bare).toFixed(2)}`);

  // Throughput on all cores.
  const workers = availableParallelism();
  const seeds = Array.from({ length: quick ? 20 : 200 }, (_, i) => 1000 + i);
  const t1 = performance.now();
  await runCampaign({ seeds, generate: DEFAULT, workers });
  const wall = performance.now() - t1;
  const perMinute = (seeds.length / wall) * 60_000;
  console.log(`default scenario (5 nodes, 60 simulated s, all faults, 1000/600/200 ms): ${seeds.length} scenarios on ${workers} worker threads in ${(wall / 1000).toFixed(1)} s`);
  console.log(`scenarios per minute (target ≥ 10,000): ${Math.round(perMinute)}`);
}
