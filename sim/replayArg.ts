import type { Scenario } from './scenario.js';

/** A whole scenario (including its fault schedule) as one shell-safe argument: base64url of its JSON. */
export function encodeScenario(s: Scenario): string {
  return Buffer.from(JSON.stringify(s), 'utf8').toString('base64url');
}

export function decodeScenario(arg: string): Scenario {
  const text = arg.trim().startsWith('{') ? arg : Buffer.from(arg, 'base64url').toString('utf8');
  const s = JSON.parse(text) as Scenario;
  if (typeof s !== 'object' || s === null || typeof s.seed !== 'number' || !Array.isArray(s.faults)) {
    throw new Error('not a fenced-leader scenario (expected the --scenario value printed by a failing run)');
  }
  return s;
}

/** The one-line command that replays exactly this scenario. */
export function replayCommand(s: Scenario): string {
  return `npx fenced-leader replay --scenario ${encodeScenario(s)}`;
}
