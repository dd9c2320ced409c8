/** Bits shared by the example processes: argument parsing and one-JSON-object-per-line logging. */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Logger } from '../../src/logger.js';

export const DEMO_TIMING = { leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 250 } as const;
export const DEMO_STALE_AFTER_MS = 1500;
export const DEMO_SWEEP_INTERVAL_MS = 250;
export const DEMO_HEARTBEAT_MS = 250;

export function args<T extends Record<string, { type: 'string' | 'boolean'; default?: string | boolean }>>(spec: T) {
  return parseArgs({ options: spec, allowPositionals: false, strict: true }).values as unknown as { [K in keyof T]: T[K]['type'] extends 'boolean' ? boolean : string };
}

export function statePathOf(dir: string): string {
  return join(resolve(dir), 'orchestrator-state.json');
}

export function emit(event: string, fields: object = {}): void {
  process.stdout.write(`${JSON.stringify({ t: Date.now(), event, ...fields })}\n`);
}

/** Library logs as JSON lines too (info and above), tagged with the process id. */
export function jsonLogger(id: string, verbose: boolean): Logger {
  const line = (level: string) => (fields: object, msg: string) => {
    const safe = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v instanceof Error ? v.message : v]));
    process.stdout.write(`${JSON.stringify({ t: Date.now(), event: 'log', level, id, msg, ...safe })}\n`);
  };
  const quiet = () => {};
  return { debug: quiet, info: verbose ? line('info') : quiet, warn: line('warn'), error: line('error') };
}
