import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename, resolve } from 'node:path';
import { buildViewerHtml } from '../inspect/viewer.js';

const USAGE = `usage: fenced-leader view FILE [--out OUT.html] [--title TEXT] [--serve [--port N]]

Turns a trace (simulator --trace output, or an inspect recording) into one self-contained HTML page and prints its
path. With --serve, serves the page on http://127.0.0.1:PORT/ instead (default port: any free one) until interrupted.`;

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
  let html: string;
  try {
    html = buildViewerHtml(readFileSync(file, 'utf8'), title ?? `fenced-leader · ${basename(file)}`);
  } catch (err) {
    console.error(`cannot read ${file}: ${(err as Error).message}`);
    return 1;
  }
  if (!serve) {
    const path = resolve(out ?? defaultOutPath(file));
    writeFileSync(path, html);
    console.log(path);
    return 0;
  }
  if (out) writeFileSync(resolve(out), html);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/' && req.url !== '/index.html')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => done());
  });
  const address = server.address();
  const actual = typeof address === 'object' && address ? address.port : port;
  console.log(`http://127.0.0.1:${actual}/`);
  await new Promise<void>((done) => {
    const stop = () => server.close(() => done());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

class UsageError extends Error {}
