import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The main job as users run it: the real bin, in a child process.
const bin = resolve(import.meta.dirname, '..', 'bin', 'fenced-leader.js');

function run(args: string[], opts: { cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe('fenced-leader sim (the main job)', () => {
  it('runs a clean campaign, exits 0, and reports every checker in --json', async () => {
    const { code, stdout } = await run(['sim', '--seeds', '3', '--duration', '5s', '--workers', '1', '--json']);
    expect(code).toBe(0);
    const summary = JSON.parse(stdout) as { scenarios: number; violations: Record<string, { unexpected: number }>; failingSeeds: number[] };
    expect(summary.scenarios).toBe(3);
    expect(Object.keys(summary.violations)).toEqual(
      expect.arrayContaining(['one-leader-per-epoch', 'fenced-writes-monotone', 'real-time-exclusivity', 'self-fencing', 'liveness', 'epoch-monotone-view']),
    );
    for (const v of Object.values(summary.violations)) expect(v.unexpected).toBe(0);
    expect(summary.failingSeeds).toEqual([]);
  }, 60_000);

  it('with agents, reports tasks, stale marks and retirements', async () => {
    const { code, stdout } = await run(['sim', '--seeds', '2', '--duration', '5s', '--agents', '2', '--workers', '1', '--json']);
    expect(code).toBe(0);
    const { agents } = JSON.parse(stdout) as { agents: { tasks: number; completed: number; staleMarks: number; retired: number } };
    expect(agents.tasks).toBeGreaterThan(0);
    expect(agents.completed).toBe(agents.tasks);
    expect(typeof agents.retired).toBe('number');
  }, 60_000);

  it('exits 1 on a counter-example, prints a replay command, and the replay shows the same violation', async () => {
    const broken = ['--duration', '20s', '--lease', '1000', '--renew-deadline', '1200', '--retry', '100', '--no-fencing', '--unsafe-timing'];
    const { code, stdout } = await run(['sim', '--seeds', '5', '--seed', '1', '--workers', '1', ...broken]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/FAILED: \d+ scenario\(s\); first: seed \d+: \[fenced-writes-monotone\]/);
    const replay = stdout.match(/replay: npx fenced-leader (replay .*)$/m)?.[1];
    expect(replay).toBeDefined();
    const again = await run(replay!.split(' '));
    expect(again.code).toBe(1);
    expect(again.stdout).toMatch(/VIOLATION fenced-writes-monotone: resource accepted token \d+ from n\d after accepting \d+ from n\d/);
  }, 120_000);

  it('bad input exits 2 with a message, not 1 with a stack trace (1 means a checker failed)', async () => {
    // test/cliInput.test.ts checks each flag in-process; this is the real process's exit code and stderr.
    const { code, stdout, stderr } = await run(['sim', '--seeds', '1', '--duration', '2s', '--lease', '500', '--renew-deadline', '600']);
    expect(code).toBe(2);
    expect(stderr).toContain('--renew-deadline (renewDeadlineMs)');
    expect(stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
    expect(stdout).toBe('');
  }, 60_000);

  it('runs worker threads from a working directory outside the checkout', async () => {
    const { code, stdout, stderr } = await run(['sim', '--seeds', '2', '--duration', '2s', '--workers', '2', '--json'], { cwd: tmpdir() });
    expect(stderr).not.toContain('ERR_MODULE_NOT_FOUND');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ scenarios: 2, failingSeeds: [] });
  }, 60_000);
});
