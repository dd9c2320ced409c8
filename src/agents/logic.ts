/**
 * The decisions of the registry, the task board and the sweeper, as pure functions of (records read, the
 * observer's monotonic `now`, a wall-clock ISO string for display). No I/O, no ambient time, no randomness: the
 * store calls live in registry.ts/sweeper.ts, so a deterministic simulator can drive these directly.
 */
import type { Json } from '../adapters/LeaseStore.js';
import { StaleClaimError, UnknownTaskError } from './errors.js';
import type { AgentRecord, HandoffNote, HandoffReason, StaleMark, TaskBoard, TaskRecord } from './schema.js';

// ---------------------------------------------------------------------------------------------------------------
// Agents

export interface AgentIdentity {
  readonly id: string;
  readonly role: string;
  readonly capabilities: readonly string[];
}

/**
 * (Re)registration: a new incarnation, active, with the heartbeat counter continuing to rise. An operator's
 * `setHandoff` note is about the incarnation it was set on (its work, when it leaves): a new incarnation starts
 * without one, so a note already consumed by the requeue of that work is never applied to later work.
 */
export function registerRecord(previous: AgentRecord | undefined, identity: AgentIdentity, at: string): AgentRecord {
  return {
    id: identity.id,
    role: identity.role,
    capabilities: [...identity.capabilities],
    state: 'active',
    beat: previous ? previous.beat + 1 : 0,
    incarnation: previous ? previous.incarnation + 1 : 1,
    registeredAt: at,
    lastBeatAt: at,
    staleMark: previous?.staleMark ?? null,
    handoff: null,
  };
}

export function heartbeatRecord(record: AgentRecord, at: string): AgentRecord {
  return { ...record, beat: record.beat + 1, lastBeatAt: at };
}

export function deregisterRecord(record: AgentRecord, at: string): AgentRecord {
  return { ...record, state: 'gone', beat: record.beat + 1, lastBeatAt: at };
}

// ---------------------------------------------------------------------------------------------------------------
// Liveness, judged on the observer's own monotonic clock

export interface AgentObservation {
  readonly incarnation: number;
  readonly beat: number;
  /** Observer's monotonic time when it first saw this (incarnation, beat). */
  readonly firstSeenAt: number;
}

export type Liveness = ReadonlyMap<string, AgentObservation>;

/**
 * Folds one read of the agents into what this observer knows. An agent's silence is measured from the first
 * reply that showed its current heartbeat counter, on this node's clock only: wall clocks are never compared.
 */
export function observeAgents(previous: Liveness, agents: readonly AgentRecord[], now: number): Map<string, AgentObservation> {
  const next = new Map<string, AgentObservation>();
  for (const agent of agents) {
    const seen = previous.get(agent.id);
    if (seen && seen.beat === agent.beat && seen.incarnation === agent.incarnation) next.set(agent.id, seen);
    else next.set(agent.id, { incarnation: agent.incarnation, beat: agent.beat, firstSeenAt: now });
  }
  return next;
}

export function silentForMs(observation: AgentObservation | undefined, now: number): number {
  return observation ? Math.max(0, now - observation.firstSeenAt) : 0;
}

/** `stale` when marked so in the store, or when this observer has not seen a heartbeat for `staleAfterMs`. */
export function judgeAgent(agent: AgentRecord, observation: AgentObservation | undefined, now: number, staleAfterMs: number): AgentRecord['state'] {
  if (agent.state !== 'active') return agent.state;
  return silentForMs(observation, now) >= staleAfterMs ? 'stale' : 'active';
}

/**
 * When the next sweep is worth running: at the earliest moment an active agent could turn stale or a reservation
 * this observer remembers could expire (see `Reservations`), at most `intervalMs`.
 */
export function nextSweepDelay(
  liveness: Liveness,
  agents: readonly AgentRecord[],
  now: number,
  staleAfterMs: number,
  intervalMs: number,
  reservations: Reservations = new Map(),
): number {
  let delay = intervalMs;
  for (const agent of agents) {
    if (agent.state !== 'active') continue;
    const seen = liveness.get(agent.id);
    if (!seen) continue;
    delay = Math.min(delay, seen.firstSeenAt + staleAfterMs - now);
  }
  for (const seen of reservations.values()) delay = Math.min(delay, seen.firstSeenAt + staleAfterMs - now);
  return Math.max(1, Math.ceil(delay));
}

// ---------------------------------------------------------------------------------------------------------------
// Reservations, timed like liveness on the observer's own monotonic clock

/**
 * One reservation as this observer first saw it: a queued task reserved (`assignee`) for a handoff target. Its
 * identity is (task id, assignee, the task's `requeues`): every requeue raises `requeues`, so a later reservation of
 * the same task, even for the same target, is a new one and its time starts again.
 */
export interface ReservationObservation {
  readonly assignee: string;
  readonly requeues: number;
  /** Observer's monotonic time when it first saw this reservation. */
  readonly firstSeenAt: number;
}

/** By task id: the reservations on the board as last read, each with when this observer first saw it. */
export type Reservations = ReadonlyMap<string, ReservationObservation>;

/**
 * Folds one read of the board into what this observer knows of its reservations, like `observeAgents` does with
 * heartbeats: a reservation seen before keeps its first-seen time, a new one starts at `now`, and one no longer on
 * the board (claimed, dropped, the task gone) is forgotten.
 */
export function observeReservations(previous: Reservations, board: TaskBoard | undefined, now: number): Map<string, ReservationObservation> {
  const next = new Map<string, ReservationObservation>();
  for (const task of Object.values(board?.tasks ?? {})) {
    if (task.state !== 'queued' || task.assignee === null) continue;
    const seen = previous.get(task.id);
    if (seen && seen.assignee === task.assignee && seen.requeues === task.requeues) next.set(task.id, seen);
    else next.set(task.id, { assignee: task.assignee, requeues: task.requeues, firstSeenAt: now });
  }
  return next;
}

/**
 * Whether `task`'s reservation has expired: this observer first saw this very reservation at least `staleAfterMs`
 * ago — its target had as long to claim it as an agent has to heartbeat. A reservation never observed does not
 * expire (a new leader starts counting when it first reads it: a later expiry, never an earlier one).
 */
export function reservationExpired(task: TaskRecord, observation: ReservationObservation | undefined, now: number, staleAfterMs: number): boolean {
  if (task.state !== 'queued' || task.assignee === null || !observation) return false;
  if (observation.assignee !== task.assignee || observation.requeues !== task.requeues) return false;
  return now - observation.firstSeenAt >= staleAfterMs;
}

// ---------------------------------------------------------------------------------------------------------------
// Tasks

export interface NewTask {
  readonly id: string;
  readonly kind: string;
  readonly payload: Json;
}

export function emptyBoard(): TaskBoard {
  return { nextSeq: 0, tasks: taskMap({}) };
}

/**
 * A copy of a task map without a prototype (like `taskMapSchema` parses it): any valid id, `constructor` or
 * `__proto__` included, is an ordinary key to read, test and assign.
 */
export function taskMap(tasks: Readonly<Record<string, TaskRecord>>): Record<string, TaskRecord> {
  return Object.assign(Object.create(null) as Record<string, TaskRecord>, tasks);
}

/** The task with this id, if the board has one (own keys only: never a member of `Object.prototype`). */
export function taskOf(board: TaskBoard, taskId: string): TaskRecord | undefined {
  return Object.hasOwn(board.tasks, taskId) ? board.tasks[taskId] : undefined;
}

function withTask(board: TaskBoard, task: TaskRecord): TaskBoard {
  const tasks = taskMap(board.tasks);
  tasks[task.id] = task;
  return { ...board, tasks };
}

export function addTasks(board: TaskBoard, tasks: readonly NewTask[], at: string): TaskBoard {
  const next: TaskBoard = { nextSeq: board.nextSeq, tasks: taskMap(board.tasks) };
  for (const task of tasks) {
    next.tasks[task.id] = {
      id: task.id,
      seq: next.nextSeq++,
      kind: task.kind,
      payload: task.payload,
      state: 'queued',
      claimToken: 0,
      claimedBy: null,
      claimedAt: null,
      assignee: null,
      requeues: 0,
      handoff: null,
      completedBy: null,
      completedToken: null,
      completedAt: null,
      result: null,
      createdAt: at,
    };
  }
  return next;
}

export interface ClaimFilter {
  /** Only tasks of these kinds (default: any). */
  readonly kinds?: readonly string[] | undefined;
}

/**
 * Tasks the board says `agentId` holds that its caller does not know it holds (`holds(taskId, claimToken)` false):
 * a claim applied while the caller saw a failure (lost reply, a duplicated request whose copy conflicted and was
 * retried), or a completion whose outcome the caller never learnt. Oldest first.
 */
export function unknownClaimsOf(board: TaskBoard, agentId: string, holds: (taskId: string, claimToken: number) => boolean): TaskRecord[] {
  return Object.values(board.tasks)
    .filter((t) => t.state === 'claimed' && t.claimedBy === agentId && !holds(t.id, t.claimToken))
    .sort((a, b) => a.seq - b.seq);
}

export function matchesFilter(task: TaskRecord, filter: ClaimFilter): boolean {
  return !filter.kinds || filter.kinds.includes(task.kind);
}

/** Claims the oldest queued task this agent may take; the claim token rises by one. */
export function claimNext(board: TaskBoard, agentId: string, filter: ClaimFilter, at: string): { board: TaskBoard; task: TaskRecord } | undefined {
  const candidates = Object.values(board.tasks)
    .filter((t) => t.state === 'queued' && (t.assignee === null || t.assignee === agentId))
    .filter((t) => !filter.kinds || filter.kinds.includes(t.kind))
    // Tasks reserved for this agent first, then submission order.
    .sort((a, b) => Number(b.assignee === agentId) - Number(a.assignee === agentId) || a.seq - b.seq);
  const chosen = candidates[0];
  if (!chosen) return undefined;
  const task: TaskRecord = { ...chosen, state: 'claimed', claimToken: chosen.claimToken + 1, claimedBy: agentId, claimedAt: at, assignee: null };
  return { board: withTask(board, task), task };
}

/** Accepts a completion only from the current claim: same agent, same token, still claimed. */
export function completeTask(board: TaskBoard, taskId: string, agentId: string, claimToken: number, result: Json, at: string): TaskBoard {
  const task = taskOf(board, taskId);
  if (!task) throw new UnknownTaskError(taskId);
  if (task.state !== 'claimed' || task.claimToken !== claimToken || task.claimedBy !== agentId) {
    throw new StaleClaimError(taskId, agentId, claimToken, { token: task.claimToken, holder: task.claimedBy, state: task.state });
  }
  const done: TaskRecord = { ...task, state: 'completed', completedBy: agentId, completedToken: claimToken, completedAt: at, result };
  return withTask(board, done);
}

function requeue(task: TaskRecord, handoff: HandoffNote, assignee: string | null): TaskRecord {
  return { ...task, state: 'queued', claimedBy: null, claimedAt: null, assignee, requeues: task.requeues + 1, handoff };
}

/** Puts every task this agent holds (or, with `which`, those of them it selects) back on the queue, carrying `handoff`. */
export function releaseClaimsOf(
  board: TaskBoard,
  agentId: string,
  handoff: HandoffNote,
  which: (task: TaskRecord) => boolean = () => true,
): { board: TaskBoard; requeued: string[] } {
  const tasks = taskMap(board.tasks);
  const requeued: string[] = [];
  for (const task of Object.values(board.tasks).sort((a, b) => a.seq - b.seq)) {
    if (task.state === 'claimed' && task.claimedBy === agentId && which(task)) {
      tasks[task.id] = requeue(task, handoff, null);
      requeued.push(task.id);
    }
  }
  return { board: { ...board, tasks }, requeued };
}

// ---------------------------------------------------------------------------------------------------------------
// Handoff notes

export interface LeaderIdentity {
  readonly nodeId: string;
  readonly epoch: number;
}

export function defaultHandoffText(reason: HandoffReason, from: string, leader: LeaderIdentity, silentMs?: number): string {
  const why =
    reason === 'stale'
      ? `agent ${from} stopped heart-beating${silentMs !== undefined ? ` (silent for ${Math.round(silentMs)} ms)` : ''}`
      : reason === 'deregistered'
        ? `agent ${from} deregistered while holding it`
        : reason === 'restarted'
          ? `agent ${from} restarted`
          : reason === 'released'
            ? `agent ${from} did not know it held it (its claim's reply was lost)`
            : `of a handoff from agent ${from}`;
  return `requeued by orchestrator ${leader.nodeId} at epoch ${leader.epoch} because ${why}`;
}

/**
 * The note a requeued task carries. An operator's `setHandoff` note (why, to whom) wins over the generated one, but
 * `by`/`epoch`/`at` always name the requeue itself.
 */
export function handoffFor(reason: HandoffReason, from: AgentRecord | string, leader: LeaderIdentity, at: string, silentMs?: number): HandoffNote {
  const agentId = typeof from === 'string' ? from : from.id;
  const manual = typeof from === 'string' ? null : from.handoff;
  const generated = defaultHandoffText(reason, agentId, leader, silentMs);
  return {
    note: manual ? `${manual.note} (${generated})` : generated,
    reason,
    from: agentId,
    to: manual?.to ?? null,
    by: leader.nodeId,
    epoch: leader.epoch,
    at,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The sweep

export interface VersionedAgent {
  readonly record: AgentRecord;
  readonly version: string;
}

export interface SweepInput {
  readonly leader: LeaderIdentity;
  /** Observer's monotonic time. */
  readonly now: number;
  /** Wall-clock ISO string, for the records only. */
  readonly at: string;
  /** The id of the commit this plan will be sent as: stamped into every mark, handoff note and index it writes. */
  readonly commit?: string | undefined;
  readonly staleAfterMs: number;
  readonly liveness: Liveness;
  /**
   * When this observer first saw each reservation on the board (see `observeReservations`): one first seen at least
   * `staleAfterMs` ago is dropped even though its target is active. Default: none known, none expires.
   */
  readonly reservations?: Reservations | undefined;
  readonly agents: readonly VersionedAgent[];
  readonly board: TaskBoard | undefined;
  /** Which stale agents the plan asks to respawn (default: every role, only agents whose work this sweep requeued). */
  readonly respawn?: RespawnPolicy | undefined;
  /**
   * The agent index as read (ids and version; version null when absent). Without it the plan retires nobody.
   * `agents` are the records of these ids that exist.
   */
  readonly index?: { readonly ids: readonly string[]; readonly version: string | null } | undefined;
  /**
   * Records read directly because the board names them (a holder or assignee) while the index does not: a retired
   * agent, or one left unindexed by an older version's registration race. They are only consulted (state, version),
   * never marked or retired; an active one is put back in the index so its liveness is judged again.
   */
  readonly unindexed?: readonly VersionedAgent[] | undefined;
  /** When to retire agents that are not coming back (default: never). */
  readonly retention?: RetentionPolicy | undefined;
}

/**
 * How long a leader keeps an agent that is no longer active in the registry's index, measured like liveness: on the
 * leader's own clock, since it first saw the agent's current heartbeat counter (deregistering bumps the counter; a
 * stale mark does not, so a stale agent's time counts from its last heartbeat). Null: keep it forever.
 *
 * Retiring removes the id from the index — which every sweep, observer and `agentStatus()` reads record by record —
 * in a fenced commit that also checks the agent's record at the version read (so an agent that re-registered
 * meanwhile is not retired). The `LeaseStore` contract has no delete, so the agent's own key keeps its last record:
 * its incarnation and heartbeat counters must never repeat should the id register again, or a zombie of an old
 * incarnation could pass for the new one. An agent that holds a claim or a reservation is never retired.
 */
export interface RetentionPolicy {
  readonly goneMs: number | null;
  readonly staleMs: number | null;
}

/**
 * Which stale agents a sweep asks to restart (`RespawnRequest`s, delivered by `onRespawnNeeded` on the leader).
 *
 * By default a request is raised for an agent this sweep found stale and whose claimed tasks it requeued, for every
 * role: its work moved elsewhere and its process is presumed dead. An agent that went stale holding nothing raises
 * none unless `idle` is set: there is no work to move, and it may be a paused process that will come back on its own
 * (its heartbeat then finds it stale and it re-registers), so respawning it could double the pool.
 */
export interface RespawnPolicy {
  /**
   * Roles whose agents should be restarted: a list (empty: none), or a predicate over the role and the request.
   * Default: every role.
   */
  readonly roles?: readonly string[] | ((role: string, request: RespawnRequest) => boolean) | undefined;
  /**
   * Also request a respawn for an agent marked stale by this sweep while it held no task (a fixed-size pool that
   * must keep its capacity). Default false.
   */
  readonly idle?: boolean | undefined;
}

/** Whether `request` passes the role filter of `policy`. */
export function respawnWanted(policy: RespawnPolicy | undefined, request: RespawnRequest): boolean {
  const roles = policy?.roles;
  if (roles === undefined) return true;
  return typeof roles === 'function' ? roles(request.role, request) : roles.includes(request.role);
}

export interface RespawnRequest {
  readonly agentId: string;
  readonly role: string;
  readonly capabilities: readonly string[];
  /**
   * Tasks taken from this agent and requeued by this sweep (in the same commit that marked it stale, or that found
   * it already stale). Empty only for an idle agent under `RespawnPolicy.idle`.
   */
  readonly requeuedTaskIds: readonly string[];
  readonly epoch: number;
  readonly silentForMs: number;
  readonly handoff: HandoffNote;
}

export interface SweepPlan {
  /** New agent records (marked stale), each to be written only if the agent's version is still the one read. */
  readonly agentWrites: ReadonlyArray<{ readonly id: string; readonly expectedVersion: string; readonly record: AgentRecord }>;
  /**
   * Check-only conditions: every agent whose *non-active* state the plan relied on — the holder of each requeued
   * task, the assignee of each dropped reservation, each agent retired — and that is not already in `agentWrites`,
   * at the version read (null: no record was read, so none may exist). If any of them changed since — e.g. it
   * re-registered and claimed the task after the sweep read the agents — the commit is refused and the sweep
   * re-reads. A non-active agent's version does not move on its own, so these checks cost nothing unless someone
   * really races the sweep.
   *
   * Agents the plan relied on being *active* — the handoff target a requeued task is reserved for, an unindexed agent
   * put back in the index — are deliberately NOT checked: every heartbeat changes their version, so with heartbeats
   * faster than a sweep's read-to-commit time every attempt would be refused and the whole sweep (every stale mark,
   * every requeue) held up for as long as that agent lives. What such a check would guard is harmless to leave to
   * the next sweep: a target that deregisters (or goes silent) between the read and the commit leaves a reservation
   * for a non-active agent, which the next sweep drops (see `planSweep`: the task then goes to anyone), at most one
   * sweep interval later; an agent put back in the index as it deregisters is listed as `gone`, judged as such and
   * retired under `RetentionPolicy` like any other.
   */
  readonly agentChecks: ReadonlyArray<{ readonly id: string; readonly expectedVersion: string | null }>;
  /** The new board, when any task moved. */
  readonly board: TaskBoard | undefined;
  readonly requeued: ReadonlyArray<{ readonly taskId: string; readonly from: string; readonly handoff: HandoffNote }>;
  /**
   * Reservations the plan drops because they expired (first seen `staleAfterMs` ago, target still active): the task
   * goes back to any agent, its handoff note kept. (Reservations for a target that is not active are dropped too, but
   * not listed here.)
   */
  readonly expired: ReadonlyArray<{ readonly taskId: string; readonly assignee: string }>;
  readonly respawns: readonly RespawnRequest[];
  /** Agents removed from the index (see `RetentionPolicy`); each also has a check in `agentChecks`. */
  readonly retired: readonly string[];
  /** The new agent index, to be written only if the index is still at `expectedVersion`. */
  readonly index: { readonly expectedVersion: string | null; readonly ids: readonly string[]; readonly commit?: string } | undefined;
  /** The commit id the plan was made for (`SweepInput.commit`), stamped into its marks, notes and index. */
  readonly commit: string | undefined;
}

export function isEmptyPlan(plan: SweepPlan): boolean {
  return plan.agentWrites.length === 0 && plan.board === undefined && plan.index === undefined;
}

/**
 * What a leader's sweep should write: mark silent agents stale, requeue every task claimed by an agent that is not
 * active (just marked, earlier marked, deregistered or unknown), and drop reservations for agents that are not
 * active or that expired (`reservationExpired`: a live target that never claims — one whose claim filter excludes
 * the task's kind — would otherwise block the task forever). The caller writes it all in one commit conditioned on
 * the lease version, and on the board version read (so a target that claims its task meanwhile refuses the drop).
 */
export function planSweep(input: SweepInput): SweepPlan {
  const { leader, now, at, staleAfterMs, liveness } = input;
  // Only when set: stores take plain JSON, and `undefined` is not JSON.
  const stamp = input.commit === undefined ? {} : { commit: input.commit };
  const unindexed = input.unindexed ?? [];
  const byId = new Map([...unindexed, ...input.agents].map((a) => [a.record.id, a.record]));
  const versionOf = new Map([...unindexed, ...input.agents].map((a) => [a.record.id, a.version]));
  const reliedOn = new Set<string>();
  const agentWrites: Array<{ id: string; expectedVersion: string; record: AgentRecord }> = [];
  const newlyStale = new Map<string, { record: AgentRecord; silentMs: number }>();

  for (const { record, version } of input.agents) {
    const observation = liveness.get(record.id);
    if (judgeAgent(record, observation, now, staleAfterMs) !== 'stale' || record.state !== 'active') continue;
    const silentMs = silentForMs(observation, now);
    const mark: StaleMark = { by: leader.nodeId, epoch: leader.epoch, at, silentForMs: Math.round(silentMs), ...stamp };
    const marked: AgentRecord = { ...record, state: 'stale', staleMark: mark };
    agentWrites.push({ id: record.id, expectedVersion: version, record: marked });
    newlyStale.set(record.id, { record: marked, silentMs });
    byId.set(record.id, marked);
  }

  const isActive = (id: string | null) => id !== null && byId.get(id)?.state === 'active';
  let board = input.board;
  let boardChanged = false;
  const requeued: Array<{ taskId: string; from: string; handoff: HandoffNote }> = [];
  const expired: Array<{ taskId: string; assignee: string }> = [];
  const requeuedBy = new Map<string, string[]>();
  const notes = new Map<string, HandoffNote>();

  if (board) {
    const tasks = taskMap(board.tasks);
    for (const task of Object.values(board.tasks).sort((a, b) => a.seq - b.seq)) {
      if (task.state === 'claimed' && task.claimedBy !== null && !isActive(task.claimedBy)) {
        const holder = byId.get(task.claimedBy);
        let handoff = notes.get(task.claimedBy);
        if (!handoff) {
          const reason: HandoffReason = holder?.state === 'gone' ? 'deregistered' : 'stale';
          handoff = { ...handoffFor(reason, holder ?? task.claimedBy, leader, at, newlyStale.get(task.claimedBy)?.silentMs), ...stamp };
          notes.set(task.claimedBy, handoff);
        }
        // Reserved only for a target active as read, and NOT version-checked (see `agentChecks`): a live target's
        // heartbeats would refuse every attempt; one that has gone by the commit loses the reservation next sweep.
        const assignee = isActive(handoff.to) ? handoff.to : null;
        tasks[task.id] = requeue(task, handoff, assignee);
        requeued.push({ taskId: task.id, from: task.claimedBy, handoff });
        reliedOn.add(task.claimedBy);
        requeuedBy.set(task.claimedBy, [...(requeuedBy.get(task.claimedBy) ?? []), task.id]);
        boardChanged = true;
      } else if (task.state === 'queued' && task.assignee !== null && !isActive(task.assignee)) {
        tasks[task.id] = { ...task, assignee: null };
        reliedOn.add(task.assignee);
        boardChanged = true;
      } else if (reservationExpired(task, input.reservations?.get(task.id), now, staleAfterMs)) {
        // The target is active but did not claim in time. Nothing about it is relied on (no agent check: it
        // heartbeats); a claim of the task by it since the read moved the board, whose version the commit checks.
        tasks[task.id] = { ...task, assignee: null };
        expired.push({ taskId: task.id, assignee: task.assignee! });
        boardChanged = true;
      }
    }
    board = boardChanged ? { ...board, tasks } : undefined;
  }

  // Respawns: stale agents (marked now or earlier) whose work this sweep requeued; with `idle`, also those marked
  // now that held nothing. Deregistered agents left on purpose, and an unknown holder has no role to restart.
  const respawns: RespawnRequest[] = [];
  for (const { record: read } of input.agents) {
    const record = byId.get(read.id)!;
    if (record.state !== 'stale') continue;
    const requeuedTaskIds = requeuedBy.get(record.id) ?? [];
    const marked = newlyStale.get(record.id);
    if (requeuedTaskIds.length === 0 && !(marked && input.respawn?.idle === true)) continue;
    const silentMs = marked?.silentMs ?? silentForMs(liveness.get(record.id), now);
    const request: RespawnRequest = {
      agentId: record.id,
      role: record.role,
      capabilities: record.capabilities,
      requeuedTaskIds,
      epoch: leader.epoch,
      silentForMs: Math.round(silentMs),
      handoff: notes.get(record.id) ?? handoffFor('stale', record, leader, at, silentMs),
    };
    if (respawnWanted(input.respawn, request)) respawns.push(request);
  }

  // Retention: agents not coming back leave the index once they hold nothing (checked at the version read, so one
  // that re-registers meanwhile stays). Unindexed records the board names and that are active go back in.
  const retired: string[] = [];
  let index: SweepPlan['index'];
  if (input.index) {
    const finalBoard = board ?? input.board;
    const held = new Set<string>();
    for (const task of Object.values(finalBoard?.tasks ?? {})) {
      if (task.state === 'claimed' && task.claimedBy !== null) held.add(task.claimedBy);
      if (task.state === 'queued' && task.assignee !== null) held.add(task.assignee);
    }
    const retention = input.retention;
    for (const { record } of input.agents) {
      if (newlyStale.has(record.id) || held.has(record.id) || !retention) continue;
      const keepMs = record.state === 'gone' ? retention.goneMs : record.state === 'stale' ? retention.staleMs : null;
      const observation = liveness.get(record.id);
      if (keepMs === null || !observation || silentForMs(observation, now) < keepMs) continue;
      retired.push(record.id);
      reliedOn.add(record.id);
    }
    const listed = new Set(input.index.ids);
    const revived = unindexed.filter((a) => a.record.state === 'active' && !listed.has(a.record.id)).map((a) => a.record.id);
    // Not version-checked: they are active and heartbeat (see `agentChecks`).
    if (retired.length > 0 || revived.length > 0) {
      const drop = new Set(retired);
      index = { expectedVersion: input.index.version, ids: [...input.index.ids.filter((id) => !drop.has(id)), ...revived], ...stamp };
    }
  }

  const written = new Set(agentWrites.map((w) => w.id));
  const agentChecks = boardChanged || index ? [...reliedOn].filter((id) => !written.has(id)).map((id) => ({ id, expectedVersion: versionOf.get(id) ?? null })) : [];

  return { commit: input.commit, agentWrites, agentChecks, board: boardChanged ? board : undefined, requeued, expired, respawns, retired, index };
}
