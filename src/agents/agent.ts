/**
 * The worker side: an agent registers, heart-beats on its own timer, claims tasks and completes them with the claim
 * token it got. If an orchestrator presumed it dead (marked `stale`) it learns so on its next heartbeat, its old
 * claims are void (completion would throw `StaleClaimError`), and by default it registers again as a new incarnation.
 */
import { z } from 'zod';
import { FileLeaseStore } from '../adapters/FileLeaseStore.js';
import type { Json, LeaseStore } from '../adapters/LeaseStore.js';
import { type ElectionClock, realClock } from '../clock.js';
import { InvalidOptionsError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { fromZodIssues } from '../options.js';
import { AgentNotActiveError } from './errors.js';
import type { ClaimFilter, VersionedAgent } from './logic.js';
import { AgentRegistry, type ClaimedTask } from './registry.js';
import { electionNameSchema, idSchema, type TaskRecord } from './schema.js';
import { sleep } from './sweeper.js';

const agentOptionsSchema = z.object({
  id: idSchema,
  role: z.string().min(1).max(200).default('worker'),
  capabilities: z.array(z.string().min(1).max(200)).max(100).default([]),
  election: electionNameSchema,
  /** Path of the default file store; ignored when `store` is given. */
  statePath: z.string().min(1).default('.orchestrator/orchestrator-state.json'),
  store: z.custom<LeaseStore>((v) => typeof v === 'object' && v !== null && 'commit' in v, 'a LeaseStore').optional(),
  heartbeatIntervalMs: z.number().int().positive().default(1_000),
  /** What to do on learning it was marked stale: register again (default) or stop heart-beating. */
  onPresumedDead: z.enum(['reregister', 'stop']).default('reregister'),
  clock: z.custom<ElectionClock>((v) => typeof v === 'object' && v !== null && typeof (v as ElectionClock).now === 'function', 'an ElectionClock').optional(),
  logger: z.custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).warn === 'function', 'a pino-style logger').optional(),
});

export type AgentOptions = z.input<typeof agentOptionsSchema>;
export type AgentLifecycle = 'idle' | 'active' | 'stale' | 'gone';

export interface Agent {
  readonly id: string;
  readonly registry: AgentRegistry;
  /** Registers and starts heart-beating every `heartbeatIntervalMs`. */
  start(): Promise<void>;
  /** Stops heart-beating; by default also deregisters (requeueing anything still held). */
  stop(options?: { deregister?: boolean }): Promise<void>;
  register(): Promise<void>;
  heartbeat(): Promise<void>;
  claim(filter?: ClaimFilter): Promise<ClaimedTask | undefined>;
  complete(taskId: string, claimToken: number, result?: Json): Promise<TaskRecord>;
  state(): AgentLifecycle;
  /** Called when a heartbeat reveals an orchestrator marked this agent stale (its claims were handed to others). */
  onPresumedDead(listener: () => void): () => void;
}

function withTimeout<T>(clock: ElectionClock, promise: Promise<T>, ms: number): Promise<T> {
  let timer: unknown;
  const timeout = new Promise<never>((_, reject) => {
    timer = clock.setTimeout(() => reject(new Error(`heartbeat got no reply within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clock.clearTimeout(timer));
}

export function createAgent(input: AgentOptions): Agent {
  const parsed = agentOptionsSchema.safeParse(input);
  if (!parsed.success) throw new InvalidOptionsError(fromZodIssues(parsed.error));
  const options = parsed.data;
  const clock = options.clock ?? realClock;
  const logger = options.logger ?? silentLogger;
  const ownsStore = options.store === undefined;
  const store = options.store ?? new FileLeaseStore({ path: options.statePath });
  const registry = new AgentRegistry(store, options.election, clock);
  const identity = { id: options.id, role: options.role, capabilities: options.capabilities };
  const listeners = new Set<() => void>();
  let lifecycle: AgentLifecycle = 'idle';
  let known: VersionedAgent | undefined;
  let loop: AbortController | undefined;
  let running: Promise<void> | undefined;

  const presumedDead = () => {
    lifecycle = 'stale';
    known = undefined;
    logger.warn({ agent: options.id }, 'an orchestrator marked this agent stale; its claims were requeued');
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        logger.error({ agent: options.id, err }, 'onPresumedDead listener threw');
      }
    }
  };

  const agent: Agent = {
    id: options.id,
    registry,
    async register() {
      known = await registry.register(identity);
      lifecycle = 'active';
    },
    async heartbeat() {
      try {
        known = await registry.heartbeat(options.id, known);
      } catch (err) {
        if (AgentNotActiveError.is(err)) {
          if (err.agentState === 'stale') presumedDead();
          else lifecycle = 'gone';
          if (lifecycle === 'stale' && options.onPresumedDead === 'reregister') await agent.register();
          return;
        }
        known = undefined;
        throw err;
      }
    },
    async start() {
      if (running) return;
      await agent.register();
      const controller = new AbortController();
      loop = controller;
      running = (async () => {
        while (!controller.signal.aborted) {
          await sleep(clock, options.heartbeatIntervalMs, controller.signal);
          if (controller.signal.aborted) break;
          try {
            // A store call that never answers (a partition) must not stall the loop forever: give up on waiting
            // after a few intervals and beat again; a late reply only causes a CAS conflict, which re-reads.
            await withTimeout(clock, agent.heartbeat(), options.heartbeatIntervalMs * 4);
          } catch (err) {
            logger.warn({ agent: options.id, err: err instanceof Error ? err.message : String(err) }, 'heartbeat failed');
          }
          if (lifecycle === 'stale' && options.onPresumedDead === 'stop') break;
        }
      })();
    },
    async stop({ deregister = true } = {}) {
      loop?.abort();
      await running;
      running = undefined;
      if (deregister && lifecycle !== 'idle') {
        await registry.deregister(options.id);
        lifecycle = 'gone';
      }
      if (ownsStore) await store.close();
    },
    async claim(filter) {
      try {
        return await registry.claim(options.id, filter);
      } catch (err) {
        if (AgentNotActiveError.is(err) && err.agentState === 'stale' && lifecycle === 'active') presumedDead();
        throw err;
      }
    },
    complete(taskId, claimToken, result = null) {
      return registry.complete(options.id, taskId, claimToken, result);
    },
    state: () => lifecycle,
    onPresumedDead(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return agent;
}
