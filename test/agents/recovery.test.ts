/**
 * "Nothing is lost, nothing is done twice" for a worker that uses the public API naively (register, heartbeat, claim,
 * complete — like examples/orchestrator/worker.ts), across the two ways a claim used to end up held by a live agent
 * that did not know it held it:
 *   1. a claim applied while the worker saw a failure (the reply was lost; a duplicated request's copy conflicted and
 *      the call was retried);
 *   2. a worker that restarts faster than staleAfterMs registers again while the board still shows its old claims.
 */
import { describe, expect, it } from 'vitest';
import type { CommitOp, Json, LeaseStore, StoreEntry } from '../../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { type Agent, createAgent } from '../../src/agents/agent.js';
import { AgentNotActiveError, StaleClaimError } from '../../src/agents/errors.js';
import { AgentRegistry } from '../../src/agents/registry.js';
import type { TaskRecord } from '../../src/agents/schema.js';
import { TestClock } from '../../src/TestClock.js';
import { tasks } from './helpers.js';

const ELECTION = 'r';
const HEARTBEAT = 100;

class ReplyLostError extends Error {
  constructor() {
    super('the store did not answer (injected: the write was applied, its reply lost)');
  }
}

type WriteFault = 'drop-reply' | 'duplicate' | 'fail';

/**
 * A link to the shared store whose next writes can be faulted: `drop-reply` applies the write and then rejects (the
 * client timed out waiting); `duplicate` delivers the request twice and answers with the second copy's outcome (a
 * conflict, since the first copy changed the versions); `fail` rejects without applying.
 */
class LossyLink implements LeaseStore {
  readonly kind = 'lossy';
  readonly plan: WriteFault[] = [];
  dead = false;
  constructor(private readonly inner: MemoryLeaseStore) {}
  get capabilities() {
    return { ...this.inner.capabilities, watch: false };
  }
  async read(key: string): Promise<StoreEntry | undefined> {
    if (this.dead) return new Promise(() => {});
    return this.inner.readSync(key);
  }
  async compareAndSet(key: string, expectedVersion: string | null, value: Json): Promise<string> {
    return (await this.commit([{ key, expectedVersion, value }]))[0]!;
  }
  async commit(ops: readonly CommitOp[]): Promise<string[]> {
    if (this.dead) return new Promise(() => {});
    const fault = this.plan.shift();
    if (fault === 'fail') throw new Error('connection refused (injected)');
    const versions = this.inner.commitSync(ops);
    if (fault === 'drop-reply') throw new ReplyLostError();
    if (fault === 'duplicate') return this.inner.commitSync(ops); // throws CasMismatchError: the copy conflicts
    return versions;
  }
  async close(): Promise<void> {}
}

function setup(taskCount = 3) {
  const clock = new TestClock();
  const shared = new MemoryLeaseStore();
  const admin = new AgentRegistry(shared, ELECTION, clock);
  const worker = (id: string, link = new LossyLink(shared)) => ({
    link,
    agent: createAgent({ id, election: ELECTION, store: link, clock, heartbeatIntervalMs: HEARTBEAT }),
  });
  const board = async (): Promise<Record<string, TaskRecord>> => (await admin.readBoard()).board.tasks;
  return { clock, shared, admin, worker, board, submit: () => admin.submitTasks(tasks(taskCount)) };
}

/** Claimed by an agent that does not know it holds it: what the checker calls lost. */
async function claimedBy(board: Record<string, TaskRecord>, agentId: string): Promise<string[]> {
  return Object.values(board)
    .filter((t) => t.state === 'claimed' && t.claimedBy === agentId)
    .map((t) => t.id);
}

describe('cause 1: a claim applied while the worker saw a failure', () => {
  it('reply lost: the next claim() hands the applied claim back (resumed, current token) instead of taking another', async () => {
    const { worker, board, submit } = setup();
    await submit();
    const { agent, link } = worker('w1');
    await agent.start();

    link.plan.push('drop-reply');
    await expect(agent.claim()).rejects.toBeInstanceOf(ReplyLostError);
    expect(await claimedBy(await board(), 'w1')).toEqual(['t1']); // applied, and the worker does not know

    const again = await agent.claim();
    expect(again).toMatchObject({ task: { id: 't1' }, claimToken: 1, resumed: true });
    expect((await board()).t2!.state).toBe('queued'); // it did not take a second task
    await agent.complete('t1', again!.claimToken, 'done');

    const next = await agent.claim();
    expect(next).toMatchObject({ task: { id: 't2' }, claimToken: 1, resumed: false });
    const b = await board();
    expect(b.t1).toMatchObject({ state: 'completed', completedBy: 'w1', completedToken: 1, requeues: 0 });
    await agent.stop({ deregister: false });
  });

  it('duplicated request: the copy conflicts, the retry inside the same claim() resumes the first copy, not a second task', async () => {
    const { worker, board, submit } = setup();
    await submit();
    const { agent, link } = worker('w1');
    await agent.start();

    link.plan.push('duplicate');
    const claimed = await agent.claim();
    expect(claimed).toMatchObject({ task: { id: 't1' }, claimToken: 1, resumed: true });
    const b = await board();
    expect(b.t1).toMatchObject({ state: 'claimed', claimedBy: 'w1', claimToken: 1 });
    expect(b.t2!.state).toBe('queued');
    await agent.complete('t1', 1);
    expect(await claimedBy(await board(), 'w1')).toEqual([]);
    await agent.stop({ deregister: false });
  });

  it('a worker that stops claiming: its heartbeat releases the claim it does not know of back to the queue', async () => {
    const { worker, board, submit, clock } = setup();
    await submit();
    const { agent, link } = worker('w1');
    await agent.start();
    link.plan.push('drop-reply');
    await expect(agent.claim()).rejects.toBeInstanceOf(ReplyLostError);
    expect(await claimedBy(await board(), 'w1')).toEqual(['t1']);

    await clock.advance(HEARTBEAT * 3);
    const t1 = (await board()).t1!;
    expect(t1).toMatchObject({ state: 'queued', claimedBy: null, claimToken: 1, requeues: 1 });
    expect(t1.handoff).toMatchObject({ reason: 'released', from: 'w1' });
    expect(agent.state()).toBe('active');

    // Someone else takes it with a higher token; nothing is done twice.
    const other = worker('w2').agent;
    await other.start();
    expect(await other.claim()).toMatchObject({ task: { id: 't1' }, claimToken: 2 });
    await agent.stop({ deregister: false });
    await other.stop({ deregister: false });
  });

  it('claims the worker knows it holds are neither resumed nor released (concurrency > 1)', async () => {
    const { worker, board, submit, clock } = setup();
    await submit();
    const { agent } = worker('w1');
    await agent.start();
    const a = await agent.claim();
    const b = await agent.claim();
    expect([a?.task.id, b?.task.id, a?.resumed, b?.resumed]).toEqual(['t1', 't2', false, false]);
    await clock.advance(HEARTBEAT * 5);
    expect(await claimedBy(await board(), 'w1')).toEqual(['t1', 't2']);
    await agent.stop({ deregister: false });
  });

  it('a completion that failed without applying is handed back by the next claim(); one whose reply was lost is not redone', async () => {
    const { worker, board, submit } = setup();
    await submit();
    const { agent, link } = worker('w1');
    await agent.start();
    const first = (await agent.claim())!;

    link.plan.push('fail');
    await expect(agent.complete(first.task.id, first.claimToken)).rejects.toThrow(/connection refused/);
    // The naive worker drops it; the next claim gives it back.
    const again = (await agent.claim())!;
    expect(again).toMatchObject({ task: { id: 't1' }, claimToken: 1, resumed: true });

    link.plan.push('drop-reply');
    await expect(agent.complete('t1', 1)).rejects.toBeInstanceOf(ReplyLostError);
    // Applied: a retry is answered from the board (idempotent), and the next claim takes new work.
    await expect(agent.complete('t1', 1)).resolves.toMatchObject({ state: 'completed', completedToken: 1 });
    expect(await agent.claim()).toMatchObject({ task: { id: 't2' }, resumed: false });
    expect((await board()).t1).toMatchObject({ state: 'completed', completedBy: 'w1', completedToken: 1 });
    await agent.stop({ deregister: false });
  });
});

describe('cause 2: a worker that restarts faster than staleAfterMs', () => {
  it('re-registering requeues the previous incarnation\'s claims in the same commit, with a "restarted" note', async () => {
    const { worker, board, submit, shared } = setup();
    await submit();
    const old = worker('w1');
    await old.agent.start();
    const held = (await old.agent.claim())!;
    expect(held.task.id).toBe('t1');
    old.link.dead = true; // kill -9: no deregistration

    const writesBefore = shared.readSync('fenced-leader/r/tasks')!.version;
    const restarted = worker('w1');
    await restarted.agent.start();
    const t1 = (await board()).t1!;
    expect(t1).toMatchObject({ state: 'queued', claimedBy: null, claimToken: 1, requeues: 1 });
    expect(t1.handoff).toMatchObject({ reason: 'restarted', from: 'w1', note: expect.stringContaining('requeued because agent w1 restarted') });
    expect(shared.readSync('fenced-leader/r/tasks')!.version).not.toBe(writesBefore);
    const record = shared.readSync('fenced-leader/r/agents/w1')!.value as { incarnation: number; state: string };
    expect(record).toMatchObject({ incarnation: 2, state: 'active' });

    // The new incarnation claims it again, with a higher token; the old token is void.
    const again = (await restarted.agent.claim())!;
    expect(again).toMatchObject({ task: { id: 't1' }, claimToken: 2, resumed: false });
    old.link.dead = false; // the old process (a paused duplicate, say) comes back
    await expect(old.agent.complete('t1', held.claimToken)).rejects.toBeInstanceOf(StaleClaimError);
    await restarted.agent.complete('t1', 2);
    expect((await board()).t1).toMatchObject({ state: 'completed', completedBy: 'w1', completedToken: 2 });
    await restarted.agent.stop({ deregister: false });
  });

  it('the old incarnation may not claim (or resume) for the new one: refused as superseded, and it stops heart-beating', async () => {
    const { worker, board, submit, clock } = setup();
    await submit();
    const old = worker('w1');
    await old.agent.start();
    const restarted = worker('w1');
    await restarted.agent.start();
    const mine = (await restarted.agent.claim())!;

    const refused = await old.agent.claim().catch((e: unknown) => e);
    expect(AgentNotActiveError.is(refused) && refused.agentState).toBe('superseded');
    expect(old.agent.state()).toBe('gone');
    await clock.advance(HEARTBEAT * 3);
    expect((await board())[mine.task.id]).toMatchObject({ state: 'claimed', claimedBy: 'w1', claimToken: mine.claimToken });
    await restarted.agent.complete(mine.task.id, mine.claimToken);
    await restarted.agent.stop({ deregister: false });
  });

  /** An old process of w1 and the live one that replaced it (a respawn, a restart under a stable id), which holds t1. */
  async function supersededPair() {
    const { worker, board, submit, clock, admin } = setup(1);
    const old = worker('w1');
    await old.agent.start();
    const fresh = worker('w1');
    await fresh.agent.start();
    await submit();
    const claimed = (await fresh.agent.claim())!;
    expect(claimed.task.id).toBe('t1');
    return { board, clock, admin, old, fresh, token: claimed.claimToken };
  }

  it("an old process that learnt it was superseded does not deregister the live incarnation on stop(): record, claim and heartbeats stay", async () => {
    const { board, clock, admin, old, fresh, token } = await supersededPair();
    await clock.advance(HEARTBEAT * 1.5); // the old one's heartbeat is refused as superseded
    expect(old.agent.state()).toBe('gone');
    await old.agent.stop(); // SIGTERM to the old process (examples/orchestrator/worker.ts stops with deregistration)
    expect((await admin.readAgent('w1'))!.record).toMatchObject({ incarnation: 2, state: 'active' });
    expect((await board()).t1).toMatchObject({ state: 'claimed', claimedBy: 'w1', claimToken: token });
    await expect(fresh.agent.complete('t1', token, 'done')).resolves.toMatchObject({ state: 'completed' });
    await clock.advance(HEARTBEAT * 3);
    expect(fresh.agent.state()).toBe('active');
    await fresh.agent.stop({ deregister: false });
  });

  it('a paused old process that does not know yet it was superseded does not deregister the live incarnation on stop()', async () => {
    const { board, admin, old, fresh, token } = await supersededPair();
    expect(old.agent.state()).toBe('active');
    await old.agent.stop(); // resolves: the refusal tells it it was superseded
    expect(old.agent.state()).toBe('gone');
    expect((await admin.readAgent('w1'))!.record).toMatchObject({ incarnation: 2, state: 'active' });
    expect((await board()).t1).toMatchObject({ state: 'claimed', claimedBy: 'w1', claimToken: token });
    await fresh.agent.stop({ deregister: false });
  });

  it('registry.deregister with another incarnation is refused as superseded and writes nothing; with its own it requeues', async () => {
    const { board, admin, fresh } = await supersededPair();
    const refused = await admin.deregister('w1', { incarnation: 1 }).catch((e: unknown) => e);
    expect(AgentNotActiveError.is(refused) && refused.agentState).toBe('superseded');
    expect((await admin.readAgent('w1'))!.record.state).toBe('active');
    await expect(admin.deregister('w1', { incarnation: 2 })).resolves.toEqual({ requeued: ['t1'] });
    expect((await admin.readAgent('w1'))!.record.state).toBe('gone');
    expect((await board()).t1).toMatchObject({ state: 'queued', handoff: { reason: 'deregistered' } });
    await fresh.agent.stop({ deregister: false });
  });

  it('old behaviour, for contrast: without the release in register() the old claim stays with a live agent that does not know it', async () => {
    const { shared, clock, board, submit } = setup();
    await submit();
    const registry = new AgentRegistry(shared, ELECTION, clock);
    const identity = { id: 'w1', role: 'worker', capabilities: [] };
    await registry.register(identity);
    await registry.claim('w1');
    await registry.register(identity, { releasePrevious: false });
    expect(await claimedBy(await board(), 'w1')).toEqual(['t1']);
  });
});

describe('a naive worker loop under lost replies and restarts loses nothing and completes nothing twice', () => {
  it('every task ends completed exactly once', async () => {
    const { worker, board, admin, clock } = setup(0);
    await admin.submitTasks(tasks(12));
    const completions: string[] = [];
    const naive = async (agent: Agent, link: LossyLink, faults: WriteFault[], rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        await clock.advance(20);
        if (agent.state() !== 'active') continue;
        const f = faults[i % faults.length];
        if (f) link.plan.push(f);
        const claimed = await agent.claim().catch(() => undefined);
        if (!claimed) continue;
        link.plan.length = 0;
        if (i % 3 === 0) link.plan.push(i % 2 === 0 ? 'drop-reply' : 'fail');
        try {
          await agent.complete(claimed.task.id, claimed.claimToken, 'ok');
          completions.push(claimed.task.id);
        } catch {
          // dropped, like examples/orchestrator/worker.ts
        }
        link.plan.length = 0;
      }
    };
    const w1 = worker('w1');
    await w1.agent.start();
    await naive(w1.agent, w1.link, ['drop-reply', 'duplicate', 'fail'], 6);
    w1.link.dead = true; // crash, restart at once under the same id
    const w1b = worker('w1');
    await w1b.agent.start();
    await naive(w1b.agent, w1b.link, ['duplicate', 'drop-reply'], 40);
    const b = await board();
    expect(Object.values(b).map((t) => t.state)).toEqual(Array(12).fill('completed'));
    // No completion was accepted twice (the store refuses a second one; the recorded ones are distinct).
    expect(new Set(completions).size).toBe(completions.length);
    await w1b.agent.stop({ deregister: false });
  });
});
