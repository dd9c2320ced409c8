/**
 * `npx fenced-leader view FILE --serve` as users run it: a real child process through bin/fenced-leader.js. It prints
 * a loopback URL, serves the same self-contained page `view FILE` writes, listens on 127.0.0.1 only, and exits 0 on
 * SIGINT / SIGTERM — even while a client that stopped reading holds a connection open.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTrace } from '../../sim/trace.js';
import { syntheticTrace } from '../../src/inspect/synthetic.js';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin', 'fenced-leader.js');

interface Served {
  child: ChildProcess;
  url: URL;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

const children: ChildProcess[] = [];

function runCli(args: string[]): { child: ChildProcess; stdout: () => string; stderr: () => string; exit: Served['exit'] } {
  const child = spawn(process.execPath, [bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    err += chunk.toString('utf8');
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => child.once('exit', (code, signal) => done({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exit };
}

async function serve(file: string, extra: string[] = []): Promise<Served> {
  const run = runCli(['view', file, '--serve', '--port', '0', ...extra]);
  const url = await new Promise<URL>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`no URL printed within 30 s; stderr: ${run.stderr()}`)), 30_000);
    const check = () => {
      const match = /^(http:\/\/\S+)$/m.exec(run.stdout());
      if (match) {
        clearTimeout(timer);
        done(new URL(match[1]!));
      }
    };
    run.child.stdout!.on('data', check);
    run.exit.then(({ code, signal }) => {
      clearTimeout(timer);
      fail(new Error(`view --serve exited (${code ?? signal}) before printing a URL; stderr: ${run.stderr()}`));
    });
  });
  return { child: run.child, url, exit: run.exit, stderr: run.stderr };
}

/** Resolves to the connection's outcome: 'connected' or the error code (ECONNREFUSED, ...). */
function tryConnect(host: string, port: number): Promise<string> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      done('timeout');
    }, 3000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      done('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      done(err.code ?? err.message);
    });
  });
}

/** Local addresses the server must not answer on (every non-loopback address of this host). */
function outsideAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal && !(a.family === 'IPv6' && a.address.startsWith('fe80')))
    .map((a) => a!.address);
}

/** Listening TCP sockets on `port` from /proc/net/tcp{,6}: local address in the kernel's hex form. */
function listeners(port: number): string[] {
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '0A') continue; // 0A = LISTEN
      const [addr, hexPort] = cols[1]!.split(':');
      if (Number.parseInt(hexPort!, 16) === port) out.push(`${file.endsWith('6') ? 'tcp6' : 'tcp'} ${addr}`);
    }
  }
  return out;
}

const within = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([promise, new Promise<T>((_, fail) => setTimeout(() => fail(new Error(`${what}: not within ${ms} ms`)), ms))]);

describe('fenced-leader view --serve (child process)', () => {
  let dir: string;
  let file: string;
  let bigFile: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fl-serve-'));
    file = join(dir, 'run.jsonl');
    writeFileSync(file, formatTrace(syntheticTrace({ nodes: 3, durationMs: 20_000, seed: 4, faultEveryMs: 4000 })));
    // Large enough that a client that stops reading leaves the response unfinished (socket buffers full).
    bigFile = join(dir, 'big.jsonl');
    writeFileSync(bigFile, formatTrace(syntheticTrace({ nodes: 10, durationMs: 600_000, seed: 7 })));
  });

  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints a loopback URL, serves the same self-contained page, listens on loopback only and stops on SIGINT', async () => {
    const written = runCli(['view', file, '--out', join(dir, 'run.html')]);
    expect((await written.exit).code).toBe(0);
    const expected = readFileSync(join(dir, 'run.html'), 'utf8');

    const server = await serve(file);
    expect(server.url.protocol).toBe('http:');
    expect(server.url.hostname).toBe('127.0.0.1');
    const port = Number(server.url.port);
    expect(port).toBeGreaterThan(0);

    const res = await fetch(server.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const body = await res.text();
    expect(body).toBe(expected);
    expect(body).toContain('<canvas id="lanes">');
    expect(body).toContain("default-src 'none'");
    expect(body).not.toMatch(/https?:\/\//i);
    expect(body).not.toMatch(/<script[^>]+src=|<link[^>]+href=/i);
    expect((await fetch(new URL('/index.html', server.url))).status).toBe(200);
    expect((await fetch(new URL('/other', server.url))).status).toBe(404);
    expect((await fetch(server.url, { method: 'POST', body: 'x' })).status).toBe(404);

    // Loopback only: the kernel lists one IPv4 listener on 127.0.0.1 and the host's other addresses refuse.
    const listening = listeners(port);
    if (existsSync('/proc/net/tcp')) expect(listening).toEqual(['tcp 0100007F']);
    for (const address of outsideAddresses()) expect(await tryConnect(address, port), address).toBe('ECONNREFUSED');

    server.child.kill('SIGINT');
    expect(await within(server.exit, 10_000, 'exit after SIGINT')).toEqual({ code: 0, signal: null });
    expect(await tryConnect('127.0.0.1', port)).toBe('ECONNREFUSED');
    expect(server.stderr()).not.toMatch(/error/i);
  });

  it('exits 0 on SIGTERM even while a client that stopped reading holds a connection', async () => {
    const server = await serve(bigFile);
    const port = Number(server.url.port);
    const stalled: Socket = connect({ host: '127.0.0.1', port });
    await new Promise<void>((done) => stalled.once('connect', () => done()));
    stalled.pause(); // never reads: the ~1.5 MB response cannot finish
    stalled.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
    const idle: Socket = connect({ host: '127.0.0.1', port }); // connected, never sends a request
    await new Promise<void>((done) => idle.once('connect', () => done()));
    await new Promise((done) => setTimeout(done, 300));
    try {
      server.child.kill('SIGTERM');
      expect(await within(server.exit, 10_000, 'exit after SIGTERM')).toEqual({ code: 0, signal: null });
      expect(await tryConnect('127.0.0.1', port)).toBe('ECONNREFUSED');
    } finally {
      stalled.destroy();
      idle.destroy();
    }
  });

  it('picks another free port for each --port 0 server, and reports a busy port instead of crashing', async () => {
    // Each is interrupted the moment its URL appears: the signal handlers must already be in place by then.
    const servers = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const server = await serve(file);
        server.child.kill(i === 0 ? 'SIGINT' : 'SIGTERM');
        return server;
      }),
    );
    expect(new Set(servers.map((s) => s.url.port)).size).toBe(3);
    for (const server of servers) expect(await within(server.exit, 10_000, 'exit')).toEqual({ code: 0, signal: null });

    const blocker = createServer();
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', () => done()));
    const busyPort = (blocker.address() as { port: number }).port;
    try {
      const busy = runCli(['view', file, '--serve', '--port', String(busyPort)]);
      const { code } = await within(busy.exit, 30_000, 'exit on a busy port');
      expect(code).toBe(1);
      expect(busy.stderr()).toContain(`cannot listen on 127.0.0.1:${busyPort}`);
      expect(busy.stderr()).not.toMatch(/\n\s+at /); // a message, not a stack trace
      expect(busy.stdout()).toBe('');
    } finally {
      blocker.close();
    }
  });
});
