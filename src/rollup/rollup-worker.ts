/** The rollup worker thread: runs rollup builds (rollup-job.ts) off the main thread. */
import { parentPort } from 'node:worker_threads';
import { type RollupRequest, rollupOutputTransfer, runRollup } from './rollup-job.ts';

if (parentPort === null) throw new Error('rollup-worker must run as a worker thread');
const port = parentPort;
port.on('message', (request: RollupRequest & { jobId: number }) => {
  try {
    const result = runRollup(request);
    port.postMessage({ jobId: request.jobId, ok: true, result }, rollupOutputTransfer(result));
  } catch (err) {
    port.postMessage({ jobId: request.jobId, ok: false, message: (err as Error).stack ?? String(err) });
  }
});
