import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { agentCheckers } from '../../sim/agentCheckers.js';
import { simulateAgents } from '../../sim/agents.js';
import { runCampaign, type ScenarioOutcome } from '../../sim/campaign.js';
import { defaultCheckers } from '../../sim/checkers.js';
import { FAULT_CLASSES, type FaultClass, type GenerateOptions, generateScenario } from '../../sim/scenario.js';
import { percentile } from '../../sim/stats.js';
import { formatTrace } from '../../sim/trace.js';

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
  --faults LIST           partition,skew,drift,pause,crash,loss,wipe | all | none (default all)
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
  --workers N             worker threads (default: one per core)
  --json                  print the summary as JSON
Exit code 1 when any checker fails (not counting violations expected from --break-assumptions/--unsafe-timing).`;

type Values = { [K in keyof typeof scenarioArgs]?: (typeof scenarioArgs)[K]['type'] extends 'boolean' ? boolean : string };

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} takes a number, got "${v}"`);
  return n;
}

export function parseDuration(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new Error(`--duration takes 60000, 60s or 1m, got "${v}"`);
  const n = Number(m[1]);
  return Math.round(m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n);
}

export function generateOptions(v: Values): GenerateOptions {
  let faults: GenerateOptions['faults'] = 'all';
  if (v.faults && v.faults !== 'all') {
    faults =
      v.faults === 'none'
        ? 'none'
        : v.faults.split(',').map((f) => {
            const name = f.trim() as FaultClass;
            if (![...FAULT_CLASSES, 'wipe'].includes(name)) throw new Error(`unknown fault "${f}": use ${FAULT_CLASSES.join(', ')}, wipe, all or none`);
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
  const o: GenerateOptions = {
    nodes: num(v.nodes, 'nodes'),
    durationMs: parseDuration(v.duration),
    faults,
    faultRate: num(v['fault-rate'], 'fault-rate'),
    timing,
    breakAssumptions: v['break-assumptions'] ?? false,
    fencing: !v['no-fencing'],
    unsafeTiming: v['unsafe-timing'] ?? false,
    maxLatencyMs: num(v['max-latency'], 'max-latency'),
    agents: num(v.agents, 'agents'),
  };
  return JSON.parse(JSON.stringify(o)) as GenerateOptions;
}

/** The flags that reproduce these generation options (for the printed replay command). */
export function generateFlags(v: Values): string {
  const out: string[] = [];
  for (const k of ['nodes', 'duration', 'faults', 'fault-rate', 'lease', 'renew-deadline', 'retry', 'max-drift', 'request-timeout', 'max-latency', 'agents'] as const) {
    if (v[k] !== undefined) out.push(`--${k} ${v[k]}`);
  }
  for (const k of ['break-assumptions', 'no-fencing', 'unsafe-timing'] as const) if (v[k]) out.push(`--${k}`);
  return out.join(' ');
}

export async function run(argv: string[]): Promise<number> {
  let v: Values;
  let gen: GenerateOptions;
  try {
    v = parseArgs({ args: argv, options: scenarioArgs, allowPositionals: false }).values as Values;
    if (v.help) {
      console.log(HELP);
      return 0;
    }
    gen = generateOptions(v);
    generateScenario(1, gen); // fail fast on nonsense options
  } catch (err) {
    console.error(`fenced-leader sim: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const count = num(v.seeds, 'seeds') ?? 100;
  const first = num(v.seed, 'seed') ?? 1;
  const seeds = Array.from({ length: Math.max(1, count) }, (_, i) => first + i);
  const tty = process.stderr.isTTY && !v.json;
  let done = 0;
  const progress = () => {
    if (!tty) return;
    const width = 30;
    const filled = Math.round((done / seeds.length) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${seeds.length} scenarios`);
  };
  progress();
  const outcomes = await runCampaign({
    seeds,
    generate: gen,
    workers: num(v.workers, 'workers'),
    onOutcome: () => {
      done++;
      progress();
    },
  });
  if (tty) process.stderr.write('\r\x1b[K');

  const failing = outcomes.filter((o) => o.violations.some((x) => !x.expected));
  if (v.trace) {
    const seed = failing[0]?.seed ?? seeds[0]!;
    const r = await simulateAgents(generateScenario(seed, gen));
    writeFileSync(v.trace, formatTrace(r.trace));
  }
  const summary = summarizeCampaign(outcomes);
  const flags = generateFlags(v);
  const replay = failing[0] ? `npx fenced-leader replay --seed ${failing[0].seed}${flags ? ` ${flags}` : ''}` : undefined;
  if (v.json) {
    console.log(JSON.stringify({ ...summary, failingSeeds: failing.map((f) => f.seed), replay }, null, 2));
  } else {
    console.log(formatSummary(summary));
    if (v.trace) console.log(`trace of seed ${failing[0]?.seed ?? seeds[0]} written to ${v.trace}`);
    if (replay) {
      const f = failing[0]!;
      const first = f.violations.find((x) => !x.expected)!;
      console.log(`\nFAILED: ${failing.length} scenario(s); first: seed ${f.seed}: [${first.checker}] ${first.message}`);
      console.log(`replay: ${replay}`);
    }
  }
  return failing.length > 0 ? 1 : 0;
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
    ['failover p50 / p99 / max', `${s.failoverMs.p50} / ${s.failoverMs.p99} / ${s.failoverMs.max} ms  (${s.failoverMs.count} failovers)`],
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
      ['stale detection p50 / p99 / max', `${a.detectionMs.p50} / ${a.detectionMs.p99} / ${a.detectionMs.max} ms  (bound ${bound} ms while one leader leads throughout; a failover or a refused sweep adds to it)`],
    );
  }
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, val]) => `${k.padEnd(w)}  ${val}`).join('\n');
}
