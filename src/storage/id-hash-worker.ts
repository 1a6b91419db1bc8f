/** Worker thread body: decodes and hashes event ids for the database id filter (id-hashes.ts). */
import '../util/detach-early.ts';
import { parentPort } from 'node:worker_threads';
import { hashEventIdChunks, type IdHashRequest } from './id-hashes.ts';

if (parentPort === null) throw new Error('id-hash-worker must run as a worker thread');
const port = parentPort;
port.on('message', (request: IdHashRequest & { jobId: number }) => {
  try {
    const result = hashEventIdChunks(request);
    port.postMessage({ jobId: request.jobId, ok: true, result }, [
      result.h1.buffer as ArrayBuffer,
      result.h2.buffer as ArrayBuffer,
    ]);
  } catch (err) {
    port.postMessage({ jobId: request.jobId, ok: false, message: (err as Error).stack ?? String(err) });
  }
});
