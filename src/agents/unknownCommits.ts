/**
 * Sweep commits whose outcome is unknown: the store rejected the call with something other than a version
 * conflict (a timeout, a reset connection), so it may have applied the commit or refused it. Without this, respawn
 * requests and the sweep counters followed only commits answered cleanly: after an unknown outcome that was in fact
 * applied, the next sweep found the agent already stale with nothing left to requeue, and its request was lost.
 *
 * The sweeper remembers such commits and settles each against a later sweep's reads, made while the lease, read
 * just before, was still this leader's at the same epoch:
 * - applied, when one of its writes is visible as written: an agent record carrying the exact stale mark it wrote
 *   (node, epoch, time, silence — kept by a re-registration too), or a task carrying the exact handoff it wrote
 *   with the requeue count it set. A commit is all-or-nothing, so one write seen means all of it applied. A write
 *   already accounted to a commit reported applied at this epoch (a concurrent sweep that planned the same mark in
 *   the same millisecond) is no witness: only one of two such commits can have applied.
 * - refused, when it is not visible and the lease version read differs from the one its check-op expected: store
 *   versions never repeat, so it can no longer apply; had it applied before, its writes would show.
 * - still unknown otherwise (it may yet land); and dropped once the leader sweeps at a later epoch.
 *
 * `Reported` keeps, per epoch, which (agent, incarnation) were marked stale, which task requeues were made and which
 * (agent, incarnation) got a respawn request, so a request is raised at most once per (agent, incarnation) at an
 * epoch whichever way its commit was learnt to be applied.
 *
 * Pure: the sweeper holds the state and does the reads.
 */
import type { RespawnRequest, SweepPlan } from './logic.js';
import type { AgentRecord, HandoffNote, StaleMark, TaskBoard } from './schema.js';

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
  /** `agentId#incarnation` marked stale. */
  readonly marked: ReadonlySet<string>;
  /** `taskId#requeues` (the count after the requeue). */
  readonly requeued: ReadonlySet<string>;
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
  return { epoch, marked: new Set(), requeued: new Set(), respawned: new Set() };
}

const agentKey = (id: string, incarnation: number) => `${id}#${incarnation}`;
const requeueKey = (taskId: string, requeues: number) => `${taskId}#${requeues}`;

function requeuesAfter(plan: SweepPlan, taskId: string): number | undefined {
  return plan.board?.tasks[taskId]?.requeues;
}

/**
 * Accounts an applied commit to `reported` (started afresh at a later epoch) and returns the respawn requests due:
 * those of the plan whose (agent, incarnation) has had none at this epoch.
 */
export function recordApplied(reported: Reported | undefined, commit: SentCommit, recovered: boolean): { reported: Reported; applied: AppliedSweep } {
  // A commit at an earlier epoch than the one tracked cannot be fenced in after it; it is deduplicated on its own.
  const base = reported === undefined || reported.epoch !== commit.epoch ? emptyReported(commit.epoch) : reported;
  const marked = new Set(base.marked);
  const requeued = new Set(base.requeued);
  const respawned = new Set(base.respawned);
  for (const w of commit.plan.agentWrites) marked.add(agentKey(w.id, w.record.incarnation));
  for (const r of commit.plan.requeued) {
    const after = requeuesAfter(commit.plan, r.taskId);
    if (after !== undefined) requeued.add(requeueKey(r.taskId, after));
  }
  const respawns: RespawnRequest[] = [];
  for (const request of commit.plan.respawns) {
    const incarnation = commit.incarnations[request.agentId];
    const key = incarnation === undefined ? undefined : agentKey(request.agentId, incarnation);
    if (key !== undefined && respawned.has(key)) continue;
    if (key !== undefined) respawned.add(key);
    respawns.push(request);
  }
  const next: Reported = { epoch: commit.epoch, marked, requeued, respawned };
  const keep = reported !== undefined && commit.epoch < reported.epoch ? reported : next;
  return { reported: keep, applied: { epoch: commit.epoch, plan: commit.plan, respawns, recovered } };
}

function sameMark(a: StaleMark | null, b: StaleMark | null): boolean {
  return a !== null && b !== null && a.by === b.by && a.epoch === b.epoch && a.at === b.at && a.silentForMs === b.silentForMs;
}

function sameHandoff(a: HandoffNote | null, b: HandoffNote): boolean {
  return a !== null && a.by === b.by && a.epoch === b.epoch && a.at === b.at && a.from === b.from && a.reason === b.reason && a.to === b.to && a.note === b.note;
}

/** Whether the records read show one of `commit`'s writes as written, not accounted to a commit already reported. */
export function commitVisible(commit: SentCommit, reported: Reported, agents: readonly AgentRecord[], board: TaskBoard | undefined): boolean {
  const byId = new Map(agents.map((a) => [a.id, a]));
  for (const w of commit.plan.agentWrites) {
    if (reported.marked.has(agentKey(w.id, w.record.incarnation))) continue;
    if (sameMark(byId.get(w.id)?.staleMark ?? null, w.record.staleMark)) return true;
  }
  for (const r of commit.plan.requeued) {
    const after = requeuesAfter(commit.plan, r.taskId);
    if (after === undefined || reported.requeued.has(requeueKey(r.taskId, after))) continue;
    const task = board?.tasks[r.taskId];
    if (task && task.requeues === after && sameHandoff(task.handoff, r.handoff)) return true;
  }
  return false;
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
}

export interface Settled {
  /** Found applied, in the order sent, with the respawn requests still due. */
  readonly applied: readonly AppliedSweep[];
  /** Known now never to apply (or from an earlier epoch). */
  readonly refused: readonly UnknownCommit[];
  /** Still unknown. */
  readonly unknown: readonly UnknownCommit[];
  readonly reported: Reported | undefined;
}

export function settleUnknownCommits(input: SettleInput): Settled {
  const { epoch, leaseVersion, upTo, agents, board } = input;
  let reported = input.reported !== undefined && input.reported.epoch < epoch ? undefined : input.reported;
  const applied: AppliedSweep[] = [];
  const refused: UnknownCommit[] = [];
  const unknown: UnknownCommit[] = [];
  for (const commit of [...input.unknown].sort((a, b) => a.seq - b.seq)) {
    if (commit.epoch < epoch) {
      refused.push(commit);
      continue;
    }
    if (commit.epoch > epoch || commit.seq > upTo) {
      unknown.push(commit);
      continue;
    }
    if (commitVisible(commit, reported ?? emptyReported(epoch), agents, board)) {
      const recorded = recordApplied(reported, commit, true);
      reported = recorded.reported;
      applied.push(recorded.applied);
    } else if (commit.leaseVersion !== leaseVersion) {
      refused.push(commit);
    } else {
      unknown.push(commit);
    }
  }
  // With nothing left to settle at this epoch, forget what no later commit can collide with: agent incarnations that
  // are no longer current (or no longer read) and requeues a task has moved past.
  if (reported !== undefined && unknown.every((c) => c.epoch !== reported!.epoch)) reported = prune(reported, agents, board);
  return { applied, refused, unknown, reported };
}

function prune(reported: Reported, agents: readonly AgentRecord[], board: TaskBoard | undefined): Reported {
  const current = new Set(agents.map((a) => agentKey(a.id, a.incarnation)));
  const tasks = board?.tasks ?? {};
  const live = new Set(Object.values(tasks).map((t) => requeueKey(t.id, t.requeues)));
  return {
    epoch: reported.epoch,
    marked: new Set([...reported.marked].filter((k) => current.has(k))),
    requeued: new Set([...reported.requeued].filter((k) => live.has(k))),
    respawned: new Set([...reported.respawned].filter((k) => current.has(k))),
  };
}
