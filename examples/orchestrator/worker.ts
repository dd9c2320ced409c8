/**
 * A worker process: registers, heart-beats, claims up to --concurrency tasks, "works" payload.workMs on each, and
 * completes them with its claim token. A completion refused with StaleClaimError means the task was handed to
 * someone else while this worker was presumed dead: the result is dropped.
 *
 * Nothing else is needed for no task to be lost when a store call fails without a definite answer: a claim applied
 * while claim() threw, or a task whose complete() failed (and was dropped here), is handed back by the next claim()
 * (`resumed: true`, with its current claim token); a restart under the same --id requeues what the previous process
 * held. See src/agents/agent.ts.
 *
 *   node --import tsx examples/orchestrator/worker.ts --id w1 --state .demo [--concurrency 2]
 */
import type { Json } from '../../src/adapters/LeaseStore.js';
import { createAgent } from '../../src/agents/agent.js';
import { StaleClaimError } from '../../src/agents/errors.js';
import { args, DEMO_HEARTBEAT_MS, emit, jsonLogger, statePathOf } from './shared.js';

const opts = args({
  id: { type: 'string' },
  state: { type: 'string', default: '.orchestrator' },
  role: { type: 'string', default: 'demo-worker' },
  concurrency: { type: 'string', default: '2' },
  verbose: { type: 'boolean', default: false },
});
if (!opts.id) throw new Error('--id is required');
const id = opts.id;
const concurrency = Number(opts.concurrency);

const agent = createAgent({
  id,
  role: opts.role,
  capabilities: ['demo'],
  statePath: statePathOf(opts.state),
  heartbeatIntervalMs: DEMO_HEARTBEAT_MS,
  logger: jsonLogger(id, opts.verbose),
});

const inFlight = new Map<string, { token: number; doneAt: number }>();
agent.onPresumedDead(() => {
  emit('presumed-dead', { id, dropped: [...inFlight.keys()] });
  inFlight.clear();
});

let stopping = false;
async function loop(): Promise<void> {
  while (!stopping) {
    const now = Date.now();
    for (const [taskId, { token, doneAt }] of [...inFlight]) {
      if (doneAt > now) continue;
      inFlight.delete(taskId);
      try {
        await agent.complete(taskId, token, { by: id } as Json);
        emit('completed', { id, task: taskId, token });
      } catch (err) {
        if (StaleClaimError.is(err)) emit('complete-rejected', { id, task: taskId, token, currentToken: err.currentToken, holder: err.currentHolder });
        else emit('complete-failed', { id, task: taskId, err: err instanceof Error ? err.message : String(err) });
      }
    }
    while (!stopping && inFlight.size < concurrency && agent.state() === 'active') {
      const claimed = await agent.claim().catch((err: unknown) => {
        emit('claim-failed', { id, err: err instanceof Error ? err.message : String(err) });
        return undefined;
      });
      if (!claimed) break;
      const workMs = Number((claimed.task.payload as { workMs?: number } | null)?.workMs ?? 1000);
      inFlight.set(claimed.task.id, { token: claimed.claimToken, doneAt: Date.now() + workMs });
      emit('claimed', { id, task: claimed.task.id, token: claimed.claimToken, resumed: claimed.resumed ?? false, handoff: claimed.task.handoff });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

await agent.start();
emit('registered', { id, pid: process.pid });
const running = loop();

const shutdown = async (signal: string) => {
  emit('stopping', { id, signal });
  stopping = true;
  await running;
  // Deregisters this process's own incarnation (anything still held goes back to the queue); if another process has
  // registered under the same --id since, it leaves that one and its work alone.
  await agent.stop();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
