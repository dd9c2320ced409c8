/**
 * Settling sweep commits whose reply was lost (src/agents/unknownCommits.ts), as pure functions: applied when one
 * of their writes is visible by the commit id stamped in it, refused once the lease version they expected is gone
 * (if they wrote a durable witness; "undetermined" if not), unknown until then.
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
function markingPlan(at = AT, idle = false, commit = 'o1/3/1'): { plan: SweepPlan; b1: AgentRecord; board: TaskBoard } {
  const b1 = agent('b1');
  let board = addTasks(emptyBoard(), [{ id: 't1', kind: 'build', payload: null }], AT);
  if (!idle) board = claimNext(board, b1.id, {}, AT)!.board;
  const liveness = new Map([['b1', { incarnation: 1, beat: 0, firstSeenAt: 0 }]]);
  const plan = planSweep({ leader, commit, now: 700, at, staleAfterMs: 600, liveness, agents: [{ record: b1, version: '1' }], board, respawn: { idle: true } });
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

  it('a board-only commit (leftover claim of an agent marked earlier) is witnessed by the handoff note it wrote', () => {
    const s1 = agent('s1', { state: 'stale', staleMark: { by: 'o0', epoch: 2, at: AT, silentForMs: 700 } });
    const board = claimNext(addTasks(emptyBoard(), [{ id: 'x', kind: 'build', payload: null }], AT), 's1', {}, AT)!.board;
    const plan = planSweep({ leader, commit: 'o1/3/1', now: 0, at: LATER, staleAfterMs: 600, liveness: new Map(), agents: [{ record: s1, version: '1' }], board });
    expect(plan.agentWrites).toEqual([]);
    const commit = unknown(plan, { incarnations: { s1: 1 } });
    expect(settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [commit], reported: undefined, agents: [s1], board: plan.board }).applied[0]!.respawns.map((r) => r.agentId)).toEqual(['s1']);
    expect(settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [commit], reported: undefined, agents: [s1], board }).refused).toHaveLength(1);
  });

  it('stamps the commit id into every mark, handoff note and index it writes', () => {
    const { plan } = markingPlan();
    expect(plan.commit).toBe('o1/3/1');
    expect(plan.agentWrites[0]!.record.staleMark).toMatchObject({ by: 'o1', epoch: 3, commit: 'o1/3/1' });
    expect(plan.board!.tasks.t1!.handoff).toMatchObject({ reason: 'stale', commit: 'o1/3/1' });
    expect(plan.requeued[0]!.handoff.commit).toBe('o1/3/1');
    // Without an id nothing is stamped (stores take plain JSON: no undefined field either).
    const bare = planSweep({ leader, now: 700, at: AT, staleAfterMs: 600, liveness: new Map([['b1', { incarnation: 1, beat: 0, firstSeenAt: 0 }]]), agents: [{ record: agent('b1'), version: '1' }], board: undefined });
    expect('commit' in bare.agentWrites[0]!.record.staleMark!).toBe(false);
  });

  // Review finding: two sweeps at one epoch planned in the same millisecond write identical marks (node, epoch, at,
  // silence). The store applied B (x only) and never A (x and w); A was judged applied on B's mark of x, and a respawn
  // request was raised for w — alive and never marked.
  it('a twin commit with identical writes is not witnessed by the other one (matched by commit id)', () => {
    const x = agent('x');
    const w = agent('w');
    let board = addTasks(emptyBoard(), [{ id: 't1', kind: 'build', payload: null }, { id: 't2', kind: 'build', payload: null }], AT);
    board = claimNext(board, 'x', {}, AT)!.board;
    board = claimNext(board, 'w', {}, AT)!.board;
    const silent = { incarnation: 1, beat: 0, firstSeenAt: 0 };
    const base = { leader, now: 700, at: AT, staleAfterMs: 600, board };
    const planA = planSweep({ ...base, commit: 'o1/3/1', liveness: new Map([['x', silent], ['w', silent]]), agents: [{ record: x, version: '1' }, { record: w, version: '1' }] });
    const wBeat = { ...w, beat: 1 };
    const planB = planSweep({ ...base, commit: 'o1/3/2', liveness: new Map([['x', silent], ['w', { ...silent, beat: 1, firstSeenAt: 700 }]]), agents: [{ record: x, version: '1' }, { record: wBeat, version: '2' }] });
    expect(planA.agentWrites.map((a) => a.id)).toEqual(['x', 'w']);
    expect(planB.agentWrites.map((a) => a.id)).toEqual(['x']);
    const { commit: _a, ...markA } = planA.agentWrites[0]!.record.staleMark!;
    const { commit: _b, ...markB } = planB.agentWrites[0]!.record.staleMark!;
    expect(markA).toEqual(markB); // identical but for the commit id
    // B applied: x marked by B, t1 requeued by B; w active, t2 still claimed.
    const afterB = appliedView(planB, [x, wBeat], board);
    const A = unknown(planA, { incarnations: { x: 1, w: 1 }, seq: 1 });
    const B = unknown(planB, { incarnations: { x: 1, w: 1 }, seq: 2 });
    const settled = settleUnknownCommits({ epoch: 3, leaseVersion: 'L1', upTo: 2, unknown: [A, B], reported: undefined, ...afterB });
    expect(settled.applied.map((a) => a.plan.commit)).toEqual(['o1/3/2']);
    expect(settled.applied.flatMap((a) => a.respawns.map((r) => r.agentId))).toEqual(['x']);
    expect(settled.unknown.map((c) => c.plan.commit)).toEqual(['o1/3/1']); // may still land while the lease is at L1
    // Once the lease moved, A can no longer apply, and its mark of w would show had it applied: refused.
    const later = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 2, unknown: settled.unknown, reported: settled.reported, ...afterB });
    expect(later).toMatchObject({ applied: [], undetermined: [] });
    expect(later.refused.map((c) => c.plan.commit)).toEqual(['o1/3/1']);
  });

  // Review finding: a commit that only retires agents (or only drops reservations) had no witness and was judged
  // "refused" once the lease renewed — a false "not applied" in the log and retiredAgents undercounted.
  describe('a commit with no durable witness (retire-only, reservation drops only)', () => {
    const gone = { ...registerRecord(undefined, { id: 'g', role: 'r', capabilities: [] }, AT), state: 'gone' as const };
    const retirePlan = (commit?: string) =>
      planSweep({
        leader, commit, now: 10_000, at: AT, staleAfterMs: 600, liveness: new Map([['g', { incarnation: 1, beat: 0, firstSeenAt: 0 }]]),
        agents: [{ record: gone, version: '5' }], board: emptyBoard(),
        index: { ids: ['g'], version: '7' }, retention: { goneMs: 1_000, staleMs: null },
      });
    const retire = (commit?: string): UnknownCommit => ({ epoch: 3, plan: retirePlan(commit), incarnations: { g: 1 }, leaseVersion: 'L1', seq: 1 });

    it('a retire-only commit that applied is not judged refused (the reviewer\'s case: no index read to witness it)', () => {
      const commit = retire();
      expect(commit.plan.retired).toEqual(['g']);
      // After the commit applied: g is no longer in the index, so the next sweep reads no agents at all.
      const s = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [commit], reported: undefined, agents: [], board: emptyBoard() });
      expect(s.refused).toHaveLength(0);
      expect(s.applied).toHaveLength(0);
      expect(s.undetermined).toHaveLength(1); // settled as "outcome unknown": neither counted nor claimed refused
      expect(s.unknown).toHaveLength(0);
    });

    it('is found applied by the commit id it stamped into the index it wrote', () => {
      const commit = retire('o1/3/9');
      expect(commit.plan.index).toEqual({ expectedVersion: '7', ids: [], commit: 'o1/3/9' });
      const s = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [commit], reported: undefined, agents: [], board: emptyBoard(), index: { commit: 'o1/3/9' } });
      expect(s.applied.map((a) => a.plan.retired)).toEqual([['g']]);
      // Another commit's stamp (or none) is no witness; lease moved: undetermined, not refused.
      const other = settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [commit], reported: undefined, agents: [], board: emptyBoard(), index: { commit: 'o1/3/10' } });
      expect(other).toMatchObject({ applied: [], refused: [] });
      expect(other.undetermined).toHaveLength(1);
      // While the lease is still at the version it expected it may land: still unknown.
      expect(settleUnknownCommits({ epoch: 3, leaseVersion: 'L1', upTo: 1, unknown: [commit], reported: undefined, agents: [], board: emptyBoard() }).unknown).toHaveLength(1);
    });

    it('a reservation-drop-only commit is undetermined too, also when dropped at a later epoch', () => {
      const away = agent('away', { state: 'gone' });
      const board = { ...addTasks(emptyBoard(), [{ id: 'r', kind: 'build', payload: null }], AT) };
      board.tasks = { ...board.tasks, r: { ...board.tasks.r!, assignee: 'away' } };
      const plan = planSweep({ leader, commit: 'o1/3/4', now: 0, at: AT, staleAfterMs: 600, liveness: new Map(), agents: [{ record: away, version: '1' }], board });
      expect(plan.board!.tasks.r!.assignee).toBeNull();
      expect(plan.agentWrites).toEqual([]);
      expect(plan.requeued).toEqual([]);
      const commit = unknown(plan, { incarnations: {} });
      expect(settleUnknownCommits({ epoch: 3, leaseVersion: 'L2', upTo: 1, unknown: [commit], reported: undefined, agents: [away], board: plan.board }).undetermined).toHaveLength(1);
      expect(settleUnknownCommits({ epoch: 4, leaseVersion: 'L9', upTo: 1, unknown: [commit], reported: undefined, agents: [away], board: plan.board }).undetermined).toHaveLength(1);
    });
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
