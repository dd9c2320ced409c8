/**
 * Every error this library throws is data: a stable `code`, the facts that led to it, and a message that says
 * what to do next. `is(err)` checks the code rather than the prototype so that two copies of the library in one
 * process (a common npm accident) still recognise each other's errors.
 */
export class FencedLeaderError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The check behind every `is(err)`: by code, so copies of the library recognise each other's errors. */
export function hasCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

export interface OptionIssue {
  /** Dotted path of the offending option, e.g. `renewDeadlineMs`. */
  readonly path: string;
  /** zod-style issue code: `too_small`, `too_big`, `invalid_type`, `timing_unsafe`, ... */
  readonly code: string;
  readonly message: string;
  readonly minimum?: number;
  readonly maximum?: number;
}

export class InvalidOptionsError extends FencedLeaderError {
  static readonly code = 'ERR_INVALID_OPTIONS';
  readonly issues: readonly OptionIssue[];
  constructor(issues: readonly OptionIssue[]) {
    super(
      InvalidOptionsError.code,
      `Invalid fenced-leader options:\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n')}`,
    );
    this.issues = issues;
  }
  static is(err: unknown): err is InvalidOptionsError {
    return hasCode(err, InvalidOptionsError.code);
  }
}

export class CasMismatchError extends FencedLeaderError {
  static readonly code = 'ERR_CAS_MISMATCH';
  readonly key: string;
  readonly expectedVersion: string | null;
  readonly actualVersion: string | null;
  constructor(key: string, expectedVersion: string | null, actualVersion: string | null) {
    super(
      CasMismatchError.code,
      `Compare-and-set on "${key}" expected version ${expectedVersion ?? '(absent)'} but found ${actualVersion ?? '(absent)'}; read the key again and retry from the version you see.`,
    );
    this.key = key;
    this.expectedVersion = expectedVersion;
    this.actualVersion = actualVersion;
  }
  static is(err: unknown): err is CasMismatchError {
    return hasCode(err, CasMismatchError.code);
  }
}

export type NotLeaderReason = 'not-leader' | 'deadline-passed' | 'stopped';

export class NotLeaderError extends FencedLeaderError {
  static readonly code = 'ERR_NOT_LEADER';
  readonly reason: NotLeaderReason;
  readonly state: string;
  constructor(reason: NotLeaderReason, state: string, detail?: string) {
    super(
      NotLeaderError.code,
      `This node may not act as leader (${reason}, state ${state})${detail ? `: ${detail}` : ''}. Stop the leader-only work; whileLeader() restarts it when leadership is won again.`,
    );
    this.reason = reason;
    this.state = state;
  }
  static is(err: unknown): err is NotLeaderError {
    return hasCode(err, NotLeaderError.code);
  }
}

export class StaleTokenError extends FencedLeaderError {
  static readonly code = 'ERR_STALE_TOKEN';
  readonly token: number;
  readonly highWater: number;
  constructor(token: number, highWater: number) {
    super(
      StaleTokenError.code,
      `Fencing token ${token} is lower than ${highWater}, already admitted: the writer is a stale leader and must stop.`,
    );
    this.token = token;
    this.highWater = highWater;
  }
  static is(err: unknown): err is StaleTokenError {
    return hasCode(err, StaleTokenError.code);
  }
}

export class CorruptStateError extends FencedLeaderError {
  static readonly code = 'ERR_CORRUPT_STATE';
  readonly path: string;
  constructor(path: string, detail: string, options?: { cause?: unknown }) {
    super(
      CorruptStateError.code,
      `State file ${path} is corrupt (${detail}). It was left untouched: inspect or move it aside, then restart.`,
      options,
    );
    this.path = path;
  }
  static is(err: unknown): err is CorruptStateError {
    return hasCode(err, CorruptStateError.code);
  }
}

export class StoreUnavailableError extends FencedLeaderError {
  static readonly code = 'ERR_STORE_UNAVAILABLE';
  readonly store: string;
  constructor(store: string, detail: string, options?: { cause?: unknown }) {
    super(StoreUnavailableError.code, `${store} store unavailable: ${detail}`, options);
    this.store = store;
  }
  static is(err: unknown): err is StoreUnavailableError {
    return hasCode(err, StoreUnavailableError.code);
  }
}

export class StoreTimeoutError extends FencedLeaderError {
  static readonly code = 'ERR_STORE_TIMEOUT';
  readonly timeoutMs: number;
  /** `timeoutMs` 0 with a `message`: the caller stopped waiting before any timeout of its own (see the message). */
  constructor(operation: string, timeoutMs: number, message?: string) {
    super(
      StoreTimeoutError.code,
      message ?? `${operation} did not complete within ${timeoutMs} ms; its reply, if it comes, will be ignored.`,
    );
    this.timeoutMs = timeoutMs;
  }
  static is(err: unknown): err is StoreTimeoutError {
    return hasCode(err, StoreTimeoutError.code);
  }
}
