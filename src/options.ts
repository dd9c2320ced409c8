import { z } from 'zod';
import { InvalidOptionsError, type OptionIssue } from './errors.js';

/**
 * Timing options shared by the machine, the elector and the simulator.
 * Defaults follow client-go's leaderelection (15 s / 10 s / 2 s).
 */
/** Node timers overflow above 2³¹−1 ms (about 24.8 days) and fire after 1 ms instead. */
const MAX_TIMER_MS = 2_147_483_647;
const durationMs = () => z.number().int().positive().max(MAX_TIMER_MS);

export const timingSchema = z.object({
  leaseDurationMs: durationMs().default(15_000),
  renewDeadlineMs: durationMs().default(10_000),
  retryPeriodMs: durationMs().default(2_000),
  /** The largest rate at which any node's monotonic clock may run fast or slow (0.01 = 1 %). */
  maxDriftRate: z.number().min(0).max(0.5).default(0.01),
  /** Bound on each store call; defaults to retryPeriodMs. A leader's calls are further cut to its time left. */
  requestTimeoutMs: durationMs().optional(),
});

export type TimingOptions = Omit<z.output<typeof timingSchema>, 'requestTimeoutMs'> & { requestTimeoutMs: number };
export type TimingOptionsInput = z.input<typeof timingSchema>;

/**
 * The inequality that makes leases safe without synchronized clocks: the longest real time a leader can believe
 * it still leads (its deadline on a clock running slow) must end before the shortest real time a follower waits
 * (the lease duration on a clock running fast). See docs/protocol.md.
 */
export function resolveTiming(t: z.output<typeof timingSchema>): TimingOptions {
  return { ...t, requestTimeoutMs: t.requestTimeoutMs ?? t.retryPeriodMs };
}

export function timingIssues(t: TimingOptions): OptionIssue[] {
  const issues: OptionIssue[] = [];
  const fastest = 1 + t.maxDriftRate;
  const slowest = 1 - t.maxDriftRate;
  if (t.renewDeadlineMs * fastest >= t.leaseDurationMs * slowest) {
    const minLease = Math.floor((t.renewDeadlineMs * fastest) / slowest) + 1;
    const maxDeadline = Math.ceil((t.leaseDurationMs * slowest) / fastest) - 1;
    issues.push({
      path: 'renewDeadlineMs',
      code: 'timing_unsafe',
      message:
        `renewDeadlineMs × (1 + maxDriftRate) = ${round(t.renewDeadlineMs * fastest)} must be below ` +
        `leaseDurationMs × (1 − maxDriftRate) = ${round(t.leaseDurationMs * slowest)}, or a follower could take the lease ` +
        `while the old leader still believes it leads. Raise leaseDurationMs to at least ${minLease} or lower renewDeadlineMs to at most ${maxDeadline}.`,
      maximum: maxDeadline,
    });
  }
  if (t.retryPeriodMs >= t.renewDeadlineMs) {
    issues.push({
      path: 'retryPeriodMs',
      code: 'too_big',
      message: `retryPeriodMs (${t.retryPeriodMs}) must be below renewDeadlineMs (${t.renewDeadlineMs}) so the leader can renew at least once before its deadline. Lower retryPeriodMs to at most ${t.renewDeadlineMs - 1} (a third of the deadline is typical).`,
      maximum: t.renewDeadlineMs - 1,
    });
  }
  if (t.requestTimeoutMs > t.renewDeadlineMs) {
    issues.push({
      path: 'requestTimeoutMs',
      code: 'too_big',
      message: `requestTimeoutMs (${t.requestTimeoutMs}) may not exceed renewDeadlineMs (${t.renewDeadlineMs}): a reply that late is useless. Lower it to at most ${t.renewDeadlineMs}.`,
      maximum: t.renewDeadlineMs,
    });
  }
  return issues;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Turns zod's issues into ours: same `code`, plus a path and a message that names the fix. */
export function fromZodIssues(error: z.ZodError): OptionIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    const base: { path: string; code: string; message: string; minimum?: number; maximum?: number } = {
      path,
      code: issue.code,
      message: `${issue.message}. Check the value given for ${path || 'the options object'}.`,
    };
    if ('minimum' in issue && typeof issue.minimum === 'number') base.minimum = issue.minimum;
    if ('maximum' in issue && typeof issue.maximum === 'number') base.maximum = issue.maximum;
    return base;
  });
}

export function parseTiming(input: TimingOptionsInput = {}): TimingOptions {
  const result = timingSchema.safeParse(input);
  if (!result.success) throw new InvalidOptionsError(fromZodIssues(result.error));
  const timing = resolveTiming(result.data);
  const issues = timingIssues(timing);
  if (issues.length > 0) throw new InvalidOptionsError(issues);
  return timing;
}
