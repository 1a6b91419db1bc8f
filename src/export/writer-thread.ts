/**
 * The main-thread side of the Parquet writer thread (parquet-worker.ts): streams row groups
 * (Arrow IPC bytes, transferred, not copied) to the worker, which encodes, writes, fsyncs and
 * reads back each file. Decoding the next row groups here overlaps with encoding there, so an
 * export uses two cores; the read-back quantity column is summed here as it arrives. A file's
 * row groups can be streamed while the previous file is still finishing in the worker (day
 * partitions: the next day is decoded during the last one's fsync and read-back).
 *
 * Invariants:
 * - at most ROW_GROUPS_AHEAD row groups of a file wait in the worker beyond the one being
 *   encoded, so memory stays bounded whatever the export size;
 * - a file is reported written only once complete, fsynced and read back; on a failure of its
 *   source the worker's file is removed before this throws; on any other failure the caller
 *   closes the thread before removing what it wrote.
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

/** What the main thread knows of one file: replies not yet consumed, and the read-back sum. */
interface FileState {
  replies: WorkerReply[];
  waiter: (() => void) | null;
  quantityRows: number;
  quantitySum: bigint;
  /** A read-back batch that could not be summed. */
  sumError: Error | null;
}

/** A file whose row groups are all with the worker; `finish` waits until it is written. */
export interface StartedFile {
  finish(): Promise<WrittenFile>;
}

export class ParquetWriterThread {
  private readonly worker: Worker;
  private readonly files = new Map<number, FileState>();
  private crashed: Error | null = null;
  private nextFile = 0;

  constructor() {
    // The worker file sits beside this one: .ts when running from source, .js from dist.
    const ext = extname(fileURLToPath(import.meta.url));
    this.worker = new Worker(new URL(`./parquet-worker${ext}`, import.meta.url));
    this.worker.on('message', (reply: WorkerReply) => this.receive(reply));
    this.worker.on('error', (err) => {
      this.crashed = err;
      this.wakeAll();
    });
    this.worker.on('exit', (code) => {
      this.crashed ??= new Error(`it exited with code ${code}`);
      this.wakeAll();
    });
  }

  private receive(reply: WorkerReply): void {
    const state = this.files.get(reply.file);
    // A file already given up on (aborted or failed): nothing waits for it.
    if (state === undefined) return;
    if (reply.type === 'quantities') {
      // Summed on arrival, so a finishing file's read-back never piles up here.
      try {
        const batch = sumQuantityIpc(reply.ipc);
        state.quantityRows += batch.rows;
        state.quantitySum += batch.sum;
      } catch (err) {
        state.sumError ??= err as Error;
      }
      // Summed: free it now rather than at the next GC.
      (reply.ipc.buffer as ArrayBuffer).transfer(0);
      return;
    }
    state.replies.push(reply);
    this.wake(state);
  }

  private wake(state: FileState): void {
    const w = state.waiter;
    state.waiter = null;
    w?.();
  }

  private wakeAll(): void {
    for (const state of this.files.values()) this.wake(state);
  }

  private post(request: WorkerRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(request, transfer);
  }

  private state(file: number): FileState {
    const state = this.files.get(file);
    if (state === undefined)
      throw new UsageDbError('USAGEDB_ERR_INTERNAL', `Parquet writer: no file ${file}`);
    return state;
  }

  /** The next reply about `file`. */
  private async next(file: number): Promise<WorkerReply> {
    const state = this.state(file);
    for (;;) {
      const reply = state.replies.shift();
      if (reply !== undefined) return reply;
      if (this.crashed !== null) {
        throw new UsageDbError(
          'USAGEDB_ERR_INTERNAL',
          `Parquet writer thread failed: ${this.crashed.message}`,
          {
            cause: this.crashed,
          },
        );
      }
      await new Promise<void>((resolve) => (state.waiter = resolve));
    }
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
   * Streams `rowGroups` (Arrow IPC streams, one RecordBatch each, never empty except for a
   * lone empty batch that carries the schema) to the worker for `path`, one Parquet row group
   * each, and returns once all are handed over. The worker then fsyncs the file and reads it
   * back (the footer must list `columnNames`, every chunk zstd); `finish` waits for that. The
   * buffers are transferred: do not touch them again.
   */
  async startFile(
    path: string,
    rowGroups: AsyncIterable<Uint8Array>,
    options: ParquetWriteOptions,
    columnNames: readonly string[],
  ): Promise<StartedFile> {
    const file = this.nextFile++;
    const state: FileState = { replies: [], waiter: null, quantityRows: 0, quantitySum: 0n, sumError: null };
    this.files.set(file, state);
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
        while (ahead > ROW_GROUPS_AHEAD || state.replies.length > 0) {
          const reply = await this.next(file);
          if (reply.type !== 'taken') throw (workerError = unexpected(reply));
          ahead--;
        }
      }
    } catch (err) {
      // A failure of the source (or of this side): the worker must drop the partial file.
      if (err !== workerError && this.crashed === null) await this.abort(file).catch(() => undefined);
      this.files.delete(file);
      throw err;
    }
    this.post({ type: 'end', file });
    return { finish: () => this.finish(file) };
  }

  private async finish(file: number): Promise<WrittenFile> {
    const state = this.state(file);
    try {
      for (;;) {
        const reply = await this.next(file);
        if (reply.type === 'taken') continue;
        if (reply.type !== 'done') throw unexpected(reply);
        if (state.sumError !== null) throw state.sumError;
        return {
          bytes: reply.bytes,
          rows: reply.rows,
          rowGroups: reply.rowGroups,
          quantityRows: state.quantityRows,
          quantitySum: state.quantitySum,
        };
      }
    } finally {
      this.files.delete(file);
    }
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
