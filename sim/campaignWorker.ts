import { parentPort, workerData } from 'node:worker_threads';
import { runOne } from './campaign.js';

// One campaign worker thread: runs the seeds it is sent, one at a time, and posts each outcome back.
const { generate } = workerData as { generate: Parameters<typeof runOne>[1] };
parentPort!.on('message', async (seed: number) => {
  parentPort!.postMessage(await runOne(seed, generate));
});
