/**
 * Worker thread body: encodes Arrow row groups (IPC) into a Parquet file with parquet-wasm,
 * fsyncs it and reads it back, so the (single-threaded) WebAssembly encoder runs beside the
 * main thread that decodes the next row groups. It imports as little as possible (no
 * apache-arrow): it starts once per export.
 *
 * Invariants:
 * - one file at a time, in the order they were opened: the main thread may stream the next
 *   file's row groups while this one is finishing (fsync, read-back), and they wait here;
 * - `taken` is posted when the encoder takes a row group, which is what the main thread waits
 *   for before it sends more (bounded memory);
 * - `done` is posted only after the file is complete, fsynced, its footer checked and its
 *   whole quantity column posted (`quantities`) for the main thread to sum; on failure or
 *   abort of the writing the file is removed (by writeParquetFile) before the reply.
 */
import '../util/detach-early.ts';
import { parentPort } from 'node:worker_threads';
import { UsageDbError } from '../errors.ts';
import { type ParquetWriteOptions, writeParquetFile } from './parquet-file-writer.ts';
import { readBack } from './verify.ts';
import type { WorkerReply, WorkerRequest } from './writer-thread.ts';

if (parentPort === null) throw new Error('parquet-worker must run as a worker thread');
const port = parentPort;

/** One file to write: its row groups as posted by the main thread, not yet taken. */
interface FileJob {
  file: number;
  path: string;
  options: ParquetWriteOptions;
  columnNames: readonly string[];
  queue: Uint8Array[];
  ended: boolean;
  aborted: boolean;
}

/** Files opened and not finished, by number; `pending` holds them in the order to write. */
const jobs = new Map<number, FileJob>();
const pending: FileJob[] = [];
let running = false;
let wake: (() => void) | null = null;

function post(reply: WorkerReply): void {
  port.postMessage(reply);
}

function notify(): void {
  const w = wake;
  wake = null;
  w?.();
}

async function* rowGroups(job: FileJob): AsyncGenerator<Uint8Array> {
  for (;;) {
    if (job.aborted) throw new Error('export aborted');
    const next = job.queue.shift();
    if (next !== undefined) {
      post({ type: 'taken', file: job.file });
      yield next;
      // The encoder copied it into WebAssembly memory: free it now (detaching releases the
      // memory), not at the next GC, which would let a dozen row groups pile up.
      (next.buffer as ArrayBuffer).transfer(0);
      continue;
    }
    if (job.ended) return;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

async function writeFile(job: FileJob): Promise<void> {
  const { file } = job;
  try {
    const { bytes } = await writeParquetFile(job.path, rowGroups(job), job.options);
    const footer = await readBack(job.path, job.columnNames, (ipc) =>
      port.postMessage({ type: 'quantities', file, ipc } satisfies WorkerReply, [ipc.buffer as ArrayBuffer]),
    );
    post({ type: 'done', file, bytes, rows: footer.rows, rowGroups: footer.rowGroups });
  } catch (err) {
    if (job.aborted) post({ type: 'aborted', file });
    else {
      const code = err instanceof UsageDbError ? err.code : 'USAGEDB_ERR_IO';
      post({ type: 'failed', file, code, message: (err as Error).message });
    }
  }
}

/** Writes the opened files one after the other until none is left. */
async function run(): Promise<void> {
  running = true;
  for (let job = pending.shift(); job !== undefined; job = pending.shift()) {
    // Aborted before its turn: nothing was written.
    if (job.aborted) post({ type: 'aborted', file: job.file });
    else await writeFile(job);
    jobs.delete(job.file);
  }
  running = false;
}

port.on('message', (request: WorkerRequest) => {
  if (request.type === 'open') {
    const job: FileJob = {
      file: request.file,
      path: request.path,
      options: request.options,
      columnNames: request.columnNames,
      queue: [],
      ended: false,
      aborted: false,
    };
    jobs.set(job.file, job);
    pending.push(job);
    if (!running) void run();
    return;
  }
  const job = jobs.get(request.file);
  if (job === undefined) return;
  switch (request.type) {
    case 'batch':
      job.queue.push(request.ipc);
      break;
    case 'end':
      job.ended = true;
      break;
    case 'abort':
      job.aborted = true;
      break;
  }
  notify();
});
