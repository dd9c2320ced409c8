import { z } from 'zod';
import { leaseKey } from '../machines/leaseRecord.js';

/**
 * Records of the agent registry and the task board. Everything lives in the same `LeaseStore` as the lease, under
 * `fenced-leader/<election>/...`, so one `commit` can check the lease and write agents and tasks together.
 *
 * Wall-clock fields (`...At`, ISO strings) are for operators only: liveness is never judged from them.
 * Every field is always present (null when empty): stores accept plain JSON only, and `undefined` is not JSON.
 */
export const idSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only');

/**
 * `restarted`: the agent registered again (a new incarnation) while the board still showed claims of the previous one;
 * `released`: the agent gave back a claim it did not know it held (its claim was applied but the reply was lost).
 */
export const handoffReasonSchema = z.enum(['stale', 'deregistered', 'manual', 'restarted', 'released']);
export type HandoffReason = z.output<typeof handoffReasonSchema>;

/**
 * Identifies one sweep commit: `<nodeId>/<epoch>/<n>`, `n` counted per sweeper (see `Sweeper`). Stamped into the
 * stale marks, handoff notes and index it writes so a commit whose reply was lost can be recognised by its own
 * writes, never by a twin's identical ones. Optional everywhere: records stored before it still parse.
 */
export const commitIdSchema = z.string().min(1);

/** Why work moved, from whom, to whom (null: back to the queue for anyone), by which orchestrator at which epoch. */
export const handoffNoteSchema = z.object({
  note: z.string(),
  reason: handoffReasonSchema,
  from: idSchema,
  to: idSchema.nullable(),
  by: z.string().min(1),
  epoch: z.number().int().nonnegative(),
  at: z.string(),
  /** The sweep commit that wrote it (see `commitIdSchema`); absent on notes written otherwise or before 0.2. */
  commit: commitIdSchema.optional(),
});
export type HandoffNote = z.output<typeof handoffNoteSchema>;

export const agentStateSchema = z.enum(['active', 'stale', 'gone']);
export type AgentState = z.output<typeof agentStateSchema>;

export const staleMarkSchema = z.object({
  by: z.string().min(1),
  epoch: z.number().int().nonnegative(),
  at: z.string(),
  /** How long the marking orchestrator had not seen the heartbeat change, on its own clock. */
  silentForMs: z.number().nonnegative(),
  /** The sweep commit that wrote the mark (absent on marks stored before commit ids). */
  commit: commitIdSchema.optional(),
});
export type StaleMark = z.output<typeof staleMarkSchema>;

export const agentRecordSchema = z.object({
  id: idSchema,
  role: z.string().min(1).max(200),
  capabilities: z.array(z.string().min(1).max(200)).max(100),
  state: agentStateSchema,
  /** Heartbeat counter: rises on every heartbeat and (re)registration, never falls. Observers watch it change. */
  beat: z.number().int().nonnegative(),
  /** Rises on every (re)registration, e.g. after the agent was marked stale and came back. */
  incarnation: z.number().int().positive(),
  registeredAt: z.string(),
  lastBeatAt: z.string(),
  staleMark: staleMarkSchema.nullable(),
  /** Set by `setHandoff` (leader only); carried by the agent's tasks when they are requeued. */
  handoff: handoffNoteSchema.nullable(),
});
export type AgentRecord = z.output<typeof agentRecordSchema>;

export const agentIndexSchema = z.object({
  ids: z.array(idSchema),
  /** The last sweep commit that wrote the index (kept by registrations), to witness a retirement whose reply was lost. */
  commit: commitIdSchema.optional(),
});
export type AgentIndex = z.output<typeof agentIndexSchema>;

export const taskStateSchema = z.enum(['queued', 'claimed', 'completed']);
export type TaskState = z.output<typeof taskStateSchema>;

/** What a task is submitted as (`submitTasks`): checked before anything is written. */
export const newTaskSchema = z.object({
  id: idSchema,
  kind: z.string().min(1).max(200),
  payload: z.json(),
});

/** What `setHandoff` takes: a note and, optionally, the agent the work should go to (null or absent: anyone). */
export const handoffInputSchema = z.object({
  note: z.string(),
  to: idSchema.nullable().optional(),
});

export const taskRecordSchema = z.object({
  id: idSchema,
  /** Order of submission; queued tasks are claimed lowest first. */
  seq: z.number().int().nonnegative(),
  kind: newTaskSchema.shape.kind,
  payload: z.json(),
  state: taskStateSchema,
  /** Rises on every claim; completion is accepted only with the current one. 0 = never claimed. */
  claimToken: z.number().int().nonnegative(),
  claimedBy: idSchema.nullable(),
  claimedAt: z.string().nullable(),
  /** A queued task reserved for one agent (a handoff `to`); cleared if that agent is not active. */
  assignee: idSchema.nullable(),
  requeues: z.number().int().nonnegative(),
  /** The last handoff that moved this task. */
  handoff: handoffNoteSchema.nullable(),
  completedBy: idSchema.nullable(),
  completedToken: z.number().int().nonnegative().nullable(),
  completedAt: z.string().nullable(),
  result: z.json(),
  createdAt: z.string(),
});
export type TaskRecord = z.output<typeof taskRecordSchema>;

/**
 * The tasks by id, parsed into an object without a prototype: any valid id works as a key, `constructor`,
 * `toString` and `__proto__` included (a plain record would find `Object.prototype`'s members, and zod's `record`
 * drops a `__proto__` key). Look tasks up with `Object.hasOwn` (see `taskOf` in logic.ts).
 */
export const taskMapSchema = z
  .custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'expected an object of tasks by id')
  .transform((raw, ctx) => {
    const tasks: Record<string, TaskRecord> = Object.create(null);
    for (const [id, value] of Object.entries(raw)) {
      const key = idSchema.safeParse(id);
      if (!key.success) for (const issue of key.error.issues) ctx.addIssue({ code: 'custom', message: `task id: ${issue.message}`, path: [id], input: id });
      const task = taskRecordSchema.safeParse(value);
      if (!task.success) for (const issue of task.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: [id, ...issue.path], input: value });
      else tasks[id] = task.data;
    }
    return tasks;
  });

export const taskBoardSchema = z.object({
  nextSeq: z.number().int().nonnegative(),
  tasks: taskMapSchema,
});
export type TaskBoard = z.output<typeof taskBoardSchema>;

export interface AgentKeys {
  readonly lease: string;
  readonly index: string;
  readonly board: string;
  agent(id: string): string;
}

export function agentKeys(election: string): AgentKeys {
  const prefix = `fenced-leader/${election}`;
  return {
    lease: leaseKey(election),
    index: `${prefix}/agents`,
    board: `${prefix}/tasks`,
    agent: (id) => `${prefix}/agents/${id}`,
  };
}

/** Shared option fields: which election (namespace) and how to name things. */
export const electionNameSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._:-]+$/, 'use letters, digits and . _ : - only')
  .default('default');
