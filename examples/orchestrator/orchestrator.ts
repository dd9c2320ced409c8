/**
 * An orchestrator process: stands for election; the leader sweeps stale workers and requeues their tasks; every
 * process serves /metrics, /healthz, /agents, /tasks and /state on loopback.
 *
 *   node --import tsx examples/orchestrator/orchestrator.ts --id o1 --state .demo [--port 9101] [--seed-tasks 24]
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DuplicateTaskError } from '../../src/agents/errors.js';
import { createCoordinator } from '../../src/createCoordinator.js';
import { PROMETHEUS_CONTENT_TYPE } from '../../src/metrics.js';
import { args, DEMO_STALE_AFTER_MS, DEMO_SWEEP_INTERVAL_MS, DEMO_TIMING, emit, jsonLogger, statePathOf } from './shared.js';

const opts = args({
  id: { type: 'string' },
  state: { type: 'string', default: '.orchestrator' },
  port: { type: 'string', default: '0' },
  'seed-tasks': { type: 'string', default: '0' },
  'task-ms': { type: 'string', default: '2000' },
  'stale-after-ms': { type: 'string', default: String(DEMO_STALE_AFTER_MS) },
  'on-stale': { type: 'string', default: 'rejoin' },
  verbose: { type: 'boolean', default: false },
});
if (!opts.id) throw new Error('--id is required');
const id = opts.id;

const coordinator = createCoordinator({
  nodeId: id,
  statePath: statePathOf(opts.state),
  ...DEMO_TIMING,
  staleAfterMs: Number(opts['stale-after-ms']),
  sweepIntervalMs: DEMO_SWEEP_INTERVAL_MS,
  onStale: opts['on-stale'] === 'shutdown' ? 'shutdown' : 'rejoin',
  logger: jsonLogger(id, opts.verbose),
});

coordinator.elector.subscribe((change) => {
  emit('state', { id, state: change.state, previous: change.previous, epoch: change.epoch ?? null });
  if (change.state === 'shutdown' && opts['on-stale'] === 'shutdown') {
    emit('exit', { id, reason: 'fenced with onStale=shutdown' });
    process.exit(3);
  }
});

coordinator.onRespawnNeeded((request) => {
  // A real orchestrator would start a replacement for `request.role` here; the demo reports it.
  emit('respawn-needed', { id, ...request });
});

// The first leader to find an empty board seeds it (a CAS on the board, so at most one seeding wins).
const seed = Number(opts['seed-tasks']);
if (seed > 0) {
  coordinator.elector.whileLeader(async () => {
    if ((await coordinator.tasks()).length > 0) return;
    const workMs = Number(opts['task-ms']);
    try {
      await coordinator.submitTasks(Array.from({ length: seed }, (_, i) => ({ id: `task-${String(i + 1).padStart(3, '0')}`, kind: 'demo', payload: { workMs } })));
      emit('seeded', { id, count: seed });
    } catch (err) {
      if (!DuplicateTaskError.is(err)) throw err;
    }
  });
}

const server = createServer((req, res) => {
  const send = (status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  };
  const json = (status: number, value: unknown) => send(status, 'application/json', `${JSON.stringify(value, null, 2)}\n`);
  const path = (req.url ?? '/').split('?')[0];
  (async () => {
    switch (path) {
      case '/metrics':
        return send(200, PROMETHEUS_CONTENT_TYPE, coordinator.metricsText());
      case '/healthz': {
        const report = coordinator.health({ maxTolerableExpiredMs: 2000 });
        return send(report.healthy ? 200 : 500, 'text/plain', `${report.healthy ? 'ok' : 'unhealthy'}: ${report.reason}\n`);
      }
      case '/agents':
        return json(200, await coordinator.agentStatus());
      case '/tasks':
        return json(200, await coordinator.tasks());
      case '/state':
        return json(200, { node: id, isLeader: coordinator.isOrchestratorLeader(), stored: (await coordinator.orchestratorState()) ?? null });
      default:
        return send(404, 'text/plain', 'try /metrics /healthz /agents /tasks /state\n');
    }
  })().catch((err: unknown) => send(500, 'text/plain', `${err instanceof Error ? err.message : String(err)}\n`));
});

server.listen(Number(opts.port), '127.0.0.1', () => {
  emit('listening', { id, port: (server.address() as AddressInfo).port, pid: process.pid });
  coordinator.start();
});

const shutdown = async (signal: string) => {
  emit('stopping', { id, signal });
  server.close();
  await coordinator.stop();
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
