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
  const safe = (lease: number, deadline: number) => deadline * fastest < lease * slowest;
  if (!safe(t.leaseDurationMs, t.renewDeadlineMs)) {
    // Estimated in real numbers, then settled with the very predicate above, so the fix we name is one we accept.
    let minLease = Math.max(1, Math.floor((t.renewDeadlineMs * fastest) / slowest));
    while (minLease > 1 && safe(minLease - 1, t.renewDeadlineMs)) minLease--;
    while (!safe(minLease, t.renewDeadlineMs)) minLease++;
    let maxDeadline = Math.max(0, Math.ceil((t.leaseDurationMs * slowest) / fastest));
    while (maxDeadline > 0 && !safe(t.leaseDurationMs, maxDeadline)) maxDeadline--;
    // Only fixes the schema accepts too: a lease above the timer cap, or a deadline below 1 ms, is no fix.
    const fixes: string[] = [];
    if (minLease <= MAX_TIMER_MS) fixes.push(`Raise leaseDurationMs to at least ${minLease}`);
    if (maxDeadline >= 1) fixes.push(`${fixes.length ? 'lower' : 'Lower'} renewDeadlineMs to at most ${maxDeadline}`);
    if (fixes.length === 0) fixes.push('Choose a leaseDurationMs well above renewDeadlineMs (the defaults are 15000 and 10000)');
    const [deadlineSide, leaseSide] = distinct(t.renewDeadlineMs * fastest, t.leaseDurationMs * slowest);
    issues.push({
      path: 'renewDeadlineMs',
      code: 'timing_unsafe',
      message:
        `renewDeadlineMs × (1 + maxDriftRate) = ${deadlineSide} must be below ` +
        `leaseDurationMs × (1 − maxDriftRate) = ${leaseSide}, or a follower could take the lease ` +
        `while the old leader still believes it leads. ${fixes.join(' or ')}.`,
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

/** The two numbers with two decimals, or as many more as it takes for unequal numbers to print unequal. */
function distinct(a: number, b: number): [string, string] {
  for (let digits = 2; digits < 12; digits++) {
    const pair: [string, string] = [String(Number(a.toFixed(digits))), String(Number(b.toFixed(digits)))];
    if (pair[0] !== pair[1] || a === b) return pair;
  }
  return [String(a), String(b)];
}

/** Turns zod's issues into ours: same `code`, plus a path and a message that names the fix. */
export function fromZodIssues(error: z.ZodError, knownKeys: readonly string[] = []): OptionIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      const hints = issue.keys.map((key) => {
        const near = knownKeys.find((known) => known.toLowerCase() === key.toLowerCase());
        return near ? `"${key}" (did you mean "${near}"?)` : `"${key}"`;
      });
      return {
        path: [path, issue.keys[0]].filter(Boolean).join('.'),
        code: issue.code,
        message: `unknown option ${hints.join(', ')}: it would be ignored. Remove it or fix its spelling; the options are listed in the README.`,
      };
    }
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
