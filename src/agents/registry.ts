/**
 * Store I/O for the registry and the task board: reads validate, writes are compare-and-set or multi-key commits
 * retried on `CasMismatchError` after reading again. All decisions come from logic.ts; all time from the clock.
 */
import { z } from 'zod';
import type { CallOptions, CommitOp, Json, LeaseStore, StoreEntry } from '../adapters/LeaseStore.js';
import { type ElectionClock, wallIso } from '../clock.js';
import { CasMismatchError, InvalidOptionsError, NotLeaderError } from '../errors.js';
import { type LeaseRecord, leaseRecordSchema } from '../machines/leaseRecord.js';
import { fromZodIssues } from '../options.js';
import { AgentNotActiveError, ContentionError, DuplicateTaskError, MalformedRecordError, UnknownAgentError } from './errors.js';
import {
  type AgentIdentity,
  addTasks,
  type ClaimFilter,
  claimNext,
  completeTask,
  deregisterRecord,
  emptyBoard,
  handoffFor,
  heartbeatRecord,
  type LeaderIdentity,
  matchesFilter,
  type NewTask,
  registerRecord,
  releaseClaimsOf,
  taskOf,
  unknownClaimsOf,
  type VersionedAgent,
} from './logic.js';
import {
  type AgentIndex,
  type AgentKeys,
  type AgentRecord,
  agentIndexSchema,
  agentKeys,
  agentRecordSchema,
  type HandoffNote,
  handoffInputSchema,
  idSchema,
  newTaskSchema,
  type TaskBoard,
  type TaskRecord,
  taskBoardSchema,
} from './schema.js';

export const MAX_ATTEMPTS = 16;

const identityInputSchema = z.object({ id: idSchema, role: agentRecordSchema.shape.role, capabilities: agentRecordSchema.shape.capabilities });
const submitTasksInputSchema = z.object({ tasks: z.array(newTaskSchema) });
const completionInputSchema = z.object({ result: z.json() });

/**
 * How a read reaches the store: `call` runs it with the `CallOptions` to pass. The default passes none; the sweeper
 * passes one that bounds each call of a sweep by its own signal (see `Sweeper`).
 */
export type StoreCall = <T>(operation: string, call: (options?: CallOptions) => Promise<T>) => Promise<T>;

const direct: StoreCall = (_operation, call) => call();

function parse<T>(key: string, entry: StoreEntry | undefined, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { message: string } } }): T | undefined {
  if (!entry) return undefined;
  const parsed = schema.safeParse(entry.value);
  if (!parsed.success) throw new MalformedRecordError(key, parsed.error.message);
  return parsed.data;
}

/**
 * Checks a caller's input against its schema before anything is read or written: `InvalidOptionsError` whose issues
 * name the offending field (`tasks.0.kind`, `to`, ...) instead of a raw `ZodError`.
 */
export function validInput<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new InvalidOptionsError(fromZodIssues(parsed.error));
  return parsed.data;
}

/**
 * The value to write at `key`, checked first against the schema every read of that key enforces: a record that
 * would not parse is never written (it would make the key unreadable — `MalformedRecordError` on every later
 * read — until someone edits the store). Throws `InvalidOptionsError` and writes nothing.
 */
export function checkedValue(key: string, schema: z.ZodType, value: unknown): Json {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new InvalidOptionsError(
      parsed.error.issues.map((issue) => {
        const path = issue.path.map(String).join('.');
        return {
          path: `${key}${path ? `.${path}` : ''}`,
          code: issue.code,
          message: `${issue.message}: the record would not validate when read back, so nothing was written. Check the values passed in.`,
        };
      }),
    );
  }
  return value as Json;
}

export interface VersionedLease {
  readonly record: LeaseRecord;
  readonly version: string;
}

export interface VersionedBoard {
  readonly board: TaskBoard;
  /** null when the board key does not exist yet. */
  readonly version: string | null;
}

export interface ClaimedTask {
  readonly task: TaskRecord;
  readonly claimToken: number;
  /**
   * True when this is not a new claim but one the board says the agent already holds and its caller did not know of
   * (see `ClaimOptions.holds`): the agent resumes it with its current claim token.
   */
  readonly resumed?: boolean;
}

/** Who is asking: the agent's incarnation and what its caller knows it holds. */
export interface AgentSession {
  /**
   * The incarnation the caller registered as. A record with another one means another process registered under the
   * same id since: the call is refused (`AgentNotActiveError` with state `superseded`) rather than acting for it.
   */
  readonly incarnation?: number | undefined;
  /**
   * Whether the caller knows it holds `taskId` at `claimToken`. When given, `claim` first resumes (returns, without
   * writing) a task the board says this agent holds but the caller does not know of — a claim applied while the
   * caller saw a failure — and releases such tasks the filter excludes, so none stays claimed by a live agent that
   * will never complete it.
   */
  readonly holds?: ((taskId: string, claimToken: number) => boolean) | undefined;
}

export interface DeregisterOptions {
  /**
   * The incarnation the caller registered as. When given and the record shows another one (a process registered
   * under the same id since), nothing is written: `AgentNotActiveError` with state `superseded`. Omit it only for an
   * operator's deregistration of whatever incarnation is current.
   */
  readonly incarnation?: number | undefined;
  /** Who deregisters, for the handoff note of requeued tasks (default: the agent id). */
  readonly by?: string | undefined;
}

export interface RegisterOptions {
  /**
   * Put the claims the board still shows for this agent id (a previous incarnation's: the process restarted before
   * any orchestrator noticed) back on the queue in the registration commit. Default true; their old claim tokens are
   * void either way, since a requeued task is claimed again with a higher token.
   */
  readonly releasePrevious?: boolean;
}

export class AgentRegistry {
  readonly keys: AgentKeys;

  constructor(
    readonly store: LeaseStore,
    readonly election: string,
    private readonly clock: ElectionClock,
  ) {
    this.keys = agentKeys(election);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Reads

  async readLease(via: StoreCall = direct): Promise<VersionedLease | undefined> {
    const entry = await via('read lease', (o) => this.store.read(this.keys.lease, o));
    const record = parse(this.keys.lease, entry, leaseRecordSchema);
    return record && entry ? { record, version: entry.version } : undefined;
  }

  async readIndex(via: StoreCall = direct): Promise<{ index: AgentIndex; version: string | null }> {
    const entry = await via('read agent index', (o) => this.store.read(this.keys.index, o));
    const index = parse(this.keys.index, entry, agentIndexSchema);
    return { index: index ?? { ids: [] }, version: entry?.version ?? null };
  }

  async readAgent(id: string, via: StoreCall = direct): Promise<VersionedAgent | undefined> {
    const key = this.keys.agent(id);
    const entry = await via(`read agent ${id}`, (o) => this.store.read(key, o));
    const record = parse(key, entry, agentRecordSchema);
    return record && entry ? { record, version: entry.version } : undefined;
  }

  async readAgents(via: StoreCall = direct): Promise<VersionedAgent[]> {
    return (await this.readIndexedAgents(via)).agents;
  }

  /** The index (ids, version) and the records of its ids that exist, in index order. */
  async readIndexedAgents(via: StoreCall = direct): Promise<{ agents: VersionedAgent[]; index: AgentIndex; indexVersion: string | null }> {
    const { index, version } = await this.readIndex(via);
    const agents: VersionedAgent[] = [];
    for (const id of index.ids) {
      const agent = await this.readAgent(id, via);
      if (agent) agents.push(agent);
    }
    return { agents, index, indexVersion: version };
  }

  async readBoard(via: StoreCall = direct): Promise<VersionedBoard> {
    const entry = await via('read task board', (o) => this.store.read(this.keys.board, o));
    const board = parse(this.keys.board, entry, taskBoardSchema);
    return { board: board ?? emptyBoard(), version: entry?.version ?? null };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Agent side

  /**
   * Registers `identity` as a new incarnation (active, heartbeat counter continuing). Any task the board still shows
   * claimed by this id belongs to a previous incarnation — a process that restarted before any orchestrator marked
   * it stale — and nobody will complete it: it is requeued in the same commit ("requeued because agent X
   * restarted"), and the commit is conditioned on the board version read, so a late claim of the old incarnation
   * can land neither before it unseen (conflict, read again) nor after it (its commit checks the old agent version).
   */
  async register(identity: AgentIdentity, options: RegisterOptions = {}): Promise<VersionedAgent & { readonly released: readonly string[] }> {
    validInput(identityInputSchema, identity);
    const releasePrevious = options.releasePrevious ?? true;
    return this.retry('register', async () => {
      const [{ index, version: indexVersion }, existing] = [await this.readIndex(), await this.readAgent(identity.id)];
      const at = wallIso(this.clock);
      const record = registerRecord(existing?.record, identity, at);
      const agentKey = this.keys.agent(identity.id);
      const ops: CommitOp[] = [{ key: agentKey, expectedVersion: existing?.version ?? null, value: checkedValue(agentKey, agentRecordSchema, record) }];
      // The index op is there even when the id is listed (check-only): a leader may retire the id from the index
      // between our two reads (see RetentionPolicy), and an active agent missing from the index is never judged.
      ops.push(
        index.ids.includes(identity.id)
          ? { key: this.keys.index, expectedVersion: indexVersion }
          : { key: this.keys.index, expectedVersion: indexVersion, value: checkedValue(this.keys.index, agentIndexSchema, { ...index, ids: [...index.ids, identity.id] }) },
      );
      let released: string[] = [];
      if (releasePrevious && existing) {
        const { board, version: boardVersion } = await this.readBoard();
        const note = handoffFor('restarted', existing.record, { nodeId: identity.id, epoch: 0 }, at);
        const text = `requeued because agent ${identity.id} restarted (incarnation ${existing.record.incarnation} -> ${record.incarnation})`;
        const result = releaseClaimsOf(board, identity.id, { ...note, note: text });
        released = result.requeued;
        ops.push(
          released.length > 0
            ? { key: this.keys.board, expectedVersion: boardVersion, value: checkedValue(this.keys.board, taskBoardSchema, result.board) }
            : { key: this.keys.board, expectedVersion: boardVersion },
        );
      }
      const [version] = await this.store.commit(ops);
      return { record, version: version!, released };
    });
  }

  /**
   * Bumps the heartbeat counter. `known` is the caller's last write (saves a read); on a conflict the record is read
   * again. Throws `AgentNotActiveError` when an orchestrator marked the agent stale (or it is gone).
   */
  async heartbeat(id: string, known?: VersionedAgent, session: AgentSession = {}): Promise<VersionedAgent> {
    let current = known;
    return this.retry('heartbeat', async () => {
      current ??= await this.readAgent(id);
      if (!current) throw new UnknownAgentError(id);
      if (current.record.state !== 'active') throw new AgentNotActiveError(id, current.record.state);
      checkIncarnation(current.record, session);
      const record = heartbeatRecord(current.record, wallIso(this.clock));
      try {
        const key = this.keys.agent(id);
        const version = await this.store.compareAndSet(key, current.version, checkedValue(key, agentRecordSchema, record));
        return { record, version };
      } catch (err) {
        current = undefined;
        throw err;
      }
    });
  }

  /**
   * Marks the agent `gone` and, in the same commit, puts any task it still holds back on the queue. With
   * `expected.incarnation` (what an agent process passes: the incarnation it registered as) a record registered since
   * by another process under the same id is left alone: `AgentNotActiveError` with state `superseded`. The commit is
   * conditioned on the record's version read, so a registration landing in between is not overwritten either.
   */
  async deregister(id: string, expected: DeregisterOptions = {}): Promise<{ requeued: string[] }> {
    const by = expected.by ?? id;
    return this.retry('deregister', async () => {
      const agent = await this.readAgent(id);
      if (!agent) throw new UnknownAgentError(id);
      checkIncarnation(agent.record, expected);
      const { board, version: boardVersion } = await this.readBoard();
      const at = wallIso(this.clock);
      const agentKey = this.keys.agent(id);
      const ops: CommitOp[] = [{ key: agentKey, expectedVersion: agent.version, value: checkedValue(agentKey, agentRecordSchema, deregisterRecord(agent.record, at)) }];
      const note = handoffFor('deregistered', agent.record, { nodeId: by, epoch: 0 }, at);
      const released = releaseClaimsOf(board, id, { ...note, note: `released by agent ${id} on deregistering` });
      if (released.requeued.length > 0) ops.push({ key: this.keys.board, expectedVersion: boardVersion, value: checkedValue(this.keys.board, taskBoardSchema, released.board) });
      await this.store.commit(ops);
      return { requeued: released.requeued };
    });
  }

  /**
   * Claims the oldest queued task this agent may take, only while its own record is `active` (checked in the commit).
   * With `session.holds`, first resumes a claim the board says this agent holds and the caller does not know of (a
   * claim applied while the caller saw a failure — including this very call's earlier attempt, whose duplicated
   * request conflicted), and releases those the filter excludes in the same commit as the new claim.
   */
  async claim(agentId: string, filter: ClaimFilter = {}, session: AgentSession = {}): Promise<ClaimedTask | undefined> {
    return this.retry('claim', async () => {
      const agent = await this.readAgent(agentId);
      if (!agent) throw new UnknownAgentError(agentId);
      if (agent.record.state !== 'active') throw new AgentNotActiveError(agentId, agent.record.state);
      checkIncarnation(agent.record, session);
      const read = await this.readBoard();
      let board = read.board;
      const at = wallIso(this.clock);
      let releasedUnknown = false;
      if (session.holds) {
        const unknown = unknownClaimsOf(board, agentId, session.holds);
        const resume = unknown.find((t) => matchesFilter(t, filter));
        if (resume) return { task: resume, claimToken: resume.claimToken, resumed: true };
        if (unknown.length > 0) {
          const ids = new Set(unknown.map((t) => t.id));
          board = releaseClaimsOf(board, agentId, this.releaseNote(agent.record, at), (t) => ids.has(t.id)).board;
          releasedUnknown = true;
        }
      }
      const claimed = claimNext(board, agentId, filter, at);
      if (!claimed && !releasedUnknown) return undefined;
      await this.store.commit([
        { key: this.keys.agent(agentId), expectedVersion: agent.version },
        { key: this.keys.board, expectedVersion: read.version, value: checkedValue(this.keys.board, taskBoardSchema, claimed?.board ?? board) },
      ]);
      return claimed ? { task: claimed.task, claimToken: claimed.task.claimToken, resumed: false } : undefined;
    });
  }

  /**
   * Puts back on the queue every task the board says this agent holds and its caller does not know of
   * (`session.holds` false), conditioned on the agent's record (still active, same incarnation) and the board.
   */
  async releaseUnknownClaims(agentId: string, session: AgentSession & { holds: (taskId: string, claimToken: number) => boolean }): Promise<string[]> {
    return this.retry('releaseUnknownClaims', async () => {
      const agent = await this.readAgent(agentId);
      if (!agent) throw new UnknownAgentError(agentId);
      if (agent.record.state !== 'active') throw new AgentNotActiveError(agentId, agent.record.state);
      checkIncarnation(agent.record, session);
      const { board, version } = await this.readBoard();
      const unknown = new Set(unknownClaimsOf(board, agentId, session.holds).map((t) => t.id));
      if (unknown.size === 0) return [];
      const released = releaseClaimsOf(board, agentId, this.releaseNote(agent.record, wallIso(this.clock)), (t) => unknown.has(t.id));
      await this.store.commit([
        { key: this.keys.agent(agentId), expectedVersion: agent.version },
        { key: this.keys.board, expectedVersion: version, value: checkedValue(this.keys.board, taskBoardSchema, released.board) },
      ]);
      return released.requeued;
    });
  }

  private releaseNote(agent: AgentRecord, at: string): HandoffNote {
    const note = handoffFor('released', agent, { nodeId: agent.id, epoch: 0 }, at);
    return { ...note, note: `released by agent ${agent.id}: it did not know it held it (a claim whose reply was lost)` };
  }

  /**
   * Completes a task; only the current claim token of the current holder is accepted (`StaleClaimError` otherwise).
   * Idempotent: a completion already applied with this agent and token (its reply was lost, or a duplicated
   * request's copy conflicted and was retried) is returned as is.
   */
  async complete(agentId: string, taskId: string, claimToken: number, result: Json = null): Promise<TaskRecord> {
    validInput(completionInputSchema, { result });
    return this.retry('complete', async () => {
      const { board, version } = await this.readBoard();
      const done = taskOf(board, taskId);
      if (done && done.state === 'completed' && done.completedBy === agentId && done.completedToken === claimToken) return done;
      const next = completeTask(board, taskId, agentId, claimToken, result, wallIso(this.clock));
      await this.store.compareAndSet(this.keys.board, version, checkedValue(this.keys.board, taskBoardSchema, next));
      return taskOf(next, taskId)!;
    });
  }

  /**
   * Adds tasks to the board in one write. Each is checked first (`InvalidOptionsError` naming the field, e.g.
   * `tasks.0.kind`: nothing is written), and the batch is all or nothing: an id already on the board, or given twice
   * in the batch, throws `DuplicateTaskError`.
   */
  async submitTasks(tasks: readonly NewTask[]): Promise<void> {
    const batch = validInput(submitTasksInputSchema, { tasks }).tasks;
    const ids = new Set<string>();
    for (const task of batch) {
      if (ids.has(task.id)) throw new DuplicateTaskError(task.id, 'batch');
      ids.add(task.id);
    }
    await this.retry('submitTasks', async () => {
      const { board, version } = await this.readBoard();
      for (const task of batch) if (taskOf(board, task.id)) throw new DuplicateTaskError(task.id);
      await this.store.compareAndSet(this.keys.board, version, checkedValue(this.keys.board, taskBoardSchema, addTasks(board, batch, wallIso(this.clock))));
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Leader side

  /**
   * Reads the lease and returns it only if it is held by `leader` at `leader.epoch` — the precondition of every
   * leader write, whose commit then carries a check-only op on the lease key at this version.
   */
  async currentLease(leader: LeaderIdentity, via: StoreCall = direct): Promise<VersionedLease> {
    const lease = await this.readLease(via);
    if (!lease || lease.record.holder !== leader.nodeId || lease.record.epoch !== leader.epoch) {
      const detail = lease ? `the lease is held by ${lease.record.holder ?? 'nobody'} at epoch ${lease.record.epoch}` : 'there is no lease record';
      throw new NotLeaderError('not-leader', 'leader', `${detail}, not by ${leader.nodeId} at epoch ${leader.epoch}`);
    }
    return lease;
  }

  /**
   * Records a handoff note on an agent (why its work moves, to whom), at the leader's epoch. Conditioned on the
   * lease: a deposed leader's note is rejected. The agent's tasks carry it when requeued.
   */
  async setHandoff(leader: LeaderIdentity, agentId: string, input: { note: string; to?: string | null | undefined }): Promise<HandoffNote> {
    const { note, to } = validInput(handoffInputSchema, input);
    return this.retry('setHandoff', async () => {
      const lease = await this.currentLease(leader);
      const agent = await this.readAgent(agentId);
      if (!agent) throw new UnknownAgentError(agentId);
      const handoff: HandoffNote = {
        note,
        reason: 'manual',
        from: agentId,
        to: to ?? null,
        by: leader.nodeId,
        epoch: leader.epoch,
        at: wallIso(this.clock),
      };
      await this.store.commit([
        { key: this.keys.lease, expectedVersion: lease.version },
        { key: this.keys.agent(agentId), expectedVersion: agent.version, value: checkedValue(this.keys.agent(agentId), agentRecordSchema, { ...agent.record, handoff }) },
      ]);
      return handoff;
    });
  }

  /** Runs `attempt` again after a `CasMismatchError` (it re-reads what it needs), up to MAX_ATTEMPTS times. */
  async retry<T>(operation: string, attempt: () => Promise<T>): Promise<T> {
    for (let i = 1; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (!CasMismatchError.is(err)) throw err;
        if (i >= MAX_ATTEMPTS) throw new ContentionError(operation, i);
      }
    }
  }
}

/** Refuses to act for an agent record registered since by another process under the same id. */
function checkIncarnation(record: AgentRecord, session: AgentSession): void {
  if (session.incarnation !== undefined && record.incarnation !== session.incarnation) throw new AgentNotActiveError(record.id, 'superseded');
}

export type { AgentRecord };
