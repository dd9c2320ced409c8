import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';
import type { ScenarioOutcome } from '../sim/campaign.js';
import { generateScenario } from '../sim/scenario.js';
import { parseReplayArgs, run as replay } from '../src/cli/replay.js';
import { formatSummary, parseSimArgs, replayCommand, run as sim, summarizeCampaign } from '../src/cli/sim.js';

// The commands' input handling, in this process (no simulation runs: bad input is refused before any). Exit 1 is
// reserved for "a checker found a violation"; bad input is a usage error: exit 2, a message naming the flag, no throw.
// The bin itself (exit codes of the real process, another cwd, worker threads) is in test/cli.test.ts.
const scratch = mkdtempSync(join(tmpdir(), 'fl-cli-input-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let log: MockInstance;
let err: MockInstance;
beforeEach(() => {
  log = vi.spyOn(console, 'log').mockImplementation(() => {});
  err = vi.spyOn(console, 'error').mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());
const stderr = () => err.mock.calls.map((c) => c.join(' ')).join('\n');
const stdout = () => log.mock.calls.map((c) => c.join(' ')).join('\n');
const quick = ['--seeds', '1', '--duration', '2s', '--workers', '1'];
const noTrace = join(scratch, 'no', 'such', 'dir', 'run.jsonl');

describe('bad input is a usage error: exit 2, the flag named, nothing run', () => {
  it.each([
    // Finding 2: non-numbers (num() used to run outside the try and throw).
    [['--seeds', 'abc'], '--seeds takes a number'],
    [['--seed', 'abc'], '--seed takes a number'],
    [['--workers', 'abc'], '--workers takes a number'],
    // Finding 1: timing the elector refuses, checked up front with the library's parser (message names flag and fix).
    [['--lease', '500', '--renew-deadline', '600'], '--renew-deadline (renewDeadlineMs): renewDeadlineMs × (1 + maxDriftRate)'],
    [['--lease', '500', '--renew-deadline', '600'], 'Raise leaseDurationMs to at least 613'],
    [['--retry', '700'], '--retry (retryPeriodMs)'],
    [['--max-drift', '2'], '--max-drift (maxDriftRate)'],
    [['--lease=-1'], '--lease (leaseDurationMs)'],
    [['--lease=-1', '--unsafe-timing'], '--lease (leaseDurationMs)'], // unsafe skips the inequalities, not the types
    [['--workers', '2', '--seeds', '4', '--lease', '500', '--renew-deadline', '600'], 'renewDeadlineMs'],
    // Finding 3: impossible sizes.
    [['--nodes', '0'], '--nodes must be at least 1'],
    [['--nodes', '2.5'], '--nodes takes a whole number'],
    [['--nodes=-3'], '--nodes must be at least 1'],
    [['--agents', '2.5'], '--agents takes a whole number'],
    [['--agents=-1'], '--agents must be at least 0'],
    [['--seeds', '0'], '--seeds must be at least 1'],
    [['--seeds=-2'], '--seeds must be at least 1'],
    [['--seeds', ''], '--seeds takes a number'],
    [['--seed', '1.5'], '--seed takes a whole number'],
    [['--seed=-1'], '--seed must be at least 0'],
    [['--workers', '0'], '--workers must be at least 1'],
    [['--duration', '0'], '--duration must be at least 1 ms'],
    [['--fault-rate=-3'], '--fault-rate must be at least 0'],
    [['--max-latency', '0'], '--max-latency must be at least 1'],
    // Finding 4: an unwritable trace fails before the campaign, not after it.
    [['--trace', noTrace], `--trace: cannot write ${noTrace}`],
  ])('sim %j', async (args, message) => {
    await expect(sim([...quick, ...args])).resolves.toBe(2);
    expect(stderr()).toContain(message);
    expect(stdout()).toBe(''); // no summary: nothing ran
  });

  it.each([
    [['--seed', 'abc'], '--seed takes a number'], // finding 5: used to replay seed NaN and exit 0
    [['--seed', '1', '--lease', '500'], '--renew-deadline (renewDeadlineMs)'], // finding 1
    [['--seed', '1', '--nodes', '0'], '--nodes must be at least 1'],
    [['--seed', '1', '--trace', noTrace], `--trace: cannot write ${noTrace}`], // finding 4
  ])('replay %j', async (args, message) => {
    await expect(replay(['--duration', '2s', ...args])).resolves.toBe(2);
    expect(stderr()).toContain(message);
    expect(stdout()).toBe('');
  });

  it('accepts the smallest sensible values (one node, no agents, no faults, seed 0)', () => {
    const a = parseSimArgs(['--nodes', '1', '--agents', '0', '--fault-rate', '0', '--seed', '0', '--seeds', '2', '--duration', '1', '--workers', '1']);
    expect(a.seeds).toEqual([0, 1]);
    expect(a.generate).toMatchObject({ nodes: 1, agents: 0, faultRate: 0, durationMs: 1 });
  });

  it('--unsafe-timing still runs a well-formed unsafe timing (to watch the checkers catch it)', async () => {
    const code = await sim([...quick, '--lease', '500', '--renew-deadline', '600', '--unsafe-timing', '--json']);
    expect(code).not.toBe(2);
    expect(JSON.parse(stdout())).toMatchObject({ scenarios: 1 });
  });

  it('a writable --trace is written after the campaign', async () => {
    const path = join(scratch, 'run.jsonl');
    await expect(sim([...quick, '--faults', 'none', '--trace', path])).resolves.toBe(0);
    expect(existsSync(path)).toBe(true);
    expect(readFileSync(path, 'utf8')).toMatch(/^\{.*"kind":"meta"/);
  });
});

/** The words a POSIX shell makes of `command` (what a user pasting it would run). */
function shellWords(command: string): string[] {
  const r = spawnSync('/bin/sh', ['-c', `printf '%s\\n' ${command}`], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  return r.stdout.split('\n').slice(0, -1);
}

describe('the printed replay command (finding 6)', () => {
  it.each([
    [['--faults', 'partition, skew, drift, pause, crash, loss', '--nodes', '3', '--duration', '20s', '--unsafe-timing', '--renew-deadline', '2000', '--no-fencing']],
    [['--faults', ' crash,wipe ', '--duration', ' 3s', '--agents', '1', '--max-latency', '30', '--fault-rate', '6.5']],
    [['--lease=2000', '--retry', '100', '--max-drift', '0.02', '--request-timeout', '150', '--break-assumptions', '--faults', 'none']],
  ])('pasted into a shell, reproduces the same scenario: %j', (args) => {
    const campaign = parseSimArgs([...args, '--seed', '7', '--seeds', '3']);
    const command = replayCommand(8, campaign.values);
    const words = shellWords(command);
    expect(words.slice(0, 4)).toEqual(['npx', 'fenced-leader', 'replay', '--seed']);
    const again = parseReplayArgs(words.slice(3));
    expect(again.scenario).toEqual(generateScenario(8, campaign.generate));
  });

  it('prints the fault list normalised, without spaces', () => {
    const { values } = parseSimArgs(['--faults', 'partition, skew']);
    expect(replayCommand(3, values)).toBe('npx fenced-leader replay --seed 3 --faults partition,skew');
  });
});

describe('summary table (finding 8)', () => {
  const outcome: ScenarioOutcome = {
    seed: 1,
    violations: [],
    simulatedMs: 2000,
    availability: 1,
    failovers: [],
    epochs: 1,
    transitions: 10,
    events: 100,
    acceptedWrites: 5,
    rejectedWrites: 0,
    agents: { tasks: 2, completed: 2, requeued: 0, staleMarks: 0, retired: 0, detectionMs: [], detectionBoundMs: 900 },
  };

  it('shows a dash, not NaN, for latencies with nothing measured; --json has null', () => {
    const summary = summarizeCampaign([outcome]);
    const table = formatSummary(summary);
    expect(table).not.toContain('NaN');
    expect(table).toMatch(/failover p50 \/ p99 \/ max +– \/ – \/ – ms {2}\(0 failovers\)/);
    expect(table).toMatch(/stale detection p50 \/ p99 \/ max +– \/ – \/ – ms/);
    expect(JSON.parse(JSON.stringify(summary)).failoverMs).toEqual({ p50: null, p99: null, max: null, count: 0 });
  });

  it('still prints measured latencies', () => {
    const table = formatSummary(summarizeCampaign([{ ...outcome, failovers: [120, 80] }]));
    expect(table).toMatch(/failover p50 \/ p99 \/ max +\d+(\.\d)? \/ \d+(\.\d)? \/ 120 ms {2}\(2 failovers\)/);
  });
});
