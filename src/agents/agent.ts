/**
 * The worker side: an agent registers, heart-beats on its own timer, claims tasks and completes them with the claim
 * token it got. If an orchestrator presumed it dead (marked `stale`) it learns so on its next heartbeat, its old
 * claims are void (completion would throw `StaleClaimError`), and by default it registers again as a new incarnation.
 *
 * Nothing is lost when a store call's outcome is unknown. The agent remembers which claims it handed to its caller
 * (task, claim token); a task the board says it holds that is not among them — a claim applied while `claim()` saw
 * a failure, or one whose `complete()` failed without a definite answer — is returned again by the next `claim()`
 * (`resumed: true`, current token), or, if the caller stops claiming, released back to the queue by a later
 * heartbeat. Registering (a restart) requeues whatever the board still shows for this id from a previous incarnation.
 */
import { z } from 'zod';
import { FileLeaseStore } from '../adapters/FileLeaseStore.js';
import type { Json, LeaseStore } from '../adapters/LeaseStore.js';
import { type ElectionClock, realClock } from '../clock.js';
import { InvalidOptionsError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { fromZodIssues } from '../options.js';
import { AgentNotActiveError, StaleClaimError, UnknownTaskError } from './errors.js';
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
  /**
   * Stops heart-beating; by default also deregisters its own incarnation (requeueing anything still held). An agent
   * superseded by another process registered under the same id leaves that one's record and work alone.
   */
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
  /** The incarnation this process registered as (undefined until a registration is known to have applied). */
  let incarnation: number | undefined;
  /** The last register() failed: it may or may not have applied, so the next heartbeat registers again. */
  let mustRegister = false;
  let loop: AbortController | undefined;
  let running: Promise<void> | undefined;
  /**
   * Claims handed to the caller, by task id. `uncertain`: its completion failed without a definite answer, so the
   * caller may have dropped it; the next claim() hands it out again if the board still shows it claimed by us.
   */
  const held = new Map<string, { token: number; uncertain: boolean }>();
  /** Heartbeats since a claim failed without a definite answer (undefined: nothing to reconcile). */
  let suspectBeats: number | undefined;
  /** claim() and the heartbeat's release of unknown claims run one at a time (neither may misread the other's claim). */
  let exclusive: Promise<unknown> = Promise.resolve();
  let busy = false;
  const serialized = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = exclusive.then(async () => {
      busy = true;
      try {
        return await fn();
      } finally {
        busy = false;
      }
    });
    exclusive = run.catch(() => {});
    return run;
  };
  const session = () => ({
    incarnation,
    holds: (taskId: string, token: number) => {
      const h = held.get(taskId);
      return h !== undefined && h.token === token && !h.uncertain;
    },
  });

  const forgetClaims = () => {
    held.clear();
    suspectBeats = undefined;
  };

  const presumedDead = () => {
    lifecycle = 'stale';
    known = undefined;
    forgetClaims();
    logger.warn({ agent: options.id }, 'an orchestrator marked this agent stale; its claims were requeued');
    for (const listener of listeners) {
      try {
        listener();
      } catch (err) {
        logger.error({ agent: options.id, err }, 'onPresumedDead listener threw');
      }
    }
  };

  const superseded = () => {
    lifecycle = 'gone';
    known = undefined;
    forgetClaims();
    logger.error({ agent: options.id }, 'another process registered this agent id since: this one stops acting for it');
  };

  /** Learns what a refusal says about this agent; true when it was a refusal (not-active / superseded). */
  const onRefused = (err: unknown): boolean => {
    if (!AgentNotActiveError.is(err)) return false;
    if (err.agentState === 'superseded') superseded();
    else if (err.agentState === 'stale') {
      if (lifecycle === 'active') presumedDead();
    } else if (err.agentState === 'gone') {
      lifecycle = 'gone';
      forgetClaims();
    }
    return true;
  };

  /** Releases claims the board shows for us that the caller does not know of, once a claim has failed and no later claim resumed them. */
  const reconcile = async () => {
    if (suspectBeats === undefined || lifecycle !== 'active' || busy) return;
    suspectBeats += 1;
    // Give the caller's next claim() (which resumes them) a heartbeat interval first.
    if (suspectBeats < 2) return;
    await serialized(async () => {
      // Only claims the caller never got: one whose completion failed (uncertain) is left for the caller to retry or
      // for its next claim() to hand back.
      const released = await registry.releaseUnknownClaims(options.id, { incarnation, holds: (taskId, token) => held.get(taskId)?.token === token });
      suspectBeats = undefined;
      if (released.length > 0) logger.warn({ agent: options.id, released }, 'released claims this agent did not know it held');
    });
  };

  const agent: Agent = {
    id: options.id,
    registry,
    async register() {
      // Whatever this process held is void once it registers again (the registration requeues it).
      forgetClaims();
      mustRegister = true;
      incarnation = undefined;
      const registered = await registry.register(identity);
      known = registered;
      incarnation = registered.record.incarnation;
      mustRegister = false;
      lifecycle = 'active';
      if (registered.released.length > 0) logger.warn({ agent: options.id, released: registered.released }, "requeued a previous incarnation's claims");
    },
    async heartbeat() {
      if (mustRegister || (lifecycle === 'stale' && options.onPresumedDead === 'reregister')) {
        await agent.register();
        return;
      }
      if (lifecycle === 'gone') return;
      try {
        known = await registry.heartbeat(options.id, known, { incarnation });
      } catch (err) {
        if (AgentNotActiveError.is(err)) {
          onRefused(err);
          if (lifecycle === 'stale' && options.onPresumedDead === 'reregister') await agent.register();
          return;
        }
        known = undefined;
        throw err;
      }
      try {
        await reconcile();
      } catch (err) {
        if (!onRefused(err)) logger.warn({ agent: options.id, err: err instanceof Error ? err.message : String(err) }, 'releasing unknown claims failed');
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
          if (lifecycle === 'gone') break;
        }
      })();
    },
    async stop({ deregister = true } = {}) {
      loop?.abort();
      await running;
      running = undefined;
      try {
        // Only this process's own incarnation: a record registered since under the same id (a respawned or restarted
        // worker) is the live one, and an old process shutting down must not retire it or requeue its work. Once
        // 'gone' (superseded, or deregistered) there is nothing of ours left to deregister.
        if (deregister && lifecycle !== 'idle' && lifecycle !== 'gone') {
          if (incarnation === undefined) {
            // The last register() failed: whether it applied is unknown, so neither is which incarnation is ours.
            // This process holds nothing (claims are refused until it registers); if the registration did apply, the
            // leader marks the silent record stale.
            logger.warn({ agent: options.id }, 'not deregistering: this process never learnt which incarnation it registered as');
          } else {
            try {
              await registry.deregister(options.id, { incarnation });
            } catch (err) {
              if (!AgentNotActiveError.is(err) || err.agentState !== 'superseded') throw err;
              superseded();
            }
          }
          lifecycle = 'gone';
          forgetClaims();
        }
      } finally {
        if (ownsStore) await store.close();
      }
    },
    claim(filter) {
      if (mustRegister) return Promise.reject(new AgentNotActiveError(options.id, 'unregistered'));
      return serialized(async () => {
        try {
          const claimed = await registry.claim(options.id, filter, session());
          // No unknown claim was on the board this call read (or it resumed one: look again next time).
          suspectBeats = claimed?.resumed ? 0 : undefined;
          if (claimed) held.set(claimed.task.id, { token: claimed.claimToken, uncertain: false });
          return claimed;
        } catch (err) {
          // A refusal is definite; anything else may have been applied without our learning it.
          if (!onRefused(err)) suspectBeats = 0;
          throw err;
        }
      });
    },
    async complete(taskId, claimToken, result = null) {
      try {
        const done = await registry.complete(options.id, taskId, claimToken, result);
        held.delete(taskId);
        return done;
      } catch (err) {
        if (StaleClaimError.is(err) || UnknownTaskError.is(err)) {
          if (held.get(taskId)?.token === claimToken) held.delete(taskId);
        } else {
          // Unknown outcome: if it did not apply, the task is still ours; the caller may retry, or drop it and claim()
          // again, which then hands it back.
          const h = held.get(taskId);
          if (h && h.token === claimToken) h.uncertain = true;
        }
        throw err;
      }
    },
    state: () => lifecycle,
    onPresumedDead(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return agent;
}
