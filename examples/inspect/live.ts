// Live inspection of three electors from Node with @statelyai/inspect, plus an offline recording of the same run.
//
//   npx tsx examples/inspect/live.ts [--seconds 20] [--port 8080] [--record run.jsonl] [--resign-every 5000]
//                                    [--no-server | --record-only]
//
// It starts @statelyai/inspect's local bridge (a websocket server on --port that also serves a page embedding the
// hosted Stately inspector; open http://localhost:PORT), connects createWebSocketInspector to it, and passes the
// inspector to createElector({ inspect }). --no-server connects to a bridge that is already running on --port instead;
// --record-only skips live inspection altogether (no sockets at all) and only records. Without network access to
// stately.ai, use the recording:
//   npx fenced-leader view run.jsonl
// The run ends after --seconds (0: run until Ctrl-C), or on SIGINT/SIGTERM, and always leaves a complete recording.
import { createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import type { InspectionEvent } from 'xstate';
import { createElector, MemoryLeaseStore, realClock } from '../../src/index.js';
import { recordInspectionToFile } from '../../src/inspect/recorder.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
const number = (name: string, fallback: number) => {
  const value = Number(arg(name, String(fallback)));
  if (!Number.isFinite(value) || value < 0) {
    console.error(`--${name} must be a non-negative number`);
    process.exit(2);
  }
  return value;
};
const seconds = number('seconds', 20);
const port = number('port', 8080);
const resignEveryMs = number('resign-every', 5000);
const recordPath = arg('record', 'inspect-recording.jsonl');
const recordOnly = process.argv.includes('--record-only');
const startServer = !recordOnly && !process.argv.includes('--no-server');

const server = startServer ? createInspectorServer({ port, autoOpen: false }) : undefined;
if (server) console.log(`inspector bridge: open http://localhost:${port} (needs https://stately.ai reachable from your browser)`);
const inspector = recordOnly ? undefined : createWebSocketInspector({ url: `ws://localhost:${port}` });

// The recorder timestamps with the same clock the electors use; here the real one: `t` from its monotonic now(),
// `createdAt` from its wallNow() (wall-clock ms, as @statelyai/inspect stamps it). Lines are written synchronously; a
// failing write (full disk) stops the recording with one message on stderr and never disturbs the electors.
const recorder = recordInspectionToFile(recordPath, { clock: realClock });

const store = new MemoryLeaseStore();
const electors = ['alpha', 'beta', 'gamma'].map((nodeId) =>
  createElector({
    election: 'demo',
    nodeId,
    store,
    leaseDurationMs: 1000,
    renewDeadlineMs: 600,
    retryPeriodMs: 200,
    // One observer feeding both: the live inspector and the synchronous recorder (node name = nodeId).
    inspect: (event: InspectionEvent) => {
      inspector?.inspect.next?.(event);
      recorder.recordFor(nodeId, event); // t = realClock.now(), createdAt = realClock.wallNow()
    },
  }),
);
for (const elector of electors) {
  elector.subscribe((change) => console.log(`${elector.nodeId}: ${change.previous} -> ${change.state} (epoch ${change.epoch ?? '-'})`));
  elector.start();
}

// Make leadership move: the leader resigns every --resign-every ms and stands again 1.5 s later.
const comebacks = new Set<NodeJS.Timeout>();
const resigner = setInterval(async () => {
  const leader = electors.find((e) => e.isLeader());
  if (!leader || finishing) return;
  console.log(`${leader.nodeId} resigns`);
  await leader.resign();
  const comeback = setTimeout(() => {
    comebacks.delete(comeback);
    if (!finishing) leader.campaign();
  }, 1500);
  comebacks.add(comeback);
}, resignEveryMs || 5000);

let finishing = false;
async function finish(why: string): Promise<void> {
  if (finishing) return;
  finishing = true;
  clearInterval(resigner);
  clearTimeout(deadline);
  for (const timer of comebacks) clearTimeout(timer);
  await Promise.all(electors.map((e) => e.stop()));
  recorder.close();
  inspector?.stop();
  server?.stop();
  console.log(`${why}: recorded to ${recordPath}; view it offline with: npx fenced-leader view ${recordPath}`);
  // @statelyai/inspect's websocket adapter retries a failed connection every 5 s, and stop() does not cancel a retry
  // already scheduled (e.g. --no-server with no bridge running). Everything is closed by now, so do not wait for it.
  setTimeout(() => process.exit(0), 200).unref();
}

const deadline = seconds > 0 ? setTimeout(() => void finish('done'), seconds * 1000) : undefined;
process.once('SIGINT', () => void finish('interrupted'));
process.once('SIGTERM', () => void finish('terminated'));
