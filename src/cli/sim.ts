import { closeSync, openSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { agentCheckers } from '../../sim/agentCheckers.js';
import { simulateAgents } from '../../sim/agents.js';
import { runCampaign, type ScenarioOutcome } from '../../sim/campaign.js';
import { defaultCheckers } from '../../sim/checkers.js';
import { DEFAULT_TIMING, FAULT_CLASSES, type FaultClass, faultClasses, type GenerateOptions, generateScenario, type SimTiming } from '../../sim/scenario.js';
import { percentile } from '../../sim/stats.js';
import { formatTrace } from '../../sim/trace.js';
import { InvalidOptionsError, type OptionIssue } from '../errors.js';
import { fromZodIssues, parseTiming, timingSchema } from '../options.js';

export const scenarioArgs = {
  seeds: { type: 'string' },
  seed: { type: 'string' },
  nodes: { type: 'string' },
  duration: { type: 'string' },
  faults: { type: 'string' },
  'fault-rate': { type: 'string' },
  lease: { type: 'string' },
  'renew-deadline': { type: 'string' },
  retry: { type: 'string' },
  'max-drift': { type: 'string' },
  'request-timeout': { type: 'string' },
  'max-latency': { type: 'string' },
  agents: { type: 'string' },
  'break-assumptions': { type: 'boolean' },
  'no-fencing': { type: 'boolean' },
  'unsafe-timing': { type: 'boolean' },
  json: { type: 'boolean' },
  trace: { type: 'string' },
  workers: { type: 'string' },
  help: { type: 'boolean' },
} as const;

export const SCENARIO_HELP = `  --nodes N               cluster size (default 5)
  --duration D            simulated time per scenario: 60000, 60s, 2m (default 60s)
  --faults LIST           partition,skew,drift,pause,crash,loss,delay,wipe | all | none (default all: every class
                          but wipe; a store wipe breaks the stated store-durability assumption, so its findings
                          are reported as expected; ask for it by name, e.g. --faults partition,crash,wipe)
  --fault-rate N          faults per simulated minute (default 12)
  --lease MS --renew-deadline MS --retry MS --max-drift R --request-timeout MS
                          timing options (default 1000 / 600 / 200 / 0.01 / = retry)
  --max-latency MS        largest one-way network delay (default 40)
  --agents N              N worker agents and a task board join (crashed, paused, cut off too), with 4 more checkers
  --break-assumptions     also drift beyond max-drift and pause beyond the margin (violations then expected)
  --unsafe-timing         skip option validation (to watch the checkers catch an unsafe configuration)
  --no-fencing            the protected resource accepts every token`;

const HELP = `usage: fenced-leader sim [options]
Runs a campaign of deterministic simulated scenarios of the real election machine and checks every run.
  --seeds N               number of scenarios (default 100), seeds S..S+N-1
  --seed S                first seed (default 1); with --seeds 1 runs exactly that seed
${SCENARIO_HELP}
  --trace FILE            write the trace (JSON lines) of the first failing scenario, or of the first one
  --workers N             worker threads (default: one per core; 1 runs in the main thread)
  --json                  print the summary as JSON
Exit code 1 when any checker fails (not counting violations expected from --break-assumptions/--unsafe-timing),
2 on invalid options (unsafe timing included, unless --unsafe-timing).`;

type Values = { [K in keyof typeof scenarioArgs]?: (typeof scenarioArgs)[K]['type'] extends 'boolean' ? boolean : string };

/** Bad command-line input: reported as one message plus the help, exit 2 (exit 1 means "a checker failed"). */
export class UsageError extends Error {}

interface NumRule {
  /** A whole number (and a safe integer). */
  readonly whole?: boolean;
  readonly min?: number;
}

function num(v: string | undefined, name: string, rule: NumRule = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? Number.NaN : Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} takes a number, got "${v}"`);
  if (rule.whole && !Number.isSafeInteger(n)) throw new UsageError(`--${name} takes a whole number, got "${v}"`);
  if (rule.min !== undefined && n < rule.min) throw new UsageError(`--${name} must be at least ${rule.min}, got "${v}"`);
  return n;
}

export function parseDuration(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new UsageError(`--duration takes 60000, 60s or 1m, got "${v}"`);
  const n = Number(m[1]);
  const ms = Math.round(m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n);
  if (ms <= 0) throw new UsageError(`--duration must be at least 1 ms of simulated time, got "${v}"`);
  return ms;
}

/** The flag behind each timing option, to name it in messages. */
const TIMING_FLAGS: Record<string, string> = {
  leaseDurationMs: 'lease',
  renewDeadlineMs: 'renew-deadline',
  retryPeriodMs: 'retry',
  maxDriftRate: 'max-drift',
  requestTimeoutMs: 'request-timeout',
};

/**
 * Checks the timing a scenario will run with (the simulator's defaults merged with the flags) with the library's
 * own parser, as the elector will: unsafe timing is refused unless `unsafe` (--unsafe-timing), which skips only the
 * safety inequalities — a value the elector cannot take at all (a negative lease) is refused either way.
 */
export function checkTiming(timing: Partial<SimTiming>, unsafe: boolean): void {
  const merged = { ...DEFAULT_TIMING, ...timing };
  const parsed = timingSchema.safeParse(merged);
  let issues: readonly OptionIssue[] = parsed.success ? [] : fromZodIssues(parsed.error);
  if (issues.length === 0 && !unsafe) {
    try {
      parseTiming(merged);
    } catch (err) {
      if (!InvalidOptionsError.is(err)) throw err;
      issues = err.issues;
    }
  }
  if (issues.length === 0) return;
  const label = (path: string) =>
    path === 'requestTimeoutMs' && timing.requestTimeoutMs === undefined
      ? '--request-timeout (requestTimeoutMs, = --retry when not given)'
      : TIMING_FLAGS[path]
        ? `--${TIMING_FLAGS[path]} (${path})`
        : path;
  const lines = issues.map((i) => `  ${label(i.path)}: ${i.message}`);
  const hint = parsed.success ? '\n  (--unsafe-timing runs it anyway, to watch the checkers catch an unsafe configuration)' : '';
  throw new UsageError(`invalid timing options:\n${lines.join('\n')}${hint}`);
}

export function generateOptions(v: Values): GenerateOptions {
  let faults: GenerateOptions['faults'] = 'all';
  if (v.faults && v.faults !== 'all') {
    faults =
      v.faults === 'none'
        ? 'none'
        : v.faults.split(',').map((f) => {
            const name = f.trim() as FaultClass;
            if (![...FAULT_CLASSES, 'wipe'].includes(name)) throw new UsageError(`unknown fault "${f}": use ${FAULT_CLASSES.join(', ')}, wipe, all or none`);
            return name;
          });
  }
  const timing: Record<string, number> = {};
  const set = (k: string, x: number | undefined) => {
    if (x !== undefined) timing[k] = x;
  };
  set('leaseDurationMs', num(v.lease, 'lease'));
  set('renewDeadlineMs', num(v['renew-deadline'], 'renew-deadline'));
  set('retryPeriodMs', num(v.retry, 'retry'));
  set('maxDriftRate', num(v['max-drift'], 'max-drift'));
  set('requestTimeoutMs', num(v['request-timeout'], 'request-timeout'));
  const unsafeTiming = v['unsafe-timing'] ?? false;
  checkTiming(timing, unsafeTiming);
  const o: GenerateOptions = {
    // One node is a cluster too (it elects itself); the simulator has no upper bound, only run time.
    nodes: num(v.nodes, 'nodes', { whole: true, min: 1 }),
    durationMs: parseDuration(v.duration),
    faults,
    faultRate: num(v['fault-rate'], 'fault-rate', { min: 0 }),
    timing,
    breakAssumptions: v['break-assumptions'] ?? false,
    fencing: !v['no-fencing'],
    unsafeTiming,
    // The simulated network's smallest one-way delay is 1 ms.
    maxLatencyMs: num(v['max-latency'], 'max-latency', { min: 1 }),
    agents: num(v.agents, 'agents', { whole: true, min: 0 }),
  };
  return JSON.parse(JSON.stringify(o)) as GenerateOptions;
}

/** A seed: a whole number ≥ 0. */
export function parseSeed(v: string | undefined): number | undefined {
  return num(v, 'seed', { whole: true, min: 0 });
}

/** Quotes `s` for a POSIX shell when it holds anything but plain characters. */
export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/** The flags that reproduce these generation options (for the printed replay command), safe to paste into a shell. */
export function generateFlags(v: Values): string {
  const out: string[] = [];
  for (const k of ['nodes', 'duration', 'faults', 'fault-rate', 'lease', 'renew-deadline', 'retry', 'max-drift', 'request-timeout', 'max-latency', 'agents'] as const) {
    let value = v[k];
    if (value === undefined) continue;
    // The normalised list: `partition, skew` given in one quoted argument comes back as `partition,skew`.
    if (k === 'faults') value = value.split(',').map((f) => f.trim()).join(',');
    // `--lease -1` reads as two options: a value starting with a dash goes after `=`.
    out.push(value.startsWith('-') ? shellQuote(`--${k}=${value}`) : `--${k} ${shellQuote(value)}`);
  }
  for (const k of ['break-assumptions', 'no-fencing', 'unsafe-timing'] as const) if (v[k]) out.push(`--${k}`);
  return out.join(' ');
}

/** The command that replays `seed` of a campaign run with these flags. */
export function replayCommand(seed: number, v: Values): string {
  const flags = generateFlags(v);
  return `npx fenced-leader replay --seed ${seed}${flags ? ` ${flags}` : ''}`;
}

export interface SimArgs {
  readonly values: Values;
  readonly generate: GenerateOptions;
  readonly seeds: number[];
  readonly workers: number | undefined;
}

/** Parses and checks `sim`'s arguments; throws a UsageError (or parseArgs' own error) on bad input. */
export function parseSimArgs(argv: string[]): SimArgs {
  const values = parseArgs({ args: argv, options: scenarioArgs, allowPositionals: false }).values as Values;
  if (values.help) return { values, generate: {}, seeds: [], workers: undefined };
  const generate = generateOptions(values);
  const count = num(values.seeds, 'seeds', { whole: true, min: 1 }) ?? 100;
  const first = parseSeed(values.seed) ?? 1;
  const workers = num(values.workers, 'workers', { whole: true, min: 1 });
  generateScenario(first, generate); // fail fast on nonsense options
  return { values, generate, seeds: Array.from({ length: count }, (_, i) => first + i), workers };
}

/** Opens `path` for writing now, so an unwritable path fails before the run rather than after it. */
export function openOutput(path: string, flag: string): number {
  try {
    return openSync(path, 'w');
  } catch (err) {
    throw new UsageError(`--${flag}: cannot write ${path}: ${(err as Error).message}`);
  }
}

export async function run(argv: string[]): Promise<number> {
  let args: SimArgs;
  let traceFd: number | undefined;
  try {
    args = parseSimArgs(argv);
    if (args.values.help) {
      console.log(HELP);
      return 0;
    }
    if (typeof args.values.trace === 'string') traceFd = openOutput(args.values.trace, 'trace');
  } catch (err) {
    console.error(`fenced-leader sim: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: v, generate: gen, seeds } = args;
  const tty = process.stderr.isTTY && !v.json;
  let done = 0;
  const progress = () => {
    if (!tty) return;
    const width = 30;
    const filled = Math.round((done / seeds.length) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${seeds.length} scenarios`);
  };
  progress();
  let outcomes: ScenarioOutcome[];
  try {
    outcomes = await runCampaign({
      seeds,
      generate: gen,
      workers: args.workers,
      onOutcome: () => {
        done++;
        progress();
      },
    });
  } catch (err) {
    if (traceFd !== undefined) closeSync(traceFd);
    throw err;
  }
  if (tty) process.stderr.write('\r\x1b[K');

  const failing = outcomes.filter((o) => o.violations.some((x) => !x.expected));
  let traceError: string | undefined;
  if (traceFd !== undefined) {
    const seed = failing[0]?.seed ?? seeds[0]!;
    try {
      const r = await simulateAgents(generateScenario(seed, gen));
      try {
        writeFileSync(traceFd, formatTrace(r.trace));
      } catch (err) {
        // Opened before the run, so rare (a full disk): still print the summary, without a stack trace.
        traceError = `fenced-leader sim: cannot write the trace to ${v.trace}: ${(err as Error).message}`;
      }
    } finally {
      closeSync(traceFd);
    }
  }
  const summary = summarizeCampaign(outcomes);
  const replay = failing[0] ? replayCommand(failing[0].seed, v) : undefined;
  if (v.json) {
    console.log(JSON.stringify({ ...summary, failingSeeds: failing.map((f) => f.seed), replay }, null, 2));
  } else {
    console.log(formatSummary(summary));
    if (!faultClasses(gen.faults).includes('wipe')) console.log('store wipes: none (not in the default mix: a wipe breaks the store-durability assumption; --faults ...,wipe adds them)');
    if (v.trace && !traceError) console.log(`trace of seed ${failing[0]?.seed ?? seeds[0]} written to ${v.trace}`);
    if (replay) {
      const f = failing[0]!;
      const first = f.violations.find((x) => !x.expected)!;
      console.log(`\nFAILED: ${failing.length} scenario(s); first: seed ${f.seed}: [${first.checker}] ${first.message}`);
      console.log(`replay: ${replay}`);
    }
  }
  if (traceError) console.error(traceError);
  return failing.length > 0 ? 1 : traceError ? 2 : 0;
}

export interface CampaignSummary {
  scenarios: number;
  simulatedSeconds: number;
  violations: Record<string, { unexpected: number; expected: number }>;
  failoverMs: { p50: number; p99: number; max: number; count: number };
  availabilityPct: number;
  epochsIssued: number;
  transitions: number;
  writes: { accepted: number; rejected: number };
  agents?: { tasks: number; completed: number; requeued: number; staleMarks: number; retired: number; detectionMs: { p50: number; p99: number; max: number; count: number }; detectionBoundMs: { min: number; max: number } };
}

export function summarizeCampaign(outcomes: readonly ScenarioOutcome[]): CampaignSummary {
  const violations: CampaignSummary['violations'] = {};
  for (const c of outcomes.some((o) => o.agents) ? [...defaultCheckers, ...agentCheckers] : defaultCheckers) violations[c.name] = { unexpected: 0, expected: 0 };
  const withAgents = outcomes.filter((o) => o.agents).map((o) => o.agents!);
  const detection = withAgents.flatMap((a) => a.detectionMs).sort((a, b) => a - b);
  const failovers: number[] = [];
  let sim = 0;
  let avail = 0;
  let epochs = 0;
  let transitions = 0;
  let accepted = 0;
  let rejected = 0;
  for (const o of outcomes) {
    for (const x of o.violations) {
      if (!violations[x.checker]) violations[x.checker] = { unexpected: 0, expected: 0 };
      const slot = violations[x.checker]!;
      if (x.expected) slot.expected++;
      else slot.unexpected++;
    }
    failovers.push(...o.failovers);
    sim += o.simulatedMs;
    avail += o.availability * o.simulatedMs;
    epochs += o.epochs;
    transitions += o.transitions;
    accepted += o.acceptedWrites;
    rejected += o.rejectedWrites;
  }
  failovers.sort((a, b) => a - b);
  const r = (n: number) => Math.round(n * 10) / 10;
  return {
    scenarios: outcomes.length,
    simulatedSeconds: r(sim / 1000),
    violations,
    failoverMs: { p50: r(percentile(failovers, 50)), p99: r(percentile(failovers, 99)), max: r(failovers.at(-1) ?? Number.NaN), count: failovers.length },
    availabilityPct: sim > 0 ? r((avail / sim) * 100) : 0,
    epochsIssued: epochs,
    transitions,
    writes: { accepted, rejected },
    ...(withAgents.length > 0
      ? {
          agents: {
            tasks: withAgents.reduce((n, a) => n + a.tasks, 0),
            completed: withAgents.reduce((n, a) => n + a.completed, 0),
            requeued: withAgents.reduce((n, a) => n + a.requeued, 0),
            staleMarks: withAgents.reduce((n, a) => n + a.staleMarks, 0),
            retired: withAgents.reduce((n, a) => n + a.retired, 0),
            detectionMs: { p50: r(percentile(detection, 50)), p99: r(percentile(detection, 99)), max: r(detection.at(-1) ?? Number.NaN), count: detection.length },
            detectionBoundMs: { min: r(Math.min(...withAgents.map((a) => a.detectionBoundMs))), max: r(Math.max(...withAgents.map((a) => a.detectionBoundMs))) },
          },
        }
      : {}),
  };
}

/** A latency for the table: none measured (no failover, no detection) is a dash, not NaN (`--json` has null). */
function ms(n: number): string {
  return Number.isFinite(n) ? String(n) : '–';
}

export function formatSummary(s: CampaignSummary): string {
  const rows: [string, string][] = [
    ['scenarios', String(s.scenarios)],
    ['simulated time', `${s.simulatedSeconds} s`],
    ['machine transitions', String(s.transitions)],
  ];
  for (const [name, c] of Object.entries(s.violations)) {
    rows.push([`violations: ${name}`, `${c.unexpected}${c.expected ? `  (+${c.expected} expected: assumptions broken on purpose)` : ''}`]);
  }
  rows.push(
    ['failover p50 / p99 / max', `${ms(s.failoverMs.p50)} / ${ms(s.failoverMs.p99)} / ${ms(s.failoverMs.max)} ms  (${s.failoverMs.count} failovers)`],
    ['leader availability', `${s.availabilityPct} %`],
    ['epochs issued', String(s.epochsIssued)],
    ['fenced writes accepted / rejected', `${s.writes.accepted} / ${s.writes.rejected}`],
  );
  if (s.agents) {
    const a = s.agents;
    const bound = a.detectionBoundMs.min === a.detectionBoundMs.max ? `${a.detectionBoundMs.max}` : `${a.detectionBoundMs.min}–${a.detectionBoundMs.max}`;
    rows.push(
      ['tasks completed / submitted', `${a.completed} / ${a.tasks}`],
      ['tasks requeued by sweeps', String(a.requeued)],
      ['agents marked stale', String(a.staleMarks)],
      ['agents retired from the index', String(a.retired)],
      ['stale detection p50 / p99 / max', `${ms(a.detectionMs.p50)} / ${ms(a.detectionMs.p99)} / ${ms(a.detectionMs.max)} ms  (bound ${bound} ms while one leader leads throughout; a failover or a refused sweep adds to it)`],
    );
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, val]) => `${k.padEnd(w)}  ${val}`).join('\n');
}
