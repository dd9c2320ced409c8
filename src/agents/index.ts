export type { Agent, AgentLifecycle, AgentOptions } from './agent.js';
export { createAgent } from './agent.js';
export {
  AgentNotActiveError,
  ContentionError,
  DuplicateTaskError,
  MalformedRecordError,
  StaleClaimError,
  UnknownAgentError,
  UnknownTaskError,
} from './errors.js';
export type { AgentIdentity, AgentObservation, ClaimFilter, LeaderIdentity, Liveness, NewTask, ReservationObservation, Reservations, RespawnPolicy, RespawnRequest, RetentionPolicy, SweepInput, SweepPlan, VersionedAgent } from './logic.js';
export { claimNext, completeTask, judgeAgent, nextSweepDelay, observeAgents, observeReservations, planSweep, reservationExpired, respawnWanted, unknownClaimsOf } from './logic.js';
export type { OrchestratorState } from './orchestratorState.js';
export { orchestratorStateFrom, orchestratorStateSchema, readOrchestratorState } from './orchestratorState.js';
export type { AgentSession, ClaimedTask, DeregisterOptions, RegisterOptions, VersionedBoard, VersionedLease } from './registry.js';
export { AgentRegistry } from './registry.js';
export type { AgentKeys, AgentRecord, AgentState, HandoffNote, HandoffReason, StaleMark, TaskBoard, TaskRecord, TaskState } from './schema.js';
export { agentKeys, agentRecordSchema, handoffNoteSchema, taskBoardSchema, taskRecordSchema } from './schema.js';
export type { SweeperOptions, SweepOutcome } from './sweeper.js';
export { Sweeper } from './sweeper.js';
export type { AppliedSweep } from './unknownCommits.js';
