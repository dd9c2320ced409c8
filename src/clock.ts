/**
 * The only source of time for an elector. `setTimeout`/`clearTimeout` make it an XState `Clock`, so the same object
 * is handed to `createActor(..., { clock })`; `now()` is a monotonic reading (durations only, never compared across
 * nodes); `wallNow()` is informational (it is written into records for operators and never decides anything).
 */
export interface ElectionClock {
  setTimeout(fn: (...args: any[]) => void, timeoutMs: number): unknown;
  clearTimeout(id: unknown): void;
  /** Monotonic milliseconds on this node. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch; for display only. */
  wallNow(): number;
}

export const realClock: ElectionClock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
  now: () => performance.now(),
  wallNow: () => Date.now(),
};

/** The injected wall clock as ISO 8601, for records operators read; it never decides anything. */
export function wallIso(clock: Pick<ElectionClock, 'wallNow'>): string {
  return new Date(clock.wallNow()).toISOString();
}
