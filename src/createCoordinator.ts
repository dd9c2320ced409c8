/**
 * The orchestrator facade (the seed's "MultiAgentCoordinator"): an elector, the agent registry and task board in
 * the same store, a liveness observer on every node, a sweeper that runs only while leader (via
 * `elector.whileLeader`, so leaving `leader` aborts it), leader-aware respawn requests, and metrics/health.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { InspectionEvent, Observer } from 'xstate';
import { z } from 'zod';
import { FileLeaseStore } from './adapters/FileLeaseStore.js';
import type { LeaseStore } from './adapters/LeaseStore.js';
import { type ClaimFilter, judgeAgent, type NewTask, type RespawnPolicy, type RespawnRequest, silentForMs } from './agents/logic.js';
import { type OrchestratorState, orchestratorStateFrom } from './agents/orchestratorState.js';
import { AgentRegistry } from './agents/registry.js';
import { type AgentRecord, type AgentState, electionNameSchema, type HandoffNote, idSchema, type StaleMark, type TaskRecord } from './agents/schema.js';
import { DEFAULT_SWEEP_CALL_TIMEOUT_MS, Sweeper, type SweepOutcome } from './agents/sweeper.js';
import { type ElectionClock, realClock } from './clock.js';
import { createElector, type Elector } from './createElector.js';
import { InvalidOptionsError, NotLeaderError } from './errors.js';
import { type Logger, silentLogger } from './logger.js';
import { createElectorMetrics, type ElectorMetricsSnapshot, Exposition, type HealthOptions, type HealthReport, writeElectorSeries } from './metrics.js';
import { fromZodIssues, timingSchema } from './options.js';

const coordinatorOptionsSchema = timingSchema
  .extend({
    election: electionNameSchema,
    nodeId: z.string().min(1).max(200).optional(),
    onStale: z.enum(['rejoin', 'shutdown']).default('rejoin'),
    statePath: z.string().min(1).default('.orchestrator/orchestrator-state.json'),
    store: z.custom<LeaseStore>((v) => typeof v === 'object' && v !== null && 'commit' in v, 'a LeaseStore').optional(),
    clock: z.custom<ElectionClock>((v) => typeof v === 'object' && v !== null && typeof (v as ElectionClock).now === 'function', 'an ElectionClock').optional(),
    logger: z.custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).warn === 'function', 'a pino-style logger').optional(),
    inspect: z.custom<Observer<InspectionEvent> | ((event: InspectionEvent) => void)>().optional(),
    /** An agent whose heartbeat counter has not changed for this long, on the observer's clock, is stale. */
    staleAfterMs: z.number().int().positive().default(10_000),
    /** How often every node reads the agents, and the longest the leader waits between sweeps. */
    sweepIntervalMs: z.number().int().positive().default(1_000),
    /**
     * The longest the leader waits for any one store call of a sweep (default 5 s, the shipped server stores' default
     * \`timeoutMs\`). Each call is further bounded by the time left before the renew deadline, and aborted when the
     * node leaves \`leader\`; a commit cut short is settled by a later sweep like one whose reply was lost.
     */
    sweepCallTimeoutMs: z.number().int().positive().default(DEFAULT_SWEEP_CALL_TIMEOUT_MS),
    /**
     * Which stale agents \`onRespawnNeeded\` asks to restart. Default: agents of every role whose claimed tasks the
     * sweep requeued. \`roles\`: a list of roles (empty: none) or a predicate \`(role, request) => boolean\`; \`idle\`:
     * also agents that went stale holding no task (default false).
     */
    respawn: z
      .object({
        roles: z
          .union([
            z.array(z.string().min(1).max(200)),
            z.custom<(role: string, request: RespawnRequest) => boolean>((v) => typeof v === 'function', 'a list of roles or a predicate (role, request) => boolean'),
          ])
          .optional(),
        idle: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /**
     * How long the leader keeps agents that are not coming back in the registry's index, on its own clock since it
     * last saw their heartbeat counter change (see \`RetentionPolicy\`): deregistered (\`gone\`) ones for \`goneMs\`
     * (default 15 min), \`stale\` ones that never re-registered for \`staleMs\` (default: the larger of 1 h and
     * 2 × \`staleAfterMs\`, see \`defaultStaleRetentionMs\`; a value given must exceed \`staleAfterMs\`). Null: keep
     * forever.
     */
    retention: z
      .object({
        goneMs: z.number().int().positive().nullable().default(15 * 60_000),
        // No zod default: it depends on staleAfterMs (filled in by the transform below).
        staleMs: z.number().int().positive().nullable().optional(),
      })
      .strict()
      .prefault({}),
    /** Test/simulator hook: called before each sweep commit (see Sweeper). */
    beforeSweepCommit: z.custom<(ops: readonly unknown[]) => Promise<void> | void>((v) => typeof v === 'function').optional(),
  })
  // Strict, like createElector: a misspelt option must not leave a default silently in force.
  .strict()
  .refine((o) => o.sweepIntervalMs <= o.staleAfterMs, { path: ['sweepIntervalMs'], message: 'sweepIntervalMs must not exceed staleAfterMs' })
  // Only a staleMs the user gave is held to this: the default adapts to staleAfterMs, so raising staleAfterMs alone
  // never makes an untouched retention invalid.
  .refine((o) => o.retention.staleMs == null || o.retention.staleMs > o.staleAfterMs, {
    path: ['retention', 'staleMs'],
    message: 'retention.staleMs must exceed staleAfterMs (an agent is retired only after it was marked stale), or be null to keep stale agents',
  })
  .transform((o) => ({
    ...o,
    retention: { goneMs: o.retention.goneMs, staleMs: o.retention.staleMs === undefined ? defaultStaleRetentionMs(o.staleAfterMs) : o.retention.staleMs },
  }));

/**
 * The default \`retention.staleMs\`: 1 h, or 2 × \`staleAfterMs\` when that is longer, so a stale agent is always kept
 * well past the moment it was marked (retention must exceed \`staleAfterMs\`).
 */
export function defaultStaleRetentionMs(staleAfterMs: number): number {
  return Math.max(60 * 60_000, 2 * staleAfterMs);
}

export type CoordinatorOptions = z.input<typeof coordinatorOptionsSchema>;
const knownCoordinatorKeys = Object.keys(coordinatorOptionsSchema.in.shape);

export interface AgentStatus {
  readonly id: string;
  readonly role: string;
  readonly capabilities: readonly string[];
  /** `stale` if marked so in the store, or silent for `staleAfterMs` as seen by this node. */
  readonly state: AgentState;
  /** The state written in the store (the leader's verdict). */
  readonly recordedState: AgentState;
  /** Since this node first saw the agent's current heartbeat counter, on this node's clock. */
  readonly lastSeenAgeMs: number | null;
  readonly beat: number;
  readonly incarnation: number;
  readonly claimedTasks: readonly string[];
  readonly staleMark: StaleMark | null;
  readonly handoff: HandoffNote | null;
}

export interface CoordinatorMetricsSnapshot extends ElectorMetricsSnapshot {
  readonly agents: Readonly<Record<AgentState, number>>;
  /** Agents this node currently judges stale (marked, or silent past staleAfterMs). */
  readonly staleAgents: number;
  /** Agents this node marked stale while leader. */
  readonly staleAgentsMarked: number;
  readonly requeuedTasks: number;
  readonly sweeps: Readonly<Record<SweepOutcome['kind'], number>>;
  readonly respawnRequests: number;
  /** Agents this node retired from the index while leader (see `retention`). */
  readonly retiredAgents: number;
}

export type RespawnHandler = (request: RespawnRequest) => void | Promise<void>;

export interface Coordinator {
  readonly election: string;
  readonly nodeId: string;
  readonly elector: Elector;
  readonly registry: AgentRegistry;
  readonly store: LeaseStore;
  start(): Coordinator;
  stop(): Promise<void>;
  isOrchestratorLeader(): boolean;
  /** Every registered agent with its state, last-seen age (this node's clock) and claimed tasks. */
  agentStatus(): Promise<AgentStatus[]>;
  /** Leader only: records why an agent's work moves and to whom, at the current epoch. */
  setHandoff(agentId: string, note: string | { note: string; to?: string | null }): Promise<HandoffNote>;
  /**
   * Fired on the leader only, after a sweep requeued the work of an agent it found stale (in the same commit that
   * marked it), for the roles `options.respawn.roles` selects; for idle stale agents too with `respawn.idle`. Once
   * per (agent, incarnation) at the leader's epoch — also when the commit's reply was lost: a later sweep at the same
   * epoch that finds it applied raises the request then (one that finds it refused raises nothing).
   */
  onRespawnNeeded(handler: RespawnHandler): () => void;
  submitTasks(tasks: readonly NewTask[]): Promise<void>;
  tasks(): Promise<TaskRecord[]>;
  /** Leader only: one sweep now (the background sweeper keeps running). */
  sweepNow(): Promise<SweepOutcome>;
  /** Who leads, from the durable store (the file store's orchestrator-state.json by default). */
  orchestratorState(): Promise<OrchestratorState | undefined>;
  metrics(): CoordinatorMetricsSnapshot;
  /** Prometheus text exposition. */
  metricsText(): string;
  healthy(options?: HealthOptions): boolean;
  health(options?: HealthOptions): HealthReport;
}

export type { ClaimFilter };

export function createCoordinator(input: CoordinatorOptions = {}): Coordinator {
  const parsed = coordinatorOptionsSchema.safeParse(input);
  if (!parsed.success) throw new InvalidOptionsError(fromZodIssues(parsed.error, knownCoordinatorKeys));
  const options = parsed.data;
  const clock = options.clock ?? realClock;
  const logger = options.logger ?? silentLogger;
  const nodeId = options.nodeId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  const ownsStore = options.store === undefined;
  const store = options.store ?? new FileLeaseStore({ path: options.statePath });

  const elector = createElector({
    election: options.election,
    nodeId,
    store,
    clock,
    logger,
    onStale: options.onStale,
    leaseDurationMs: options.leaseDurationMs,
    renewDeadlineMs: options.renewDeadlineMs,
    retryPeriodMs: options.retryPeriodMs,
    maxDriftRate: options.maxDriftRate,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    ...(options.inspect === undefined ? {} : { inspect: options.inspect }),
  });
  const registry = new AgentRegistry(store, options.election, clock);
  const electorMetrics = createElectorMetrics(elector);
  const respawnHandlers = new Set<RespawnHandler>();
  const sweeps: Record<SweepOutcome['kind'], number> = { applied: 0, noop: 0, rejected: 0, aborted: 0 };
  let staleAgentsMarked = 0;
  let requeuedTasks = 0;
  let respawnRequests = 0;
  let retiredAgents = 0;
  let leading = false;

  const fireRespawns = (requests: readonly RespawnRequest[]) => {
    for (const request of requests) {
      respawnRequests += 1;
      for (const handler of respawnHandlers) {
        Promise.resolve()
          .then(() => handler(request))
          .catch((err: unknown) => logger.error({ nodeId, agent: request.agentId, err }, 'onRespawnNeeded handler failed'));
      }
    }
  };

  // A throwing role predicate must not break the sweep: it counts as "do not respawn" and is logged.
  const roles = options.respawn.roles;
  const respawn: RespawnPolicy = {
    idle: options.respawn.idle,
    roles:
      typeof roles === 'function'
        ? (role, request) => {
            try {
              return roles(role, request) === true;
            } catch (err) {
              logger.error({ nodeId, agent: request.agentId, role, err }, 'respawn.roles predicate threw; not requesting a respawn');
              return false;
            }
          }
        : roles,
  };

  const sweeper = new Sweeper({
    respawn,
    retention: options.retention,
    registry,
    clock,
    nodeId,
    logger,
    staleAfterMs: options.staleAfterMs,
    sweepIntervalMs: options.sweepIntervalMs,
    isLeader: () => elector.isLeader(),
    timeLeft: () => elector.timeLeft(),
    callTimeoutMs: options.sweepCallTimeoutMs,
    ...(options.beforeSweepCommit ? { beforeCommit: options.beforeSweepCommit as (ops: readonly unknown[]) => Promise<void> } : {}),
    onOutcome: (outcome) => {
      sweeps[outcome.kind] += 1;
    },
    // Every commit known applied — answered, or a lost reply a later sweep found applied — once, on the leader.
    onApplied: ({ plan, respawns }) => {
      staleAgentsMarked += plan.agentWrites.length;
      requeuedTasks += plan.requeued.length;
      retiredAgents += plan.retired.length;
      fireRespawns(respawns);
    },
  });

  let stopWork: (() => void) | undefined;
  /** The running leader work's signal (aborts when the node leaves `leader`), for `sweepNow`. */
  let leaderSignal: AbortSignal | undefined;
  let observer: AbortController | undefined;
  let observing: Promise<void> | undefined;
  let unsubscribe: (() => void) | undefined;

  const leaderIdentity = () => ({ nodeId, epoch: elector.assertLeader() });

  const judge = (record: AgentRecord): AgentState =>
    judgeAgent(record, sweeper.observations().get(record.id), clock.now(), options.staleAfterMs);

  const coordinator: Coordinator = {
    election: options.election,
    nodeId,
    elector,
    registry,
    store,
    start() {
      if (stopWork) return coordinator;
      stopWork = elector.whileLeader(async ({ token, signal }) => {
        leading = true;
        leaderSignal = signal;
        try {
          await sweeper.runAsLeader({ token, signal });
        } finally {
          leading = false;
          if (leaderSignal === signal) leaderSignal = undefined;
        }
      });
      observer = new AbortController();
      observing = sweeper.runAsObserver(observer.signal, () => leading);
      unsubscribe = elector.subscribe((change) => {
        if (change.state === 'shutdown') observer?.abort();
      });
      elector.start();
      return coordinator;
    },
    async stop() {
      observer?.abort();
      stopWork?.();
      unsubscribe?.();
      await elector.stop();
      await observing;
      electorMetrics.dispose();
      if (ownsStore) await store.close();
    },
    isOrchestratorLeader: () => elector.isLeader(),
    async agentStatus() {
      const agents = await sweeper.observe();
      const { board } = await registry.readBoard(sweeper.observerCall());
      const claimed = new Map<string, string[]>();
      for (const task of Object.values(board.tasks)) {
        if (task.state === 'claimed' && task.claimedBy) claimed.set(task.claimedBy, [...(claimed.get(task.claimedBy) ?? []), task.id]);
      }
      const now = clock.now();
      return agents.map(({ record }) => {
        const observation = sweeper.observations().get(record.id);
        return {
          id: record.id,
          role: record.role,
          capabilities: record.capabilities,
          state: judge(record),
          recordedState: record.state,
          lastSeenAgeMs: observation ? silentForMs(observation, now) : null,
          beat: record.beat,
          incarnation: record.incarnation,
          claimedTasks: claimed.get(record.id) ?? [],
          staleMark: record.staleMark,
          handoff: record.handoff,
        };
      });
    },
    async setHandoff(agentId, note) {
      idSchema.parse(agentId);
      const input = typeof note === 'string' ? { note } : note;
      return registry.setHandoff(leaderIdentity(), agentId, input);
    },
    onRespawnNeeded(handler) {
      respawnHandlers.add(handler);
      return () => respawnHandlers.delete(handler);
    },
    submitTasks: (tasks) => registry.submitTasks(tasks),
    async tasks() {
      const { board } = await registry.readBoard();
      return Object.values(board.tasks).sort((a, b) => a.seq - b.seq);
    },
    async sweepNow() {
      const token = elector.assertLeader();
      // Leader work too: aborted when the node leaves `leader` (the loop's signal, if it still runs at this token).
      const outcome = await sweeper.sweepOnce(token, leaderSignal);
      if (outcome.kind === 'rejected' && outcome.reason === 'not-leader') throw new NotLeaderError('not-leader', elector.state(), outcome.detail);
      return outcome;
    },
    orchestratorState: () => orchestratorStateFrom(store, options.election),
    metrics() {
      const agents: Record<AgentState, number> = { active: 0, stale: 0, gone: 0 };
      for (const { record } of sweeper.agents()) agents[judge(record)] += 1;
      return {
        ...electorMetrics.snapshot(),
        agents,
        staleAgents: agents.stale,
        staleAgentsMarked,
        requeuedTasks,
        sweeps: { ...sweeps },
        respawnRequests,
        retiredAgents,
      };
    },
    metricsText() {
      const m = coordinator.metrics();
      const labels = { election: m.election, node: m.nodeId };
      const out = writeElectorSeries(new Exposition(), m);
      out.family('fenced_leader_agents', 'gauge', 'Registered agents by state, as judged by this node.');
      for (const [state, count] of Object.entries(m.agents)) out.sample('fenced_leader_agents', { ...labels, state }, count);
      out.family('fenced_leader_stale_agents', 'gauge', 'Agents this node judges stale (marked, or silent past staleAfterMs).').sample('fenced_leader_stale_agents', labels, m.staleAgents);
      out.family('fenced_leader_stale_agents_marked_total', 'counter', 'Agents this node marked stale while leader.').sample('fenced_leader_stale_agents_marked_total', labels, m.staleAgentsMarked);
      out.family('fenced_leader_requeued_tasks_total', 'counter', 'Tasks this node requeued while leader.').sample('fenced_leader_requeued_tasks_total', labels, m.requeuedTasks);
      out.family('fenced_leader_sweeps_total', 'counter', 'Leader sweeps by outcome.');
      for (const [outcome, count] of Object.entries(m.sweeps)) out.sample('fenced_leader_sweeps_total', { ...labels, outcome }, count);
      out.family('fenced_leader_respawn_requests_total', 'counter', 'Respawn requests raised on this node while leader.').sample('fenced_leader_respawn_requests_total', labels, m.respawnRequests);
      out.family('fenced_leader_retired_agents_total', 'counter', 'Gone or long-stale agents this node removed from the registry index while leader.').sample('fenced_leader_retired_agents_total', labels, m.retiredAgents);
      return out.toString();
    },
    healthy: (o) => electorMetrics.healthy(o),
    health: (o) => electorMetrics.health(o),
  };
  return coordinator;
}
