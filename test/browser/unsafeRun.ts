import { generateScenario } from '../../sim/scenario.js';
import { simulate } from '../../sim/simulator.js';
import type { TraceLine } from '../../sim/trace.js';

/**
 * A real simulator run with a deliberately unsafe config: renew deadline (1200 ms) beyond the lease (1000 ms), with
 * pauses, partitions and drift. Returns the first seed's trace whose checkers report a violation.
 */
export async function unsafeRunTrace(): Promise<{ lines: TraceLine[]; source: string }> {
  for (let seed = 1; seed <= 30; seed++) {
    const scenario = generateScenario(seed, {
      nodes: 4,
      durationMs: 20_000,
      unsafeTiming: true,
      timing: { leaseDurationMs: 1000, renewDeadlineMs: 1200, retryPeriodMs: 200 },
      faults: ['pause', 'partition', 'drift'],
    });
    const result = await simulate(scenario);
    if (result.violations.length > 0) {
      const checkers = [...new Set(result.violations.map((v) => v.checker))].join(', ');
      return { lines: result.trace, source: `simulator seed ${seed}, unsafe timing: ${checkers}` };
    }
  }
  throw new Error('no unsafe-config simulator run in seeds 1..30 produced a violation');
}
