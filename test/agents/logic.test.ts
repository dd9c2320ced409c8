import { describe, expect, it } from 'vitest';
import { StaleClaimError, UnknownTaskError } from '../../src/agents/errors.js';
import { addTasks, claimNext, completeTask, emptyBoard, judgeAgent, nextSweepDelay, observeAgents, planSweep, registerRecord } from '../../src/agents/logic.js';
import type { AgentRecord } from '../../src/agents/schema.js';

const AT = '2024-01-01T00:00:00.000Z';
const leader = { nodeId: 'o1', epoch: 7 };

function agent(id: string, extra: Partial<AgentRecord> = {}): AgentRecord {
  return { ...registerRecord(undefined, { id, role: 'builder', capabilities: ['build'] }, AT), ...extra };
}

describe('liveness on the observer clock', () => {
  it('measures silence from the first observation of the current heartbeat counter, never from wall clocks', () => {
    // Wall-clock fields claim the agent beat "just now"; they are ignored.
    const a = agent('a', { lastBeatAt: '2999-01-01T00:00:00.000Z' });
    let live = observeAgents(new Map(), [a], 1000);
    expect(judgeAgent(a, live.get('a'), 1599, 600)).toBe('active');
    expect(judgeAgent(a, live.get('a'), 1600, 600)).toBe('stale');
    const beat = { ...a, beat: a.beat + 1 };
    live = observeAgents(live, [beat], 1500);
    expect(judgeAgent(beat, live.get('a'), 1600, 600)).toBe('active');
    expect(live.get('a')!.firstSeenAt).toBe(1500);
    // Same counter again: the first-seen time is kept.
    live = observeAgents(live, [beat], 1900);
    expect(live.get('a')!.firstSeenAt).toBe(1500);
    // A new incarnation with a colliding counter still counts as a change.
    const reborn = { ...beat, incarnation: 2 };
    expect(observeAgents(live, [reborn], 2000).get('a')!.firstSeenAt).toBe(2000);
  });

  it('a stale or gone record is reported as such whatever the observation', () => {
    expect(judgeAgent(agent('a', { state: 'gone' }), undefined, 0, 600)).toBe('gone');
    expect(judgeAgent(agent('a', { state: 'stale' }), undefined, 0, 600)).toBe('stale');
  });

  it('schedules the next sweep when the first active agent could turn stale', () => {
    const a = agent('a');
    const live = observeAgents(new Map(), [a], 1000);
    expect(nextSweepDelay(live, [a], 1000, 600, 200)).toBe(200);
    expect(nextSweepDelay(live, [a], 1550, 600, 200)).toBe(50);
    expect(nextSweepDelay(live, [a], 1700, 600, 200)).toBe(1);
  });
});

describe('task board', () => {
  it('claims oldest first, raises the claim token on every claim, and completes only with the current token', () => {
    let board = addTasks(emptyBoard(), [{ id: 'x', kind: 'k', payload: null }, { id: 'y', kind: 'k', payload: null }], AT);
    const first = claimNext(board, 'a', {}, AT)!;
    expect(first.task).toMatchObject({ id: 'x', claimToken: 1, claimedBy: 'a', state: 'claimed' });
    board = first.board;
    // Requeue then claim again: the token rises.
    board = { ...board, tasks: { ...board.tasks, x: { ...board.tasks.x!, state: 'queued', claimedBy: null } } };
    const second = claimNext(board, 'b', {}, AT)!;
    expect(second.task).toMatchObject({ id: 'x', claimToken: 2, claimedBy: 'b' });
    expect(() => completeTask(second.board, 'x', 'a', 1, null, AT)).toThrow(StaleClaimError);
    expect(() => completeTask(second.board, 'x', 'a', 2, null, AT)).toThrow(StaleClaimError); // right token, wrong agent
    expect(() => completeTask(second.board, 'nope', 'b', 2, null, AT)).toThrow(UnknownTaskError);
    const done = completeTask(second.board, 'x', 'b', 2, { ok: true }, AT);
    expect(done.tasks.x).toMatchObject({ state: 'completed', completedBy: 'b', completedToken: 2, result: { ok: true } });
    expect(() => completeTask(done, 'x', 'b', 2, null, AT)).toThrow(StaleClaimError); // never twice
  });

  it('respects kinds and reservations', () => {
    let board = addTasks(emptyBoard(), [{ id: 'x', kind: 'k', payload: null }, { id: 'y', kind: 'j', payload: null }], AT);
    board = { ...board, tasks: { ...board.tasks, x: { ...board.tasks.x!, assignee: 'b' } } };
    expect(claimNext(board, 'a', {}, AT)!.task.id).toBe('y');
    expect(claimNext(board, 'a', { kinds: ['k'] }, AT)).toBeUndefined();
    expect(claimNext(board, 'b', {}, AT)!.task.id).toBe('x');
  });
});

describe('planSweep', () => {
  const board = () => {
    let b = addTasks(emptyBoard(), [{ id: 'x', kind: 'k', payload: null }, { id: 'y', kind: 'k', payload: null }, { id: 'z', kind: 'k', payload: null }], AT);
    b = claimNext(b, 'dead', {}, AT)!.board;
    b = claimNext(b, 'dead', {}, AT)!.board;
    b = claimNext(b, 'live', {}, AT)!.board;
    return b;
  };

  it('marks a silent agent stale and requeues its tasks with a handoff note, leaving live agents alone', () => {
    const dead = agent('dead');
    const live = agent('live');
    const liveness = observeAgents(new Map(), [dead, live], 0);
    const refreshed = observeAgents(liveness, [dead, { ...live, beat: 5 }], 500);
    const plan = planSweep({
      leader,
      now: 700,
      at: AT,
      staleAfterMs: 600,
      liveness: refreshed,
      agents: [
        { record: dead, version: '1' },
        { record: { ...live, beat: 5 }, version: '2' },
      ],
      board: board(),
    });
    expect(plan.agentWrites).toHaveLength(1);
    expect(plan.agentChecks).toEqual([]); // the holder is already version-checked by its own write
    expect(plan.agentWrites[0]).toMatchObject({ id: 'dead', expectedVersion: '1', record: { state: 'stale', staleMark: { by: 'o1', epoch: 7, silentForMs: 700 } } });
    expect(plan.requeued.map((r) => r.taskId)).toEqual(['x', 'y']);
    expect(plan.board!.tasks.x).toMatchObject({ state: 'queued', claimedBy: null, claimToken: 1, requeues: 1 });
    expect(plan.board!.tasks.x!.handoff!.note).toBe('requeued by orchestrator o1 at epoch 7 because agent dead stopped heart-beating (silent for 700 ms)');
    expect(plan.board!.tasks.z).toMatchObject({ state: 'claimed', claimedBy: 'live' });
    expect(plan.respawns).toEqual([expect.objectContaining({ agentId: 'dead', role: 'builder', requeuedTaskIds: ['x', 'y'], epoch: 7 })]);
  });

  it('carries a manual handoff note and reserves the requeued work for its target when that agent is active', () => {
    const dead = agent('dead', { handoff: { note: 'draining host-3', reason: 'manual', from: 'dead', to: 'live', by: 'o1', epoch: 6, at: AT } });
    const live = agent('live');
    const liveness = new Map([
      ['dead', { incarnation: 1, beat: 0, firstSeenAt: 0 }],
      ['live', { incarnation: 1, beat: 0, firstSeenAt: 650 }],
    ]);
    const plan = planSweep({ leader, now: 700, at: AT, staleAfterMs: 600, liveness, agents: [{ record: dead, version: '1' }, { record: live, version: '2' }], board: board() });
    expect(plan.board!.tasks.x!.handoff).toMatchObject({ to: 'live', epoch: 7, by: 'o1', reason: 'stale' });
    expect(plan.board!.tasks.x!.handoff!.note).toMatch(/^draining host-3 \(requeued by orchestrator o1 at epoch 7/);
    expect(plan.board!.tasks.x!.assignee).toBe('live');
    // The target is relied on being active, and an active agent's version moves with every heartbeat: not checked
    // (a check would refuse every sweep while it lives). 'dead' is checked by its own write.
    expect(plan.agentChecks).toEqual([]);
  });

  it('requeues leftovers of deregistered or unknown agents, clears reservations for inactive agents, and is empty when all is well', () => {
    const gone = agent('dead', { state: 'gone' });
    let b = board();
    b = { ...b, tasks: { ...b.tasks, z: { ...b.tasks.z!, state: 'queued', claimedBy: null, assignee: 'ghost' } } };
    const plan = planSweep({ leader, now: 0, at: AT, staleAfterMs: 600, liveness: new Map(), agents: [{ record: gone, version: '1' }], board: b });
    expect(plan.agentWrites).toEqual([]);
    // The plan relied on 'dead' being gone and 'ghost' not existing: the commit checks both at what was read.
    expect(plan.agentChecks).toEqual([
      { id: 'dead', expectedVersion: '1' },
      { id: 'ghost', expectedVersion: null },
    ]);
    expect(plan.board!.tasks.x!.handoff!.reason).toBe('deregistered');
    expect(plan.board!.tasks.z!.assignee).toBeNull();
    const quiet = planSweep({ leader, now: 0, at: AT, staleAfterMs: 600, liveness: new Map(), agents: [], board: undefined });
    expect(quiet.agentWrites).toEqual([]);
    expect(quiet.agentChecks).toEqual([]);
    expect(quiet.board).toBeUndefined();
  });
});
