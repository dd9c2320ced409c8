import { type AgentSimOptions, simulateAgents } from '../../sim/agents.js';
import { replayCommand } from '../../sim/replayArg.js';
import type { Scenario } from '../../sim/scenario.js';
import { describeAgentScenario } from './agentsArbitraries.js';
import { describeScenario } from './arbitraries.js';

/** The agent property body: run the scenario with agents, fail with the findings, the scenario and a replay command. */
export async function assertAgentsHold(s: Scenario, options: AgentSimOptions = {}): Promise<void> {
  const r = await simulateAgents(s, { traceStore: false, ...options });
  const bad = r.violations.filter((v) => !v.expected);
  if (bad.length > 0) {
    throw new Error(
      `${bad.map((v) => `[${v.checker}] t=${Math.round(v.t)} ${v.message}`).join('\n')}\n${describeScenario(s)}\n${describeAgentScenario(s)}\nreplay: ${replayCommand(s)}`,
    );
  }
}
