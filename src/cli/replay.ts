import { closeSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { simulateAgents } from '../../sim/agents.js';
import { decodeScenario } from '../../sim/replayArg.js';
import { generateScenario, type Scenario } from '../../sim/scenario.js';
import { formatTimeline } from '../../sim/timeline.js';
import { formatTrace, type TraceLine } from '../../sim/trace.js';
import { generateOptions, openOutput, parseSeed, SCENARIO_HELP, scenarioArgs, UsageError } from './sim.js';

const HELP = `usage: fenced-leader replay (--seed S [scenario options] | --scenario ENCODED) [--trace FILE] [--store] [--substates] [--json]
Reruns one scenario deterministically and prints its timeline (faults, state changes, rejected writes, violations).
  --seed S                the seed printed by a failing \`fenced-leader sim\` (give the same scenario options)
  --scenario ENCODED      the whole scenario as printed by a failing property test
${SCENARIO_HELP}
  --store                 include store messages in the timeline
  --substates             include leader sub-state changes (holding/renewing/verifying)
  --trace FILE            also write the trace as JSON lines (for \`fenced-leader view\`)
  --json                  print the trace as JSON lines instead of the timeline`;

export interface ReplayArgs {
  readonly values: Record<string, unknown>;
  /** Absent with --help. */
  readonly scenario?: Scenario;
}

/** Parses and checks `replay`'s arguments (the scenario options exactly as `sim` does); throws on bad input. */
export function parseReplayArgs(argv: string[]): ReplayArgs {
  const values: Record<string, unknown> = parseArgs({
    args: argv,
    options: { ...scenarioArgs, scenario: { type: 'string' }, store: { type: 'boolean' }, substates: { type: 'boolean' } },
    allowPositionals: false,
  }).values;
  if (values.help) return { values };
  if (typeof values.scenario === 'string') return { values, scenario: decodeScenario(values.scenario) };
  if (typeof values.seed !== 'string') throw new UsageError('give --seed S or --scenario ENCODED');
  const gen = generateOptions(values as Parameters<typeof generateOptions>[0]);
  return { values, scenario: generateScenario(parseSeed(values.seed)!, gen) };
}

export async function run(argv: string[]): Promise<number> {
  let scenario: Scenario;
  let values: Record<string, unknown>;
  let traceFd: number | undefined;
  try {
    const args = parseReplayArgs(argv);
    values = args.values;
    if (!args.scenario) {
      console.log(HELP);
      return 0;
    }
    scenario = args.scenario;
    if (typeof values.trace === 'string') traceFd = openOutput(values.trace, 'trace');
  } catch (err) {
    console.error(`fenced-leader replay: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  let r: Awaited<ReturnType<typeof simulateAgents>>;
  try {
    r = await simulateAgents(scenario);
    if (traceFd !== undefined) writeFileSync(traceFd, formatTrace(r.trace));
  } finally {
    if (traceFd !== undefined) closeSync(traceFd);
  }
  if (values.json) process.stdout.write(formatTrace(r.trace));
  else {
    process.stdout.write(formatTimeline(r.trace, { store: values.store === true, substates: values.substates === true }));
    process.stdout.write(formatAgentEvents(r.trace));
    const bad = r.violations.filter((x) => !x.expected);
    console.log(`\n${r.violations.length === 0 ? 'all checkers passed' : `${bad.length} violation(s), ${r.violations.length - bad.length} expected`}`);
    if (typeof values.trace === 'string') console.log(`trace written to ${values.trace}`);
  }
  return r.violations.some((x) => !x.expected) ? 1 : 0;
}

/** Agents and tasks, when the scenario has them: stale marks, requeues, refused sweeps, stalls, the final board. */
function formatAgentEvents(trace: readonly TraceLine[]): string {
  const out: string[] = [];
  for (const l of trace) {
    if (l.kind !== 'agent') continue;
    const t = `${(l.t / 1000).toFixed(3).padStart(9)}s`;
    const d = (l.detail ?? {}) as Record<string, unknown>;
    if (l.event === 'sweep') {
      out.push(
        l.applied
          ? `${t}  ${l.node} sweep at epoch ${l.epoch}: stale ${JSON.stringify(d.marked)} requeued ${JSON.stringify(d.requeued)} (lease ${JSON.stringify(d.lease)})`
          : `${t}  ${l.node} sweep refused on ${String(d.conflict)}`,
      );
    } else if (l.event === 'stall') out.push(`${t}  ${l.node} sweep stalled before its commit since ${Math.round(Number(d.since))} ms`);
    else if (l.event === 'register' && (l.incarnation ?? 1) > 1) out.push(`${t}  ${l.agent} registered again (incarnation ${l.incarnation})`);
    else if (l.event === 'complete' || l.event === 'release') out.push(`${t}  ${l.agent} ${l.event} ${l.task} (token ${l.token})`);
    else if (l.event === 'final') out.push(`${t}  final board: ${JSON.stringify(d.tasks)}`);
  }
  return out.length > 0 ? `\nagents and tasks:\n${out.join('\n')}\n` : '';
}
