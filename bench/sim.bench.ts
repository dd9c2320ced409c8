// Simulator throughput (scenarios per minute on worker threads) and overhead (wall time per simulated machine
// transition ÷ a bare XState send on the same machine), measured in the same run.
import { availableParallelism } from 'node:os';
import { createActor, fromCallback, setup } from 'xstate';
import { runCampaign } from '../sim/campaign.js';
import { generateScenario, requestTimeout, type Scenario } from '../sim/scenario.js';
import { simulate } from '../sim/simulator.js';
import type { TraceLine } from '../sim/trace.js';
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

/**
 * XState's own floor: µs per `send` on the cheapest machine there is (two states, one event, no context, no actions,
 * no timers). No machine run by XState's interpreter can take an event for less, whatever the simulator does.
 */
function xstateFloor(sends: number): number {
  const toggle = setup({}).createMachine({ initial: 'a', states: { a: { on: { GO: 'b' } }, b: { on: { GO: 'a' } } } });
  const actor = createActor(toggle).start();
  for (let i = 0; i < 20_000; i++) actor.send({ type: 'GO' });
  const t0 = performance.now();
  for (let i = 0; i < sends; i++) actor.send({ type: 'GO' });
  const us = ((performance.now() - t0) * 1000) / sends;
  actor.stop();
  return us;
}

interface MachineEvent {
  readonly node: string;
  readonly incarnation: number;
  readonly event: { type: string };
  readonly now: number;
  readonly wallNow: number;
}

/**
 * The same XState work without the simulator: every event the scenario's machines processed, sent in the same global
 * order to bare actors of the same machine (no-op timers and store, the recorded clock readings). Returns the wall ms
 * and the state changes seen, which must equal the simulation's for the replay to count.
 */
function replay(scenario: Scenario, events: readonly MachineEvent[]): { ms: number; transitions: number } {
  const actors = new Map<string, { actor: ReturnType<typeof createActor>; clock: { at: number; wall: number }; path: string }>();
  const noop = fromCallback(() => {});
  const machine = electionMachine.provide({ actors: { leaseStore: noop, leaderWork: noop } as any });
  const timing = { ...scenario.timing, requestTimeoutMs: requestTimeout(scenario.timing) };
  const start = (node: string, incarnation: number) => {
    const state = { at: 0, wall: 0 };
    const clock = { setTimeout: () => 0, clearTimeout: () => {}, now: () => state.at, wallNow: () => state.wall };
    const actor = createActor(machine, {
      id: `${node}#${incarnation}`,
      clock,
      input: { election: 'sim', nodeId: node, key: leaseKey('sim'), timing, onStale: scenario.onStale ?? 'rejoin', trustStoreClock: false, clock, logger: silentLogger },
    });
    const entry = { actor, clock: state, path: '' };
    actors.set(`${node}#${incarnation}`, entry);
    return entry;
  };
  const feed = (after?: (entry: { actor: ReturnType<typeof createActor>; path: string }) => void) => {
    actors.clear();
    for (const e of events) {
      const key = `${e.node}#${e.incarnation}`;
      const entry = actors.get(key) ?? start(e.node, e.incarnation);
      entry.clock.at = e.now;
      entry.clock.wall = e.wallNow;
      if (e.event.type === 'xstate.init') entry.actor.start();
      else entry.actor.send(e.event as any);
      after?.(entry);
    }
    for (const entry of actors.values()) entry.actor.stop();
  };
  const t0 = performance.now();
  feed();
  const ms = performance.now() - t0;
  // Validation pass (untimed): the same sequence must give the simulation's number of state changes.
  let transitions = 0;
  feed((entry) => {
    const path = JSON.stringify((entry.actor.getSnapshot() as { value: unknown }).value);
    if (path !== entry.path) transitions++;
    entry.path = path;
  });
  return { ms, transitions };
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
  // The same XState work replayed without the simulator (same machine, same events, same order, same clock readings).
  let replayMs = 0;
  let replayed = 0;
  let replayChecked = true;
  let machineEvents = 0;
  for (let seed = 100; seed < 100 + runs; seed++) {
    const scenario = generateScenario(seed, DEFAULT);
    const events: MachineEvent[] = [];
    const r = await simulate(scenario, { traceStore: false, onMachineEvent: (node, incarnation, event, now, wallNow) => events.push({ node, incarnation, event, now, wallNow }) });
    machineEvents += events.length;
    const out = replay(scenario, events);
    replayMs += out.ms;
    replayed += r.transitions;
    if (out.transitions !== r.transitions - crashes(r.trace)) replayChecked = false;
  }
  const perReplayed = (replayMs * 1000) / replayed;
  // The same bare loop once more on its own, after the simulations: no simulation garbage to collect meanwhile.
  const aloneRounds = quick ? 5000 : 50_000;
  const bareAlone = (bareActor.drive(aloneRounds) * 1000) / (2 * aloneRounds);
  bareActor.stop();
  const perTransition = (simMs * 1000) / transitions;
  const bare = (bareMs * 1000) / bareTransitions;
  console.log(`single thread: ${(simMs / runs).toFixed(1)} ms per scenario, ${Math.round(transitions / runs)} transitions each`);
  console.log(`simulated transition: ${perTransition.toFixed(1)} µs wall; bare XState send on electionMachine: ${bare.toFixed(1)} µs`);
  // The honest baseline is the replay: the same XState work (every transition kind the protocol takes, in the same
  // order). The two-state bare loop exercises only the cheapest follower transitions, in a warm, monomorphic loop.
  console.log(
    `overhead ratio (target ≤ 2): ${(perTransition / perReplayed).toFixed(2)} against a replay of the scenarios' own machine events into bare actors (${perReplayed.toFixed(1)} µs per transition${replayChecked ? '' : '; REPLAY DIVERGED, figure invalid'})`,
  );
  console.log(`  against the bare reading ⇄ waiting loop: ${(perTransition / bare).toFixed(2)} interleaved with the scenarios, ${(perTransition / bareAlone).toFixed(2)} run alone afterwards (${bareAlone.toFixed(1)} µs)`);

  // The ceiling XState alone puts on throughput: every event the scenario's machines take, at the floor price, on
  // every core, with a simulator that costs nothing.
  const workers = availableParallelism();
  const floor = xstateFloor(quick ? 50_000 : 500_000);
  const eventsPerScenario = machineEvents / runs;
  const ceiling = (workers * 60_000) / ((eventsPerScenario * floor) / 1000);
  console.log(
    `XState floor: ${floor.toFixed(2)} µs per send on a two-state toggle machine; the default scenario's machines take ${Math.round(eventsPerScenario)} events, so at that floor, with a free simulator, ${workers} cores give at most ${Math.round(ceiling)} scenarios per minute`,
  );

  // Throughput on all cores.
  const seeds = Array.from({ length: quick ? 20 : 200 }, (_, i) => 1000 + i);
  const t1 = performance.now();
  await runCampaign({ seeds, generate: DEFAULT, workers });
  const wall = performance.now() - t1;
  const perMinute = (seeds.length / wall) * 60_000;
  console.log(`default scenario (5 nodes, 60 simulated s, all faults, 1000/600/200 ms): ${seeds.length} scenarios on ${workers} worker threads in ${(wall / 1000).toFixed(1)} s`);
  console.log(`scenarios per minute (target ≥ 10,000): ${Math.round(perMinute)}`);
}

/** Crash lines count as transitions in the simulation but are no machine event. */
function crashes(trace: readonly TraceLine[]): number {
  return trace.filter((l) => l.kind === 'transition' && l.event === 'crash').length;
}
