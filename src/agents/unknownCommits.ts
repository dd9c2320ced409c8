/**
 * Sweep commits whose outcome is unknown: the store rejected the call with something other than a version
 * conflict (a timeout, a reset connection), so it may have applied the commit or refused it. Without this, respawn
 * requests and the sweep counters followed only commits answered cleanly: after an unknown outcome that was in fact
 * applied, the next sweep found the agent already stale with nothing left to requeue, and its request was lost.
 *
 * Every sweep commit carries an id (`SweepPlan.commit`, unique per node and epoch: see `Sweeper`) stamped into the
 * stale marks, handoff notes and agent index it writes. The sweeper remembers a commit with an unknown outcome and
 * settles it against a later sweep's reads, made while the lease, read just before, was still this leader's at the
 * same epoch:
 * - applied, when one of its writes is visible by its id: an agent record whose stale mark carries it (kept by a
 *   re-registration too), a task whose handoff note carries it, or the agent index stamped with it. A commit is
 *   all-or-nothing, so one write seen means all of it applied. Matching by id, not by field equality: a twin commit
 *   planned in the same millisecond at the same epoch writes identical marks, and only one of the two may have
 *   applied.
 * - refused, when none is visible, the lease version read differs from the one its check-op expected (store
 *   versions never repeat, so it can no longer apply) and it wrote a durable witness — a stale mark or a requeue's
 *   handoff note, which only a later sweep's write replaces: had it applied, the witness would show.
 * - undetermined, in the same case for a commit with no durable witness (it only retired agents, dropped
 *   reservations or re-indexed: the index stamp is replaced by the next index write, and an older version's
 *   registration drops it): it is settled as "outcome unknown", neither counted nor claimed refused.
 * - still unknown otherwise (it may yet land); and dropped once the leader sweeps at a later epoch.
 *
 * `Reported` keeps, per epoch, which (agent, incarnation) got a respawn request, so a request is raised at most once
 * per (agent, incarnation) at an epoch whichever way its commit was learnt to be applied.
 *
 * Pure: the sweeper holds the state and does the reads.
 */
import { type RespawnRequest, type SweepPlan, taskOf } from './logic.js';
import type { AgentIndex, AgentRecord, TaskBoard } from './schema.js';

/** A sweep commit as the sweeper sent it. */
export interface SentCommit {
  readonly epoch: number;
  readonly plan: SweepPlan;
  /** The incarnation, as the sweep read it, of each agent the plan's respawn requests name. */
  readonly incarnations: Readonly<Record<string, number>>;
}

export interface UnknownCommit extends SentCommit {
  /** The lease version the commit's check-op expected. */
  readonly leaseVersion: string;
  /** Order in which the sweeper learnt of it: a sweep settles only those known before its lease read. */
  readonly seq: number;
}

/** What this node reported applied at one epoch (see the module comment). */
export interface Reported {
  readonly epoch: number;
  /** `agentId#incarnation` a respawn request was raised for. */
  readonly respawned: ReadonlySet<string>;
}

/** A sweep commit known to be applied: answered cleanly, or `recovered` from an unknown outcome. */
export interface AppliedSweep {
  readonly epoch: number;
  readonly plan: SweepPlan;
  /** The plan's respawn requests not yet raised at this epoch for that agent incarnation. */
  readonly respawns: readonly RespawnRequest[];
  readonly recovered: boolean;
}

export function emptyReported(epoch: number): Reported {
  return { epoch, respawned: new Set() };
}

const agentKey = (id: string, incarnation: number) => `${id}#${incarnation}`;

/**
 * Accounts an applied commit to `reported` (started afresh at a later epoch) and returns the respawn requests due:
 * those of the plan whose (agent, incarnation) has had none at this epoch.
 */
export function recordApplied(reported: Reported | undefined, commit: SentCommit, recovered: boolean): { reported: Reported; applied: AppliedSweep } {
  // A commit at an earlier epoch than the one tracked cannot be fenced in after it; it is deduplicated on its own.
  const base = reported === undefined || reported.epoch !== commit.epoch ? emptyReported(commit.epoch) : reported;
  const respawned = new Set(base.respawned);
  const respawns: RespawnRequest[] = [];
  for (const request of commit.plan.respawns) {
    const incarnation = commit.incarnations[request.agentId];
    const key = incarnation === undefined ? undefined : agentKey(request.agentId, incarnation);
    if (key !== undefined && respawned.has(key)) continue;
    if (key !== undefined) respawned.add(key);
    respawns.push(request);
  }
  const next: Reported = { epoch: commit.epoch, respawned };
  const keep = reported !== undefined && commit.epoch < reported.epoch ? reported : next;
  return { reported: keep, applied: { epoch: commit.epoch, plan: commit.plan, respawns, recovered } };
}

/**
 * Whether the records read show one of `commit`'s writes, by its commit id. A plan made without an id (none in
 * production) has no witness.
 */
export function commitVisible(commit: SentCommit, agents: readonly AgentRecord[], board: TaskBoard | undefined, index?: Pick<AgentIndex, 'commit'>): boolean {
  const id = commit.plan.commit;
  if (id === undefined) return false;
  const byId = new Map(agents.map((a) => [a.id, a]));
  for (const w of commit.plan.agentWrites) if (byId.get(w.id)?.staleMark?.commit === id) return true;
  for (const r of commit.plan.requeued) if ((board && taskOf(board, r.taskId))?.handoff?.commit === id) return true;
  return commit.plan.index !== undefined && index?.commit === id;
}

/** Whether `commit` wrote something only a later sweep replaces (a stale mark, a requeue's note): see the module comment. */
export function hasDurableWitness(commit: SentCommit): boolean {
  return commit.plan.commit !== undefined && (commit.plan.agentWrites.length > 0 || commit.plan.requeued.length > 0);
}

export interface SettleInput {
  /** The epoch the sweep confirmed the lease at, and the lease version it read. */
  readonly epoch: number;
  readonly leaseVersion: string;
  /** Settle only commits with `seq` up to this (those known before the lease read). */
  readonly upTo: number;
  readonly unknown: readonly UnknownCommit[];
  readonly reported: Reported | undefined;
  /** Records read after the lease (every agent record read, indexed or not) and the board (undefined: none). */
  readonly agents: readonly AgentRecord[];
  readonly board: TaskBoard | undefined;
  /** The agent index read (its commit stamp witnesses a commit that wrote it). */
  readonly index?: Pick<AgentIndex, 'commit'> | undefined;
}

export interface Settled {
  /** Found applied, in the order sent, with the respawn requests still due. */
  readonly applied: readonly AppliedSweep[];
  /** Known now never to apply (or from an earlier epoch). */
  readonly refused: readonly UnknownCommit[];
  /** Can no longer apply, but had they applied nothing durable would show it: outcome unknown for good. */
  readonly undetermined: readonly UnknownCommit[];
  /** Still unknown. */
  readonly unknown: readonly UnknownCommit[];
  readonly reported: Reported | undefined;
}

export function settleUnknownCommits(input: SettleInput): Settled {
  const { epoch, leaseVersion, upTo, agents, board, index } = input;
  let reported = input.reported !== undefined && input.reported.epoch < epoch ? undefined : input.reported;
  const applied: AppliedSweep[] = [];
  const refused: UnknownCommit[] = [];
  const undetermined: UnknownCommit[] = [];
  const unknown: UnknownCommit[] = [];
  for (const commit of [...input.unknown].sort((a, b) => a.seq - b.seq)) {
    if (commit.epoch < epoch) {
      (hasDurableWitness(commit) ? refused : undetermined).push(commit);
      continue;
    }
    if (commit.epoch > epoch || commit.seq > upTo) {
      unknown.push(commit);
      continue;
    }
    if (commitVisible(commit, agents, board, index)) {
      const recorded = recordApplied(reported, commit, true);
      reported = recorded.reported;
      applied.push(recorded.applied);
    } else if (commit.leaseVersion !== leaseVersion) {
      (hasDurableWitness(commit) ? refused : undetermined).push(commit);
    } else {
      unknown.push(commit);
    }
  }
  // With nothing left to settle at this epoch, forget agent incarnations that are no longer current (or no longer read).
  if (reported !== undefined && unknown.every((c) => c.epoch !== reported!.epoch)) reported = prune(reported, agents);
  return { applied, refused, undetermined, unknown, reported };
}

function prune(reported: Reported, agents: readonly AgentRecord[]): Reported {
  const current = new Set(agents.map((a) => agentKey(a.id, a.incarnation)));
  return { epoch: reported.epoch, respawned: new Set([...reported.respawned].filter((k) => current.has(k))) };
}
