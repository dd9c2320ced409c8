import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename, resolve } from 'node:path';
import { buildViewerHtml, TraceInputError } from '../inspect/viewer.js';

const USAGE = `usage: fenced-leader view FILE [--out OUT.html] [--title TEXT] [--serve [--port N]]

Turns a trace (simulator --trace output, or an inspect recording) into one self-contained HTML page and prints its
path. With --serve, serves the page on http://127.0.0.1:PORT/ instead (loopback only; default or --port 0: any free
port), prints that URL, and runs until SIGINT (Ctrl-C) or SIGTERM.`;

export function defaultOutPath(file: string): string {
  const stripped = file.replace(/\.(jsonl|ndjson|json|trace|log)$/i, '');
  return `${stripped}.html`;
}

export async function run(argv: string[]): Promise<number> {
  let file: string | undefined;
  let out: string | undefined;
  let title: string | undefined;
  let serve = false;
  let port = 0;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    try {
      if (arg === '--help' || arg === '-h') {
        console.log(USAGE);
        return 0;
      } else if (arg === '--out' || arg === '-o') out = value();
      else if (arg === '--title') title = value();
      else if (arg === '--serve') serve = true;
      else if (arg === '--port') {
        port = Number(value());
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be an integer 0-65535');
      } else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
      else if (file === undefined) file = arg;
      else throw new UsageError(`unexpected argument ${arg}`);
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      console.error(`${err.message}\n${USAGE}`);
      return 2;
    }
  }
  if (!file) {
    console.error(USAGE);
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    console.error(`cannot read ${file}: ${(err as Error).message}`);
    return 1;
  }
  let html: string;
  try {
    html = buildViewerHtml(text, title ?? `fenced-leader · ${basename(file)}`);
  } catch (err) {
    console.error(`${file}: ${err instanceof TraceInputError ? '' : 'cannot build the page: '}${(err as Error).message}`);
    return 1;
  }
  if (!serve) {
    const path = resolve(out ?? defaultOutPath(file));
    if (!writePage(path, html)) return 1;
    console.log(path);
    return 0;
  }
  if (out && !writePage(resolve(out), html)) return 1;
  return servePage(html, port);
}

function writePage(path: string, html: string): boolean {
  try {
    writeFileSync(path, html);
    return true;
  } catch (err) {
    console.error(`cannot write ${path}: ${(err as Error).message}`);
    return false;
  }
}

/**
 * Serves `html` on http://127.0.0.1:PORT/ (loopback only; port 0 = any free one), prints the URL once listening, and
 * resolves 0 on SIGINT/SIGTERM after closing the server and every connection (a client that stopped reading cannot
 * hold the process open), or 1 if it cannot listen.
 */
export async function servePage(html: string, port: number, log: (line: string) => void = console.log): Promise<number> {
  const server = createServer((req, res) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || (req.url !== '/' && req.url !== '/index.html')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    res.end(req.method === 'HEAD' ? undefined : html);
  });
  // Signal handlers go in before the URL is printed: whoever reads the URL may interrupt at once.
  let signalled = false;
  let listening = false;
  let onStop: () => void = () => {};
  const stopped = new Promise<void>((done) => {
    onStop = done;
  });
  const stop = () => {
    signalled = true;
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (!listening) return; // still starting: stopped once listen() settles
    server.close(() => onStop());
    server.closeAllConnections();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', fail);
        done();
      });
    });
  } catch (err) {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    console.error(`cannot listen on 127.0.0.1:${port}: ${(err as Error).message}`);
    return 1;
  }
  listening = true;
  if (signalled) {
    stop();
    await stopped;
    return 0;
  }
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  log(`http://127.0.0.1:${actual}/`);
  await stopped;
  return 0;
}

class UsageError extends Error {}
