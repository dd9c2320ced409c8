/**
 * `fenced-leader view FILE` (the CLI as users run it) on files that are not usable traces, and on an --out it cannot
 * write: a one-line error, exit 1, no stack trace, and no page written as if all was well.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TRACE_FORMAT } from '../../sim/trace.js';

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin', 'fenced-leader.js');
const dir = mkdtempSync(join(tmpdir(), 'fl-view-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function view(content: string, name: string, extra: string[] = []) {
  const file = join(dir, `${name}.jsonl`);
  writeFileSync(file, content);
  const r = spawnSync(process.execPath, [bin, 'view', file, ...extra], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { file, code: r.status, stdout: r.stdout, stderr: r.stderr, html: join(dir, `${name}.html`) };
}

const META = JSON.stringify({ kind: 'meta', format: TRACE_FORMAT, seed: 1, nodes: ['n1'], options: {} });
const TRANSITION = JSON.stringify({ t: 0, kind: 'transition', node: 'n1', from: 'start', to: 'follower.reading', event: 'xstate.init', epoch: null });

describe('fenced-leader view: unusable input and output', () => {
  it.each([
    ['empty', '', 'no trace lines (expected meta/transition/inspect lines)'],
    ['blank', '\n\n   \n', 'no trace lines (expected meta/transition/inspect lines)'],
    ['not-a-trace', '{"name":"some-package","version":"1.0.0"}\n', 'no trace lines (expected meta/transition/inspect lines)'],
    ['null-line', `${META}\nnull\n${TRANSITION}\n`, 'line 2 is not a JSON object (null)'],
    ['wrong-type', `${META}\n${TRANSITION}\n{"t":1,"kind":"violation","checker":"c","message":"m","nodes":"n1"}\n`, 'line 3 is not a valid `violation` trace line: nodes: '],
    ['truncated', `${META}\n${TRANSITION}\n${TRANSITION.slice(0, 30)}`, 'line 3 is not JSON: '],
  ])('%s: exit 1, "FILE: reason" on one line, no page written', (name, content, reason) => {
    const r = view(content, name);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith(`${r.file}: ${reason}`)).toBe(true);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(r.html)).toBe(false);
  });

  it('--out into a directory that does not exist: exit 1, "cannot write PATH: reason", no stack trace', () => {
    const out = join(dir, 'no-such-dir', 'page.html');
    const r = view(`${META}\n${TRANSITION}\n`, 'ok', ['--out', out]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^cannot write ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOENT[^\n]*\n$`));
  });
});
