import type { TraceLine } from './trace.js';

export interface TimelineOptions {
  /** Include store messages (noisy). */
  readonly store?: boolean;
  /** Include per-state leader sub-transitions (holding/renewing); off shows only top-level changes. */
  readonly substates?: boolean;
}

const top = (s: string) => s.split('.')[0]!;

/** A human-readable timeline of a trace, one line per event. */
export function formatTimeline(trace: readonly TraceLine[], o: TimelineOptions = {}): string {
  const out: string[] = [];
  const pad = (t: number) => `${(Math.round(t * 10) / 10).toFixed(1).padStart(9)} ms`;
  for (const l of trace) {
    switch (l.kind) {
      case 'meta':
        out.push(`seed ${l.seed} · nodes ${l.nodes.join(', ')} · assumptions broken on purpose: ${l.violatedAssumptions.join(', ') || 'none'}`);
        break;
      case 'transition':
        if (!o.substates && top(l.from) === top(l.to)) break;
        out.push(`${pad(l.t)}  ${l.node.padEnd(4)} ${l.from} -> ${l.to}  (${l.event})${l.epoch !== null ? `  epoch ${l.epoch}` : ''}`);
        break;
      case 'fault':
        out.push(
          `${pad(l.t)}  ${(l.node ?? '*').padEnd(4)} !! ${l.fault}${l.durationMs !== undefined ? ` for ${Math.round(l.durationMs)} ms` : ''}${l.detail ? ` ${JSON.stringify(l.detail)}` : ''}`,
        );
        break;
      case 'resource':
        if (!l.accepted) out.push(`${pad(l.t)}  ${l.node.padEnd(4)} resource REJECTED token ${l.token} (high-water ${l.highWater})`);
        break;
      case 'store':
        if (o.store) out.push(`${pad(l.t)}  ${l.node.padEnd(4)} store ${l.op} #${l.requestId} ${l.phase}${l.outcome ? ` ${l.outcome}` : ''}`);
        break;
      case 'violation':
        out.push(`${pad(l.t)}  VIOLATION ${l.checker}${l.expected ? ' (expected: assumptions broken on purpose)' : ''}: ${l.message}`);
        break;
      default:
        break;
    }
  }
  return `${out.join('\n')}\n`;
}
