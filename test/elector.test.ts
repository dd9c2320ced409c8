import { afterAll, describe, expect, it } from 'vitest';
import type { CallOptions, Json } from '../src/adapters/LeaseStore.js';
import { MemoryLeaseStore } from '../src/adapters/MemoryLeaseStore.js';
import { createElector, type Elector, type ElectorOptions } from '../src/createElector.js';
import { InvalidOptionsError, NotLeaderError, StaleTokenError } from '../src/errors.js';
import { FenceGuard } from '../src/FenceGuard.js';
import { electionMachine } from '../src/machines/electionMachine.js';
import { leaseKey } from '../src/machines/leaseRecord.js';
import { parseTiming } from '../src/options.js';
import { TestClock } from '../src/TestClock.js';
import { FaultyLink } from './helpers/faultyStore.js';
import { allTransitionBranches, createCoverageRecorder } from './helpers/transitionCoverage.js';

const coverage = createCoverageRecorder();
const timing = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 200 };

function cluster(n: number, extra: Partial<ElectorOptions> = {}) {
  const clock = new TestClock();
  const shared = new MemoryLeaseStore();
  const links = Array.from({ length: n }, () => new FaultyLink(shared));
  const logs: string[] = [];
  const electors = links.map((link, i) =>
    createElector({
      election: 'test',
      nodeId: `n${i}`,
      store: link,
      clock,
      inspect: coverage.inspect,
      logger: { info: () => {}, warn: (_f, m) => logs.push(`n${i} ${m}`), error: (_f, m) => logs.push(`n${i} ${m}`) },
      ...timing,
      ...extra,
    }),
  );
  const leaders = () => electors.filter((e) => e.isLeader()).map((e) => e.nodeId);
  return { clock, shared, links, electors, leaders, logs };
}

async function startAll(electors: Elector[], clock: TestClock) {
  for (const e of electors) e.start();
  await clock.advance(0);
}

describe('one elector', () => {
  it('acquires an absent lease at once with epoch 1, then renews without raising the epoch', async () => {
    const { clock, electors, shared } = cluster(1);
    await startAll(electors, clock);
    const [e] = electors;
    expect(e!.state()).toBe('leader');
    expect(e!.fencingToken()).toBe(1);
    expect(e!.assertLeader()).toBe(1);
    expect(e!.timeLeft()).toBe(timing.renewDeadlineMs);
    const before = (shared.readSync(leaseKey('test'))!.value as { renewals: number }).renewals;
    await clock.advance(2000);
    const record = shared.readSync(leaseKey('test'))!.value as { epoch: number; renewals: number; holder: string };
    expect(record.epoch).toBe(1);
    expect(record.holder).toBe('n0');
    expect(record.renewals).toBeGreaterThanOrEqual(before + 9);
    expect(e!.isLeader()).toBe(true);
  });

  it('stop() aborts leader work, waits for it, releases the lease keeping the epoch, and ends in shutdown', async () => {
    const { clock, electors, shared } = cluster(1);
    const events: string[] = [];
    electors[0]!.whileLeader(async ({ token, signal }) => {
      events.push(`start ${token}`);
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
      await clock.advance(0);
      events.push('work settled');
    });
    await startAll(electors, clock);
    expect(events).toEqual(['start 1']);
    const stopping = electors[0]!.stop();
    await clock.advance(0);
    await stopping;
    events.push('stopped');
    expect(events).toEqual(['start 1', 'work settled', 'stopped']);
    expect(electors[0]!.state()).toBe('shutdown');
    expect(shared.readSync(leaseKey('test'))!.value).toMatchObject({ holder: null, epoch: 1 });
    expect(() => electors[0]!.assertLeader()).toThrow(NotLeaderError);
  });

  it('leaves the lease to expire instead of releasing it when leader work will not settle in time', async () => {
    const { clock, electors, shared, logs } = cluster(1);
    electors[0]!.whileLeader(() => new Promise(() => {}));
    await startAll(electors, clock);
    const stopping = electors[0]!.stop();
    await clock.advance(1000);
    await stopping;
    expect(electors[0]!.state()).toBe('shutdown');
    expect(shared.readSync(leaseKey('test'))!.value).toMatchObject({ holder: 'n0', epoch: 1 });
    expect(logs.some((l) => l.includes('did not settle'))).toBe(true);
  });

  it('never acquires below the highest epoch it has seen, even after the store forgot everything', async () => {
    const { clock, electors, shared } = cluster(1);
    await startAll(electors, clock);
    await electors[0]!.resign();
    electors[0]!.campaign();
    await clock.advance(400);
    expect(electors[0]!.fencingToken()).toBe(2);
    shared.wipe();
    // The leader's renewal now conflicts (key absent): it verifies, sees no record and fences.
    await clock.advance(2000);
    expect(electors[0]!.fencingToken()).toBe(3);
  });

  it('ignores a malformed lease record instead of overwriting it', async () => {
    const { clock, electors, shared, logs } = cluster(1);
    shared.commitSync([{ key: leaseKey('test'), expectedVersion: null, value: { holder: 42 } }]);
    await startAll(electors, clock);
    await clock.advance(5000);
    expect(electors[0]!.state()).toBe('follower');
    expect(shared.readSync(leaseKey('test'))!.value).toEqual({ holder: 42 });
    expect(logs.some((l) => l.includes('malformed'))).toBe(true);
  });
});

describe('several electors on one store', () => {
  it('elects exactly one leader among three, and keeps it', async () => {
    const { clock, electors, leaders } = cluster(3);
    await startAll(electors, clock);
    for (let t = 0; t < 50; t++) {
      await clock.advance(100);
      expect(leaders()).toHaveLength(1);
    }
    expect(electors.map((e) => e.leader()?.epoch)).toEqual([1, 1, 1]);
  });

  it('after the leader crashes, another takes over with a higher token once the lease has expired', async () => {
    const { clock, electors } = cluster(3);
    await startAll(electors, clock);
    const first = electors.find((e) => e.isLeader())!;
    const crashedAt = clock.now();
    first.actor.stop(); // a crash: no release
    let tookOverAt: number | undefined;
    for (let t = 0; t < 60 && tookOverAt === undefined; t++) {
      await clock.advance(50);
      if (electors.some((e) => e !== first && e.isLeader())) tookOverAt = clock.now();
    }
    const second = electors.find((e) => e.isLeader())!;
    expect(second.nodeId).not.toBe(first.nodeId);
    expect(second.fencingToken()).toBe(2);
    // Not before the lease duration, and within lease + retry period + a poll.
    expect(tookOverAt! - crashedAt).toBeGreaterThanOrEqual(timing.leaseDurationMs);
    expect(tookOverAt! - crashedAt).toBeLessThanOrEqual(timing.leaseDurationMs + 2 * timing.retryPeriodMs);
  });

  it('a leader cut off from the store fences itself before anyone else can take the lease', async () => {
    const { clock, electors, links } = cluster(2);
    await startAll(electors, clock);
    const leaderIndex = electors.findIndex((e) => e.isLeader());
    const other = electors[1 - leaderIndex]!;
    links[leaderIndex]!.mode = 'hang';
    let fencedAt: number | undefined;
    let takenAt: number | undefined;
    electors[leaderIndex]!.subscribe((c) => {
      if (c.state === 'fenced') fencedAt = clock.now();
    });
    other.subscribe((c) => {
      if (c.state === 'leader') takenAt = clock.now();
    });
    await clock.advance(3000);
    expect(fencedAt).toBeDefined();
    expect(takenAt).toBeDefined();
    expect(fencedAt!).toBeLessThan(takenAt!);
    expect(other.fencingToken()).toBe(2);
    expect(electors[leaderIndex]!.state()).toBe('follower'); // rejoined by policy
  });

  it('with onStale "shutdown", a fenced leader shuts down for good', async () => {
    const { clock, electors, links } = cluster(2, { onStale: 'shutdown' });
    await startAll(electors, clock);
    const leaderIndex = electors.findIndex((e) => e.isLeader());
    links[leaderIndex]!.mode = 'fail';
    await clock.advance(3000);
    expect(electors[leaderIndex]!.state()).toBe('shutdown');
    expect(electors[leaderIndex]!.actor.getSnapshot().status).toBe('done');
  });

  it('a paused leader that wakes past its deadline is not leader at call time, and its token is rejected', async () => {
    const { clock, electors } = cluster(2);
    await startAll(electors, clock);
    const leaderIndex = electors.findIndex((e) => e.isLeader());
    const stale = electors[leaderIndex]!;
    const other = electors[1 - leaderIndex]!;
    const guard = new FenceGuard();
    const staleToken = stale.assertLeader();
    guard.admitSync(staleToken);
    stale.actor.stop(); // freeze: no timers, no handlers
    await clock.advance(3000);
    guard.admitSync(other.assertLeader());
    // The stale node still *thinks* it is in `leader` (its actor was frozen), but the call-time check says no.
    expect(stale.actor.getSnapshot().matches('leader')).toBe(true);
    expect(stale.isLeader()).toBe(false);
    expect(() => stale.assertLeader()).toThrowError(expect.objectContaining({ code: 'ERR_NOT_LEADER', reason: 'deadline-passed' }));
    expect(() => guard.admitSync(staleToken)).toThrow(StaleTokenError);
  });

  it('a leader that sees another holder on the record fences at once', async () => {
    const { clock, electors, shared } = cluster(1);
    await startAll(electors, clock);
    const entry = shared.readSync(leaseKey('test'))!;
    shared.commitSync([{ key: leaseKey('test'), expectedVersion: entry.version, value: { holder: 'intruder', epoch: 7, leaseDurationMs: 1500, renewals: 0 } }]);
    await clock.advance(250);
    expect(electors[0]!.state()).toBe('fenced');
    expect(electors[0]!.actor.getSnapshot().context.fenceReason).toBe('higher-epoch');
    // It rejoins as a follower and must wait out the intruder's lease like anyone else.
    await clock.advance(1000);
    expect(electors[0]!.state()).toBe('follower');
    await clock.advance(1000);
    expect(electors[0]!.fencingToken()).toBe(8);
  });

  it('a renewal applied but unanswered is recovered: the leader adopts its own write and keeps its epoch', async () => {
    const { clock, electors, links } = cluster(1);
    await startAll(electors, clock);
    links[0]!.mode = 'drop-reply';
    await clock.advance(250);
    links[0]!.mode = 'ok';
    await clock.advance(1000);
    expect(electors[0]!.isLeader()).toBe(true);
    expect(electors[0]!.fencingToken()).toBe(1);
  });

  it('resign() hands over: the resigned node stops standing until campaign()', async () => {
    const { clock, electors } = cluster(2);
    await startAll(electors, clock);
    const first = electors.find((e) => e.isLeader())!;
    const second = electors.find((e) => e !== first)!;
    await first.resign();
    expect(first.state()).toBe('follower');
    await clock.advance(250);
    expect(second.fencingToken()).toBe(2);
    await second.resign();
    await clock.advance(5000);
    expect(electors.every((e) => !e.isLeader())).toBe(true);
    first.campaign();
    await clock.advance(250);
    expect(first.fencingToken()).toBe(3);
  });

  it('resign() while acquiring gives back what was just won', async () => {
    const { clock, electors, shared } = cluster(1);
    electors[0]!.subscribe((c) => {
      if (c.state === 'candidate') electors[0]!.actor.send({ type: 'RESIGN' }); // lands while the acquisition is in flight
    });
    electors[0]!.start();
    await clock.advance(100);
    expect(electors[0]!.state()).toBe('follower');
    expect(shared.readSync(leaseKey('test'))!.value).toMatchObject({ holder: null, epoch: 1 });
  });

  it('drops a reply that arrives after its request timed out', async () => {
    const { clock, electors, links } = cluster(1);
    links[0]!.slow = { clock, delayMs: 500 };
    links[0]!.plan.push({ op: 'write', mode: 'slow' }); // the acquisition is applied, its reply comes at 500 ms
    await startAll(electors, clock);
    await clock.advance(200); // request timeout: back to following
    expect(electors[0]!.state()).toBe('follower');
    await clock.advance(350); // the late "written" reply has arrived by now and must change nothing
    expect(electors[0]!.state()).toBe('follower');
    expect(electors[0]!.fencingToken()).toBeUndefined();
    expect(electors[0]!.actor.getSnapshot().context.epoch).toBeUndefined();
  });

  it('resign() racing an acquisition that lands first winds down the new term before releasing', async () => {
    const { clock, electors, shared, links } = cluster(1);
    let workRunning = false;
    const releases: boolean[] = [];
    const commit = shared.commitSync.bind(shared);
    shared.commitSync = (ops) => {
      if (ops.some((op) => (op.value as { holder?: unknown } | undefined)?.holder === null)) releases.push(workRunning);
      return commit(ops);
    };
    electors[0]!.whileLeader(async ({ signal }) => {
      workRunning = true;
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve())));
      await new Promise<void>((resolve) => clock.setTimeout(resolve, 50)); // cleanup takes a while
      workRunning = false;
    });
    links[0]!.plan.push({ op: 'write', mode: 'drop-reply' }); // the acquisition is applied; we deliver its reply by hand
    await startAll(electors, clock);
    expect(electors[0]!.state()).toBe('candidate');
    const { requestId } = electors[0]!.actor.getSnapshot().context;
    const resigned = electors[0]!.resign(); // sees a candidate, and awaits...
    electors[0]!.actor.send({ type: 'lease.written', requestId, version: shared.readSync(leaseKey('test'))!.version });
    expect(electors[0]!.state()).toBe('leader'); // ...while the acquisition lands
    let done = false;
    void resigned.then(() => {
      done = true;
    });
    for (let i = 0; i < 100 && !done; i++) await clock.advance(10);
    expect(done).toBe(true);
    expect(releases).toEqual([false]); // released exactly once, and never while leader work ran
    expect(electors[0]!.state()).toBe('follower');
  });

  it('a follower does not lend the age of a record to a different record under the same version string', async () => {
    const { clock, electors, shared } = cluster(1);
    shared.commitSync([{ key: leaseKey('test'), expectedVersion: null, value: { holder: 'x', epoch: 5, leaseDurationMs: 1500, renewals: 0 } }]);
    await startAll(electors, clock);
    await clock.advance(1400); // watched "x" for 1400 ms
    const version = shared.readSync(leaseKey('test'))!.version;
    // The store loses its data and hands the same version string to y's fresh record.
    const forged = new MemoryLeaseStore();
    forged.commitSync([{ key: leaseKey('test'), expectedVersion: null, value: { holder: 'y', epoch: 6, leaseDurationMs: 1500, renewals: 0 } }]);
    const original = shared.readSync.bind(shared);
    shared.readSync = (key: string) => {
      const entry = original(key);
      return entry && { ...entry, version, value: { holder: 'y', epoch: 6, leaseDurationMs: 1500, renewals: 0 } };
    };
    await clock.advance(400); // 1800 ms after first seeing "x", but only ~400 ms after first seeing y's record
    expect(electors[0]!.state()).toBe('follower');
    shared.readSync = original;
  });

  it('times out a hanging store call and ignores its late reply', async () => {
    const { clock, electors, links, logs } = cluster(1);
    links[0]!.mode = 'hang';
    await startAll(electors, clock);
    await clock.advance(1100);
    expect(logs.some((l) => l.includes('timed out'))).toBe(true);
    links[0]!.mode = 'ok';
    await clock.advance(300);
    expect(electors[0]!.fencingToken()).toBe(1);
  });

  it('stop() from a follower or candidate ends in shutdown without touching the lease', async () => {
    const { clock, electors } = cluster(2);
    await startAll(electors, clock);
    const follower = electors.find((e) => !e.isLeader())!;
    await follower.stop();
    expect(follower.state()).toBe('shutdown');
    const leader = electors.find((e) => e.isLeader())!;
    expect(leader.fencingToken()).toBe(1);
    const fresh = cluster(1);
    fresh.electors[0]!.start();
    fresh.electors[0]!.actor.send({ type: 'STOP' });
    expect(fresh.electors[0]!.state()).toBe('shutdown');
  });

  it('a fenced node told to stop shuts down', async () => {
    const { clock, electors, links } = cluster(1);
    await startAll(electors, clock);
    links[0]!.mode = 'fail';
    await clock.advance(1100);
    expect(electors[0]!.state()).toBe('fenced');
    await electors[0]!.stop();
    expect(electors[0]!.state()).toBe('shutdown');
  });

  it('leader work registered late still runs in the current term, and is aborted when the term ends', async () => {
    const { clock, electors, links } = cluster(1);
    await startAll(electors, clock);
    let aborted = false;
    electors[0]!.whileLeader(
      ({ signal }) =>
        new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve();
          }),
        ),
    );
    links[0]!.mode = 'hang';
    await clock.advance(1100);
    expect(aborted).toBe(true);
  });
});

describe('store failures at every step', () => {
  it('a follower whose read fails waits and reads again', async () => {
    const { clock, electors, links } = cluster(1);
    links[0]!.plan.push({ op: 'read', mode: 'fail' });
    await startAll(electors, clock);
    expect(electors[0]!.state()).toBe('follower');
    await clock.advance(250);
    expect(electors[0]!.fencingToken()).toBe(1);
  });

  it('a candidate whose acquisition fails, or times out, goes back to following', async () => {
    for (const mode of ['fail', 'hang'] as const) {
      const { clock, electors, links } = cluster(1);
      links[0]!.plan.push({ op: 'write', mode });
      await startAll(electors, clock);
      expect(electors[0]!.state()).toBe(mode === 'fail' ? 'follower' : 'candidate');
      if (mode === 'hang') {
        await clock.advance(200); // the request timeout
        expect(electors[0]!.state()).toBe('follower');
      }
      await clock.advance(500);
      expect(electors[0]!.fencingToken()).toBe(1);
    }
  });

  it('a leader whose renewal conflicts verifies the record: a failed read is retried, and it adopts its own unanswered write', async () => {
    const { clock, electors, links } = cluster(1);
    await startAll(electors, clock);
    links[0]!.plan.push({ op: 'write', mode: 'drop-reply' }, { op: 'read', mode: 'fail' });
    await clock.advance(650); // renewal applied but unanswered (times out at 400); at 600 it conflicts; the verification read fails
    expect(electors[0]!.state()).toBe('leader');
    await clock.advance(300); // at 800: conflict again, verified as our own write, adopted, renewed
    expect(electors[0]!.isLeader()).toBe(true);
    expect(electors[0]!.fencingToken()).toBe(1);
    await clock.advance(2000);
    expect(electors[0]!.isLeader()).toBe(true);
  });

  it('a leader whose verification hangs is fenced at its deadline, not later', async () => {
    const { clock, electors, links } = cluster(1);
    await startAll(electors, clock);
    links[0]!.plan.push({ op: 'write', mode: 'drop-reply' });
    await clock.advance(550);
    links[0]!.plan.push({ op: 'write', mode: 'ok' }); // the renewal at 600 conflicts...
    links[0]!.mode = 'hang'; // ...and the verification read never returns
    await clock.advance(449);
    expect(electors[0]!.isLeader()).toBe(true);
    await clock.advance(1);
    expect(electors[0]!.isLeader()).toBe(false);
    expect(electors[0]!.state()).toBe('fenced');
  });

  it('a release that conflicts, fails or hangs still ends the leadership', async () => {
    for (const mode of ['conflict', 'fail', 'hang'] as const) {
      const { clock, electors, links, shared } = cluster(1);
      await startAll(electors, clock);
      if (mode === 'conflict') {
        const entry = shared.readSync(leaseKey('test'))!;
        shared.commitSync([{ key: leaseKey('test'), expectedVersion: entry.version, value: { ...(entry.value as object), renewals: 99 } }]);
      } else {
        links[0]!.mode = mode;
      }
      const resigned = electors[0]!.resign();
      await clock.advance(300);
      await resigned;
      expect(electors[0]!.state()).toBe('follower');
      expect(electors[0]!.isLeader()).toBe(false);
    }
  });

  it('resign() without release when the work will not settle leaves the lease to expire', async () => {
    const { clock, electors, shared } = cluster(1);
    electors[0]!.whileLeader(() => new Promise(() => {}));
    await startAll(electors, clock);
    const resigned = electors[0]!.resign();
    await clock.advance(1000);
    await resigned;
    expect(electors[0]!.state()).toBe('follower');
    expect(shared.readSync(leaseKey('test'))!.value).toMatchObject({ holder: 'n0' });
  });

  it('a deadline timer that fires early is re-armed rather than trusted', async () => {
    const clock = new TestClock();
    const early: typeof clock = Object.assign(Object.create(clock), {
      setTimeout: (fn: () => void, ms: number) => clock.setTimeout(fn, ms > 10 ? ms - 3 : ms),
    });
    const link = new FaultyLink(new MemoryLeaseStore());
    const e = createElector({ election: 'test', nodeId: 'n0', store: link, clock: early, inspect: coverage.inspect, ...timing });
    e.start();
    await clock.advance(0);
    link.mode = 'hang';
    await clock.advance(998);
    expect(e.state()).toBe('leader'); // the deadline event came 3 ms early: re-armed
    await clock.advance(10);
    expect(e.state()).toBe('fenced');
  });

  it('with a watching store, a resignation is taken over at once instead of after a retry period', async () => {
    const clock = new TestClock();
    const store = new MemoryLeaseStore();
    const [a, b] = ['a', 'b'].map((id) => createElector({ election: 'w', nodeId: id, store, clock, inspect: coverage.inspect, ...timing }));
    a!.start();
    await clock.advance(0);
    b!.start();
    await clock.advance(0);
    expect(a!.isLeader()).toBe(true);
    await a!.resign();
    await clock.advance(0);
    expect(b!.fencingToken()).toBe(2);
  });
});

describe('stepping down while a request is in flight', () => {
  const KEY = leaseKey('test');

  it('stop() while an acquisition is in flight waits for its outcome and gives back what it won', async () => {
    const { clock, electors, links, shared } = cluster(2);
    const [a, b] = electors as [Elector, Elector];
    links[0]!.slow = { clock, delayMs: 50 };
    links[0]!.plan.push({ op: 'write', mode: 'slow' }); // applied at once, answered 50 ms later
    a.start();
    await clock.advance(0);
    expect(a.state()).toBe('candidate');
    const stopping = a.stop();
    await clock.advance(100);
    await stopping;
    expect(a.state()).toBe('shutdown');
    expect(shared.readSync(KEY)!.value).toMatchObject({ holder: null, epoch: 1 });
    b.start(); // released, not left to expire: the successor takes it at once
    await clock.advance(0);
    expect(b.fencingToken()).toBe(2);
  });

  it('stop() during an acquisition that conflicts, fails or hangs ends in shutdown', async () => {
    for (const outcome of ['conflict', 'fail', 'hang'] as const) {
      const { clock, electors, links, shared } = cluster(1);
      const e = electors[0]!;
      e.subscribe((c) => {
        // What stop() sends, sent while the acquisition is in flight (stop() itself first awaits leader work).
        if (c.state === 'candidate') e.actor.send({ type: 'STOP' });
      });
      if (outcome === 'conflict') {
        // The read sees no lease; by the time its reply arrives someone has taken it, so the acquisition conflicts.
        links[0]!.slow = { clock, delayMs: 50 };
        links[0]!.plan.push({ op: 'read', mode: 'slow' });
        e.start();
        await clock.advance(10);
        await shared.compareAndSet(KEY, null, { holder: 'other', epoch: 1, leaseDurationMs: 1500, renewals: 0 });
      } else {
        links[0]!.plan.push({ op: 'write', mode: outcome });
        e.start();
      }
      await clock.advance(300);
      expect(e.state(), outcome).toBe('shutdown');
      if (outcome === 'conflict') expect(shared.readSync(KEY)!.value).toMatchObject({ holder: 'other' });
    }
  });

  it('a STOP that asks for no release ends an acquisition at once', async () => {
    const { clock, electors, links } = cluster(1);
    links[0]!.plan.push({ op: 'write', mode: 'hang' });
    await startAll(electors, clock);
    expect(electors[0]!.state()).toBe('candidate');
    electors[0]!.actor.send({ type: 'STOP', release: false });
    expect(electors[0]!.state()).toBe('shutdown');
  });

  it('stop() before start() never stands and never touches the lease', async () => {
    const { clock, electors, shared } = cluster(1);
    const stopping = electors[0]!.stop();
    await clock.advance(0);
    await stopping;
    expect(electors[0]!.state()).toBe('shutdown');
    expect(shared.readSync(KEY)).toBeUndefined();
  });

  it('a second stop() lets the release under way finish, then shuts down', async () => {
    const clock = new TestClock();
    // The release is applied only when its round trip completes, and not at all once its signal aborts.
    class SlowReleaseStore extends MemoryLeaseStore {
      override compareAndSet(key: string, version: string | null, value: Json, options?: CallOptions): Promise<string> {
        if ((value as { holder?: unknown }).holder !== null) return super.compareAndSet(key, version, value, options);
        return new Promise<string>((resolve, reject) => {
          options?.signal?.addEventListener('abort', () => reject(options.signal!.reason), { once: true });
          clock.setTimeout(() => {
            if (!options?.signal?.aborted) super.compareAndSet(key, version, value).then(resolve, reject);
          }, 50);
        });
      }
    }
    const store = new SlowReleaseStore();
    const e = createElector({ election: 'test', nodeId: 'n0', store, clock, inspect: coverage.inspect, ...timing });
    e.start();
    await clock.advance(0);
    expect(e.isLeader()).toBe(true);
    const first = e.stop();
    await clock.advance(0);
    expect(e.actor.getSnapshot().matches({ follower: 'releasing' })).toBe(true);
    const second = e.stop(); // a second SIGTERM, or an exit hook that calls stop() too
    await clock.advance(100);
    await Promise.all([first, second]);
    expect(e.state()).toBe('shutdown');
    expect(store.readSync(KEY)!.value).toMatchObject({ holder: null, epoch: 1 });
  });

  it('stop() during a renewal whose reply is still out releases from the version the renewal wrote', async () => {
    const { clock, electors, links, shared } = cluster(1);
    const e = electors[0]!;
    await startAll(electors, clock);
    links[0]!.slow = { clock, delayMs: 50 };
    links[0]!.plan.push({ op: 'write', mode: 'slow' }); // the renewal at 200 ms: applied, answered at 250 ms
    await clock.advance(210);
    expect(e.actor.getSnapshot().matches({ leader: 'renewing' })).toBe(true);
    const stopping = e.stop(); // abandons the renewal; the release from the old version conflicts, the record is still ours
    await clock.advance(100);
    await stopping;
    expect(e.state()).toBe('shutdown');
    expect(shared.readSync(KEY)!.value).toMatchObject({ holder: null, epoch: 1 });
  });

  it('a release that conflicts is not retried over a record that is no longer ours, nor past the deadline', async () => {
    for (const check of ['someone-else', 'fail', 'hang', 'stop'] as const) {
      const { clock, electors, links, shared } = cluster(1);
      const e = electors[0]!;
      await startAll(electors, clock);
      const entry = shared.readSync(KEY)!;
      const taken: Record<string, Json> = check === 'someone-else' ? { holder: 'n9', epoch: 2 } : { renewals: 99 };
      shared.commitSync([{ key: KEY, expectedVersion: entry.version, value: { ...(entry.value as object), ...taken } }]);
      if (check === 'fail') links[0]!.plan.push({ op: 'read', mode: 'fail' });
      if (check === 'hang' || check === 'stop') links[0]!.plan.push({ op: 'read', mode: 'hang' });
      const resigned = e.resign();
      await clock.advance(0);
      if (check === 'stop') {
        expect(e.actor.getSnapshot().matches({ follower: 'checkingRelease' })).toBe(true);
        void e.stop();
      }
      await clock.advance(1000); // the check's budget is the old deadline (1000 ms after the last renewal started)
      await resigned;
      expect(e.state(), check).toBe(check === 'stop' ? 'shutdown' : 'follower');
      expect(shared.readSync(KEY)!.value, check).toMatchObject({ renewals: check === 'someone-else' ? 0 : 99, ...taken });
    }
  });

  it('the release is cut to the time left to the deadline', async () => {
    const { clock, electors, links } = cluster(1, { requestTimeoutMs: 1000 });
    const e = electors[0]!;
    await startAll(electors, clock);
    links[0]!.mode = 'fail'; // renewals fail: the deadline stays at 1000 ms
    await clock.advance(900);
    expect(e.timeLeft()).toBe(100);
    links[0]!.mode = 'hang'; // the release never answers
    const resigned = e.resign();
    await clock.advance(99);
    expect(e.actor.getSnapshot().matches({ follower: 'releasing' })).toBe(true);
    await clock.advance(1);
    expect(e.actor.getSnapshot().matches({ follower: 'releasing' })).toBe(false);
    await resigned;
  });

  it('campaign() after stop() during an acquisition does not revive the node: it still shuts down without leading', async () => {
    const { clock, electors, links, shared } = cluster(1);
    const e = electors[0]!;
    links[0]!.slow = { clock, delayMs: 50 };
    links[0]!.plan.push({ op: 'write', mode: 'slow' }); // the acquisition is answered 50 ms later
    await startAll(electors, clock);
    expect(e.state()).toBe('candidate');
    const stopping = e.stop();
    await clock.advance(1); // STOP delivered: the candidate waits for the acquisition's outcome
    e.campaign(); // e.g. a health loop re-asserting candidacy
    await clock.advance(100);
    await stopping;
    expect(e.state()).toBe('shutdown');
    expect(shared.readSync(KEY)!.value).toMatchObject({ holder: null, epoch: 1 });
  });

  it('resign() during an acquisition, then campaign(): resign() resolves after the release, then the node stands again', async () => {
    const { clock, electors, links, shared } = cluster(1);
    const e = electors[0]!;
    links[0]!.slow = { clock, delayMs: 50 };
    links[0]!.plan.push({ op: 'write', mode: 'slow' });
    await startAll(electors, clock);
    expect(e.state()).toBe('candidate');
    let resigned = false;
    void e.resign().then(() => {
      resigned = true;
    });
    e.campaign();
    await clock.advance(100);
    expect(resigned).toBe(true);
    expect(shared.readSync(KEY)!.value).toMatchObject({ holder: null, epoch: 1 });
    await clock.advance(3 * timing.leaseDurationMs);
    expect(e.fencingToken()).toBe(2);
  });

  it('campaign() called while resign() winds down is the later wish: the node stands again', async () => {
    const { clock, electors } = cluster(1);
    const e = electors[0]!;
    e.whileLeader(({ signal }) => new Promise<void>((r) => signal.addEventListener('abort', () => clock.setTimeout(r, 5))));
    await startAll(electors, clock);
    const resigned = e.resign();
    e.campaign();
    await clock.advance(10);
    await resigned;
    await clock.advance(3 * timing.leaseDurationMs);
    expect(e.fencingToken()).toBe(2);
  });
});

describe('pauses', () => {
  it('an acquisition whose reply is processed after the deadline it would start (a pause) is fenced, never led on', async () => {
    const { clock, electors, links, shared } = cluster(1);
    links[0]!.slow = { clock, delayMs: 10 };
    links[0]!.plan.push({ op: 'write', mode: 'slow' });
    await startAll(electors, clock);
    expect(electors[0]!.state()).toBe('candidate');
    clock.jump(2000); // the process was frozen: the reply and the timeout are both overdue, the reply first
    await clock.advance(0);
    expect(electors[0]!.state()).toBe('fenced');
    expect(electors[0]!.actor.getSnapshot().context.fenceReason).toBe('deadline-passed');
    expect(shared.readSync(leaseKey('test'))!.value).toMatchObject({ holder: 'n0', epoch: 1 });
    await clock.advance(2000); // rejoins, waits out its own old lease, and takes epoch 2
    expect(electors[0]!.fencingToken()).toBe(2);
  });

  it('a leader resuming from a pause past its deadline fences instead of sending one more renewal', async () => {
    const { clock, electors, links } = cluster(1);
    await startAll(electors, clock);
    const writesBefore = links[0]!.calls;
    clock.jump(1500);
    await clock.advance(0);
    expect(electors[0]!.state()).toBe('fenced');
    expect(links[0]!.calls).toBe(writesBefore);
  });
});

function issuesOf(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    if (InvalidOptionsError.is(err)) return err.issues;
    throw err;
  }
  return [];
}

describe('options', () => {
  it('rejects a lease that a drifting follower could see expire while the leader still leads', () => {
    const err = (() => {
      try {
        createElector({ store: new MemoryLeaseStore(), leaseDurationMs: 1000, renewDeadlineMs: 995, retryPeriodMs: 100 });
      } catch (e) {
        return e;
      }
    })();
    expect(InvalidOptionsError.is(err)).toBe(true);
    const issue = (err as InvalidOptionsError).issues[0]!;
    expect(issue).toMatchObject({ path: 'renewDeadlineMs', code: 'timing_unsafe' });
    expect(issue.message).toMatch(/Raise leaseDurationMs to at least 1016 or lower renewDeadlineMs to at most 980/);
  });

  it('rejects a retry period not below the renew deadline, and names the fix', () => {
    expect(() => createElector({ store: new MemoryLeaseStore(), retryPeriodMs: 10_000 })).toThrowError(/Lower retryPeriodMs to at most 9999/);
  });

  it('skips timing validation only when told to, for simulators showing an unsafe configuration fail', () => {
    const unsafe = { store: new MemoryLeaseStore(), leaseDurationMs: 1000, renewDeadlineMs: 1200, retryPeriodMs: 100 };
    expect(() => createElector(unsafe)).toThrow(InvalidOptionsError);
    expect(createElector({ ...unsafe, unsafeSkipTimingValidation: true }).state()).toBe('follower');
  });

  it('rejects store actors of the old shape instead of silently ignoring them', () => {
    try {
      createElector({ store: new MemoryLeaseStore(), actors: { readLease: {}, writeLease: {} } as any });
      expect.unreachable();
    } catch (err) {
      expect((err as InvalidOptionsError).issues).toContainEqual(expect.objectContaining({ path: 'actors', message: expect.stringMatching(/only \{ leaseStore \}/) }));
    }
  });

  it('rejects durations a timer cannot hold', () => {
    try {
      createElector({ store: new MemoryLeaseStore(), leaseDurationMs: 2 ** 31 * 2, renewDeadlineMs: 2 ** 31, retryPeriodMs: 1000 });
      expect.unreachable();
    } catch (err) {
      expect((err as InvalidOptionsError).issues).toContainEqual(expect.objectContaining({ path: 'leaseDurationMs', code: 'too_big', maximum: 2_147_483_647 }));
    }
  });

  it('the timing_unsafe message names a fix that itself passes validation', () => {
    for (const t of [
      { leaseDurationMs: 4179, renewDeadlineMs: 4179, retryPeriodMs: 1000, maxDriftRate: 0.005 },
      { leaseDurationMs: 54, renewDeadlineMs: 54, retryPeriodMs: 10, maxDriftRate: 0.2 },
      { leaseDurationMs: 8415, renewDeadlineMs: 8415, retryPeriodMs: 1000, maxDriftRate: 0.02 },
    ]) {
      const issue = issuesOf(() => parseTiming(t)).find((i) => i.code === 'timing_unsafe')!;
      const [, minLease, maxDeadline] = issue.message.match(/at least (\d+) or lower renewDeadlineMs to at most (\d+)/)!;
      // "Raise leaseDurationMs to at least N": N must be accepted ...
      expect(issuesOf(() => parseTiming({ ...t, leaseDurationMs: Number(minLease) })), `${JSON.stringify(t)} lease ${minLease}`).toEqual([]);
      // ... and so must "lower renewDeadlineMs to at most M" (= issue.maximum).
      expect(issuesOf(() => parseTiming({ ...t, renewDeadlineMs: Number(maxDeadline) })).filter((i) => i.code === 'timing_unsafe'), `${JSON.stringify(t)} deadline ${maxDeadline}`).toEqual([]);
    }
  });

  it('never names a fix beyond the timer cap', () => {
    const base = { store: new MemoryLeaseStore(), renewDeadlineMs: 2_140_000_000, retryPeriodMs: 1000, requestTimeoutMs: 1000 };
    const issue = issuesOf(() => createElector({ ...base, leaseDurationMs: 2_147_000_000 })).find((i) => i.code === 'timing_unsafe')!;
    expect(issue.message).not.toMatch(/Raise leaseDurationMs/);
    expect(issuesOf(() => createElector({ ...base, leaseDurationMs: 2_147_000_000, renewDeadlineMs: issue.maximum! }))).toEqual([]);
  });

  it('rejects a misspelt timing option instead of silently running on the default', () => {
    // The user means a 60 s lease; dropped silently, the typo would leave the 15 s default in force.
    const opts = { store: new MemoryLeaseStore(), clock: new TestClock(), leaseDurationMS: 60_000 } as unknown as ElectorOptions;
    expect(issuesOf(() => createElector(opts))).toEqual([
      expect.objectContaining({ code: 'unrecognized_keys', path: 'leaseDurationMS', message: expect.stringContaining('did you mean "leaseDurationMs"') }),
    ]);
  });

  it('reports zod-style issues with code and minimum', () => {
    try {
      createElector({ store: new MemoryLeaseStore(), leaseDurationMs: -5, election: 'bad name!' });
      expect.unreachable();
    } catch (err) {
      expect(InvalidOptionsError.is(err)).toBe(true);
      const issues = (err as InvalidOptionsError).issues;
      expect(issues).toContainEqual(expect.objectContaining({ path: 'leaseDurationMs', code: 'too_small', minimum: 0 }));
      expect(issues.some((i) => i.path === 'election')).toBe(true);
    }
  });
});

afterAll(() => {
  // Prove coverage rather than claim it: every transition branch of the machine was taken by the tests above.
  const missing = allTransitionBranches(electionMachine).filter((k) => !coverage.taken.has(k));
  if (missing.length) console.error('untaken transitions:', missing);
  expect(missing).toEqual([]);
});
