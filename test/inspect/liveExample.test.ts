/**
 * examples/inspect/live.ts as a user runs it (a child process through tsx): a short run with the inspector bridge on
 * a free port ends by itself, a websocket client of the bridge receives the live inspection events, the recording is
 * valid inspection trace lines in the wire format, and `fenced-leader view` turns it into a page of the same run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { parseTrace } from '../../sim/trace.js';
import { readInspectRecordingFile } from '../../src/inspect/recorder.js';
import { buildViewerModel, parseTraceText } from '../../src/inspect/viewer.js';

const root = resolve(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'fl-live-example-'));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function run(command: string[], timeoutMs: number): { child: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const child = spawn(process.execPath, command, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${command.join(' ')} still running after ${timeoutMs} ms\n${stdout}\n${stderr}`)), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      ok({ code, stdout, stderr });
    });
  });
  return { child, done };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', () => done()));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** Connects to the example's bridge as the inspector page would (retrying until it listens) and collects messages. */
function watchBridge(port: number): { messages: Array<Record<string, unknown>>; close(): void } {
  const messages: Array<Record<string, unknown>> = [];
  let ws: WebSocket | undefined;
  let closed = false;
  const connect = () => {
    if (closed) return;
    ws = new WebSocket(`ws://127.0.0.1:${port}`);
    ws.on('message', (data) => messages.push(JSON.parse(data.toString()) as Record<string, unknown>));
    ws.on('error', () => setTimeout(connect, 100));
  };
  connect();
  return {
    messages,
    close() {
      closed = true;
      ws?.terminate();
    },
  };
}

describe('examples/inspect/live.ts', () => {
  it('runs for --seconds and ends by itself, feeding the live bridge and leaving a recording `view` turns into a page', async () => {
    const port = await freePort();
    const recording = join(dir, 'live.jsonl');
    const example = run(
      ['--import', 'tsx', 'examples/inspect/live.ts', '--seconds', '3', '--resign-every', '1000', '--port', String(port), '--record', recording],
      45_000,
    );
    const bridge = watchBridge(port);
    let result: Awaited<typeof example.done>;
    try {
      result = await example.done;
    } finally {
      bridge.close();
    }
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`inspector bridge: open http://localhost:${port}`);
    expect(result.stdout).toMatch(/\w+ resigns/);
    expect(result.stdout).toContain(`done: recorded to ${recording}`);

    // The live path: the bridge relayed the inspector's wire events.
    expect(bridge.messages.length).toBeGreaterThan(0);
    expect(bridge.messages.every((m) => typeof m.type === 'string' && m.type.startsWith('@xstate.'))).toBe(true);

    // The recording: fenced-leader trace lines of kind `inspect`, each carrying a wire event, in time order.
    const text = readFileSync(recording, 'utf8');
    const lines = parseTrace(text);
    expect(lines.length).toBeGreaterThan(50);
    expect(new Set(lines.map((l) => l.kind))).toEqual(new Set(['inspect']));
    const inspectLines = lines.filter((l) => l.kind === 'inspect');
    expect(new Set(inspectLines.map((l) => l.node))).toEqual(new Set(['alpha', 'beta', 'gamma']));
    for (let i = 1; i < inspectLines.length; i++) expect(inspectLines[i]!.t).toBeGreaterThanOrEqual(inspectLines[i - 1]!.t);
    const types = new Set(inspectLines.map((l) => l.event.type));
    expect(types).toEqual(new Set(['@xstate.actor', '@xstate.event', '@xstate.snapshot']));
    for (const { event } of inspectLines) {
      expect(event).toMatchObject({ sessionId: expect.any(String), rootId: expect.any(String), _version: expect.any(String) });
      expect(Number.isFinite(Number(event.createdAt))).toBe(true);
    }
    expect(readInspectRecordingFile(recording).length).toBe(inspectLines.length);

    // `fenced-leader view` (the CLI, as users run it) writes a self-contained page of that run.
    const page = join(dir, 'live.html');
    const view = await run(['bin/fenced-leader.js', 'view', recording, '--out', page], 30_000).done;
    expect(view).toMatchObject({ code: 0, stderr: '' });
    expect(view.stdout.trim()).toBe(page);
    const html = readFileSync(page, 'utf8');
    expect(html).toContain('<canvas id="lanes">');
    expect(html).not.toMatch(/https?:\/\//i);
    const model = buildViewerModel(parseTraceText(text));
    expect(model.meta.source).toBe('inspect');
    expect(model.nodes).toEqual(['alpha', 'beta', 'gamma']);
    const leaders = new Set<string>();
    const last = new Map<string, string>();
    model.tr.t.forEach((_, i) => {
      const node = model.nodes[model.tr.n[i]!]!;
      const to = model.states[model.tr.s[i]!]!;
      if (to.startsWith('leader')) leaders.add(node);
      last.set(node, to);
    });
    expect(leaders.size).toBeGreaterThanOrEqual(2); // leadership moved on the resignations
    expect(Math.max(...model.tr.ep)).toBeGreaterThanOrEqual(2);
    expect([...last.values()]).toEqual(['shutdown', 'shutdown', 'shutdown']);
  });

  it('--record-only opens no socket and still ends by itself with a complete recording', async () => {
    const recording = join(dir, 'offline.jsonl');
    const before = Date.now();
    const example = await run(['--import', 'tsx', 'examples/inspect/live.ts', '--seconds', '2', '--record-only', '--record', recording], 45_000).done;
    const after = Date.now();
    expect(example).toMatchObject({ code: 0, stderr: '' });
    expect(example.stdout).not.toContain('inspector bridge');
    // createdAt is wall-clock milliseconds, as @statelyai/inspect stamps it (Date.now()); `t` the monotonic clock.
    const stamps = readInspectRecordingFile(recording).map((e) => Number(e.createdAt));
    expect(stamps.length).toBeGreaterThan(10);
    expect(stamps.every((ms) => ms >= before && ms <= after)).toBe(true);
    const model = buildViewerModel(parseTraceText(readFileSync(recording, 'utf8')));
    expect(model.nodes).toEqual(['alpha', 'beta', 'gamma']);
    expect(model.tr.s.map((s) => model.states[s]).filter((s) => s === 'shutdown').length).toBe(3);
  });
});
