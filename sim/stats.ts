import { leaderIntervals, metaOf } from './checkers.js';
import type { TraceLine } from './trace.js';

export interface RunStats {
  readonly simulatedMs: number;
  /** Share of the run during which some node was in `leader` (after the first election). */
  readonly availability: number;
  /** Leaderless gaps after a leader existed, ms. */
  readonly failovers: number[];
  /** Distinct epochs that led. */
  readonly epochs: number;
  readonly acceptedWrites: number;
  readonly rejectedWrites: number;
}

export function summarize(trace: readonly TraceLine[]): RunStats {
  const meta = metaOf(trace);
  const duration = Number(meta?.options.durationMs ?? 0);
  const intervals = leaderIntervals(trace);
  const failovers: number[] = [];
  let covered = 0;
  let cursor = Number.NaN;
  let first = Number.NaN;
  for (const i of intervals) {
    if (Number.isNaN(cursor)) {
      first = i.start;
      cursor = i.start;
    }
    if (i.start > cursor) failovers.push(i.start - cursor);
    const from = Math.max(cursor, i.start);
    if (i.end > from) {
      covered += i.end - from;
      cursor = i.end;
    }
  }
  const span = Number.isNaN(first) ? duration : duration - first;
  let accepted = 0;
  let rejected = 0;
  for (const l of trace) {
    if (l.kind !== 'resource') continue;
    if (l.accepted) accepted++;
    else rejected++;
  }
  return {
    simulatedMs: duration,
    availability: span > 0 ? Math.min(1, covered / span) : 0,
    failovers,
    epochs: new Set(intervals.map((i) => i.epoch)).size,
    acceptedWrites: accepted,
    rejectedWrites: rejected,
  };
}

/** Nearest-rank percentile (p in 0–100) of an ascending array; NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
