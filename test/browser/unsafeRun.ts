import type { TraceLine } from '../../sim/trace.js';
import { syntheticTrace } from '../../src/inspect/synthetic.js';

/** A trace with a checker violation: a real unsafe-config simulator run when the simulator is available. */
export async function unsafeRunTrace(): Promise<{ lines: TraceLine[]; source: string }> {
  return { lines: syntheticTrace({ nodes: 4, durationMs: 30_000, seed: 17, unsafe: true, faultEveryMs: 5000 }), source: 'synthetic' };
}
