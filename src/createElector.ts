import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type Actor, type AnyActorLogic, createActor, fromCallback, type InspectionEvent, type Observer } from 'xstate';
import { z } from 'zod';
import { createStoreActors } from './adapters/createStoreActors.js';
import { FileLeaseStore } from './adapters/FileLeaseStore.js';
import type { LeaseStore } from './adapters/LeaseStore.js';
import { type ElectionClock, realClock } from './clock.js';
import { InvalidOptionsError, NotLeaderError } from './errors.js';
import { type Logger, silentLogger } from './logger.js';
import { type ElectionMachine, electionMachine, type StalePolicy } from './machines/electionMachine.js';
import { leaseKey } from './machines/leaseRecord.js';
import { fromZodIssues, resolveTiming, timingIssues, timingSchema } from './options.js';

export type ElectorState = 'follower' | 'candidate' | 'leader' | 'fenced' | 'shutdown';

export type LeaderWork = (context: { token: number; signal: AbortSignal }) => Promise<unknown> | unknown

export interface ElectorChange {
  readonly state: ElectorState;
  readonly previous: ElectorState;
  readonly epoch: number | undefined;
  readonly leader: LeaderInfo | undefined;
}

export interface LeaderInfo {
  readonly holder: string | null;
  readonly epoch: number;
}

const optionsSchema = timingSchema.extend({
  election: z.string().min(1).max(200).regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only').default('default'),
  nodeId: z.string().min(1).max(200).optional(),
  onStale: z.enum(['rejoin', 'shutdown']).default('rejoin'),
  trustStoreClock: z.boolean().default(false),
  /** Path of the default file store; ignored when `store` is given. */
  statePath: z.string().min(1).default('.orchestrator/orchestrator-state.json'),
  /** Stand for election from start(); `false` makes a passive observer until `campaign()`. */
  standing: z.boolean().default(true),
  store: z.custom<LeaseStore>((v) => typeof v === 'object' && v !== null && 'compareAndSet' in v, 'a LeaseStore').optional(),
  logger: z.custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).warn === 'function', 'a pino-style logger').optional(),
  clock: z.custom<ElectionClock>((v) => typeof v === 'object' && v !== null && typeof (v as ElectionClock).now === 'function', 'an ElectionClock').optional(),
  inspect: z.custom<Observer<InspectionEvent> | ((event: InspectionEvent) => void)>().optional(),
  /**
   * For simulators and mutation tests only: run a variant of `electionMachine` (made with `.provide()`), and/or
   * skip the timing-safety validation so a deliberately unsafe configuration can be shown to fail.
   */
  machine: z.custom<ElectionMachine>((v) => typeof v === 'object' && v !== null && 'provide' in v, 'an electionMachine variant').optional(),
  unsafeSkipTimingValidation: z.boolean().default(false),
  /** Replace the store actor (the simulator delivers store replies as scheduled messages). See LeaseStoreRequest. */
  actors: z
    .custom<{ leaseStore?: AnyActorLogic }>(
      (v) => typeof v === 'object' && v !== null && Object.keys(v).every((k) => k === 'leaseStore'),
      'only { leaseStore } may be replaced (the readLease/writeLease actors of earlier versions became one leaseStore actor; see LeaseStoreRequest)',
    )
    .optional(),
});

// Strict: a misspelt option (leaseDurationMS) must not silently leave the default in force.
const strictOptionsSchema = optionsSchema.strict();
const knownOptionKeys = Object.keys(optionsSchema.shape);

export type ElectorOptions = z.input<typeof optionsSchema>;

export interface Elector {
  readonly election: string;
  readonly nodeId: string;
  readonly store: LeaseStore;
  /** The XState actor, for inspection. */
  readonly actor: Actor<ElectionMachine>;
  start(): Elector;
  /** Aborts leader work, waits for it (bounded by the deadline), releases a held lease and ends in `shutdown`. */
  stop(): Promise<void>;
  /** Like stop() but stays a follower that does not stand again until `campaign()`. */
  resign(): Promise<void>;
  campaign(): void;
  state(): ElectorState;
  /** Leader state *and* the renew deadline not yet passed on this node's clock, checked now. */
  isLeader(): boolean;
  fencingToken(): number | undefined;
  /** Milliseconds left before the renew deadline on this node's clock; 0 when not leader. */
  timeLeft(): number;
  /** The current fencing token, or throws `NotLeaderError`. Call it right before every leader action. */
  assertLeader(): number;
  /** The last observed holder and epoch. */
  leader(): LeaderInfo | undefined;
  subscribe(listener: (change: ElectorChange) => void): () => void;
  /** Runs `work` each time leadership is won; its signal aborts the moment the node leaves `leader`. */
  whileLeader(work: LeaderWork): () => void;
}

function defaultNodeId(): string {
  return `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
}

export function createElector(input: ElectorOptions = {}): Elector {
  const parsed = strictOptionsSchema.safeParse(input);
  if (!parsed.success) throw new InvalidOptionsError(fromZodIssues(parsed.error, knownOptionKeys));
  const options = parsed.data;
  const timing = resolveTiming(options);
  const issues = timingIssues(timing);
  if (issues.length > 0 && !options.unsafeSkipTimingValidation) throw new InvalidOptionsError(issues);

  const clock = options.clock ?? realClock;
  const logger = options.logger ?? silentLogger;
  const nodeId = options.nodeId ?? defaultNodeId();
  const ownsStore = options.store === undefined;
  const store = options.store ?? new FileLeaseStore({ path: options.statePath });
  const key = leaseKey(options.election);
  const works = new Set<LeaderWork>();
  const term = new LeaderTerm(logger, { election: options.election, nodeId });

  const machine = (options.machine ?? electionMachine).provide({
    actors: {
      ...createStoreActors(store),
      ...(options.actors as object),
      leaderWork: term.actorLogic(works),
    } as any,
  });

  const actor = createActor(machine, {
    id: `election:${options.election}:${nodeId}`,
    clock,
    inspect: options.inspect as any,
    input: {
      election: options.election,
      nodeId,
      key,
      timing: {
        leaseDurationMs: timing.leaseDurationMs,
        renewDeadlineMs: timing.renewDeadlineMs,
        retryPeriodMs: timing.retryPeriodMs,
        maxDriftRate: timing.maxDriftRate,
        requestTimeoutMs: timing.requestTimeoutMs,
      },
      onStale: options.onStale as StalePolicy,
      trustStoreClock: options.trustStoreClock,
      clock,
      logger,
      standing: options.standing,
    },
  });

  let started = false;
  let unwatch: (() => void) | undefined;
  let lastPath = '';
  let lastState: ElectorState = 'follower';
  const listeners = new Set<(change: ElectorChange) => void>();

  const state = (): ElectorState => topState(actor.getSnapshot().value);

  // Every snapshot comes through here (one per event): only build the debug line's path when it can be logged.
  const debugs = logger !== silentLogger;
  actor.subscribe((snapshot) => {
    if (debugs && logger.debug) {
      const path = statePath(snapshot.value);
      if (path !== lastPath) {
        logger.debug({ election: options.election, nodeId, epoch: snapshot.context.epoch, state: snapshot.value }, 'transition');
        lastPath = path;
      }
    }
    const next = topState(snapshot.value);
    if (next === lastState) return;
    const change: ElectorChange = { state: next, previous: lastState, epoch: snapshot.context.epoch, leader: leader() };
    logger.info({ election: options.election, nodeId, epoch: snapshot.context.epoch, from: lastState, to: next }, `${lastState} -> ${next}`);
    lastState = next;
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (err) {
        logger.error({ election: options.election, nodeId, err }, 'subscriber threw');
      }
    }
  });

  const leader = (): LeaderInfo | undefined => {
    const context = actor.getSnapshot().context;
    if (actor.getSnapshot().matches('leader') && context.epoch !== undefined) return { holder: nodeId, epoch: context.epoch };
    const record = context.observation?.record;
    return record ? { holder: record.holder, epoch: record.epoch } : undefined;
  };

  const isLeader = (): boolean => {
    const snapshot = actor.getSnapshot();
    return snapshot.matches('leader') && clock.now() < snapshot.context.deadlineAt;
  };

  const assertLeader = (): number => {
    const snapshot = actor.getSnapshot();
    const current = state();
    if (current === 'shutdown') throw new NotLeaderError('stopped', current);
    if (!snapshot.matches('leader')) throw new NotLeaderError('not-leader', current);
    const overdue = clock.now() - snapshot.context.deadlineAt;
    if (overdue >= 0) throw new NotLeaderError('deadline-passed', current, `renew deadline passed ${Math.round(overdue)} ms ago`);
    return snapshot.context.epoch!;
  };

  /** Aborts leader work and waits for it, at most until the current deadline; true when it all settled. */
  const windDownWork = async (): Promise<boolean> => {
    if (!actor.getSnapshot().matches('leader')) return true;
    const budget = Math.max(0, actor.getSnapshot().context.deadlineAt - clock.now());
    const settled = await term.abortAndSettle(budget, clock);
    if (!settled) logger.warn({ election: options.election, nodeId, budgetMs: budget }, 'leader work did not settle before the deadline; leaving the lease to expire instead of releasing it');
    return settled;
  };

  /**
   * Winds leader work down, then sends the step-down event in the same synchronous block as the final check. A term
   * that began while we awaited (an acquisition landing mid-resign) is wound down too, so a release never lets a
   * successor overlap work this node started.
   */
  const stepDown = async (type: 'STOP' | 'RESIGN'): Promise<void> => {
    let release = true;
    for (;;) {
      const generation = term.generation;
      release = (await windDownWork()) && release;
      if (term.generation === generation || !actor.getSnapshot().matches('leader')) break;
    }
    actor.send({ type, release });
  };
  /** Counts resign()/stop()/campaign() calls: a resign() learns whether campaign() was the last wish made meanwhile. */
  let intents = 0;
  let lastIntent: 'campaign' | 'resign' | 'stop' | undefined;
  const campaignedSince = (intent: number): boolean => intents !== intent && lastIntent === 'campaign';

  const whenState = (predicate: () => boolean): Promise<void> =>
    new Promise((resolve) => {
      if (predicate()) return resolve();
      const sub = actor.subscribe({
        next: () => {
          if (predicate()) {
            sub.unsubscribe();
            resolve();
          }
        },
        complete: () => resolve(),
      });
    });

  const elector: Elector = {
    election: options.election,
    nodeId,
    store,
    actor,
    start() {
      if (started) return elector;
      started = true;
      actor.start();
      if (store.capabilities.watch && store.watch) {
        unwatch = store.watch(key, () => {
          if (actor.getSnapshot().status === 'active') actor.send({ type: 'LEASE_CHANGED' });
        });
      }
      return elector;
    },
    async stop() {
      intents++;
      lastIntent = 'stop';
      if (!started) {
        // Never started: end without ever standing (no await before the STOP, so no store reply can be handled).
        started = true;
        actor.start();
        actor.send({ type: 'STOP', release: false });
      }
      if (actor.getSnapshot().status === 'active') {
        await stepDown('STOP');
        await whenState(() => actor.getSnapshot().status !== 'active');
      }
      unwatch?.();
      unwatch = undefined;
      actor.stop();
      if (ownsStore) await store.close();
    },
    async resign() {
      if (actor.getSnapshot().status !== 'active') return;
      const intent = ++intents;
      lastIntent = 'resign';
      await stepDown('RESIGN');
      await whenState(() => {
        const s = actor.getSnapshot();
        return (
          s.status !== 'active' ||
          !(s.matches('leader') || s.matches('candidate') || s.matches({ follower: 'releasing' }) || s.matches({ follower: 'checkingRelease' }))
        );
      });
      // campaign() called while this resign() was under way is the caller's later wish: stand again, now that the
      // step-down (and the release) is done, so this call still resolves.
      if (campaignedSince(intent)) actor.send({ type: 'STAND' });
    },
    campaign() {
      intents++;
      lastIntent = 'campaign';
      actor.send({ type: 'STAND' });
    },
    state,
    isLeader,
    fencingToken: () => (isLeader() ? actor.getSnapshot().context.epoch : undefined),
    timeLeft: () => (isLeader() ? actor.getSnapshot().context.deadlineAt - clock.now() : 0),
    assertLeader,
    leader,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    whileLeader(work) {
      works.add(work);
      if (isLeader()) term.startLate(work);
      return () => works.delete(work);
    },
  };
  return elector;
}

/** `leader.renewing` for `{ leader: 'renewing' }`: a cheap identity for a state value. */
function statePath(value: unknown): string {
  let out = '';
  let v = value;
  while (v !== null && typeof v === 'object') {
    const k = Object.keys(v)[0];
    if (k === undefined) break;
    out = out ? `${out}.${k}` : k;
    v = (v as Record<string, unknown>)[k];
  }
  return typeof v === 'string' ? (out ? `${out}.${v}` : v) : out;
}

function topState(value: unknown): ElectorState {
  if (typeof value === 'string') return value as ElectorState;
  return Object.keys(value as object)[0] as ElectorState;
}

/** The leader-only work of one term: started on entering `leader`, aborted on leaving it. */
class LeaderTerm {
  private controller: AbortController | undefined;
  private token: number | undefined;
  private readonly running = new Set<Promise<unknown>>();
  /** Rises each time a term begins. */
  generation = 0;

  constructor(
    private readonly logger: Logger,
    private readonly fields: object,
  ) {}

  actorLogic(works: Set<LeaderWork>) {
    return fromCallbackLogic(({ token }) => {
      this.begin(token, works);
      return () => this.abort();
    });
  }

  startLate(work: LeaderWork): void {
    if (this.controller && !this.controller.signal.aborted && this.token !== undefined) this.run(work, this.token, this.controller.signal);
  }

  abort(): void {
    this.controller?.abort(new NotLeaderError('not-leader', 'leaving leader'));
    this.controller = undefined;
    this.token = undefined;
  }

  async abortAndSettle(budgetMs: number, clock: ElectionClock): Promise<boolean> {
    this.abort();
    if (this.running.size === 0) return true;
    let timer: unknown;
    const timeout = new Promise<boolean>((resolve) => {
      timer = clock.setTimeout(() => resolve(false), budgetMs);
    });
    const all = Promise.allSettled([...this.running]).then(() => true);
    const settled = await Promise.race([all, timeout]);
    clock.clearTimeout(timer);
    return settled;
  }

  private begin(token: number, works: Set<LeaderWork>): void {
    this.abort();
    this.generation += 1;
    this.controller = new AbortController();
    this.token = token;
    for (const work of works) this.run(work, token, this.controller.signal);
  }

  private run(work: LeaderWork, token: number, signal: AbortSignal): void {
    const promise = Promise.resolve()
      // The term may already be over by the time this microtask runs: never start work for a term that ended.
      .then(() => (signal.aborted ? undefined : work({ token, signal })))
      .catch((err: unknown) => {
        if (!signal.aborted) this.logger.error({ ...this.fields, epoch: token, err }, 'leader work failed');
      })
      .finally(() => this.running.delete(promise));
    this.running.add(promise);
  }
}

function fromCallbackLogic(start: (input: { token: number }) => () => void) {
  return fromCallback<any, { token: number; nodeId: string }>(({ input }) => start(input));
}
