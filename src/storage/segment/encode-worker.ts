/**
 * Worker thread body: clusters and encodes a flush's rows into a segment, off the main thread
 * so ingest keeps running while a flush encodes (on this 2-core machine: in parallel).
 */
import '../../util/detach-early.ts';
import { parentPort } from 'node:worker_threads';
import { type EncodeRequest, encodeFlushSegment, encodeResultTransfer } from './encode-flush.ts';

if (parentPort === null) throw new Error('encode-worker must run as a worker thread');
const port = parentPort;
port.on('message', (request: EncodeRequest & { jobId: number }) => {
  try {
    const result = encodeFlushSegment(request);
    port.postMessage({ jobId: request.jobId, ok: true, result }, encodeResultTransfer(result));
  } catch (err) {
    port.postMessage({ jobId: request.jobId, ok: false, message: (err as Error).stack ?? String(err) });
  }
});
