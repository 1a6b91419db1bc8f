/** A worker for the WorkerJobs tests: answers each job with its thread id. */
import { parentPort, threadId } from 'node:worker_threads';

if (parentPort === null) throw new Error('echo-worker must run as a worker thread');
const port = parentPort;
port.on('message', (request: { jobId: number }) => {
  port.postMessage({ jobId: request.jobId, ok: true, result: threadId });
});
