/** The merge worker thread: runs merge jobs (merge-job.ts) off the main thread. */
import '../util/detach-early.ts';
import { parentPort } from 'node:worker_threads';
import { encodeResultTransfer } from '../storage/segment/encode-flush.ts';
import { type MergeRequest, runMerge } from './merge-job.ts';

if (parentPort === null) throw new Error('merge-worker must run as a worker thread');
const port = parentPort;
port.on('message', (request: MergeRequest & { jobId: number }) => {
  try {
    const result = runMerge(request);
    port.postMessage({ jobId: request.jobId, ok: true, result }, encodeResultTransfer(result.encoded));
  } catch (err) {
    port.postMessage({ jobId: request.jobId, ok: false, message: (err as Error).stack ?? String(err) });
  }
});
