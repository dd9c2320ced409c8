export type { EtcdLeaseStoreOptions } from './adapters/EtcdLeaseStore.js';
export type { FileLeaseStoreOptions } from './adapters/FileLeaseStore.js';
export type { CallOptions, CommitOp, Json, LeaseStore, StoreCapabilities, StoreEntry, Unsubscribe } from './adapters/LeaseStore.js';
export type { PostgresLeaseStoreOptions } from './adapters/PostgresLeaseStore.js';
export type { RedisLeaseStoreOptions } from './adapters/RedisLeaseStore.js';
export type { Agent, AgentLifecycle, AgentOptions } from './agents/agent.js';
export type { AgentIdentity, AgentObservation, ClaimFilter, LeaderIdentity, Liveness, NewTask, ReservationObservation, Reservations, RespawnPolicy, RespawnRequest, RetentionPolicy, SweepInput, SweepPlan, VersionedAgent } from './agents/logic.js';
export type { OrchestratorState } from './agents/orchestratorState.js';
export type { AgentSession, ClaimedTask, DeregisterOptions, RegisterOptions, VersionedBoard, VersionedLease } from './agents/registry.js';
export type { AgentKeys, AgentRecord, AgentState, HandoffNote, HandoffReason, StaleMark, TaskBoard, TaskRecord, TaskState } from './agents/schema.js';
export type { SweeperOptions, SweepOutcome } from './agents/sweeper.js';
export type { ElectionClock } from './clock.js';
export type { AgentStatus, Coordinator, CoordinatorMetricsSnapshot, CoordinatorOptions, RespawnHandler } from './createCoordinator.js';
export type { Elector, ElectorChange, ElectorOptions, ElectorState, LeaderInfo, LeaderWork } from './createElector.js';
export type { NotLeaderReason, OptionIssue } from './errors.js';
export type { FenceGuardOptions } from './FenceGuard.js';
export type {
  ChartEdge,
  ChartNode,
  FaultSpan,
  FileSink,
  InspectRecorder,
  InspectRecorderOptions,
  InspectTraceLine,
  ReplayOptions,
  Statechart,
  StatechartLayout,
  TimeSource,
  ViewerModel,
  ViolationMark,
  WebSocketReplayOptions,
  WireEvent,
  WireEventType,
} from './inspect/index.js';
export type { Logger } from './logger.js';
export type {
  ElectionContext,
  ElectionEvent,
  ElectionInput,
  ElectionMachine,
  FenceReason,
  LeaderWorkInput,
  LeaseStoreReply,
  LeaseStoreRequest,
  StalePolicy,
} from './machines/electionMachine.js';
export type { LeaseRecord } from './machines/leaseRecord.js';
export type { ElectorMetrics, ElectorMetricsSnapshot, HealthOptions, HealthReport, HistogramSnapshot, Labels, TransitionKind } from './metrics.js';
export type { TimingOptions, TimingOptionsInput } from './options.js';

export { createStoreActors } from './adapters/createStoreActors.js';
export { EtcdLeaseStore } from './adapters/EtcdLeaseStore.js';
export { DEFAULT_FILE_STORE_PATH, FILE_STORE_FORMAT, FileLeaseStore } from './adapters/FileLeaseStore.js';
export { MemoryLeaseStore } from './adapters/MemoryLeaseStore.js';
export { PostgresLeaseStore, postgresLeaseStoreChannel, postgresLeaseStoreDdl } from './adapters/PostgresLeaseStore.js';
export { RedisLeaseStore } from './adapters/RedisLeaseStore.js';
export { createAgent } from './agents/agent.js';
export {
  AgentNotActiveError,
  ContentionError,
  DuplicateTaskError,
  MalformedRecordError,
  StaleClaimError,
  UnknownAgentError,
  UnknownTaskError,
} from './agents/errors.js';
export { claimNext, completeTask, judgeAgent, nextSweepDelay, observeAgents, observeReservations, planSweep, reservationExpired } from './agents/logic.js';
export { orchestratorStateFrom, orchestratorStateSchema, readOrchestratorState } from './agents/orchestratorState.js';
export { AgentRegistry } from './agents/registry.js';
export { agentKeys, agentRecordSchema, handoffNoteSchema, taskBoardSchema, taskRecordSchema } from './agents/schema.js';
export { Sweeper } from './agents/sweeper.js';
export { realClock } from './clock.js';
export { createCoordinator, createCoordinator as createMultiAgentCoordinator } from './createCoordinator.js';
export { createElector } from './createElector.js';
export {
  CasMismatchError,
  CorruptStateError,
  FencedLeaderError,
  InvalidOptionsError,
  NotLeaderError,
  StaleTokenError,
  StoreTimeoutError,
  StoreUnavailableError,
} from './errors.js';
export { FenceGuard } from './FenceGuard.js';
export {
  buildViewerHtml,
  buildViewerModel,
  createFileSink,
  createInspectRecorder,
  INSPECT_WIRE_VERSION,
  layoutStatechart,
  parseTraceText,
  readInspectRecording,
  readInspectRecordingFile,
  recordInspectionToFile,
  renderViewerHtml,
  replayInto,
  replayToWebSocket,
  statechartDoc,
  statechartOf,
  statechartSvg,
  toMermaid,
} from './inspect/index.js';
export { silentLogger } from './logger.js';
export { electionMachine } from './machines/electionMachine.js';
export { leaseKey, leaseRecordSchema } from './machines/leaseRecord.js';
export { createElectorMetrics, DEFAULT_LATENCY_BUCKETS_SECONDS, electorExposition, Exposition, PROMETHEUS_CONTENT_TYPE } from './metrics.js';
export { parseTiming, timingIssues } from './options.js';
