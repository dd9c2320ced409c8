/**
 * Settling sweep commits whose reply was lost (src/agents/unknownCommits.ts), as pure functions: applied when one
 * of their writes is visible as written, refused once the lease version they expected is gone, unknown until then.
 */
import { describe, expect, it } from 'vitest';
import { addTasks, claimNext, emptyBoard, planSweep, registerRecord, type SweepPlan } from '../../src/agents/logic.js';
import type { AgentRecord, TaskBoard } from '../../src/agents/schema.js';
import { emptyReported, recordApplied, settleUnknownCommits, type UnknownCommit } from '../../src/agents/unknownCommits.js';

const AT = '2024-01-01T00:00:00.000Z';
const LATER = '2024-01-01T00:00:01.000Z';
const leader = { nodeId: 'o1', epoch: 3 };
const agent = (id: string, extra: Partial<AgentRecord> = {}): AgentRecord => ({ ...registerRecord(undefined, { id, role: 'builder', capabilities: ['build'] }, AT), ...extra });

/** b1 silent past staleAfterMs holding t1: the plan marks b1 stale and requeues t1. */
function markingPlan(at = AT, idle = false): { plan: SweepPlan; b1: AgentRecord; board: TaskBoard } {
  const b1 = agent('b1');
  let board = addTasks(emptyBoard(), [{ id: 't1', kind: 'build', payload: null }], AT);
  if (!idle) board = claimNext(board, b1.id, {}, AT)!.board;
  const liveness = new Map([['b1', { incarnation: 1, beat: 0, firstSeenAt: 0 }]]);
  const plan = planSweep({ leader, now: 700, at, staleAfterMs: 600, liveness, agents: [{ record: b1, version: '1' }], board, respawn: { idle: true } });
  return { plan, b1, board };
}

const unknown = (plan: SweepPlan, extra: Partial<UnknownCommit> = {}): UnknownCommit => ({ epoch: 3, plan, incarnations: { b1: 1 }, leaseVersion: 'L1', seq: 1, ...extra });

/** The records as they are after `plan` applied. */
function appliedView(plan: SweepPlan, agents: readonly AgentRecord[], board: TaskBoard) {
  const written = new Map(plan.agentWrites.map((w) => [w.id, w.record]));
  return { agents: agents.map((a) => written.get(a.id) ?? a), board: plan.board ?? board };
}

describe('settleUnknownCommits', () => {
  it('applied when its writes show, with its respawn requests; refused once the lease version moved and they do not', () => {
    const { plan, b1, board } = markingPlan();
    expect(plan.respawns.map((r) => r.agentId)).toEqual(['b1']);
    const applied = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [unknown(plan)], reported: undefined, ...appliedView(plan, [b1], board) });
    expect(applied.applied).toHaveLength(1);
    expect(applied.applied[0]).toMatchObject({ recovered: true, epoch: 3 });
    expect(applied.applied[0]!.respawns.map((r) => [r.agentId, r.requeuedTaskIds])).toEqual([['b1', ['t1']]]);
    expect(applied.unknown).toEqual([]);

    const refused = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [unknown(plan)], reported: undefined, agents: [b1], board });
    expect(refused.applied).toEqual([]);
    expect(refused.refused).toHaveLength(1);
  });

  it('stays unknown while the lease is at the version it expected (it may still land), and is found applied when it does', () => {
    const { plan, b1, board } = markingPlan();
    const first = settleUnknownCommits({ epoch: 3, leaseVersion: 'L1', upTo: 1, unknown: [unknown(plan)], reported: undefined, agents: [b1], board });
    expect(first).toMatchObject({ applied: [], refused: [] });
    expect(first.unknown).toHaveLength(1);
    const landed = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: first.unknown, reported: first.reported, ...appliedView(plan, [b1], board) });
    expect(landed.applied.map((a) => a.respawns.map((r) => r.agentId))).toEqual([['b1']]);
  });

  it('a re-registered agent still shows the mark (registration keeps it); an idle agent is witnessed by its mark alone', () => {
    const { plan, b1, board } = markingPlan(AT, true);
    expect(plan.requeued).toEqual([]);
    const marked = appliedView(plan, [b1], board).agents[0]!;
    const back = registerRecord(marked, { id: 'b1', role: 'builder', capabilities: ['build'] }, LATER);
    const settled = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [unknown(plan)], reported: undefined, agents: [back], board });
    expect(settled.applied[0]!.respawns.map((r) => [r.agentId, r.requeuedTaskIds])).toEqual([['b1', []]]);
  });

  it('a board-only commit (leftover claim of an agent marked earlier) is witnessed by the handoff and requeue count it wrote', () => {
    const s1 = agent('s1', { state: 'stale', staleMark: { by: 'o0', epoch: 2, at: AT, silentForMs: 700 } });
    const board = claimNext(addTasks(emptyBoard(), [{ id: 'x', kind: 'build', payload: null }], AT), 's1', {}, AT)!.board;
    const plan = planSweep({ leader, now: 0, at: LATER, staleAfterMs: 600, liveness: new Map(), agents: [{ record: s1, version: '1' }], board });
    expect(plan.agentWrites).toEqual([]);
    const commit = unknown(plan, { incarnations: { s1: 1 } });
    expect(settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [commit], reported: undefined, agents: [s1], board: plan.board }).applied[0]!.respawns.map((r) => r.agentId)).toEqual(['s1']);
    expect(settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [commit], reported: undefined, agents: [s1], board }).refused).toHaveLength(1);
  });

  it('writes already accounted to a commit reported applied are no witness (a twin planned in the same millisecond)', () => {
    const { plan, b1, board } = markingPlan();
    const twin = recordApplied(undefined, { epoch: 3, plan, incarnations: { b1: 1 } }, false);
    expect(twin.applied.respawns.map((r) => r.agentId)).toEqual(['b1']);
    const settled = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [unknown(plan)], reported: twin.reported, ...appliedView(plan, [b1], board) });
    expect(settled.applied).toEqual([]);
    expect(settled.refused).toHaveLength(1);
  });

  it('one respawn request per (agent, incarnation) at an epoch; afresh at a later epoch', () => {
    const { plan } = markingPlan();
    const first = recordApplied(undefined, { epoch: 3, plan, incarnations: { b1: 1 } }, false);
    expect(recordApplied(first.reported, { epoch: 3, plan, incarnations: { b1: 1 } }, true).applied.respawns).toEqual([]);
    expect(recordApplied(first.reported, { epoch: 3, plan, incarnations: { b1: 2 } }, true).applied.respawns).toHaveLength(1);
    expect(recordApplied(first.reported, { epoch: 4, plan, incarnations: { b1: 1 } }, false).applied.respawns).toHaveLength(1);
  });

  it('leaves commits learnt after the lease read for a later sweep, and drops those of an earlier epoch', () => {
    const { plan, b1, board } = markingPlan();
    const late = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 0, unknown: [unknown(plan)], reported: undefined, agents: [b1], board });
    expect(late).toMatchObject({ applied: [], refused: [] });
    expect(late.unknown).toHaveLength(1);
    const old = settleUnknownCommits({ epoch: 4, leaseVersion: 'L9', upTo: 1, unknown: [unknown(plan)], reported: emptyReported(3), ...appliedView(plan, [b1], board) });
    expect(old.applied).toEqual([]);
    expect(old.refused).toHaveLength(1);
    expect(old.reported).toBeUndefined();
  });
});
