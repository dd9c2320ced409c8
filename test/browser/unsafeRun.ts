import { readFileSync } from 'node:fs';
import type { Scenario } from '../../sim/scenario.js';
import { simulate } from '../../sim/simulator.js';
import type { TraceLine } from '../../sim/trace.js';

/**
 * A real simulator run with a deliberately unsafe config and fencing off: the shrunk counter-example the pipeline
 * search (test/properties/pipeline.property.test.ts) finds — renew deadline beyond the lease, the leader cut off
 * from the store. Its checkers report both real-time exclusivity and non-monotone fenced writes.
 */
export async function unsafeRunTrace(): Promise<{ lines: TraceLine[]; source: string }> {
  const scenario = JSON.parse(readFileSync(new URL('./unsafeScenario.json', import.meta.url), 'utf8')) as Scenario;
  const result = await simulate(scenario);
  if (result.violations.length === 0) throw new Error('the unsafe-config counter-example no longer produces a violation');
  const checkers = [...new Set(result.violations.map((v) => v.checker))].join(', ');
  return { lines: result.trace, source: `simulator seed ${scenario.seed}, unsafe timing, fencing off: ${checkers}` };
}
