import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileLeaseStore } from '../../src/adapters/FileLeaseStore.js';
import { createAgent } from '../../src/agents/agent.js';
import { StaleClaimError } from '../../src/agents/errors.js';
import { readOrchestratorState } from '../../src/agents/orchestratorState.js';
import { createCoordinator } from '../../src/createCoordinator.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const until = async (predicate: () => Promise<boolean> | boolean, limitMs: number) => {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
};

describe('agents on the file store (real time)', () => {
  it('registers, claims, detects a silent agent, requeues with a note, and the state file names the leader', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-agents-'));
    dirs.push(dir);
    const statePath = join(dir, 'orchestrator-state.json');
    const timing = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 250, staleAfterMs: 600, sweepIntervalMs: 150 };
    const o1 = createCoordinator({ nodeId: 'o1', statePath, ...timing }).start();
    const a1Store = new FileLeaseStore({ path: statePath }); // outlives a1.stop(): the "process" lives on, silent
    const a1 = createAgent({ id: 'a1', store: a1Store, heartbeatIntervalMs: 100 });
    const a2 = createAgent({ id: 'a2', statePath, heartbeatIntervalMs: 100 });
    try {
      expect(await until(() => o1.isOrchestratorLeader(), 3000)).toBe(true);
      await a1.start();
      await a2.start();
      await o1.submitTasks([{ id: 'job-1', kind: 'build', payload: { n: 1 } }]);
      const claim = (await a1.claim())!;
      expect(claim).toMatchObject({ claimToken: 1, task: { id: 'job-1' } });
      // a1 goes silent without deregistering (as after kill -9).
      await a1.stop({ deregister: false });
      const silentAt = Date.now();
      expect(await until(async () => (await o1.agentStatus()).find((s) => s.id === 'a1')?.recordedState === 'stale', 4000)).toBe(true);
      const detection = Date.now() - silentAt;
      expect(detection).toBeLessThan(timing.staleAfterMs + timing.sweepIntervalMs + 400);
      const [task] = await o1.tasks();
      expect(task).toMatchObject({ state: 'queued', requeues: 1, handoff: { from: 'a1', by: 'o1', epoch: 1, reason: 'stale' } });
      const reclaimed = (await a2.claim())!;
      expect(reclaimed.claimToken).toBe(2);
      await expect(a1.complete('job-1', 1)).rejects.toSatisfy(StaleClaimError.is);
      await a2.complete('job-1', reclaimed.claimToken, { ok: true });

      const state = await readOrchestratorState(statePath);
      expect(state).toMatchObject({ election: 'default', leader: 'o1', epoch: 1 });
      expect(Date.parse(state!.since!)).toBeLessThanOrEqual(Date.parse(state!.lastRenewal!));
      const file = JSON.parse(readFileSync(statePath, 'utf8')) as { entries: Record<string, { value: unknown }> };
      expect(Object.keys(file.entries)).toEqual(
        expect.arrayContaining(['fenced-leader/default/lease', 'fenced-leader/default/agents', 'fenced-leader/default/agents/a1', 'fenced-leader/default/tasks']),
      );
    } finally {
      await a2.stop();
      await a1.stop({ deregister: false }).catch(() => {});
      await a1Store.close();
      await o1.stop();
    }
    // After a clean stop the lease is released but the epoch remains for operators.
    expect(await readOrchestratorState(statePath)).toMatchObject({ leader: null, epoch: 1 });
  });

  it('readOrchestratorState returns undefined for a fresh file and rejects a malformed lease record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-agents-'));
    dirs.push(dir);
    const statePath = join(dir, 'orchestrator-state.json');
    expect(await readOrchestratorState(statePath)).toBeUndefined();
    const store = new FileLeaseStore({ path: statePath });
    await store.compareAndSet('fenced-leader/default/lease', null, { holder: 42 });
    await store.close();
    await expect(readOrchestratorState(statePath)).rejects.toMatchObject({ code: 'ERR_MALFORMED_RECORD' });
  });
});
