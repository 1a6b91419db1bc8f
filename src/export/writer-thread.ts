/**
 * The main-thread side of the Parquet writer thread (parquet-worker.ts): streams row groups
 * (Arrow IPC bytes, transferred, not copied) to the worker, which encodes, writes, fsyncs and
 * reads back each file. Decoding the next row groups here overlaps with encoding there, so an
 * export uses two cores; the read-back quantity column is summed here.
 *
 * Invariants:
 * - at most ROW_GROUPS_AHEAD row groups wait in the worker beyond the one being encoded, so
 *   memory stays bounded whatever the export size;
 * - a file is reported written only once complete, fsynced and read back; on any failure
 *   (source, worker, thread crash) of the writing, the worker's file is removed or the thread
 *   is gone before this throws.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type ErrorCode, UsageDbError } from '../errors.ts';
import type { ParquetWriteOptions } from './parquet-file-writer.ts';
import { sumQuantityIpc } from './quantity-sum.ts';

export type WorkerRequest =
  | { type: 'open'; file: number; path: string; options: ParquetWriteOptions; columnNames: string[] }
  | { type: 'batch'; file: number; ipc: Uint8Array }
  | { type: 'end'; file: number }
  | { type: 'abort'; file: number };

export type WorkerReply =
  | { type: 'taken'; file: number }
  | { type: 'quantities'; file: number; ipc: Uint8Array }
  | { type: 'done'; file: number; bytes: number; rows: number; rowGroups: number }
  | { type: 'failed'; file: number; code: ErrorCode; message: string }
  | { type: 'aborted'; file: number };

/** What was read back from a written file. */
export interface WrittenFile {
  bytes: number;
  /** Rows according to the footer. */
  rows: number;
  rowGroups: number;
  /** Rows and exact sum of the quantity column as read back. */
  quantityRows: number;
  quantitySum: bigint;
}

/** Row groups queued in the worker beyond the one it encodes: enough to keep it busy. */
const ROW_GROUPS_AHEAD = 1;

function unexpected(reply: WorkerReply): UsageDbError {
  if (reply.type === 'failed') return new UsageDbError(reply.code, reply.message);
  return new UsageDbError(
    'USAGEDB_ERR_INTERNAL',
    `Parquet writer thread answered '${reply.type}' out of turn`,
  );
}

export class ParquetWriterThread {
  private readonly worker: Worker;
  private readonly inbox: WorkerReply[] = [];
  private waiter: (() => void) | null = null;
  private crashed: Error | null = null;
  private nextFile = 0;

  constructor() {
    // The worker file sits beside this one: .ts when running from source, .js from dist.
    const ext = extname(fileURLToPath(import.meta.url));
    this.worker = new Worker(new URL(`./parquet-worker${ext}`, import.meta.url));
    this.worker.on('message', (reply: WorkerReply) => {
      this.inbox.push(reply);
      this.wake();
    });
    this.worker.on('error', (err) => {
      this.crashed = err;
      this.wake();
    });
    this.worker.on('exit', (code) => {
      this.crashed ??= new Error(`it exited with code ${code}`);
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private post(request: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(request, transfer);
  }

  /** The next reply about `file`; replies about earlier files are stale and dropped. */
  private async next(file: number): Promise<WorkerReply> {
    for (;;) {
      const reply = this.inbox.shift();
      if (reply !== undefined) {
        if (reply.file === file) return reply;
        continue;
      }
      if (this.crashed !== null) {
        throw new UsageDbError(
          'USAGEDB_ERR_INTERNAL',
          `Parquet writer thread failed: ${this.crashed.message}`,
          {
            cause: this.crashed,
          },
        );
      }
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  /** Whether a reply about `file` is waiting (stale replies about earlier files are dropped). */
  private hasReply(file: number): boolean {
    while (this.inbox.length > 0 && this.inbox[0].file !== file) this.inbox.shift();
    return this.inbox.length > 0;
  }

  /** Makes the worker drop `file` (it removes what it wrote) and waits until it has. */
  private async abort(file: number): Promise<void> {
    this.post({ type: 'abort', file });
    for (;;) {
      const reply = await this.next(file);
      if (reply.type === 'aborted' || reply.type === 'failed') return;
    }
  }

  /**
   * Writes `rowGroups` (Arrow IPC streams, one RecordBatch each, never empty except for a
   * lone empty batch that carries the schema) to `path`, one Parquet row group each, fsyncs
   * it and reads it back: the footer must list `columnNames`, every chunk zstd. The buffers
   * are transferred: do not touch them again.
   */
  async writeFile(
    path: string,
    rowGroups: AsyncIterable<Uint8Array>,
    options: ParquetWriteOptions,
    columnNames: readonly string[],
  ): Promise<WrittenFile> {
    const file = this.nextFile++;
    this.post({ type: 'open', file, path, options, columnNames: [...columnNames] });
    let ahead = 0;
    let workerError: Error | null = null;
    try {
      for await (const ipc of rowGroups) {
        // Transferred, not copied: the buffer must hold exactly these bytes.
        const own = ipc.byteOffset === 0 && ipc.byteLength === ipc.buffer.byteLength ? ipc : ipc.slice();
        this.post({ type: 'batch', file, ipc: own }, [own.buffer as ArrayBuffer]);
        ahead++;
        // Replies already in: a failed writer stops the export now, not after the last row group.
        while (ahead > ROW_GROUPS_AHEAD || this.hasReply(file)) {
          const reply = await this.next(file);
          if (reply.type !== 'taken') throw (workerError = unexpected(reply));
          ahead--;
        }
      }
    } catch (err) {
      // A failure of the source (or of this side): the worker must drop the partial file.
      if (err !== workerError && this.crashed === null) await this.abort(file).catch(() => undefined);
      throw err;
    }
    this.post({ type: 'end', file });
    let quantityRows = 0;
    let quantitySum = 0n;
    for (;;) {
      const reply = await this.next(file);
      if (reply.type === 'taken') continue;
      if (reply.type === 'quantities') {
        const batch = sumQuantityIpc(reply.ipc);
        // Summed: free it now rather than at the next GC.
        (reply.ipc.buffer as ArrayBuffer).transfer(0);
        quantityRows += batch.rows;
        quantitySum += batch.sum;
        continue;
      }
      if (reply.type !== 'done') throw unexpected(reply);
      return { bytes: reply.bytes, rows: reply.rows, rowGroups: reply.rowGroups, quantityRows, quantitySum };
    }
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
