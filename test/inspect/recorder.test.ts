import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInspector, createWebSocketReceiver, type StatelyInspectionEvent } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import { afterEach, describe, expect, it } from 'vitest';
import { assign, createActor, createMachine, type InspectionEvent } from 'xstate';
import { MemoryLeaseStore } from '../../src/adapters/MemoryLeaseStore.js';
import { realClock } from '../../src/clock.js';
import { createElector } from '../../src/createElector.js';
import {
  createFileSink,
  createInspectRecorder,
  INSPECT_WIRE_VERSION,
  readInspectRecording,
  recordInspectionToFile,
  replayToWebSocket,
  type WireEvent,
} from '../../src/inspect/recorder.js';
import { TestClock } from '../../src/TestClock.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn();
});

const toggle = createMachine({
  id: 'toggle',
  context: { count: 0 },
  initial: 'off',
  states: {
    off: { on: { FLIP: { target: 'on', actions: assign({ count: ({ context }) => context.count + 1 }) } } },
    on: { on: { FLIP: 'off' } },
  },
});

describe('inspect recorder', () => {
  it('records synchronously inside XState\'s inspect callback, stamped by the injected clock', async () => {
    const clock = new TestClock(1_700_000_000_000);
    const recorder = createInspectRecorder({ clock, node: 'n1' });
    const elector = createElector({ nodeId: 'n1', store: new MemoryLeaseStore(), clock, inspect: recorder.inspect });
    elector.start();
    // No await yet: everything XState emitted during start() is already recorded.
    const atStart = recorder.lines().length;
    expect(atStart).toBeGreaterThan(0);
    expect(recorder.lines()[0]!.event.type).toBe('@xstate.actor');
    for (const line of recorder.lines()) {
      expect(line.t).toBe(0);
      expect(line.event.createdAt).toBe(String(clock.wallNow()));
      expect(line.node).toBe('n1');
    }
    // Real time passing records nothing (no deferred setTimeout(0) as in createInspector).
    await new Promise((resolve) => setTimeout(resolve, 20));
    const afterRealWait = recorder.lines().length;
    await clock.advance(3_000);
    const lines = recorder.lines();
    expect(lines.length).toBeGreaterThan(afterRealWait);
    let previous = 0;
    for (const line of lines) {
      expect(line.t).toBeGreaterThanOrEqual(previous);
      expect(Number(line.event.createdAt)).toBe(1_700_000_000_000 + line.t);
      previous = line.t;
    }
    // The elector became leader at virtual time, and the snapshot says so.
    const leaderSnapshot = lines.find((l) => l.event.type === '@xstate.snapshot' && JSON.stringify((l.event.snapshot as any)?.value ?? '').includes('leader'));
    expect(leaderSnapshot).toBeDefined();
    expect(leaderSnapshot!.t).toBeLessThan(3_000);
    // Injected dependencies are not serialized into contexts; stable session ids are.
    expect((leaderSnapshot!.event.snapshot as any).context.clock).toBeUndefined();
    expect((leaderSnapshot!.event.snapshot as any).context.epoch).toBe(1);
    expect(leaderSnapshot!.event.sessionId).toBe('n1');
    expect(new Set(lines.map((l) => l.event.sessionId)).has('n1/store#0')).toBe(true);
    await elector.stop();
  });

  it('accepts a plain `() => number` time source and a type filter', () => {
    let now = 42;
    const recorder = createInspectRecorder({ clock: () => now, types: ['@xstate.event'] });
    const actor = createActor(toggle, { inspect: recorder.inspect }).start();
    now = 50;
    actor.send({ type: 'FLIP' });
    const events = recorder.lines();
    expect(events.every((l) => l.event.type === '@xstate.event')).toBe(true);
    expect(events.at(-1)).toMatchObject({ t: 50, node: 'toggle', event: { createdAt: '50', event: { type: 'FLIP' } } });
  });

  it('produces the same wire events as @statelyai/inspect\'s createInspector (apart from time)', async () => {
    const theirs: StatelyInspectionEvent[] = [];
    const stately = createInspector({ send: (e) => theirs.push(e) });
    const ours = createInspectRecorder({ clock: () => 7, stableSessionIds: false, sanitizeContext: (c) => c });
    const both = (e: InspectionEvent) => {
      ours.inspect(e);
      stately.inspect.next?.(e);
    };
    const actor = createActor(toggle, { inspect: both }).start();
    actor.send({ type: 'FLIP' });
    actor.send({ type: 'FLIP' });
    await new Promise((resolve) => setTimeout(resolve, 50)); // createInspector defers with setTimeout(0)
    // createInspector reads an actor's snapshot only when its deferred timer fires (here: after both FLIPs), so the
    // actor event's snapshot is compared separately; everything else must match as it goes over the wire.
    const strip = (e: any) =>
      JSON.parse(JSON.stringify({ ...e, createdAt: undefined, snapshot: e.type === '@xstate.actor' ? undefined : e.snapshot, definition: e.definition && JSON.parse(e.definition) }));
    expect(ours.events().length).toBe(theirs.length);
    expect(ours.events().map(strip)).toEqual(theirs.map(strip));
    for (const e of ours.events()) {
      expect(e._version).toBe(INSPECT_WIRE_VERSION);
      expect(e.createdAt).toBe('7');
    }
  });

  it('pins the wire format to the installed @statelyai/inspect version', () => {
    const pkg = JSON.parse(readFileSync(join('node_modules', '@statelyai', 'inspect', 'package.json'), 'utf8'));
    expect(INSPECT_WIRE_VERSION).toBe(pkg.version);
  });

  it('writes each line to a file before the inspect callback returns', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-rec-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'rec.jsonl');
    const recorder = recordInspectionToFile(path, { clock: () => 1 });
    const actor = createActor(toggle, { inspect: recorder.inspect }).start();
    const before = readFileSync(path, 'utf8').split('\n').filter(Boolean).length;
    actor.send({ type: 'FLIP' });
    const after = readFileSync(path, 'utf8').split('\n').filter(Boolean).length;
    expect(before).toBeGreaterThan(0);
    expect(after).toBeGreaterThan(before);
    recorder.close();
    const events = readInspectRecording(readFileSync(path, 'utf8'));
    expect(events.length).toBe(after);
    expect(events.map((e) => e.type)).toContain('@xstate.snapshot');
  });

  it('records for many nodes through recordFor (the simulator\'s onInspect hook)', () => {
    const recorder = createInspectRecorder({ clock: () => -1 });
    const a = createActor(toggle, { inspect: (e) => recorder.recordFor('a', e, 10) }).start();
    const b = createActor(toggle, { inspect: (e) => recorder.recordFor('b', e, 20) }).start();
    a.send({ type: 'FLIP' });
    b.send({ type: 'FLIP' });
    const lines = recorder.lines();
    expect(new Set(lines.map((l) => l.node))).toEqual(new Set(['a', 'b']));
    expect(lines.filter((l) => l.node === 'a').every((l) => l.t === 10 && l.event.sessionId === 'a' && l.event.createdAt === '10')).toBe(true);
    expect(lines.filter((l) => l.node === 'b').every((l) => l.t === 20 && l.event.sessionId === 'b')).toBe(true);
  });

  it('replays a recording, unchanged, into createWebSocketInspector through a local inspector server', async () => {
    const port = await freePort();
    const server = createInspectorServer({ port, autoOpen: false });
    cleanup.push(() => server.stop());
    await listening(port);
    const received: WireEvent[] = [];
    const receiver = createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` });
    receiver.subscribe((e) => received.push(e as unknown as WireEvent));

    const clock = new TestClock();
    const recorder = createInspectRecorder({ clock, node: 'n1' });
    const elector = createElector({ nodeId: 'n1', store: new MemoryLeaseStore(), clock, inspect: recorder.inspect }).start();
    await clock.advance(400);
    await elector.stop();
    const recorded = readInspectRecording(recorder.toJSONL());
    expect(recorded.length).toBeGreaterThan(5);
    expect(recorded.length).toBeLessThan(200); // the server buffers the last 200 for late receivers

    await new Promise((resolve) => setTimeout(resolve, 100));
    const sent = await replayToWebSocket(recorded, { url: `ws://127.0.0.1:${port}` });
    expect(sent).toBe(recorded.length);
    const deadline = Date.now() + 5_000;
    while (received.length < recorded.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(received).toEqual(JSON.parse(JSON.stringify(recorded)));
  });
});

describe('inspect recorder: file recording of a real elector', () => {
  const electorOn = (nodeId: string, inspect: (e: InspectionEvent) => void) =>
    createElector({ election: nodeId, nodeId, store: new MemoryLeaseStore(), leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 100, inspect });

  it('every line is JSON with the wire-format fields', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-rec-fmt-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'run.jsonl');
    const recorder = recordInspectionToFile(path, { clock: realClock, node: 'w1' });
    const elector = electorOn('w1', recorder.inspect);
    elector.start();
    await new Promise((r) => setTimeout(r, 500));
    await elector.stop();
    recorder.close();
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBeGreaterThan(10);
    const types = new Set<string>();
    for (const raw of lines) {
      const line = JSON.parse(raw);
      expect(line).toMatchObject({ t: expect.any(Number), kind: 'inspect', node: 'w1' });
      const ev = line.event;
      types.add(ev.type);
      expect(ev).toMatchObject({ sessionId: expect.any(String), rootId: expect.any(String), createdAt: expect.any(String), id: null, _version: INSPECT_WIRE_VERSION });
      expect(Number.isFinite(Number(ev.createdAt))).toBe(true);
      if (ev.type === '@xstate.actor') expect(() => JSON.parse(ev.definition)).not.toThrow();
      if (ev.type === '@xstate.snapshot') expect(ev.snapshot && ev.event).toBeTruthy();
    }
    expect([...types].sort()).toEqual(['@xstate.actor', '@xstate.event', '@xstate.snapshot']);
  });

  it('drops writes after close() without throwing into the actor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-rec-closed-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const recorder = recordInspectionToFile(join(dir, 'closed.jsonl'), { clock: realClock, node: 'c1' });
    const elector = electorOn('c1', recorder.inspect);
    elector.start();
    recorder.close();
    await new Promise((r) => setTimeout(r, 500));
    expect(elector.isLeader()).toBe(true);
    expect(recorder.error).toBeUndefined();
    await elector.stop();
  });
});

describe('inspect recorder: a recording that starts failing (a full disk) never disturbs the recorded actors', () => {
  const root = resolve(import.meta.dirname, '../..');
  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  const fixture = (args: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-rec-full-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const r = spawnSync(tsx, [join(import.meta.dirname, 'fixtures', 'recorderWriteFails.mts'), join(dir, 'rec.jsonl'), ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    const line = /^RESULT (.*)$/m.exec(r.stdout ?? '');
    return { code: r.status, stderr: r.stderr, result: line ? JSON.parse(line[1]!) : undefined };
  };
  const ENOSPC = 'ENOSPC: no space left on device, write';

  it('does not crash the host process: the write error stops the recording and is reported once on stderr', () => {
    const r = fixture([]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`fenced-leader: inspection recording stopped after an error: ${ENOSPC}\n`);
    expect(r.result).toMatchObject({ leaderBefore: true, leaderAfter: true, recorderError: ENOSPC });
    expect(r.result.linesAfter).toBe(r.result.linesBefore);
  });

  it('does not wedge the elector (a host that survives uncaught exceptions): renewals keep it leader; onError gets the error once', () => {
    const r = fixture(['--survive', '--on-error']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.result).toMatchObject({ uncaught: 0, leaderBefore: true, leaderAfter: true, value: { leader: expect.any(String) }, reported: [ENOSPC] });
  });

  it('a throwing write or sanitizer is caught in the inspect callback, reported once (onError, else the logger), and recording stops', () => {
    const errors: unknown[] = [];
    let writes = 0;
    const failing = createInspectRecorder({
      clock: () => 1,
      onError: (e) => errors.push(e),
      write: () => {
        writes++;
        throw new Error('disk full');
      },
    });
    const actor = createActor(toggle, { inspect: failing.inspect }).start();
    actor.send({ type: 'FLIP' });
    actor.send({ type: 'FLIP' });
    expect(actor.getSnapshot().value).toBe('off');
    expect(actor.getSnapshot().context.count).toBe(1);
    expect(writes).toBe(1);
    expect(errors.map((e) => (e as Error).message)).toEqual(['disk full']);
    expect((failing.error as Error).message).toBe('disk full');

    const logged: unknown[] = [];
    const logger = { info() {}, warn() {}, error: (fields: object, message: string) => logged.push({ fields, message }) };
    const sanitizing = createInspectRecorder({
      clock: () => 1,
      logger,
      sanitizeContext: () => {
        throw new Error('cannot sanitize');
      },
    });
    const other = createActor(toggle, { inspect: (e) => sanitizing.recordFor('x', e, 5) }).start();
    other.send({ type: 'FLIP' });
    expect(other.getSnapshot().value).toBe('on');
    expect(logged).toHaveLength(1);
    expect(sanitizing.lines().every((l) => l.node === 'x')).toBe(true);
  });

  it.skipIf(!existsSync('/dev/full'))('createFileSink never throws: the first failing write (ENOSPC on /dev/full) is reported once, later lines are dropped', () => {
    const errors: unknown[] = [];
    const sink = createFileSink('/dev/full', 'append', { onError: (e) => errors.push(e) });
    const recorder = createInspectRecorder({ clock: () => 1, write: sink.write, keep: true });
    const actor = createActor(toggle, { inspect: recorder.inspect }).start();
    actor.send({ type: 'FLIP' });
    expect(actor.getSnapshot().value).toBe('on');
    expect(errors.map((e) => (e as NodeJS.ErrnoException).code)).toEqual(['ENOSPC']);
    expect((sink.error as NodeJS.ErrnoException).code).toBe('ENOSPC');
    expect(recorder.lines().length).toBeGreaterThan(2); // the recorder itself kept going; only the sink stopped
    sink.close();
  });

  it('recordFor stamps createdAt with the wall clock when t comes from the recorder\'s own clock', () => {
    const recorder = createInspectRecorder({ clock: realClock });
    const before = Date.now();
    createActor(toggle, { inspect: (e) => recorder.recordFor('n', e) }).start();
    createActor(toggle, { inspect: (e) => recorder.recordFor('m', e, 3, 1_700_000_000_000) }).start();
    const [own, given] = [recorder.lines().find((l) => l.node === 'n')!, recorder.lines().find((l) => l.node === 'm')!];
    expect(Number(own.event.createdAt)).toBeGreaterThanOrEqual(before);
    expect(Number(own.event.createdAt)).toBeLessThanOrEqual(Date.now());
    expect(own.t).toBeLessThan(before); // monotonic: performance.now()
    expect(given).toMatchObject({ t: 3, event: { createdAt: '1700000000000' } });
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function listening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`nothing listens on ${port}`);
}
