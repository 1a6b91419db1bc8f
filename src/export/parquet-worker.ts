/**
 * Worker thread body: encodes Arrow row groups (IPC) into a Parquet file with parquet-wasm,
 * fsyncs it and reads it back, so the (single-threaded) WebAssembly encoder runs beside the
 * main thread that decodes the next row groups. It imports as little as possible (no
 * apache-arrow): it starts once per export.
 *
 * Invariants:
 * - one file at a time; `taken` is posted when the encoder takes a row group, which is what
 *   the main thread waits for before it sends more (bounded memory);
 * - `done` is posted only after the file is complete, fsynced, its footer checked and its
 *   whole quantity column posted (`quantities`) for the main thread to sum; on failure or
 *   abort of the writing the file is removed (by writeParquetFile) before the reply.
 */
import { parentPort } from 'node:worker_threads';
import { UsageDbError } from '../errors.ts';
import { type ParquetWriteOptions, writeParquetFile } from './parquet-file-writer.ts';
import { readBack } from './verify.ts';
import type { WorkerReply, WorkerRequest } from './writer-thread.ts';

if (parentPort === null) throw new Error('parquet-worker must run as a worker thread');
const port = parentPort;

/** The file being written (messages about any other file are stale and ignored). */
let current = -1;
/** Row groups posted by the main thread and not yet taken by the encoder. */
let queue: Uint8Array[] = [];
let ended = false;
let aborted = false;
let wake: (() => void) | null = null;

function post(reply: WorkerReply): void {
  port.postMessage(reply);
}

function notify(): void {
  const w = wake;
  wake = null;
  w?.();
}

async function* rowGroups(): AsyncGenerator<Uint8Array> {
  for (;;) {
    if (aborted) throw new Error('export aborted');
    const next = queue.shift();
    if (next !== undefined) {
      post({ type: 'taken', file: current });
      yield next;
      // The encoder copied it into WebAssembly memory: free it now (detaching releases the
      // memory), not at the next GC, which would let a dozen row groups pile up.
      (next.buffer as ArrayBuffer).transfer(0);
      continue;
    }
    if (ended) return;
    await new Promise<void>((resolve) => (wake = resolve));
  }
}

async function writeFile(
  file: number,
  path: string,
  options: ParquetWriteOptions,
  columnNames: readonly string[],
): Promise<void> {
  try {
    const { bytes } = await writeParquetFile(path, rowGroups(), options);
    const footer = await readBack(path, columnNames, (ipc) =>
      port.postMessage({ type: 'quantities', file, ipc } satisfies WorkerReply, [ipc.buffer as ArrayBuffer]),
    );
    post({ type: 'done', file, bytes, rows: footer.rows, rowGroups: footer.rowGroups });
  } catch (err) {
    if (aborted) post({ type: 'aborted', file });
    else {
      const code = err instanceof UsageDbError ? err.code : 'USAGEDB_ERR_IO';
      post({ type: 'failed', file, code, message: (err as Error).message });
    }
  } finally {
    current = -1;
    queue = [];
    ended = false;
    aborted = false;
  }
}

port.on('message', (request: WorkerRequest) => {
  if (request.type === 'open') {
    current = request.file;
    void writeFile(request.file, request.path, request.options, request.columnNames);
    return;
  }
  if (request.file !== current) return;
  switch (request.type) {
    case 'batch':
      queue.push(request.ipc);
      break;
    case 'end':
      ended = true;
      break;
    case 'abort':
      aborted = true;
      break;
  }
  notify();
});
