/**
 * The leader-only sweeper and the passive liveness observer. Each sweep: re-read the lease and check it is still
 * ours at our epoch, read agents and tasks, decide with `planSweep`, then write everything in ONE commit whose first
 * op is a check-only op on the lease key at the version just read. A deposed or paused ex-leader's commit fails on
 * that op as a whole — nothing is half-applied — and is retried only after a re-read shows the lease still ours.
 * The commit also checks, at the versions read, every agent whose state a requeue relied on, so a sweep planned from
 * agents read before one of them re-registered (and claimed again) is refused and re-planned. Retiring agents (see
 * `RetentionPolicy`) writes the index at the version read in that same commit.
 *
 * A commit that fails with anything but a version conflict (a timeout, a reset connection) has an unknown outcome:
 * the sweep throws, and the sweeper remembers the commit until a later sweep's reads settle it (see
 * unknownCommits.ts). `onApplied` reports every commit known to be applied, either way, once.
 *
 * Every store call of a sweep is bounded: it gets an AbortSignal that aborts when the sweep's signal does (the node
 * left `leader`) or after the call's budget — the lesser of `callTimeoutMs` and `timeLeft()` (the time left before
 * the renew deadline) when the call starts — on the injected clock, and the sweeper stops waiting for it then even if
 * the store ignores the signal. A read cut short ends the sweep (`aborted` when leadership ended, a thrown
 * `StoreTimeoutError` otherwise); a commit cut short has an unknown outcome, settled as above. A sweep therefore
 * never outlives the leadership it runs under by more than the store takes to honour an abort, and a store call that
 * never answers no longer holds the sweep loop.
 *
 * Reservations expire. The sweeper remembers, on its own clock, when it first saw each reservation on the board
 * (`observeReservations`: task, assignee, the task's requeue count) and the plan drops one first seen
 * `staleAfterMs` ago (`reservationExpired`), so a live target that never claims the task — its claim filter
 * excludes the kind — does not block it forever. The memory is kept from every board read of a sweep and from the
 * board each applied commit wrote (a reservation it creates counts from the commit's reply), and across leadership
 * terms of this node; followers do not read the board, so a node that first leads counts from its first sweep's
 * read: after a failover a reservation lasts at most `staleAfterMs` longer, never less.
 */
import type { CallOptions, CommitOp, Json } from '../adapters/LeaseStore.js';
import { type ElectionClock, wallIso } from '../clock.js';
import { CasMismatchError, NotLeaderError, StoreTimeoutError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import {
  isEmptyPlan,
  type Liveness,
  nextSweepDelay,
  observeAgents,
  observeReservations,
  planSweep,
  type Reservations,
  type RespawnPolicy,
  type RetentionPolicy,
  type SweepPlan,
  type VersionedAgent,
} from './logic.js';
import { type AgentRegistry, checkedValue, MAX_ATTEMPTS, type StoreCall } from './registry.js';
import { type AgentIndex, type AgentRecord, agentIndexSchema, agentRecordSchema, type TaskBoard, taskBoardSchema } from './schema.js';
import { type AppliedSweep, type Reported, recordApplied, type SentCommit, settleUnknownCommits, type UnknownCommit } from './unknownCommits.js';

export type SweepOutcome =
  | { readonly kind: 'applied'; readonly plan: SweepPlan; readonly epoch: number; readonly attempts: number }
  | { readonly kind: 'noop'; readonly epoch: number }
  | { readonly kind: 'rejected'; readonly epoch: number; readonly reason: 'not-leader' | 'contention'; readonly detail: string }
  | { readonly kind: 'aborted'; readonly epoch: number };

/**
 * Default `callTimeoutMs`: the default `timeoutMs` of the shipped server stores, so a sweep never waits on a store
 * without a timeout of its own (a custom one, or a wrapper that loses replies) longer than on one with.
 */
export const DEFAULT_SWEEP_CALL_TIMEOUT_MS = 5_000;

export interface SweeperOptions {
  readonly registry: AgentRegistry;
  readonly clock: ElectionClock;
  readonly nodeId: string;
  readonly staleAfterMs: number;
  readonly sweepIntervalMs: number;
  readonly logger?: Logger;
  /** Checked right before the commit, e.g. `elector.isLeader` (deadline not passed on this node's clock). */
  readonly isLeader?: () => boolean;
  /**
   * Milliseconds left before the leader's renew deadline, e.g. `elector.timeLeft` (0 when not leader): no store call
   * of a sweep is waited for past it. Unset: only `callTimeoutMs` bounds a call.
   */
  readonly timeLeft?: () => number;
  /**
   * The longest any one store call of a sweep is waited for (default `DEFAULT_SWEEP_CALL_TIMEOUT_MS`, 5 s), on the
   * injected clock; `timeLeft()` bounds it further. A read cut short fails the sweep (the loop sweeps again after
   * the usual delay); a commit cut short has an unknown outcome that a later sweep settles.
   */
  readonly callTimeoutMs?: number;
  /**
   * Called with the ops right before the sweep's commit. A test or the simulator can stall here to model a leader
   * that pauses mid-sweep; production code leaves it unset.
   */
  readonly beforeCommit?: (ops: readonly CommitOp[]) => Promise<void> | void;
  /** Which stale agents a plan asks to respawn (see `RespawnPolicy`; a `roles` predicate must not throw). */
  readonly respawn?: RespawnPolicy;
  /** When to retire agents that are not coming back from the index (see `RetentionPolicy`; default: never). */
  readonly retention?: RetentionPolicy;
  /** Every sweep outcome, for metrics and logs. */
  readonly onOutcome?: (outcome: SweepOutcome) => void;
  /**
   * Every sweep commit known to be applied, once: right before its `applied` outcome, or — for a commit whose
   * reply was lost — when a later sweep at the same epoch, with the lease read as still ours, finds its writes. Carries
   * the respawn requests due: one per (agent, incarnation) at an epoch, whichever way the commit was learnt of.
   */
  readonly onApplied?: (applied: AppliedSweep) => void;
}

/** Waits `ms` on the injected clock; resolves early (never rejects) when `signal` aborts. */
export function sleep(clock: ElectionClock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clock.clearTimeout(timer);
      resolve();
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * How long the leader loop waits after `failures` (>= 1) sweeps in a row that did not complete: doubling from an
 * eighth of `sweepIntervalMs`, capped at `sweepIntervalMs` — a brief fault is retried soon, an outage at most once an
 * interval, never every millisecond.
 */
export function failureBackoff(failures: number, sweepIntervalMs: number): number {
  const base = Math.max(1, Math.ceil(sweepIntervalMs / 8));
  return Math.min(sweepIntervalMs, base * 2 ** Math.min(30, failures - 1));
}

/** A sweep's signal aborted (the node left `leader`): the sweep ends as `aborted`. `sent`: the call had been sent. */
class SweepAborted extends Error {
  constructor(
    operation: string,
    readonly sent: boolean,
  ) {
    super(`${operation}: the sweep was aborted (leadership ended)`);
  }
}

export class Sweeper {
  private liveness: Liveness = new Map();
  /** When this node first saw each reservation on the board (see the module comment). */
  private reservations: Reservations = new Map();
  private lastAgents: readonly VersionedAgent[] = [];
  private readonly logger: Logger;
  /** Commits whose outcome is unknown, until a later sweep settles them. */
  private unknown: readonly UnknownCommit[] = [];
  private unknownSeq = 0;
  /**
   * Counts the sweep commits this sweeper plans; with the node id and epoch it makes the commit id
   * (`<nodeId>/<epoch>/<n>`) stamped into what each writes. Unique: within this sweeper `n` never repeats, and
   * another process with this node id (a restart) leads only at a higher epoch — every acquisition takes a new,
   * higher fencing token — so its ids differ even though its count starts again. (Node ids are unique per election.)
   */
  private commitSeq = 0;
  /** The sweep running now: at most one at a time, a concurrent `sweepOnce` at its epoch joins it. */
  private inFlight: { readonly epoch: number; readonly promise: Promise<SweepOutcome> } | undefined;
  private reported: Reported | undefined;
  /** Monotonic time of the last completed read of the agents. */
  lastObservedAt: number | undefined;

  constructor(private readonly options: SweeperOptions) {
    this.logger = options.logger ?? silentLogger;
    const callTimeoutMs = options.callTimeoutMs ?? DEFAULT_SWEEP_CALL_TIMEOUT_MS;
    if (!(callTimeoutMs > 0)) throw new RangeError(`callTimeoutMs must be positive, got ${callTimeoutMs}`);
  }

  private callLimit(): number {
    return this.options.callTimeoutMs ?? DEFAULT_SWEEP_CALL_TIMEOUT_MS;
  }

  /** The budget of a sweep's store call starting now: the lesser of `callTimeoutMs` and the time left to the renew deadline. */
  private callBudget(): number {
    const limit = this.callLimit();
    return this.options.timeLeft ? Math.min(limit, this.options.timeLeft()) : limit;
  }

  /**
   * How an observer's reads (the follower loop, `agentStatus()`) are bounded: by `callTimeoutMs` alone, since they
   * are not leader work, and by `signal` when given.
   */
  observerCall(signal?: AbortSignal): StoreCall {
    return (operation, run) => this.bounded(signal, operation, run, this.callLimit());
  }

  /**
   * Runs one store call of a sweep with a signal that aborts when `signal` does (rejecting with `SweepAborted`) or
   * once the call's budget has passed on the injected clock (rejecting with `StoreTimeoutError`). The promise settles
   * then even if the store ignores the signal; a late reply is dropped. A call with no budget left is not sent.
   */
  private bounded<T>(
    signal: AbortSignal | undefined,
    operation: string,
    run: (options: CallOptions) => Promise<T>,
    budget: number = this.callBudget(),
  ): Promise<T> {
    if (signal?.aborted) return Promise.reject(new SweepAborted(operation, false));
    // No time left before the renew deadline: this node no longer leads for any purpose.
    if (!(budget > 0)) return Promise.reject(new SweepAborted(operation, false));
    const { clock } = this.options;
    const controller = new AbortController();
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const settle = (fn: () => void) => {
        if (done) return;
        done = true;
        clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const cut = (err: Error) =>
        settle(() => {
          controller.abort(err);
          reject(err);
        });
      const onAbort = () => cut(new SweepAborted(operation, true));
      const timer = clock.setTimeout(() => cut(new StoreTimeoutError(operation, budget)), budget);
      signal?.addEventListener('abort', onAbort, { once: true });
      let pending: Promise<T>;
      try {
        pending = run({ signal: controller.signal });
      } catch (err) {
        pending = Promise.reject(err);
      }
      pending.then(
        (value) => settle(() => resolve(value)),
        (err: unknown) => settle(() => reject(err)),
      );
    });
  }

  /** What this node knows of each agent's heartbeat, on its own clock. */
  observations(): Liveness {
    return this.liveness;
  }

  /** What this node knows of the board's reservations: when it first saw each, on its own clock. */
  reservationObservations(): Reservations {
    return this.reservations;
  }

  agents(): readonly VersionedAgent[] {
    return this.lastAgents;
  }

  /** Reads the agents and folds them into the liveness view (every node does this, leader or not). */
  async observe(signal?: AbortSignal): Promise<readonly VersionedAgent[]> {
    const agents = await this.options.registry.readAgents(this.observerCall(signal));
    this.fold(agents);
    return agents;
  }

  private fold(agents: readonly VersionedAgent[]): void {
    const now = this.options.clock.now();
    this.liveness = observeAgents(
      this.liveness,
      agents.map((a) => a.record),
      now,
    );
    this.lastAgents = agents;
    this.lastObservedAt = now;
  }

  /**
   * One sweep at fencing token `epoch`. Never throws for lost leadership or contention: see the outcome. `signal`
   * (the leader work's) aborts it, including a store call in flight; every store call is also bounded in time (see
   * `callTimeoutMs`, `timeLeft`).
   */
  sweepOnce(epoch: number, signal?: AbortSignal): Promise<SweepOutcome> {
    // One sweep at a time (`sweepNow()` beside the leader loop): a call at the running sweep's epoch shares its
    // outcome, a call at another epoch waits for it. Fewer twin commits, and no two sweeps settling the same
    // unknown commits or racing each other's writes.
    const current = this.inFlight;
    if (current && current.epoch === epoch) return current.promise;
    const promise = current
      ? current.promise.then(
          () => this.sweepOnceAlone(epoch, signal),
          () => this.sweepOnceAlone(epoch, signal),
        )
      : this.sweepOnceAlone(epoch, signal);
    const entry = { epoch, promise };
    this.inFlight = entry;
    const clear = () => {
      if (this.inFlight === entry) this.inFlight = undefined;
    };
    promise.then(clear, clear);
    return promise;
  }

  private async sweepOnceAlone(epoch: number, signal: AbortSignal | undefined): Promise<SweepOutcome> {
    try {
      return await this.sweep(epoch, signal);
    } catch (err) {
      if (err instanceof SweepAborted) return this.report({ kind: 'aborted', epoch });
      throw err;
    }
  }

  private async sweep(epoch: number, signal: AbortSignal | undefined): Promise<SweepOutcome> {
    const { registry, clock, nodeId, staleAfterMs } = this.options;
    const via: StoreCall = (operation, run) => this.bounded(signal, operation, run);
    const leader = { nodeId, epoch };
    let lastConflict = '';
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      if (signal?.aborted) return this.report({ kind: 'aborted', epoch });
      const knownUnknown = this.unknownSeq;
      let leaseVersion: string;
      try {
        leaseVersion = (await registry.currentLease(leader, via)).version;
      } catch (err) {
        if (!NotLeaderError.is(err)) throw err;
        return this.report({ kind: 'rejected', epoch, reason: 'not-leader', detail: err.message });
      }
      const { agents, index, indexVersion } = await registry.readIndexedAgents(via);
      const { board, version: boardVersion } = await registry.readBoard(via);
      this.fold(agents);
      this.reservations = observeReservations(this.reservations, boardVersion === null ? undefined : board, clock.now());
      // Holders and assignees the index does not list (retired, or left unindexed by an older version): read their
      // records, so the commit checks them at their real versions instead of "absent".
      const listed = new Set(agents.map((a) => a.record.id));
      const named = new Set<string>();
      for (const t of Object.values(board.tasks)) {
        if (t.state === 'claimed' && t.claimedBy !== null && !listed.has(t.claimedBy)) named.add(t.claimedBy);
        if (t.state === 'queued' && t.assignee !== null && !listed.has(t.assignee)) named.add(t.assignee);
      }
      const unindexed: VersionedAgent[] = [];
      for (const id of named) {
        const agent = await registry.readAgent(id, via);
        if (agent) unindexed.push(agent);
      }
      this.settle(epoch, leaseVersion, knownUnknown, [...agents, ...unindexed].map((a) => a.record), boardVersion === null ? undefined : board, index);
      const plan = planSweep({
        leader,
        commit: `${nodeId}/${epoch}/${++this.commitSeq}`,
        now: clock.now(),
        at: wallIso(clock),
        staleAfterMs,
        liveness: this.liveness,
        reservations: this.reservations,
        agents,
        board: boardVersion === null ? undefined : board,
        respawn: this.options.respawn,
        index: { ids: index.ids, version: indexVersion },
        unindexed,
        retention: this.options.retention,
      });
      if (isEmptyPlan(plan)) return this.report({ kind: 'noop', epoch });
      const ops: CommitOp[] = [
        // Check-only: the lease is still exactly the one we just read as ours at `epoch`.
        { key: registry.keys.lease, expectedVersion: leaseVersion },
        // Every value checked against the schema its reads enforce (see `checkedValue`): never an unreadable record.
        ...plan.agentWrites.map((w) => {
          const key = registry.keys.agent(w.id);
          return { key, expectedVersion: w.expectedVersion, value: checkedValue(key, agentRecordSchema, w.record) };
        }),
        // Check-only: each agent whose state the requeues relied on is still the record read (not re-registered).
        ...plan.agentChecks.map((c) => ({ key: registry.keys.agent(c.id), expectedVersion: c.expectedVersion })),
      ];
      if (plan.board) ops.push({ key: registry.keys.board, expectedVersion: boardVersion, value: checkedValue(registry.keys.board, taskBoardSchema, plan.board) });
      if (plan.index) {
        const value: Json = plan.index.commit === undefined ? { ids: [...plan.index.ids] } : { ids: [...plan.index.ids], commit: plan.index.commit };
        ops.push({ key: registry.keys.index, expectedVersion: plan.index.expectedVersion, value: checkedValue(registry.keys.index, agentIndexSchema, value) });
      }
      await this.options.beforeCommit?.(ops);
      if (signal?.aborted || (this.options.isLeader && !this.options.isLeader())) return this.report({ kind: 'aborted', epoch });
      const incarnations: Record<string, number> = Object.create(null);
      for (const { record } of agents) incarnations[record.id] = record.incarnation;
      const sent: SentCommit = { epoch, plan, incarnations };
      try {
        await this.bounded(signal, 'sweep commit', (o) => registry.store.commit(ops, o));
      } catch (err) {
        if (!CasMismatchError.is(err)) {
          // Applied or refused, we cannot tell (a commit cut short by the sweep's signal or budget included): a later
          // sweep's reads settle it (and raise its respawn requests). One never sent is simply not applied.
          if (!(err instanceof SweepAborted && !err.sent)) this.unknown = [...this.unknown, { ...sent, leaseVersion, seq: ++this.unknownSeq }];
          throw err;
        }
        // A renewal, a heartbeat or a claim raced us, or the lease moved on: read everything again; the lease
        // check at the top of the loop decides whether we may still write.
        lastConflict = err.key;
        continue;
      }
      // The board as written: a reservation this commit dropped is forgotten, one it created counts from now (it
      // existed by the time the reply came, so its target gets at least `staleAfterMs`).
      if (plan.board) this.reservations = observeReservations(this.reservations, plan.board, clock.now());
      this.applied(sent, false);
      return this.report({ kind: 'applied', plan, epoch, attempts: attempt });
    }
    return this.report({ kind: 'rejected', epoch, reason: 'contention', detail: `kept conflicting on ${lastConflict}` });
  }

  /**
   * Settles the commits with an unknown outcome known before this sweep's lease read, against its reads (the lease
   * confirmed ours at `epoch` at version `leaseVersion`, then the agents and the board).
   */
  private settle(epoch: number, leaseVersion: string, upTo: number, agents: readonly AgentRecord[], board: TaskBoard | undefined, index: AgentIndex): void {
    if (this.unknown.length === 0 && this.reported === undefined) return;
    // Raise nothing on a node that no longer believes it leads; a later sweep at this epoch settles them instead.
    if (this.options.isLeader && !this.options.isLeader()) return;
    const settled = settleUnknownCommits({ epoch, leaseVersion, upTo, unknown: this.unknown, reported: this.reported, agents, board, index });
    this.unknown = settled.unknown;
    this.reported = settled.reported;
    for (const commit of settled.refused) {
      this.logger.info({ nodeId: this.options.nodeId, epoch: commit.epoch, commit: commit.plan.commit, stale: commit.plan.agentWrites.map((w) => w.id) }, 'sweep commit with a lost reply was not applied');
    }
    for (const commit of settled.undetermined) {
      this.logger.info(
        this.appliedFields(commit.epoch, commit.plan),
        'sweep commit with a lost reply: outcome unknown (it can no longer apply, and nothing it wrote would show whether it did); not counted',
      );
    }
    for (const applied of settled.applied) this.emitApplied(applied);
  }

  private applied(commit: SentCommit, recovered: boolean): void {
    const recorded = recordApplied(this.reported, commit, recovered);
    this.reported = recorded.reported;
    this.emitApplied(recorded.applied);
  }

  private emitApplied(applied: AppliedSweep): void {
    if (applied.recovered) {
      this.logger.info(this.appliedFields(applied.epoch, applied.plan), 'sweep commit with a lost reply was applied');
    }
    try {
      this.options.onApplied?.(applied);
    } catch (err) {
      this.logger.error({ nodeId: this.options.nodeId, err }, 'sweep applied handler threw');
    }
  }

  private appliedFields(epoch: number, plan: AppliedSweep['plan']): object {
    return {
      nodeId: this.options.nodeId,
      epoch,
      commit: plan.commit,
      stale: plan.agentWrites.map((w) => w.id),
      requeued: plan.requeued.map((r) => r.taskId),
      ...(plan.expired.length > 0 ? { expiredReservations: plan.expired.map((e) => `${e.taskId}:${e.assignee}`) } : {}),
      retired: plan.retired,
    };
  }

  private report(outcome: SweepOutcome): SweepOutcome {
    if (outcome.kind === 'applied') {
      this.logger.info(this.appliedFields(outcome.epoch, outcome.plan), 'sweep applied');
    } else if (outcome.kind === 'rejected') {
      this.logger.warn({ nodeId: this.options.nodeId, epoch: outcome.epoch, reason: outcome.reason, detail: outcome.detail }, 'sweep rejected');
    }
    try {
      this.options.onOutcome?.(outcome);
    } catch (err) {
      this.logger.error({ nodeId: this.options.nodeId, err }, 'sweep outcome handler threw');
    }
    return outcome;
  }

  /**
   * The leader loop, for `elector.whileLeader`: sweeps until `signal` aborts (the node left `leader`) or the lease
   * turns out not to be ours at `token`. After a completed sweep (applied or noop) sleeps until the earliest agent
   * could turn stale, at most one interval; after sweeps that failed (threw, aborted, rejected for contention) it backs
   * off from an eighth of `sweepIntervalMs` up to a full one (`failureBackoff`).
   */
  async runAsLeader({ token, signal }: { token: number; signal: AbortSignal }): Promise<void> {
    const { clock, staleAfterMs, sweepIntervalMs } = this.options;
    let failures = 0;
    while (!signal.aborted) {
      // Only a sweep that read everything and committed (or found nothing to do) may be followed by `nextSweepDelay`
      // alone: after one that threw, was aborted or kept conflicting, an agent already overdue makes that delay 1 ms,
      // and the loop would hammer a failing store every millisecond for as long as the fault lasts. It backs off
      // instead (see `failureBackoff`), up to one `sweepIntervalMs`.
      let completed = false;
      try {
        const outcome = await this.sweepOnce(token, signal);
        if (outcome.kind === 'rejected' && outcome.reason === 'not-leader') return;
        completed = outcome.kind === 'applied' || outcome.kind === 'noop';
      } catch (err) {
        this.logger.warn({ nodeId: this.options.nodeId, epoch: token, err: err instanceof Error ? err.message : String(err) }, 'sweep failed; retrying next interval');
      }
      failures = completed ? 0 : failures + 1;
      const due = nextSweepDelay(
        this.liveness,
        this.lastAgents.map((a) => a.record),
        clock.now(),
        staleAfterMs,
        sweepIntervalMs,
        this.reservations,
      );
      const delay = failures === 0 ? due : Math.max(due, failureBackoff(failures, sweepIntervalMs));
      await sleep(clock, delay, signal);
    }
  }

  /** The follower loop: keeps the liveness view warm so a new leader can judge silence from its own history. */
  async runAsObserver(signal: AbortSignal, skip: () => boolean = () => false): Promise<void> {
    const { clock, sweepIntervalMs } = this.options;
    while (!signal.aborted) {
      if (!skip()) {
        try {
          await this.observe(signal);
        } catch (err) {
          if (err instanceof SweepAborted) break;
          this.logger.warn({ nodeId: this.options.nodeId, err: err instanceof Error ? err.message : String(err) }, 'observing agents failed');
        }
      }
      await sleep(clock, sweepIntervalMs, signal);
    }
  }
}
