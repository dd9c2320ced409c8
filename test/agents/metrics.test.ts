import { describe, expect, it } from 'vitest';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { createElector } from '../../src/createElector.js';
import { InvalidOptionsError } from '../../src/errors.js';
import { createElectorMetrics, Exposition, formatValue } from '../../src/metrics.js';
import { TestClock } from '../../src/TestClock.js';
import { FaultyLink } from '../helpers/faultyStore.js';
import { tasks, timing, World } from './helpers.js';

/** A strict-enough parser of the Prometheus text format (0.0.4) for our own output. */
function parseExposition(text: string) {
  expect(text.endsWith('\n')).toBe(true);
  const families = new Map<string, { type: string; help: string; samples: Array<{ name: string; labels: Record<string, string>; value: number }> }>();
  let current: string | undefined;
  for (const line of text.trimEnd().split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      expect(families.has(m[1]!)).toBe(false); // one header per family
      families.set(m[1]!, { type: '', help: m[2]!, samples: [] });
      current = m[1]!;
      continue;
    }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (gauge|counter|histogram)$/.exec(line);
    if (m) {
      expect(m[1]).toBe(current);
      families.get(m[1]!)!.type = m[2]!;
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    expect(m, `malformed sample line: ${line}`).not.toBeNull();
    const [, name, rawLabels, rawValue] = m!;
    expect(name!.startsWith(current!), `${name} outside its family ${current}`).toBe(true);
    const labels: Record<string, string> = {};
    for (const part of rawLabels ? rawLabels.match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g)! : []) {
      const eq = part.indexOf('=');
      labels[part.slice(0, eq)] = part.slice(eq + 2, -1);
    }
    const value = rawValue === '+Inf' ? Number.POSITIVE_INFINITY : rawValue === 'NaN' ? Number.NaN : Number(rawValue);
    expect(Number.isNaN(value) && rawValue !== 'NaN').toBe(false);
    families.get(current!)!.samples.push({ name: name!, labels, value });
  }
  return families;
}

describe('metrics', () => {
  it('exposes leader status, epoch, transitions, renewal latency histogram, renewal age, stale agents and requeues', async () => {
    const world = new World();
    const o1 = world.coordinator('o1');
    const o2 = world.coordinator('o2');
    o1.start();
    await world.clock.advance(0);
    o2.start();
    const a1 = world.worker('a1', 100_000);
    await a1.agent.start();
    await o1.submitTasks(tasks(1));
    await world.run(1000);
    a1.crash();
    await world.until(() => world.agentRecord('a1')?.state === 'stale', 3000);
    await world.run(100);

    const snap = o1.metrics();
    expect(snap).toMatchObject({ isLeader: true, epoch: 1, state: 'leader', leader: 'o1', staleAgents: 1, staleAgentsMarked: 1, requeuedTasks: 1, respawnRequests: 1 });
    expect(snap.transitions.acquired).toBe(1);
    expect(snap.renewals.succeeded).toBeGreaterThan(5);
    expect(snap.lastRenewalAgeMs).toBeLessThanOrEqual(timing.retryPeriodMs + 10);

    const families = parseExposition(o1.metricsText());
    const one = (name: string, labels: Record<string, string> = {}) =>
      [...families.values()]
        .flatMap((f) => f.samples)
        .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .map((s) => s.value);
    expect(families.get('fenced_leader_is_leader')!.type).toBe('gauge');
    expect(one('fenced_leader_is_leader')).toEqual([1]);
    expect(families.get('fenced_leader_is_leader')!.samples[0]!.labels).toEqual({ election: 't', node: 'o1' });
    expect(one('fenced_leader_epoch')).toEqual([1]);
    expect(one('fenced_leader_transitions_total', { kind: 'acquired' })).toEqual([1]);
    expect(one('fenced_leader_stale_agents')).toEqual([1]);
    expect(one('fenced_leader_requeued_tasks_total')).toEqual([1]);
    expect(one('fenced_leader_last_renewal_age_seconds')[0]).toBeLessThan(1);
    const hist = families.get('fenced_leader_renewal_latency_seconds')!;
    expect(hist.type).toBe('histogram');
    const buckets = hist.samples.filter((s) => s.name.endsWith('_bucket'));
    const counts = buckets.map((b) => b.value);
    expect(counts).toEqual([...counts].sort((a, b) => a - b)); // cumulative
    expect(buckets.at(-1)!.labels.le).toBe('+Inf');
    expect(counts.at(-1)).toBe(one('fenced_leader_renewal_latency_seconds_count')[0]);
    expect(counts.at(-1)).toBe(snap.renewals.succeeded);

    // The follower: not leader, same epoch observed, never renewed.
    const follower = parseExposition(o2.metricsText());
    expect(follower.get('fenced_leader_is_leader')!.samples[0]!.value).toBe(0);
    expect(follower.get('fenced_leader_epoch')!.samples[0]!.value).toBe(1);
    expect(follower.get('fenced_leader_last_renewal_age_seconds')!.samples[0]!.value).toBeNaN();
    expect(follower.get('fenced_leader_requeued_tasks_total')!.samples[0]!.value).toBe(0);
  });

  it('escapes label values and formats special numbers', () => {
    const text = new Exposition().family('x_total', 'counter', 'a\nb').sample('x_total', { v: 'a"b\\c\nd' }, Number.POSITIVE_INFINITY).toString();
    expect(text).toBe('# HELP x_total a\\nb\n# TYPE x_total counter\nx_total{v="a\\"b\\\\c\\nd"} +Inf\n');
    expect(formatValue(Number.NaN)).toBe('NaN');
    expect(formatValue(0.25)).toBe('0.25');
  });

  it('counts a fence and failed renewals', async () => {
    const clock = new TestClock();
    const link = new FaultyLink(new MemoryLeaseStore());
    const e = createElector({ election: 'm', nodeId: 'n0', store: link, clock, ...timing });
    const m = createElectorMetrics(e);
    e.start();
    await clock.advance(500);
    link.mode = 'fail';
    await clock.advance(1500);
    const snap = m.snapshot();
    expect(snap.transitions.fenced).toBe(1);
    expect(snap.renewals.failed).toBeGreaterThanOrEqual(3);
    expect(snap.isLeader).toBe(false);
  });
});

describe('healthy({ maxTolerableExpiredMs })', () => {
  it('is healthy while leading and renewing, and while following', async () => {
    const world = new World();
    const [o1, o2] = [world.coordinator('o1'), world.coordinator('o2')];
    o1.start();
    await world.clock.advance(0);
    o2.start();
    await world.run(3000, 50);
    expect(o1.healthy({ maxTolerableExpiredMs: 0 })).toBe(true);
    expect(o2.healthy()).toBe(true);
    expect(o2.health().reason).toMatch(/not leading/);
  });

  it('is unhealthy when the node still believes it leads but its last renewal is older than the deadline + tolerance', async () => {
    const clock = new TestClock();
    const e = createElector({ election: 'h', nodeId: 'n0', store: new MemoryLeaseStore(), clock, ...timing });
    const m = createElectorMetrics(e);
    e.start();
    await clock.advance(1000);
    expect(m.healthy({ maxTolerableExpiredMs: 500 })).toBe(true);
    // Wedge the node: its actor stops processing (as a blocked event loop would), so it never fences itself.
    e.actor.stop();
    expect(e.actor.getSnapshot().matches('leader')).toBe(true);
    clock.jump(timing.renewDeadlineMs);
    expect(m.healthy({ maxTolerableExpiredMs: 500 })).toBe(true); // past the deadline, within the tolerance
    clock.jump(600);
    const report = m.health({ maxTolerableExpiredMs: 500 });
    expect(report.healthy).toBe(false);
    expect(report.overdueMs).toBeGreaterThan(500);
    expect(report.reason).toMatch(/believes it leads/);
    expect(m.healthy({ maxTolerableExpiredMs: 10_000 })).toBe(true);
  });

  it('refuses a tolerance that is NaN, infinite or negative (InvalidOptionsError), rather than reporting a wedged leader healthy', async () => {
    const clock = new TestClock();
    const e = createElector({ election: 'h', nodeId: 'n0', store: new MemoryLeaseStore(), clock, ...timing });
    const m = createElectorMetrics(e);
    e.start();
    await clock.advance(1000);
    e.actor.stop(); // wedged: still believes it leads
    clock.jump(timing.renewDeadlineMs + 60_000);
    expect(m.healthy({ maxTolerableExpiredMs: 0 })).toBe(false);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, -1]) {
      const err = (() => {
        try {
          return m.healthy({ maxTolerableExpiredMs: bad });
        } catch (caught) {
          return caught;
        }
      })();
      expect(InvalidOptionsError.is(err)).toBe(true);
      expect((err as InvalidOptionsError).issues[0]).toMatchObject({ path: 'maxTolerableExpiredMs' });
    }
    expect(() => m.health({ maxTolerableExpiredMs: Number.NaN })).toThrow(/maxTolerableExpiredMs/);
    expect(m.healthy({})).toBe(false); // absent: the default 0
  });
});
