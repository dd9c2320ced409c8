import { replayCommand } from '../../sim/replayArg.js';
import type { Scenario } from '../../sim/scenario.js';
import { simulate } from '../../sim/simulator.js';
import { describeScenario } from './arbitraries.js';

/** The property body: run the scenario, fail with the checkers' findings, the scenario and a one-line replay command. */
export async function assertNoUnexpectedViolations(s: Scenario): Promise<void> {
  const r = await simulate(s, { traceStore: false });
  const bad = r.violations.filter((v) => !v.expected);
  if (bad.length > 0) {
    throw new Error(
      `${bad.map((v) => `[${v.checker}] t=${Math.round(v.t)} ${v.message}`).join('\n')}\n${describeScenario(s)}\nreplay: ${replayCommand(s)}`,
    );
  }
}
