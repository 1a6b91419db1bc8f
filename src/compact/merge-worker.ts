/** The merge worker thread: runs merge jobs (merge-job.ts) off the main thread. */
import { parentPort } from 'node:worker_threads';
import { type MergeRequest, runMerge } from './merge-job.ts';

if (parentPort === null) throw new Error('merge-worker must run as a worker thread');
const port = parentPort;
port.on('message', (request: MergeRequest & { jobId: number }) => {
  try {
    const result = runMerge(request);
    const e = result.encoded;
    port.postMessage({ jobId: request.jobId, ok: true, result }, [
      e.bytes.buffer as ArrayBuffer,
      e.payloadHashes.buffer as ArrayBuffer,
      e.idIndex.hashes.buffer as ArrayBuffer,
      e.idIndex.rows.buffer as ArrayBuffer,
      e.eventIds.bytes.buffer as ArrayBuffer,
      e.eventIds.ends.buffer as ArrayBuffer,
    ]);
  } catch (err) {
    port.postMessage({ jobId: request.jobId, ok: false, message: (err as Error).stack ?? String(err) });
  }
});
