import { InvalidOptionsError } from '../errors.js';

/**
 * Bounds one store call by the store's `timeoutMs` and the caller's AbortSignal, without paying for a timer and an
 * abort listener on every call.
 *
 * The elector passes an AbortSignal with every call, and `addEventListener`/`removeEventListener` on a signal
 * costs several microseconds of CPU (Node's EventTarget), as does a timer per call: on a 0.1 ms Redis renewal
 * that was a fifth of the latency. Most calls settle within a millisecond, so a call starts *young*: it only joins a
 * FIFO list shared by the whole process, served by one timer. A call still pending `GRACE_MS` after it started is
 * *promoted*: it gets its own timer for the rest of `timeoutMs` and an abort listener (or is abandoned at once if its
 * signal aborted meanwhile, or its budget is already spent). Guarantees:
 *
 * - the timeout fires at `timeoutMs` after the start, exactly as with a timer per call;
 * - an aborted call never resolves: a reply that arrives after the abort is dropped and the call rejects with the
 *   abort reason. The rejection comes at once once the call is promoted, and at most `GRACE_MS` (plus timer
 *   lateness) after the abort before that. The elector does not wait for that rejection (it stops listening when it
 *   aborts), so this bounds nothing on its side; `onAbandon` clean-ups run at the same moment.
 */
export const GRACE_MS = 2;

export interface CallScope {
  /** True once the call was abandoned (timed out or aborted): its outcome will be ignored. */
  readonly abandoned: boolean;
  /** Runs `fn` once when the call is abandoned (not when it settles normally). */
  onAbandon(fn: (reason: unknown) => void): void;
}

class Call<T> implements CallScope {
  abandoned = false;
  settled = false;
  prev: Call<unknown> | undefined;
  next: Call<unknown> | undefined;
  young = true;
  timer: ReturnType<typeof setTimeout> | undefined;
  listener: (() => void) | undefined;
  handlers: ((reason: unknown) => void)[] | undefined;

  constructor(
    readonly startedAt: number,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    readonly timeoutError: () => Error,
    readonly resolve: (value: T) => void,
    readonly reject: (err: unknown) => void,
  ) {}

  onAbandon(fn: (reason: unknown) => void): void {
    if (this.abandoned) fn(undefined);
    else {
      this.handlers ??= [];
      this.handlers.push(fn);
    }
  }

  succeed(value: T): void {
    if (this.settled) return;
    // A reply that arrived after the abort (not yet noticed while young) is dropped.
    if (this.signal?.aborted) {
      this.abandon(this.signal.reason);
      return;
    }
    this.finish();
    this.resolve(value);
  }

  fail(err: unknown): void {
    if (this.settled) return;
    if (this.signal?.aborted) {
      this.abandon(this.signal.reason);
      return;
    }
    this.finish();
    this.reject(err);
  }

  abandon(reason: unknown): void {
    if (this.settled) return;
    this.abandoned = true;
    this.finish();
    for (const fn of this.handlers ?? []) {
      try {
        fn(reason);
      } catch {
        // clean-up must not turn into an unhandled error
      }
    }
    this.reject(reason);
  }

  promote(now: number): void {
    this.young = false;
    if (this.signal?.aborted) {
      this.abandon(this.signal.reason);
      return;
    }
    const remaining = this.startedAt + this.timeoutMs - now;
    if (remaining <= 0) {
      this.abandon(this.timeoutError());
      return;
    }
    this.timer = setTimeout(() => this.abandon(this.timeoutError()), remaining);
    if (this.signal) {
      const signal = this.signal;
      this.listener = () => this.abandon(signal.reason);
      signal.addEventListener('abort', this.listener, { once: true });
    }
  }

  private finish(): void {
    this.settled = true;
    if (this.young) young.remove(this as Call<unknown>);
    else {
      clearTimeout(this.timer);
      if (this.listener) this.signal!.removeEventListener('abort', this.listener);
    }
  }
}

/** Young calls, oldest first (all share GRACE_MS, so start order is promotion order), and the one timer serving them. */
class YoungCalls {
  private head: Call<unknown> | undefined;
  private tail: Call<unknown> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;

  add(call: Call<unknown>): void {
    call.prev = this.tail;
    if (this.tail) this.tail.next = call;
    else this.head = call;
    this.tail = call;
    // Armed for the oldest call; when it fires it re-arms for whatever is oldest then. Left armed when the list
    // empties (a sequential caller re-fills it long before it fires), so a steady stream of calls costs no timer.
    this.timer ??= setTimeout(this.sweep, GRACE_MS);
  }

  remove(call: Call<unknown>): void {
    if (call.prev) call.prev.next = call.next;
    else this.head = call.next;
    if (call.next) call.next.prev = call.prev;
    else this.tail = call.prev;
    call.prev = call.next = undefined;
  }

  private readonly sweep = (): void => {
    this.timer = undefined;
    const now = performance.now();
    while (this.head && this.head.startedAt + GRACE_MS <= now) {
      const call = this.head;
      this.remove(call);
      call.promote(now);
    }
    if (this.head) this.timer = setTimeout(this.sweep, Math.max(0, this.head.startedAt + GRACE_MS - now));
  };
}

const young = new YoungCalls();

/**
 * Runs `work` until it settles, the signal aborts (rejecting with the abort reason) or `timeoutMs` passes (rejecting
 * with `timeoutError()`). `work` receives the call's scope, to clean up when it is abandoned. A call abandoned before
 * it starts (an aborted signal, a budget of 0 or less) never runs `work`: the caller is told it failed, so it must
 * not have been sent. Stores validate their `timeoutMs` with `validateTimeoutMs`.
 */
export function boundCall<T>(
  signal: AbortSignal | undefined,
  timeoutMs: number,
  timeoutError: () => Error,
  work: (scope: CallScope) => Promise<T>,
): Promise<T> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const now = performance.now();
    const call = new Call<T>(now, timeoutMs, signal, timeoutError, resolve, reject);
    // A budget shorter than the grace period gets its own timer from the start.
    if (timeoutMs > GRACE_MS) young.add(call as Call<unknown>);
    else call.promote(now);
    // Given up before it started (a budget already spent): the caller was told so, and nothing may be sent now.
    if (call.abandoned) return;
    let pending: Promise<T>;
    try {
      pending = work(call);
    } catch (err) {
      call.fail(err);
      return;
    }
    pending.then(
      (value) => call.succeed(value),
      (err: unknown) => call.fail(err),
    );
  });
}

/**
 * The check every store constructor runs on its `timeoutMs` option: a finite number above 0 (a budget of 0 would
 * report every call as timed out). Returns the value, or `fallback` when it is undefined.
 */
export function validateTimeoutMs(store: string, timeoutMs: number | undefined, fallback: number): number {
  if (timeoutMs === undefined) return fallback;
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new InvalidOptionsError([
      {
        path: 'timeoutMs',
        code: typeof timeoutMs === 'number' && timeoutMs <= 0 ? 'too_small' : 'invalid_type',
        message: `${store} timeoutMs must be a finite number of milliseconds above 0 (got ${String(timeoutMs)}).`,
        minimum: 0,
      },
    ]);
  }
  return timeoutMs;
}
