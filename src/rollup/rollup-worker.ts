/** The rollup worker thread: runs rollup builds (rollup-job.ts) off the main thread. */
import '../util/detach-early.ts';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parentPort } from 'node:worker_threads';
import { releaseBuildScratch, type RollupRequest, rollupOutputTransfer, runRollup } from './rollup-job.ts';

if (parentPort === null) throw new Error('rollup-worker must run as a worker thread');
const port = parentPort;

/**
 * Idle this long after a job, the thread drops its scratch buffers and collects its heap: a
 * thread kept between `tick()` builds would otherwise hold a build's garbage until its next
 * build (10M-event scale runs: peak RSS 862 MiB without the collection, 832 with it). Jobs of
 * one `rollup()` come back to back and never wait this long.
 */
const IDLE_COLLECT_MS = 200;
// The collector, as `--expose-gc` would give it: installed in a fresh context, so the
// process's own contexts (the application's) do not get a global `gc`.
setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;
let idle: ReturnType<typeof setTimeout> | null = null;

port.on('message', (request: RollupRequest & { jobId: number }) => {
  if (idle !== null) clearTimeout(idle);
  idle = null;
  try {
    const result = runRollup(request);
    port.postMessage({ jobId: request.jobId, ok: true, result }, rollupOutputTransfer(result));
  } catch (err) {
    port.postMessage({ jobId: request.jobId, ok: false, message: (err as Error).stack ?? String(err) });
  }
  idle = setTimeout(() => {
    idle = null;
    releaseBuildScratch();
    collect();
  }, IDLE_COLLECT_MS);
  idle.unref();
});
