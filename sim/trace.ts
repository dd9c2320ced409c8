import { z } from 'zod';

/**
 * The recorded history of one run, one JSON object per line. The simulator writes it (`--trace FILE`), the live
 * inspect recorder writes the `inspect` lines, the checkers read it, and the offline viewer draws it. `t` is
 * real (virtual) time in milliseconds since the run began — never a node's own clock, which may be skewed.
 */
export const TRACE_FORMAT = 'fenced-leader-trace/v1';

const base = { t: z.number() };

export const traceLineSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('meta'),
    format: z.literal(TRACE_FORMAT),
    seed: z.union([z.number(), z.string()]).optional(),
    nodes: z.array(z.string()),
    /** Timing and scenario options, as given. */
    options: z.record(z.string(), z.unknown()),
    /** Assumptions the scenario violates on purpose (e.g. 'drift-beyond-max', 'long-pause'). */
    violatedAssumptions: z.array(z.string()).default([]),
  }),
  z.object({
    ...base,
    kind: z.literal('transition'),
    node: z.string(),
    /** Dotted state path before and after, e.g. `leader.renewing`. */
    from: z.string(),
    to: z.string(),
    /** Type of the event that caused it. */
    event: z.string(),
    epoch: z.number().nullable(),
    /** The node's own monotonic clock reading at that instant. */
    localTime: z.number().optional(),
    /** The renew deadline on the node's own clock, when leader. */
    deadlineAt: z.number().nullable().optional(),
    /** Simulator only: the real (virtual) time at which the node's own clock reaches `deadlineAt`. */
    deadlineT: z.number().nullable().optional(),
    /** The highest epoch this node (this incarnation) has seen. */
    highestEpochSeen: z.number().optional(),
    /** Simulator only: counts restarts of the node; a crash loses the memory of the previous incarnation. */
    incarnation: z.number().optional(),
    /** Simulator only, on transitions into `fenced`: the machine's reason (`deadline-passed`, `lease-lost`, `higher-epoch`). */
    fenceReason: z.string().optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('store'),
    node: z.string(),
    phase: z.enum(['request', 'applied', 'reply', 'lost-request', 'lost-reply', 'duplicate']),
    op: z.enum(['read', 'write', 'commit']),
    requestId: z.number(),
    outcome: z.string().optional(),
    key: z.string().optional(),
    version: z.string().nullable().optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('fault'),
    fault: z.enum(['partition', 'heal', 'pause', 'resume', 'crash', 'restart', 'clock-jump', 'drift', 'loss', 'store-wipe', 'resource-delay']),
    node: z.string().optional(),
    /** How long the fault lasts (if scheduled with an end), and fault-specific details. */
    durationMs: z.number().optional(),
    detail: z.record(z.string(), z.unknown()).optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('resource'),
    node: z.string(),
    token: z.number(),
    accepted: z.boolean(),
    highWater: z.number(),
    /** Simulator only: real time at which the writer claimed the token (assertLeader) for this write. */
    claimedT: z.number().optional(),
    /** Simulator only: the writer's incarnation (a holder is a node and incarnation; a restart is a new holder). */
    incarnation: z.number().optional(),
    /** Simulator only: extra ms the write sat in the node's resource-link queue (a `resource-delay` fault). */
    delayedMs: z.number().optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('work'),
    node: z.string(),
    /**
     * Leader work as the node does it: `claim` = assertLeader() returned the token (the node acts as leader now);
     * `send` = the fenced write leaves the node (possibly later, after a pause); `start`/`stop` = whileLeader work.
     */
    phase: z.enum(['start', 'claim', 'send', 'stop']),
    token: z.number(),
    localTime: z.number().optional(),
    /** The node's deadline as assertLeader saw it (own clock). */
    deadlineAt: z.number().optional(),
  }),
  z.object({
    ...base,
    /**
     * Agents and tasks (sim/agents.ts), observed at the store at the instant a write was applied (or refused):
     * `submit` tasks added; `register`/`heartbeat`/`deregister` an agent record's beat changed; `claim`/`complete` a
     * task moved (token = claim token); `release` a deregistering agent's task went back to the queue; `sweep` an
     * orchestrator's commit that marks agents stale and/or requeues tasks (`applied` false: refused, e.g. on its lease
     * check-op); `stall` an orchestrator's sweep stalled before its commit (since `detail.since`, until `t`); `index`
     * an applied commit changed the agent index (`detail.removed`/`added`: `{ agent, state, incarnation }` of each
     * record right after the commit, removed ones with the tasks then `claims`/`reserved` for them; `detail.sweep`:
     * written by an orchestrator's sweep, i.e. a retirement or a re-indexing, else by an agent's registration);
     * `final` the store's tasks and every agent record it holds (`indexed`: listed in the index) at the end of the run.
     * The viewer reads lines loosely and skips agent events it does not draw; it draws `index` removals as retirements.
     */
    kind: z.literal('agent'),
    /** Who wrote: an agent id, or the orchestrator node for `sweep` (and a sweep's `index`), or `env`. */
    node: z.string(),
    event: z.enum(['submit', 'register', 'heartbeat', 'deregister', 'claim', 'complete', 'release', 'sweep', 'stall', 'index', 'final']),
    agent: z.string().optional(),
    task: z.string().optional(),
    token: z.number().optional(),
    incarnation: z.number().optional(),
    beat: z.number().optional(),
    /** `sweep`: the epoch the sweep wrote under (from its stale marks and handoff notes). */
    epoch: z.number().optional(),
    applied: z.boolean().optional(),
    detail: z.record(z.string(), z.unknown()).optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('violation'),
    checker: z.string(),
    message: z.string(),
    nodes: z.array(z.string()).optional(),
    /** True when the violated property is only promised under assumptions this run broke on purpose. */
    expected: z.boolean().optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('inspect'),
    node: z.string(),
    /** An XState inspection event in @statelyai/inspect's wire format. */
    event: z.record(z.string(), z.unknown()),
  }),
]);

export type TraceLine = z.output<typeof traceLineSchema>;
export type TraceLineOf<K extends TraceLine['kind']> = Extract<TraceLine, { kind: K }>;

export function parseTrace(text: string): TraceLine[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      const parsed = traceLineSchema.safeParse(JSON.parse(line));
      if (!parsed.success) throw new Error(`trace line ${i + 1} is not a fenced-leader trace line: ${parsed.error.message}`);
      return parsed.data;
    });
}

export function formatTrace(lines: readonly TraceLine[]): string {
  return `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;
}
