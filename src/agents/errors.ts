import { FencedLeaderError, hasCode } from '../errors.js';

/** A completion (or release) carried a claim token that is no longer the task's current one. */
export class StaleClaimError extends FencedLeaderError {
  static readonly code = 'ERR_STALE_CLAIM';
  readonly taskId: string;
  readonly agentId: string;
  readonly claimToken: number;
  readonly currentToken: number;
  readonly currentHolder: string | null;
  readonly taskState: string;
  constructor(taskId: string, agentId: string, claimToken: number, current: { token: number; holder: string | null; state: string }) {
    super(
      StaleClaimError.code,
      `Agent ${agentId} tried to finish task ${taskId} with claim token ${claimToken}, but the task is ${current.state}` +
        ` with token ${current.token}${current.holder ? ` held by ${current.holder}` : ''}. The task was handed to someone else` +
        ' (this agent was presumed dead, or the claim was released): drop the result and claim new work.',
    );
    this.taskId = taskId;
    this.agentId = agentId;
    this.claimToken = claimToken;
    this.currentToken = current.token;
    this.currentHolder = current.holder;
    this.taskState = current.state;
  }
  static is(err: unknown): err is StaleClaimError {
    return hasCode(err, StaleClaimError.code);
  }
}

export class UnknownTaskError extends FencedLeaderError {
  static readonly code = 'ERR_UNKNOWN_TASK';
  readonly taskId: string;
  constructor(taskId: string) {
    super(UnknownTaskError.code, `There is no task "${taskId}" on the board; check the id returned by claim().`);
    this.taskId = taskId;
  }
  static is(err: unknown): err is UnknownTaskError {
    return hasCode(err, UnknownTaskError.code);
  }
}

export class UnknownAgentError extends FencedLeaderError {
  static readonly code = 'ERR_UNKNOWN_AGENT';
  readonly agentId: string;
  constructor(agentId: string) {
    super(UnknownAgentError.code, `No agent "${agentId}" is registered in this election; register() it first.`);
    this.agentId = agentId;
  }
  static is(err: unknown): err is UnknownAgentError {
    return hasCode(err, UnknownAgentError.code);
  }
}

/**
 * The agent's record is `stale` (an orchestrator presumed it dead and requeued its work) or `gone`; or (`superseded`) it
 * was registered again by another process since; or (`unregistered`) this process's last registration failed.
 */
export class AgentNotActiveError extends FencedLeaderError {
  static readonly code = 'ERR_AGENT_NOT_ACTIVE';
  readonly agentId: string;
  readonly agentState: string;
  constructor(agentId: string, agentState: string) {
    super(
      AgentNotActiveError.code,
      agentState === 'superseded'
        ? `Agent ${agentId} was registered again since (a newer incarnation, another process with the same id): this one` +
            ' may not act for it, and its claims were requeued. Stop it, or give each process its own id.'
        : agentState === 'unregistered'
          ? `Agent ${agentId} is not registered as a known incarnation (its last register() failed); it registers again on its next heartbeat.`
          : `Agent ${agentId} is ${agentState} in the registry, so it may not claim work: its earlier claims were handed to others.` +
            ' Call register() again to come back as a new incarnation.',
    );
    this.agentId = agentId;
    this.agentState = agentState;
  }
  static is(err: unknown): err is AgentNotActiveError {
    return hasCode(err, AgentNotActiveError.code);
  }
}

export class DuplicateTaskError extends FencedLeaderError {
  static readonly code = 'ERR_DUPLICATE_TASK';
  readonly taskId: string;
  /** `batch`: the id appears more than once in the tasks given to one `submitTasks` call. */
  readonly where: 'board' | 'batch';
  constructor(taskId: string, where: 'board' | 'batch' = 'board') {
    super(
      DuplicateTaskError.code,
      where === 'batch'
        ? `Task id "${taskId}" appears more than once in one submitTasks() batch; nothing was submitted. Give each task its own id.`
        : `A task "${taskId}" is already on the board; task ids are unique per election. Nothing of this batch was submitted.`,
    );
    this.taskId = taskId;
    this.where = where;
  }
  static is(err: unknown): err is DuplicateTaskError {
    return hasCode(err, DuplicateTaskError.code);
  }
}

/** A store key under the registry holds something that does not validate; it is left untouched. */
export class MalformedRecordError extends FencedLeaderError {
  static readonly code = 'ERR_MALFORMED_RECORD';
  readonly key: string;
  constructor(key: string, detail: string) {
    super(MalformedRecordError.code, `The record at "${key}" is malformed (${detail}). It was left untouched: inspect or remove it.`);
    this.key = key;
  }
  static is(err: unknown): err is MalformedRecordError {
    return hasCode(err, MalformedRecordError.code);
  }
}

/** A store write kept conflicting with concurrent writers; the caller may try again later. */
export class ContentionError extends FencedLeaderError {
  static readonly code = 'ERR_CONTENTION';
  readonly operation: string;
  readonly attempts: number;
  constructor(operation: string, attempts: number) {
    super(ContentionError.code, `${operation} conflicted with concurrent writers ${attempts} times in a row; try again shortly.`);
    this.operation = operation;
    this.attempts = attempts;
  }
  static is(err: unknown): err is ContentionError {
    return hasCode(err, ContentionError.code);
  }
}
