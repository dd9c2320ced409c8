/**
 * Writes are checked against the schemas every read enforces. A type-correct but out-of-schema value (an empty or
 * 201-character kind, a handoff target '') used to be written, and from then on every read of that key threw
 * MalformedRecordError: claims, completions, submissions, sweeps and agentStatus() all failed, and a crashed agent's
 * task stayed claimed forever. Now the call throws InvalidOptionsError naming the field and writes nothing.
 * Also: a batch with one id twice is refused (it used to collapse into one task), and ids that are names of
 * Object.prototype members are ordinary ids.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileLeaseStore } from '../../src/adapters/FileLeaseStore.js';
import type { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { DuplicateTaskError } from '../../src/agents/errors.js';
import { AgentRegistry, checkedValue } from '../../src/agents/registry.js';
import { taskBoardSchema } from '../../src/agents/schema.js';
import { InvalidOptionsError } from '../../src/errors.js';
import { TestClock } from '../../src/TestClock.js';
import { sweepRig, tasks, World } from './helpers.js';

const LEADER = { nodeId: 'o1', epoch: 1 };

/** o1 leads at epoch 1; `registry` talks to the shared memory store directly; a1 is registered. */
async function rig() {
  const r = sweepRig('t', (shared: MemoryLeaseStore) => shared);
  await r.registry.register({ id: 'a1', role: 'w', capabilities: [] });
  return r;
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function refusal(call: Promise<unknown>): Promise<InvalidOptionsError> {
  const err = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(InvalidOptionsError.is(err)).toBe(true);
  return err as InvalidOptionsError;
}

describe('submitTasks checks what it writes', () => {
  it('an empty kind is refused with InvalidOptionsError naming the field; nothing is written and the board stays usable', async () => {
    const { registry, shared } = await rig();
    await registry.submitTasks([{ id: 'good', kind: 'build', payload: null }]);
    const version = shared.readSync(registry.keys.board)!.version;
    const err = await refusal(registry.submitTasks([{ id: 'bad', kind: '', payload: null }]));
    expect(err.issues.map((i) => i.path)).toEqual(['tasks.0.kind']);
    expect(shared.readSync(registry.keys.board)!.version).toBe(version);
    await expect(registry.claim('a1')).resolves.toMatchObject({ task: { id: 'good' } });
  });

  it('an over-long kind (201 chars) is refused on the file store too; the board stays readable and claimable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-validation-'));
    dirs.push(dir);
    const store = new FileLeaseStore({ path: join(dir, 'orchestrator-state.json') });
    try {
      const registry = new AgentRegistry(store, 't', new TestClock());
      await registry.register({ id: 'a1', role: 'w', capabilities: [] });
      await registry.submitTasks([{ id: 'good', kind: 'build', payload: null }]);
      await refusal(registry.submitTasks([{ id: 'long', kind: 'k'.repeat(201), payload: null }]));
      expect(Object.keys((await registry.readBoard()).board.tasks)).toEqual(['good']);
      await expect(registry.claim('a1')).resolves.toMatchObject({ task: { id: 'good' } });
    } finally {
      await store.close();
    }
  });

  it('a payload or completion result that is not JSON, and an invalid id, are refused the same way', async () => {
    const { registry } = await rig();
    await refusal(registry.submitTasks([{ id: 'nan', kind: 'build', payload: { n: Number.NaN } }]));
    await refusal(registry.submitTasks([{ id: 'a b', kind: 'build', payload: null }]));
    await registry.submitTasks(tasks(1));
    const claimed = (await registry.claim('a1'))!;
    const err = await refusal(registry.complete('a1', 't1', claimed.claimToken, { n: Number.NaN }));
    expect(err.issues[0]!.path).toMatch(/^result/);
    await expect(registry.complete('a1', 't1', claimed.claimToken, { n: 1 })).resolves.toMatchObject({ state: 'completed' });
  });

  it('two tasks with the same id in one batch are refused (DuplicateTaskError), not collapsed into one; nothing is written', async () => {
    const { registry } = await rig();
    const err = await registry
      .submitTasks([
        { id: 'x', kind: 'build', payload: { n: 1 } },
        { id: 'x', kind: 'build', payload: { n: 2 } },
      ])
      .catch((e: unknown) => e);
    expect(DuplicateTaskError.is(err) && err.taskId).toBe('x');
    expect((err as DuplicateTaskError).where).toBe('batch');
    expect((await registry.readBoard()).board).toMatchObject({ nextSeq: 0, tasks: {} });
  });

  it('ids named like Object.prototype members (constructor, toString, __proto__) are ordinary ids: submitted, claimed, completed', async () => {
    const { registry } = await rig();
    const ids = ['constructor', 'toString', '__proto__', 'hasOwnProperty'];
    for (const id of ids) await registry.submitTasks([{ id, kind: 'build', payload: null }]);
    expect(Object.keys((await registry.readBoard()).board.tasks).sort()).toEqual([...ids].sort());
    await expect(registry.submitTasks([{ id: '__proto__', kind: 'build', payload: null }])).rejects.toSatisfy(DuplicateTaskError.is);
    for (const id of ids) {
      const claimed = (await registry.claim('a1'))!;
      expect(claimed.task.id).toBe(id);
      await expect(registry.complete('a1', id, claimed.claimToken)).resolves.toMatchObject({ id, state: 'completed' });
    }
    const board = (await registry.readBoard()).board;
    expect(ids.map((id) => Object.hasOwn(board.tasks, id) && board.tasks[id]!.state)).toEqual(ids.map(() => 'completed'));
  });
});

describe('setHandoff checks what it writes', () => {
  it("a handoff to '' is refused (InvalidOptionsError on `to`); the agent record stays readable and unchanged", async () => {
    const { registry, shared } = await rig();
    const version = shared.readSync(registry.keys.agent('a1'))!.version;
    const err = await refusal(registry.setHandoff(LEADER, 'a1', { note: 'drain', to: '' }));
    expect(new Set(err.issues.map((i) => i.path))).toEqual(new Set(['to']));
    expect(err.message).toMatch(/to: .*Check the value given for to/);
    expect(shared.readSync(registry.keys.agent('a1'))!.version).toBe(version);
    await expect(registry.readAgent('a1')).resolves.toMatchObject({ record: { handoff: null } });
    await expect(registry.setHandoff(LEADER, 'a1', { note: 'drain', to: null })).resolves.toMatchObject({ to: null });
  });

  it("through the coordinator: after a refused setHandoff(a1, { to: '' }), a crashed a1's task is still requeued and done", async () => {
    const world = new World();
    const o1 = world.coordinator('o1');
    o1.start();
    await world.clock.advance(0);
    const a1 = world.worker('a1', 100_000);
    const a2 = world.worker('a2', 10);
    await a1.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(50);
    expect(world.board().t1).toMatchObject({ state: 'claimed', claimedBy: 'a1' });
    await expect(o1.setHandoff('a1', { note: 'drain host-3', to: '' })).rejects.toSatisfy(InvalidOptionsError.is);
    await a2.agent.start();
    a1.crash();
    await world.run(3000, 20);
    await expect(o1.agentStatus()).resolves.toHaveLength(2);
    expect(world.board().t1!.state).toBe('completed');
    expect(o1.metrics().sweeps.applied).toBeGreaterThan(0);
    await o1.stop();
  });
});

describe('checkedValue', () => {
  it('refuses a record that would not parse back, naming the key and field, so it is never written', () => {
    const board = { nextSeq: 1, tasks: { x: { id: 'x', kind: '' } } };
    let err: unknown;
    try {
      checkedValue('fenced-leader/t/tasks', taskBoardSchema, board);
    } catch (e) {
      err = e;
    }
    expect(InvalidOptionsError.is(err)).toBe(true);
    expect((err as InvalidOptionsError).issues.some((i) => i.path.startsWith('fenced-leader/t/tasks.tasks.x'))).toBe(true);
    expect(checkedValue('k', taskBoardSchema, { nextSeq: 0, tasks: {} })).toEqual({ nextSeq: 0, tasks: {} });
  });
});
