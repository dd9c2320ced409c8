// Live inspection of three electors from Node with @statelyai/inspect, plus an offline recording of the same run.
//
//   npx tsx examples/inspect/live.ts [--seconds 20] [--port 8080] [--record run.jsonl] [--no-server]
//
// It starts @statelyai/inspect's local bridge (a websocket server on --port that also serves a page embedding the
// hosted Stately inspector; open http://localhost:PORT), connects createWebSocketInspector to it, and passes the
// inspector to createElector({ inspect }). Without network access to stately.ai, use the recording instead:
//   npx fenced-leader view run.jsonl
import { createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import type { InspectionEvent } from 'xstate';
import { createElector, MemoryLeaseStore, realClock } from '../../src/index.js';
import { recordInspectionToFile } from '../../src/inspect/recorder.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
const seconds = Number(arg('seconds', '20'));
const port = Number(arg('port', '8080'));
const recordPath = arg('record', 'inspect-recording.jsonl');

const server = process.argv.includes('--no-server') ? undefined : createInspectorServer({ port, autoOpen: false });
if (server) console.log(`inspector bridge: open http://localhost:${port} (needs https://stately.ai reachable from your browser)`);
const inspector = createWebSocketInspector({ url: `ws://localhost:${port}` });

// The recorder timestamps with the same clock the electors use; here the real one.
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
      inspector.inspect.next?.(event);
      recorder.recordFor(nodeId, event, realClock.now());
    },
  }),
);
for (const elector of electors) {
  elector.subscribe((change) => console.log(`${elector.nodeId}: ${change.previous} -> ${change.state} (epoch ${change.epoch ?? '-'})`));
  elector.start();
}

// Make leadership move: the leader resigns every 5 s and stands again.
const timer = setInterval(async () => {
  const leader = electors.find((e) => e.isLeader());
  if (!leader) return;
  console.log(`${leader.nodeId} resigns`);
  await leader.resign();
  setTimeout(() => leader.campaign(), 1500);
}, 5000);

setTimeout(async () => {
  clearInterval(timer);
  await Promise.all(electors.map((e) => e.stop()));
  recorder.close();
  inspector.stop();
  server?.stop();
  console.log(`recorded to ${recordPath}; view it offline with: npx fenced-leader view ${recordPath}`);
}, seconds * 1000);
