/**
 * Worker thread body: clusters and encodes a flush's rows into a segment, off the main thread
 * so ingest keeps running while a flush encodes (on this 2-core machine: in parallel).
 */
import { parentPort } from 'node:worker_threads';
import { type EncodeRequest, encodeFlushSegment } from './encode-flush.ts';

if (parentPort === null) throw new Error('encode-worker must run as a worker thread');
const port = parentPort;
port.on('message', (request: EncodeRequest & { jobId: number }) => {
  try {
    const result = encodeFlushSegment(request);
    port.postMessage({ jobId: request.jobId, ok: true, result }, [
      result.bytes.buffer as ArrayBuffer,
      result.payloadHashes.buffer as ArrayBuffer,
      result.idIndex.hashes.buffer as ArrayBuffer,
      result.idIndex.rows.buffer as ArrayBuffer,
      result.eventIds.bytes.buffer as ArrayBuffer,
      result.eventIds.ends.buffer as ArrayBuffer,
    ]);
  } catch (err) {
    port.postMessage({ jobId: request.jobId, ok: false, message: (err as Error).stack ?? String(err) });
  }
});
