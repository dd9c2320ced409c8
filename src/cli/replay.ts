import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeScenario } from '../../sim/replayArg.js';
import { generateScenario, type Scenario } from '../../sim/scenario.js';
import { simulate } from '../../sim/simulator.js';
import { formatTimeline } from '../../sim/timeline.js';
import { formatTrace } from '../../sim/trace.js';
import { generateOptions, SCENARIO_HELP, scenarioArgs } from './sim.js';

const HELP = `usage: fenced-leader replay (--seed S [scenario options] | --scenario ENCODED) [--trace FILE] [--store] [--substates] [--json]
Reruns one scenario deterministically and prints its timeline (faults, state changes, rejected writes, violations).
  --seed S                the seed printed by a failing \`fenced-leader sim\` (give the same scenario options)
  --scenario ENCODED      the whole scenario as printed by a failing property test
${SCENARIO_HELP}
  --store                 include store messages in the timeline
  --substates             include leader sub-state changes (holding/renewing/verifying)
  --trace FILE            also write the trace as JSON lines (for \`fenced-leader view\`)
  --json                  print the trace as JSON lines instead of the timeline`;

export async function run(argv: string[]): Promise<number> {
  let scenario: Scenario;
  let values: Record<string, unknown>;
  try {
    values = parseArgs({
      args: argv,
      options: { ...scenarioArgs, scenario: { type: 'string' }, store: { type: 'boolean' }, substates: { type: 'boolean' } },
      allowPositionals: false,
    }).values;
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (typeof values.scenario === 'string') scenario = decodeScenario(values.scenario);
    else if (typeof values.seed === 'string') scenario = generateScenario(Number(values.seed), generateOptions(values as any));
    else throw new Error('give --seed S or --scenario ENCODED');
  } catch (err) {
    console.error(`fenced-leader replay: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const r = await simulate(scenario);
  if (typeof values.trace === 'string') writeFileSync(values.trace, formatTrace(r.trace));
  if (values.json) process.stdout.write(formatTrace(r.trace));
  else {
    process.stdout.write(formatTimeline(r.trace, { store: values.store === true, substates: values.substates === true }));
    const bad = r.violations.filter((x) => !x.expected);
    console.log(`\n${r.violations.length === 0 ? 'all checkers passed' : `${bad.length} violation(s), ${r.violations.length - bad.length} expected`}`);
    if (typeof values.trace === 'string') console.log(`trace written to ${values.trace}`);
  }
  return r.violations.some((x) => !x.expected) ? 1 : 0;
}
