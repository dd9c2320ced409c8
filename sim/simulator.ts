import { type AnyActorRef, fromCallback, type InspectionEvent } from 'xstate';
import { MemoryLeaseStore } from '../src/adapters/MemoryLeaseStore.js';
import type { ElectionClock } from '../src/clock.js';
import { createElector, type LeaderWork } from '../src/createElector.js';
import { CasMismatchError, NotLeaderError } from '../src/errors.js';
import { FenceGuard } from '../src/FenceGuard.js';
import { silentLogger } from '../src/logger.js';
import type { ElectionContext, electionMachine, LeaseStoreReply, LeaseStoreRequest } from '../src/machines/electionMachine.js';
import { type Checker, defaultCheckers, runCheckers, type Violation } from './checkers.js';
import { ClockModel, type DriftChange } from './clock.js';
import { Rng } from './rng.js';
import { livenessBoundMs, pauseMargin, requestTimeout, type Scenario, violatedAssumptions } from './scenario.js';
import { Scheduler, type SimEvent } from './scheduler.js';
import { type RunStats, summarize } from './stats.js';
import { TRACE_FORMAT, type TraceLine } from './trace.js';

/** What a simulated node runs: the elector surface the simulator and workloads use. */
export interface SimElector {
  readonly actor: AnyActorRef & { getSnapshot(): any; start(): void; stop(): void };
  start(): void;
  isLeader(): boolean;
  assertLeader(): number;
  whileLeader(work: LeaderWork): void;
}

/** What a process sees of the host it runs on. Everything here is frozen by a pause and voided by a crash. */
export interface ProcessContext {
  readonly index: number;
  readonly nodeId: string;
  readonly incarnation: number;
  /** The node's own clock (monotonic `now()`, skewed `wallNow()`, timers on the scheduler). */
  readonly clock: ElectionClock;
  /** A random stream for this workload on this node (deterministic per seed). */
  readonly rng: Rng;
  /** Real (virtual) time, for trace lines only — never for decisions a real node could not make. */
  realNow(): number;
  emit(line: TraceLine): void;
  /**
   * A request to the shared store over this host's link (latency, loss, duplication, partitions as for the
   * elector): `apply` runs at the store at the instant the request arrives, `deliver` on this host when the reply
   * does (frozen by a pause, voided by a crash). Call `settle()` from `deliver` when it resolves promises.
   */
  request<R extends { type: string }>(op: 'read' | 'write', requestId: number, apply: () => R, deliver: (reply: R) => void): void;
  /** Lets promise continuations started by the current event run at this same virtual instant. */
  settle(): void;
}

/** What a workload sees of the node it runs on. Everything here is frozen by a pause and voided by a crash. */
export interface HostContext extends ProcessContext {
  readonly elector: SimElector;
  /** Sends a fenced write to the protected resource over the (lossless, partition-free) resource link. */
  writeResource(token: number, claimedT: number): void;
}

/**
 * An extra per-node process: started on every (re)start of a node after its elector is built and before it
 * starts. Agents and tasks (issue 4) join the simulator as workloads.
 */
export interface Workload {
  readonly name: string;
  start(host: HostContext): void;
}

/**
 * A process without an elector (e.g. a worker agent) on a host of its own, at host index `nodes + i` in the order
 * given: the fault schedule pauses, crashes, cuts off and drifts it like a node (its clock is `scenario.clocks[index]`).
 * `start` runs on every (re)start.
 */
export interface SimProcess {
  readonly id: string;
  start(host: ProcessContext): void;
}

/** The world around the nodes, for extensions: the shared store and environment events (never frozen). */
export interface SimEnvironment {
  readonly store: MemoryLeaseStore;
  now(): number;
  at(t: number, fn: () => void): void;
  emit(line: TraceLine): void;
  /** Whether the node or process with this id is up (not crashed); paused counts as up. */
  alive(nodeId: string): boolean;
}

export interface SimulateOptions {
  /** Extra per-node processes; the default is the fenced-resource writer. */
  readonly workloads?: readonly Workload[];
  readonly checkers?: readonly Checker[];
  /** Record store messages (request/applied/reply/loss) in the trace; on by default. */
  readonly traceStore?: boolean;
  /**
   * Run this machine instead of the library's (e.g. a mutant made with `electionMachine.provide({ actions })`) to
   * check that the checkers catch a broken protocol. It runs inside createElector (its `machine` option), like any other.
   */
  readonly machine?: typeof electionMachine;
  /** Observe every XState inspection event of every node (e.g. to record `inspect` lines). */
  readonly onInspect?: (node: string, event: InspectionEvent, realT: number) => void;
  /**
   * Called for every event a node's machine processed, with the node's clock readings at that moment (e.g. to
   * replay the same event sequence into a bare actor and measure the simulator's own overhead).
   */
  readonly onMachineEvent?: (node: string, incarnation: number, event: { type: string }, now: number, wallNow: number) => void;
  /** Extra processes on hosts of their own (see SimProcess). */
  readonly processes?: readonly SimProcess[];
  /** Called before the first boot and at the end of the run (before the checkers), e.g. to seed and snapshot the store. */
  readonly environment?: { start?(env: SimEnvironment): void; end?(env: SimEnvironment): void };
}

export interface SimResult {
  readonly scenario: Scenario;
  readonly trace: TraceLine[];
  readonly violations: Violation[];
  readonly stats: RunStats;
  /** Machine transitions (state changes) across all nodes. */
  readonly transitions: number;
  /** Scheduler events processed. */
  readonly events: number;
}

interface Host {
  readonly index: number;
  readonly nodeId: string;
  readonly clock: ClockModel;
  incarnation: number;
  alive: boolean;
  pauseDepth: number;
  frozen: SimEvent[];
  cutTo: number;
  cutFrom: number;
  lastPath: string;
  elector: SimElector | undefined;
}

interface LossWindow {
  requestLoss: number;
  replyLoss: number;
  duplicate: number;
}

const ELECTION = 'sim';

/** The leader-work workload: claims the token with assertLeader(), works, then writes to the fenced resource. */
export const resourceWriter = (intervalMs: number, durationMs: number, marginMs: number, maxDrift: number): Workload => ({
  name: 'resource-writer',
  start(host) {
    const { clock, elector } = host;
    elector.whileLeader(({ token: term, signal }) => {
      host.emit({ t: host.realNow(), kind: 'work', node: host.nodeId, phase: 'start', token: term, localTime: clock.now() });
      signal.addEventListener('abort', () => host.emit({ t: host.realNow(), kind: 'work', node: host.nodeId, phase: 'stop', token: term, localTime: clock.now() }), { once: true });
      const tick = () => {
        if (signal.aborted) return;
        clock.setTimeout(tick, intervalMs);
        let token: number;
        try {
          token = elector.assertLeader();
        } catch (err) {
          if (NotLeaderError.is(err)) return;
          throw err;
        }
        const snapshot = elector.actor.getSnapshot();
        const deadlineAt = (snapshot.context as ElectionContext).deadlineAt;
        const localTime = clock.now();
        // Only start work that fits before the deadline with the stated pause margin to spare.
        if (deadlineAt - localTime <= durationMs * (1 + maxDrift) + marginMs * (1 + maxDrift) + 1) return;
        const claimedT = host.realNow();
        host.emit({ t: claimedT, kind: 'work', node: host.nodeId, phase: 'claim', token, localTime, deadlineAt });
        // The write is already under way: a pause here delays it past the deadline, and only fencing stops it.
        clock.setTimeout(() => {
          host.emit({ t: host.realNow(), kind: 'work', node: host.nodeId, phase: 'send', token, localTime: clock.now(), deadlineAt });
          host.writeResource(token, claimedT);
        }, durationMs);
      };
      tick();
      return new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    });
  },
});

function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  let out = '';
  let v: any = value;
  while (v && typeof v === 'object') {
    const k = Object.keys(v)[0]!;
    out = out ? `${out}.${k}` : k;
    v = v[k];
  }
  return typeof v === 'string' ? `${out}.${v}` : out;
}

/** Runs one scenario on the real electionMachine (through createElector) and returns its trace and verdicts. */
export async function simulate(scenario: Scenario, options: SimulateOptions = {}): Promise<SimResult> {
  const sched = new Scheduler();
  const rng = new Rng(scenario.seed);
  const netRng = rng.fork(1);
  const workRng = rng.fork(2);
  const trace: TraceLine[] = [];
  const traceStore = options.traceStore ?? true;
  const end = scenario.durationMs;
  const timing = scenario.timing;
  const reqTimeout = requestTimeout(timing);
  const margin = pauseMargin(scenario);
  const store = new MemoryLeaseStore({ storeClock: () => sched.now });
  const guard = new FenceGuard();
  let resourceHigh = 0;
  const losses: LossWindow[] = [];
  let transitions = 0;
  let microtasksPending = false;
  let settleRequested = false;
  const processes = options.processes ?? [];

  const driftChanges: DriftChange[][] = scenario.clocks.map(() => []);
  for (const f of scenario.faults) {
    if (f.kind === 'drift' && driftChanges[f.node]) {
      driftChanges[f.node]!.push({ at: f.at, driftRate: f.driftRate });
      driftChanges[f.node]!.push({ at: f.at + f.durationMs, driftRate: scenario.clocks[f.node]!.driftRate });
    }
  }
  const hosts: Host[] = [];
  for (let i = 0; i < scenario.nodes + processes.length; i++) {
    const spec = scenario.clocks[i] ?? { offsetMs: 0, driftRate: 0, wobbleRate: 0, wobblePeriodMs: 1000, wallStartMs: 1_700_000_000_000 };
    hosts.push({
      index: i,
      nodeId: i < scenario.nodes ? `n${i + 1}` : processes[i - scenario.nodes]!.id,
      clock: new ClockModel(spec, driftChanges[i]),
      incarnation: 0,
      alive: false,
      pauseDepth: 0,
      frozen: [],
      cutTo: 0,
      cutFrom: 0,
      lastPath: '',
      elector: undefined,
    });
  }
  let slowest = Number.POSITIVE_INFINITY;
  let fastest = 0;
  for (const h of hosts.slice(0, scenario.nodes)) {
    const b = h.clock.rateBounds();
    slowest = Math.min(slowest, b.slowest);
    fastest = Math.max(fastest, b.fastest);
  }
  const emit = (line: TraceLine) => {
    trace.push(line);
  };
  emit({
    kind: 'meta',
    format: TRACE_FORMAT,
    seed: scenario.seed,
    nodes: hosts.map((h) => h.nodeId),
    options: {
      ...timing,
      requestTimeoutMs: reqTimeout,
      nodes: scenario.nodes,
      durationMs: scenario.durationMs,
      fencing: scenario.fencing,
      maxLatencyMs: scenario.network.maxLatencyMs,
      slowestClockRate: slowest,
      fastestClockRate: fastest,
      pauseMarginMs: margin,
      livenessBoundMs: livenessBoundMs(timing, scenario.network.maxLatencyMs, Math.min(slowest, 1 - timing.maxDriftRate)),
      scenario,
    },
    violatedAssumptions: violatedAssumptions(scenario),
  });

  const latency = () => {
    const { minLatencyMs: lo, maxLatencyMs: hi } = scenario.network;
    // Mostly fast (u³ skews towards min), with a tail: one message in eight takes between half and all of max.
    const u = netRng.next();
    if (u < 0.125) return lo + (hi - lo) * (0.5 + 4 * u);
    const v = (u - 0.125) / 0.875;
    return lo + (hi - lo) * v * v * v;
  };
  const loss = (): LossWindow => {
    if (losses.length === 0) return { requestLoss: 0, replyLoss: 0, duplicate: 0 };
    const out = { requestLoss: 0, replyLoss: 0, duplicate: 0 };
    for (const l of losses) {
      out.requestLoss = Math.max(out.requestLoss, l.requestLoss);
      out.replyLoss = Math.max(out.replyLoss, l.replyLoss);
      out.duplicate = Math.max(out.duplicate, l.duplicate);
    }
    return out;
  };

  /** A request to the store: applied at the instant it arrives; the reply is a message scheduled back to the node. */
  function storeCall<R extends { type: string }>(
    host: Host,
    op: 'read' | 'write',
    requestId: number,
    apply: () => { reply: R; version?: string | null },
    deliver: (reply: R) => void,
  ): void {
    const incarnation = host.incarnation;
    const node = host.nodeId;
    if (traceStore) emit({ t: sched.now, kind: 'store', node, phase: 'request', op, requestId });
    const w = loss();
    const copies = netRng.chance(w.duplicate) ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) {
      const lostRequest = netRng.chance(w.requestLoss);
      if (copy === 1 && traceStore) emit({ t: sched.now, kind: 'store', node, phase: 'duplicate', op, requestId });
      sched.at(sched.now + latency(), -1, 0, () => {
        if (lostRequest || host.cutTo > 0) {
          if (traceStore) emit({ t: sched.now, kind: 'store', node, phase: 'lost-request', op, requestId });
          return;
        }
        const { reply, version } = apply();
        if (traceStore) emit({ t: sched.now, kind: 'store', node, phase: 'applied', op, requestId, outcome: reply.type, version: version ?? null });
        const w2 = loss();
        const lostReply = netRng.chance(w2.replyLoss);
        const replyCopies = netRng.chance(w2.duplicate) ? 2 : 1;
        for (let rc = 0; rc < replyCopies; rc++) {
          sched.at(sched.now + latency(), host.index, incarnation, () => {
            if (lostReply || host.cutFrom > 0) {
              if (traceStore) emit({ t: sched.now, kind: 'store', node, phase: 'lost-reply', op, requestId, outcome: reply.type });
              return;
            }
            if (traceStore) emit({ t: sched.now, kind: 'store', node, phase: rc === 0 ? 'reply' : 'duplicate', op, requestId, outcome: reply.type });
            deliver(reply);
          });
        }
      });
    }
  }

  /** The node's one store actor: requests travel the host's link; a reply is delivered only while still awaited. */
  function storeActors(host: Host) {
    const leaseStore = fromCallback<LeaseStoreRequest>(({ sendBack, receive }) => {
      let awaited = -1;
      const deliver = (reply: LeaseStoreReply) => {
        if (reply.requestId !== awaited) return;
        awaited = -1;
        sendBack(reply);
      };
      receive((request) => {
        if (request.type === 'abandon') {
          if (awaited === request.requestId) awaited = -1;
          return;
        }
        const { requestId, key } = request;
        awaited = requestId;
        if (request.type === 'read') {
          storeCall<LeaseStoreReply>(
            host,
            'read',
            requestId,
            () => {
              const entry = store.readSync(key);
              return { reply: { type: 'lease.read', requestId, entry }, version: entry?.version ?? null };
            },
            deliver,
          );
          return;
        }
        storeCall<LeaseStoreReply>(
          host,
          'write',
          requestId,
          () => {
            try {
              const [version] = store.commitSync([{ key, expectedVersion: request.expectedVersion, value: request.record as any }]);
              return { reply: { type: 'lease.written', requestId, version: version! }, version: version! };
            } catch (error) {
              if (CasMismatchError.is(error)) return { reply: { type: 'lease.conflict', requestId } };
              return { reply: { type: 'lease.failed', requestId, error } };
            }
          },
          deliver,
        );
      });
      return () => {
        awaited = -1;
      };
    });
    return { leaseStore };
  }

  function hostClock(host: Host, incarnation: number): ElectionClock {
    const model = host.clock;
    return {
      setTimeout: (fn, ms) => sched.at(model.realAt(model.local(sched.now) + Math.max(ms, 0)), host.index, incarnation, fn),
      clearTimeout: (id) => {
        if (id) (id as SimEvent).cancelled = true;
      },
      now: () => model.local(sched.now),
      wallNow: () => model.wall(sched.now),
    };
  }

  const workloads = options.workloads ?? [
    resourceWriter(scenario.work.intervalMs, scenario.work.durationMs, margin, timing.maxDriftRate),
  ];

  function processContext(host: Host, incarnation: number, clock: ElectionClock): ProcessContext {
    return {
      index: host.index,
      nodeId: host.nodeId,
      incarnation,
      clock,
      rng: workRng.fork(host.index * 1000 + incarnation),
      realNow: () => sched.now,
      emit: (line) => {
        if (host.incarnation === incarnation) emit(line);
      },
      request: (op, requestId, apply, deliver) => storeCall(host, op, requestId, () => ({ reply: apply() }), deliver),
      settle: () => {
        settleRequested = true;
      },
    };
  }

  function boot(host: Host): void {
    const incarnation = host.incarnation;
    const clock = hostClock(host, incarnation);
    if (host.index >= scenario.nodes) {
      host.alive = true;
      processes[host.index - scenario.nodes]!.start(processContext(host, incarnation, clock));
      return;
    }
    const onMachineEvent = options.onMachineEvent;
    const onSnapshot = (snapshot: any, event: { type: string }) => {
      if (host.incarnation !== incarnation || !host.alive) return;
      onMachineEvent?.(host.nodeId, incarnation, event, clock.now(), clock.wallNow());
      if (snapshot.status !== 'active' && snapshot.status !== 'done') return;
      const path = statePath(snapshot.value);
      if (path === host.lastPath) return;
      const ctx = snapshot.context as ElectionContext;
      const leader = path.startsWith('leader');
      const localTime = clock.now();
      if (leader && !host.lastPath.startsWith('leader')) microtasksPending = true;
      transitions++;
      emit({
        t: sched.now,
        kind: 'transition',
        node: host.nodeId,
        from: host.lastPath || 'start',
        to: path,
        event: event.type,
        epoch: ctx.epoch ?? null,
        localTime,
        deadlineAt: leader ? ctx.deadlineAt : null,
        deadlineT: leader ? host.clock.realAt(ctx.deadlineAt) : null,
        highestEpochSeen: ctx.highestEpochSeen,
        incarnation,
        ...(path === 'fenced' && ctx.fenceReason ? { fenceReason: ctx.fenceReason } : {}),
      });
      host.lastPath = path;
    };
    const onInspect = options.onInspect;
    const inspect = onInspect
      ? (ev: InspectionEvent) => {
          if (host.incarnation === incarnation && host.alive) onInspect(host.nodeId, ev, sched.now);
        }
      : undefined;
    const actors = storeActors(host);
    // Always the real elector: a mutant machine and a deliberately unsafe configuration go through createElector too.
    const elector = createElector({
      election: ELECTION,
      nodeId: host.nodeId,
      store: simStoreStub as any,
      clock,
      actors,
      inspect,
      logger: silentLogger,
      leaseDurationMs: timing.leaseDurationMs,
      renewDeadlineMs: timing.renewDeadlineMs,
      retryPeriodMs: timing.retryPeriodMs,
      maxDriftRate: timing.maxDriftRate,
      requestTimeoutMs: reqTimeout,
      onStale: scenario.onStale ?? 'rejoin',
      machine: options.machine,
      unsafeSkipTimingValidation: scenario.unsafeTiming === true,
    }) as unknown as SimElector;
    const observed = observeSnapshots(elector.actor, onSnapshot);
    host.elector = elector;
    host.alive = true;
    const ctx: HostContext = {
      ...processContext(host, incarnation, clock),
      elector,
      writeResource: (token, claimedT) => {
        const delayedMs = resourceDelay(host.index, sched.now);
        sched.at(sched.now + latency() + delayedMs, -1, 0, () => {
          let accepted = true;
          if (scenario.fencing) {
            try {
              guard.admitSync(token);
            } catch {
              accepted = false;
            }
          }
          if (accepted) resourceHigh = Math.max(resourceHigh, token);
          emit({
            t: sched.now,
            kind: 'resource',
            node: host.nodeId,
            token,
            accepted,
            highWater: scenario.fencing ? guard.highWater : resourceHigh,
            claimedT,
            incarnation,
            ...(delayedMs > 0 ? { delayedMs } : {}),
          });
        });
      },
    };
    for (const w of workloads) w.start(ctx);
    elector.start();
    // The hook rides on an XState internal: should a release stop routing the initial snapshot through it, every
    // checker would see an empty history and pass. Refuse to run blind.
    if (!observed()) {
      throw new Error('the simulator saw no initial snapshot through xstate Actor#update; this xstate release is not supported (the lock file pins the tested one)');
    }
  }

  /** Resource-delay faults as they struck (the node resolved at their start when aimed at the leader). */
  const delays: Array<{ index: number; from: number; to: number; delayMs: number }> = [];
  /** Extra time a write the node sends now sits in its resource-link queue (resource-delay faults). */
  function resourceDelay(index: number, now: number): number {
    let extra = 0;
    for (const d of delays) if (d.index === index && d.from <= now && now < d.to) extra = Math.max(extra, d.delayMs);
    return extra;
  }

  function crash(host: Host): void {
    if (!host.alive) return;
    transitions++;
    if (host.index < scenario.nodes) emit({ t: sched.now, kind: 'transition', node: host.nodeId, from: host.lastPath, to: 'crashed', event: 'crash', epoch: null, incarnation: host.incarnation });
    host.alive = false;
    host.incarnation++;
    host.frozen = [];
    host.pauseDepth = 0;
    host.lastPath = 'crashed';
    const elector = host.elector;
    host.elector = undefined;
    elector?.actor.stop();
  }

  function resume(host: Host): void {
    const frozen = host.frozen;
    host.frozen = [];
    for (const ev of frozen) sched.requeue(ev, sched.now);
  }

  // The fault schedule, as environment events.
  const faultEvent = (at: number, fn: () => void) => sched.at(at, -1, 0, fn);
  for (const f of scenario.faults) {
    const host = 'node' in f ? hosts[f.node] : undefined;
    if ('node' in f && !host) continue;
    const node = host?.nodeId;
    switch (f.kind) {
      case 'partition': {
        const to = f.direction !== 'from-store';
        const from = f.direction !== 'to-store';
        faultEvent(f.at, () => {
          if (to) host!.cutTo++;
          if (from) host!.cutFrom++;
          emit({ t: sched.now, kind: 'fault', fault: 'partition', node, durationMs: f.durationMs, detail: { direction: f.direction } });
        });
        faultEvent(f.at + f.durationMs, () => {
          if (to) host!.cutTo--;
          if (from) host!.cutFrom--;
          emit({ t: sched.now, kind: 'fault', fault: 'heal', node, detail: { of: 'partition', direction: f.direction } });
        });
        break;
      }
      case 'flap': {
        const period = Math.max(1, f.periodMs);
        for (let s = f.at, up = true; s < f.at + f.durationMs; s += period, up = !up) {
          const cut = up;
          const dur = Math.min(period, f.at + f.durationMs - s);
          if (!cut) continue;
          faultEvent(s, () => {
            host!.cutTo++;
            host!.cutFrom++;
            emit({ t: sched.now, kind: 'fault', fault: 'partition', node, durationMs: dur, detail: { direction: 'both', flapping: true } });
          });
          faultEvent(s + dur, () => {
            host!.cutTo--;
            host!.cutFrom--;
            emit({ t: sched.now, kind: 'fault', fault: 'heal', node, detail: { of: 'partition', flapping: true } });
          });
        }
        break;
      }
      case 'pause': {
        let incarnation = -1;
        faultEvent(f.at, () => {
          if (!host!.alive) return;
          incarnation = host!.incarnation;
          host!.pauseDepth++;
          emit({ t: sched.now, kind: 'fault', fault: 'pause', node, durationMs: f.durationMs });
        });
        faultEvent(f.at + f.durationMs, () => {
          if (incarnation !== host!.incarnation || host!.pauseDepth === 0) return;
          host!.pauseDepth--;
          // Overlapping pauses freeze the node for their union: it resumes only when the last one ends.
          if (host!.pauseDepth === 0) {
            emit({ t: sched.now, kind: 'fault', fault: 'resume', node });
            resume(host!);
          }
        });
        break;
      }
      case 'crash': {
        let crashed = false;
        faultEvent(f.at, () => {
          if (!host!.alive) return;
          crashed = true;
          emit({ t: sched.now, kind: 'fault', fault: 'crash', node, durationMs: f.durationMs });
          crash(host!);
        });
        faultEvent(f.at + f.durationMs, () => {
          if (!crashed || host!.alive) return;
          emit({ t: sched.now, kind: 'fault', fault: 'restart', node });
          boot(host!);
        });
        break;
      }
      case 'clock-jump':
        faultEvent(f.at, () => {
          host!.clock.jumpWall(f.jumpMs);
          emit({ t: sched.now, kind: 'fault', fault: 'clock-jump', node, detail: { jumpMs: f.jumpMs } });
        });
        break;
      case 'drift':
        faultEvent(f.at, () =>
          emit({ t: sched.now, kind: 'fault', fault: 'drift', node, durationMs: f.durationMs, detail: { driftRate: f.driftRate } }),
        );
        faultEvent(f.at + f.durationMs, () =>
          emit({ t: sched.now, kind: 'fault', fault: 'drift', node, detail: { driftRate: scenario.clocks[f.node]!.driftRate, revert: true } }),
        );
        break;
      case 'loss': {
        const window: LossWindow = { requestLoss: f.requestLoss, replyLoss: f.replyLoss, duplicate: f.duplicate };
        faultEvent(f.at, () => {
          losses.push(window);
          emit({ t: sched.now, kind: 'fault', fault: 'loss', durationMs: f.durationMs, detail: { ...window } });
        });
        faultEvent(f.at + f.durationMs, () => {
          losses.splice(losses.indexOf(window), 1);
          emit({ t: sched.now, kind: 'fault', fault: 'heal', detail: { of: 'loss' } });
        });
        break;
      }
      case 'resource-delay':
        faultEvent(f.at, () => {
          const leader = f.target === 'leader' ? hosts.find((h) => h.index < scenario.nodes && h.alive && h.lastPath.startsWith('leader')) : undefined;
          const h = leader ?? host!;
          delays.push({ index: h.index, from: f.at, to: f.at + f.durationMs, delayMs: f.delayMs });
          emit({ t: sched.now, kind: 'fault', fault: 'resource-delay', node: h.nodeId, durationMs: f.durationMs, detail: { delayMs: f.delayMs, ...(f.target ? { target: f.target } : {}) } });
          if (f.cutMs !== undefined) {
            h.cutTo++;
            h.cutFrom++;
            emit({ t: sched.now, kind: 'fault', fault: 'partition', node: h.nodeId, durationMs: f.cutMs, detail: { direction: 'both', with: 'resource-delay' } });
            faultEvent(f.at + f.cutMs, () => {
              h.cutTo--;
              h.cutFrom--;
              emit({ t: sched.now, kind: 'fault', fault: 'heal', node: h.nodeId, detail: { of: 'partition', direction: 'both' } });
            });
          }
        });
        break;
      case 'store-wipe':
        faultEvent(f.at, () => {
          store.wipe();
          emit({ t: sched.now, kind: 'fault', fault: 'store-wipe' });
        });
        break;
    }
  }

  // Promise continuations of processes (store replies, timers) run at the virtual instant that resolved them.
  const settle = async () => {
    for (let idle = 0; idle < 32; idle++) {
      await Promise.resolve();
      if (settleRequested) {
        settleRequested = false;
        idle = -1;
      }
    }
  };
  const env: SimEnvironment = {
    store,
    now: () => sched.now,
    at: (t, fn) => {
      sched.at(t, -1, 0, fn);
    },
    emit,
    alive: (nodeId) => hosts.some((h) => h.nodeId === nodeId && h.alive),
  };
  options.environment?.start?.(env);
  for (const h of hosts) boot(h);
  if (microtasksPending) {
    microtasksPending = false;
    await Promise.resolve();
  }
  if (settleRequested) await settle();
  let events = 0;
  for (;;) {
    if (sched.peekTime() > end) break;
    const ev = sched.pop()!;
    if (ev.cancelled) continue;
    if (ev.host >= 0) {
      const host = hosts[ev.host]!;
      if (ev.incarnation !== host.incarnation || !host.alive) continue;
      if (host.pauseDepth > 0) {
        host.frozen.push(ev);
        continue;
      }
    }
    events++;
    ev.fn();
    if (microtasksPending) {
      // whileLeader() starts leader work on a microtask: let it run at this same virtual instant.
      microtasksPending = false;
      await Promise.resolve();
      await Promise.resolve();
    }
    if (settleRequested) await settle();
  }
  sched.now = end;
  options.environment?.end?.(env);
  for (const h of hosts) {
    if (h.alive) {
      h.alive = false;
      h.incarnation++;
      h.elector?.actor.stop();
    }
  }
  const checkers = options.checkers ?? defaultCheckers;
  const violations = runCheckers(trace, checkers);
  for (const v of violations) trace.push({ kind: 'violation', ...v });
  return { scenario, trace, violations, stats: summarize(trace), transitions, events };
}

const simStoreStub = {
  kind: 'simulated',
  capabilities: { watch: false, storeClock: false, durable: false, multiProcess: true },
  read: () => Promise.reject(new Error('the simulator delivers store replies as messages')),
  compareAndSet: () => Promise.reject(new Error('the simulator delivers store replies as messages')),
  commit: () => Promise.reject(new Error('the simulator delivers store replies as messages')),
  close: async () => {},
};

/**
 * Calls `onSnapshot(snapshot, event)` after each snapshot the actor commits, with the event that caused it — what
 * XState's `@xstate.snapshot` inspection event carries, without paying for inspection: an `inspect` observer makes
 * XState build an inspection event for every event, microstep and action, which cost a third of a bare transition.
 * It hooks the actor's (internal) `update`; the simulator tests pin the resulting trace to the inspected one.
 */
/** Calls `onSnapshot` after every snapshot the actor takes; returns whether it has been called yet. */
function observeSnapshots(actor: AnyActorRef, onSnapshot: (snapshot: unknown, event: { type: string }) => void): () => boolean {
  const target = actor as unknown as { update?: (snapshot: unknown, event: { type: string }) => void };
  const update = target.update;
  if (typeof update !== 'function') throw new Error('xstate Actor#update not found: the simulator needs it to observe transitions');
  let called = false;
  target.update = function (this: unknown, snapshot, event) {
    update.call(this, snapshot, event);
    called = true;
    onSnapshot((actor as { getSnapshot(): unknown }).getSnapshot(), event);
  };
  return () => called;
}
