/**
 * Observability for an elector, read from its XState actor without touching the machine: every snapshot is
 * compared with the previous one. A rise of `context.deadlineAt` is a successful acquire/renew whose latency is
 * `now − context.requestStartedAt`; leaving `leader.renewing` without a rise is a failed renewal.
 *
 * `healthy()` follows client-go's HealthzAdaptor: a node that is not leader is healthy; a node that believes it
 * leads is unhealthy once its renew deadline (last successful renewal + renewDeadlineMs, on its own clock) lies more
 * than `maxTolerableExpiredMs` in the past — i.e. it is wedged and a liveness probe should restart it.
 */
import type { ElectionClock } from './clock.js';
import type { Elector, ElectorState } from './createElector.js';
import { InvalidOptionsError } from './errors.js';

export const DEFAULT_LATENCY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] as const;

export type TransitionKind =
  | 'campaign' // follower -> candidate
  | 'acquired' // candidate -> leader
  | 'lost_race' // candidate -> follower
  | 'released' // leader -> follower (resign/stop with release)
  | 'fenced' // leader -> fenced
  | 'rejoined' // fenced -> follower
  | 'shutdown'; // any -> shutdown

export function transitionKind(from: ElectorState, to: ElectorState): TransitionKind | undefined {
  if (to === 'shutdown') return 'shutdown';
  if (to === 'candidate') return 'campaign';
  if (to === 'leader') return 'acquired';
  if (to === 'fenced') return 'fenced';
  if (to === 'follower') return from === 'candidate' ? 'lost_race' : from === 'leader' ? 'released' : from === 'fenced' ? 'rejoined' : undefined;
  return undefined;
}

export interface HistogramSnapshot {
  /** Cumulative counts per upper bound in seconds (Prometheus `le`), the last being +Inf. */
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>;
  readonly sum: number;
  readonly count: number;
}

export interface ElectorMetricsSnapshot {
  readonly election: string;
  readonly nodeId: string;
  readonly state: ElectorState;
  /** Leader state and deadline not passed, now. */
  readonly isLeader: boolean;
  /** The current (or last held) fencing token. */
  readonly epoch: number | null;
  /** Last observed holder. */
  readonly leader: string | null;
  readonly transitions: Readonly<Record<TransitionKind, number>>;
  readonly acquisitions: number;
  readonly renewals: { readonly succeeded: number; readonly failed: number; readonly latencySeconds: HistogramSnapshot };
  /** Since the last successful acquire/renew reply, on this node's clock; null if never. */
  readonly lastRenewalAgeMs: number | null;
  /** Time left before the renew deadline while leader (negative: overdue); null otherwise. */
  readonly deadlineInMs: number | null;
}

export interface HealthOptions {
  /**
   * Extra time past the renew deadline tolerated before reporting unhealthy (client-go: maxTolerableExpiredLease).
   * A finite number ≥ 0 (default 0); anything else throws `InvalidOptionsError` (NaN would make every comparison
   * false: a wedged leader reported healthy forever).
   */
  readonly maxTolerableExpiredMs?: number;
}

export interface HealthReport {
  readonly healthy: boolean;
  readonly state: ElectorState;
  readonly overdueMs: number | null;
  readonly reason: string;
}

export interface ElectorMetrics {
  snapshot(): ElectorMetricsSnapshot;
  /** Prometheus text exposition (version 0.0.4) of this elector's series. */
  text(): string;
  healthy(options?: HealthOptions): boolean;
  health(options?: HealthOptions): HealthReport;
  dispose(): void;
}

class Histogram {
  private readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = bounds.map(() => 0);
  }
  observe(value: number): void {
    this.sum += value;
    this.count += 1;
    this.bounds.forEach((le, i) => {
      if (value <= le) this.counts[i]! += 1;
    });
  }
  snapshot(): HistogramSnapshot {
    return {
      buckets: [...this.bounds.map((le, i) => ({ le, count: this.counts[i]! })), { le: Number.POSITIVE_INFINITY, count: this.count }],
      sum: this.sum,
      count: this.count,
    };
  }
}

function topState(value: unknown): ElectorState {
  if (typeof value === 'string') return value as ElectorState;
  return Object.keys(value as object)[0] as ElectorState;
}

function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  const [key, inner] = Object.entries(value as object)[0]!;
  return `${key}.${statePath(inner)}`;
}

function checkTolerance(value: unknown): void {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return;
  throw new InvalidOptionsError([
    {
      path: 'maxTolerableExpiredMs',
      code: typeof value === 'number' && Number.isFinite(value) ? 'too_small' : 'invalid_type',
      message: `expected a finite number of milliseconds >= 0, got ${String(value)}. Check the value given for maxTolerableExpiredMs (e.g. a probe setting parsed from an unset environment variable).`,
      minimum: 0,
    },
  ]);
}

export function createElectorMetrics(elector: Elector, options: { latencyBucketsSeconds?: readonly number[] } = {}): ElectorMetrics {
  const actor = elector.actor;
  const clock: ElectionClock = actor.getSnapshot().context.clock;
  const histogram = new Histogram(options.latencyBucketsSeconds ?? DEFAULT_LATENCY_BUCKETS_SECONDS);
  const transitions: Record<TransitionKind, number> = { campaign: 0, acquired: 0, lost_race: 0, released: 0, fenced: 0, rejoined: 0, shutdown: 0 };
  let acquisitions = 0;
  let renewFailures = 0;
  let lastRenewalAt: number | undefined;
  let previous = actor.getSnapshot();

  const onSnapshot = (snapshot: typeof previous) => {
    const before = previous;
    previous = snapshot;
    const from = topState(before.value);
    const to = topState(snapshot.value);
    if (from !== to) {
      const kind = transitionKind(from, to);
      if (kind) transitions[kind] += 1;
    }
    const now = clock.now();
    if (snapshot.context.deadlineAt > before.context.deadlineAt) {
      lastRenewalAt = now;
      if (from === 'candidate') acquisitions += 1;
      else histogram.observe(Math.max(0, now - snapshot.context.requestStartedAt) / 1000);
    } else if (statePath(before.value) === 'leader.renewing' && statePath(snapshot.value) !== 'leader.renewing' && statePath(snapshot.value) !== 'leader.verifying') {
      renewFailures += 1;
    } else if (statePath(before.value) === 'leader.verifying' && statePath(snapshot.value) !== 'leader.renewing') {
      renewFailures += 1;
    }
  };
  const subscription = actor.subscribe({ next: onSnapshot, error: () => {} });

  const health = ({ maxTolerableExpiredMs = 0 }: HealthOptions = {}): HealthReport => {
    checkTolerance(maxTolerableExpiredMs);
    const snapshot = actor.getSnapshot();
    const state = topState(snapshot.value);
    if (!snapshot.matches('leader')) return { healthy: true, state, overdueMs: null, reason: `not leading (${state})` };
    const overdue = clock.now() - snapshot.context.deadlineAt;
    if (overdue > maxTolerableExpiredMs) {
      return {
        healthy: false,
        state,
        overdueMs: overdue,
        reason: `believes it leads but its renew deadline passed ${Math.round(overdue)} ms ago (tolerance ${maxTolerableExpiredMs} ms)`,
      };
    }
    return { healthy: true, state, overdueMs: overdue, reason: 'leading and renewing in time' };
  };

  const snapshot = (): ElectorMetricsSnapshot => {
    const s = actor.getSnapshot();
    const now = clock.now();
    const leading = s.matches('leader');
    return {
      election: elector.election,
      nodeId: elector.nodeId,
      state: topState(s.value),
      isLeader: elector.isLeader(),
      epoch: s.context.epoch ?? elector.leader()?.epoch ?? null,
      leader: elector.leader()?.holder ?? null,
      transitions: { ...transitions },
      acquisitions,
      renewals: { succeeded: histogram.count, failed: renewFailures, latencySeconds: histogram.snapshot() },
      lastRenewalAgeMs: lastRenewalAt === undefined ? null : now - lastRenewalAt,
      deadlineInMs: leading ? s.context.deadlineAt - now : null,
    };
  };

  return {
    snapshot,
    text: () => electorExposition(snapshot()),
    healthy: (o) => health(o).healthy,
    health,
    dispose: () => subscription.unsubscribe(),
  };
}

// -----------------------------------------------------------------------------------------------------------------
// Prometheus text exposition

export type Labels = Readonly<Record<string, string>>;

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  return entries.length === 0 ? '' : `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

/** Builds a Prometheus text exposition: one HELP/TYPE header per family, then its samples. */
export class Exposition {
  private readonly lines: string[] = [];
  private readonly declared = new Set<string>();

  family(name: string, type: 'gauge' | 'counter' | 'histogram', help: string): this {
    if (this.declared.has(name)) return this;
    this.declared.add(name);
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, labels: Labels, value: number): this {
    this.lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    return this;
  }

  histogram(name: string, labels: Labels, h: HistogramSnapshot): this {
    for (const b of h.buckets) this.sample(`${name}_bucket`, { ...labels, le: formatValue(b.le) }, b.count);
    this.sample(`${name}_sum`, labels, h.sum);
    this.sample(`${name}_count`, labels, h.count);
    return this;
  }

  toString(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function writeElectorSeries(out: Exposition, m: ElectorMetricsSnapshot): Exposition {
  const labels = { election: m.election, node: m.nodeId };
  out.family('fenced_leader_is_leader', 'gauge', '1 while this node is leader with its renew deadline not passed, else 0.').sample('fenced_leader_is_leader', labels, m.isLeader ? 1 : 0);
  out.family('fenced_leader_epoch', 'gauge', 'Current (or last held/observed) fencing token of the election.').sample('fenced_leader_epoch', labels, m.epoch ?? 0);
  out.family('fenced_leader_transitions_total', 'counter', 'Elector state transitions by kind.');
  for (const [kind, count] of Object.entries(m.transitions)) out.sample('fenced_leader_transitions_total', { ...labels, kind }, count);
  out.family('fenced_leader_acquisitions_total', 'counter', 'Successful lease acquisitions.').sample('fenced_leader_acquisitions_total', labels, m.acquisitions);
  out.family('fenced_leader_renewal_failures_total', 'counter', 'Renewal attempts that failed, timed out or found the lease changed.').sample('fenced_leader_renewal_failures_total', labels, m.renewals.failed);
  out.family('fenced_leader_renewal_latency_seconds', 'histogram', 'Latency of successful lease renewals, request sent to reply.').histogram('fenced_leader_renewal_latency_seconds', labels, m.renewals.latencySeconds);
  out
    .family('fenced_leader_last_renewal_age_seconds', 'gauge', 'Time since the last successful acquire or renewal on this node (NaN if never).')
    .sample('fenced_leader_last_renewal_age_seconds', labels, m.lastRenewalAgeMs === null ? Number.NaN : m.lastRenewalAgeMs / 1000);
  return out;
}

export function electorExposition(m: ElectorMetricsSnapshot): string {
  return writeElectorSeries(new Exposition(), m).toString();
}
