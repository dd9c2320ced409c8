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

/** A bare actor of the machine, driven follower.reading ⇄ follower.waiting by direct sends; returns ms for n round trips. */
function bareDriver(): { drive(n: number): number; stop(): void } {
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
  return {
    drive(n: number): number {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        // reading -> waiting (the lease is held, not yet expired); LEASE_CHANGED: waiting -> reading.
        actor.send({ type: 'lease.read', requestId: actor.getSnapshot().context.requestId, entry });
        actor.send({ type: 'LEASE_CHANGED' });
      }
      return performance.now() - t0;
    },
    stop: () => actor.stop(),
  };
}

export async function main(): Promise<void> {
  const quick = process.env.FENCED_LEADER_BENCH_QUICK === '1';
  // Overhead, single thread.
  for (let seed = 1; seed <= 3; seed++) await simulate(generateScenario(seed, DEFAULT), { traceStore: false }); // warm-up
  const runs = quick ? 5 : 20;
  const bareActor = bareDriver();
  bareActor.drive(2000); // warm-up
  // Interleaved, one scenario then as many bare transitions as it had, so that both see the same machine load.
  let transitions = 0;
  let simMs = 0;
  let bareMs = 0;
  let bareTransitions = 0;
  for (let seed = 100; seed < 100 + runs; seed++) {
    const t0 = performance.now();
    const n = (await simulate(generateScenario(seed, DEFAULT), { traceStore: false })).transitions;
    simMs += performance.now() - t0;
    transitions += n;
    const rounds = Math.ceil(n / 2);
    bareMs += bareActor.drive(rounds);
    bareTransitions += 2 * rounds;
  }
  // The same bare loop once more on its own, after the simulations: no simulation garbage to collect meanwhile.
  const aloneRounds = quick ? 5000 : 50_000;
  const bareAlone = (bareActor.drive(aloneRounds) * 1000) / (2 * aloneRounds);
  bareActor.stop();
  const perTransition = (simMs * 1000) / transitions;
  const bare = (bareMs * 1000) / bareTransitions;
  console.log(`single thread: ${(simMs / runs).toFixed(1)} ms per scenario, ${Math.round(transitions / runs)} transitions each`);
  console.log(`simulated transition: ${perTransition.toFixed(1)} µs wall; bare XState send on electionMachine: ${bare.toFixed(1)} µs`);
  console.log(`overhead ratio (target ≤ 2): ${(perTransition / bare).toFixed(2)} (bare sends interleaved with the scenarios)`);
  console.log(`  the same against the bare loop run alone afterwards (${bareAlone.toFixed(1)} µs): ${(perTransition / bareAlone).toFixed(2)}`);

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
