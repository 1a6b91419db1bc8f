/**
 * Streams Arrow row groups into one Parquet file with parquet-wasm (the Rust `parquet` crate's
 * AsyncArrowWriter compiled to WebAssembly): one RecordBatch in, one row group out.
 *
 * Invariants:
 * - the input is pulled one row group at a time and only when the writer asks for it, so at
 *   most a couple of row groups are in memory (JS and WebAssembly) at once;
 * - every column chunk is zstd-compressed;
 * - a failure of the row source is remembered and rethrown: parquet-wasm would otherwise end
 *   the stream quietly and produce a valid-looking, truncated file;
 * - on success the file is fsynced; on failure it is removed.
 */
import { open, rm } from 'node:fs/promises';
import * as parquet from 'parquet-wasm';
import { UsageDbError } from '../errors.ts';

/**
 * Min/max statistics per column chunk only where readers prune on them (time ranges, one
 * account): computing them for every column costs ~20% of the writer's time (measured), and for
 * `quantity` parquet-wasm 0.8 would also keep ~1.5 MiB of WebAssembly memory per Decimal128
 * row group until the file closes.
 */
const COLUMNS_WITH_STATISTICS = ['timestamp_ms', 'account_id'];
/** Nearly sorted integers: delta encoding halves the file (measured) and every engine reads it. */
const DELTA_COLUMNS = ['timestamp_ms', 'ingested_at_ms'];
/**
 * Event ids share their prefix: prefix-delta encoding makes the same file but halves the
 * column's encoding time (zstd then sees only the suffixes; measured 133 vs 250 ms per 1M rows).
 */
const PREFIX_DELTA_COLUMNS = ['event_id'];
/**
 * Few distinct long values: a dictionary costs less than zstd over the repeated JSON
 * (measured 83 vs 136 ms per 1M rows, 5x smaller). For the short ids it costs more than it saves.
 */
const DICTIONARY_COLUMNS = ['dimensions_canonical'];

export interface ParquetWriteOptions {
  rowGroupRows: number;
  createdBy: string;
}

/**
 * No dictionary encoding except DICTIONARY_COLUMNS: zstd already removes the repetition of
 * short ids, and hashing every value into a dictionary costs more (measured).
 */
export function writerProperties(options: ParquetWriteOptions): parquet.WriterProperties {
  let builder = new parquet.WriterPropertiesBuilder()
    .setCompression(parquet.Compression.ZSTD)
    .setMaxRowGroupSize(options.rowGroupRows)
    .setCreatedBy(options.createdBy)
    .setDictionaryEnabled(false)
    .setStatisticsEnabled(parquet.EnabledStatistics.None);
  for (const name of COLUMNS_WITH_STATISTICS)
    builder = builder.setColumnStatisticsEnabled(name, parquet.EnabledStatistics.Chunk);
  for (const name of DELTA_COLUMNS)
    builder = builder.setColumnEncoding(name, parquet.Encoding.DELTA_BINARY_PACKED);
  for (const name of PREFIX_DELTA_COLUMNS)
    builder = builder.setColumnEncoding(name, parquet.Encoding.DELTA_BYTE_ARRAY);
  for (const name of DICTIONARY_COLUMNS) builder = builder.setColumnDictionaryEnabled(name, true);
  return builder.build();
}

/** Arrow IPC bytes of one RecordBatch -> a parquet-wasm RecordBatch (WebAssembly memory). */
function wasmBatch(ipc: Uint8Array): parquet.RecordBatch {
  const table = parquet.Table.fromIPCStream(ipc);
  try {
    const batch = table.recordBatch(0);
    if (batch === undefined || table.numBatches !== 1)
      throw new Error('expected exactly one record batch per row group');
    return batch;
  } finally {
    table.free();
  }
}

/**
 * Writes every row group of `rowGroups` (Arrow IPC streams, one RecordBatch each, never
 * empty except for a lone empty batch that carries the schema) to `path`. Returns the size.
 */
export async function writeParquetFile(
  path: string,
  rowGroups: AsyncIterator<Uint8Array>,
  options: ParquetWriteOptions,
): Promise<{ bytes: number }> {
  let sourceError: unknown = null;
  const input = new ReadableStream<parquet.RecordBatch>(
    {
      async pull(controller) {
        try {
          const next = await rowGroups.next();
          if (next.done) controller.close();
          else controller.enqueue(wasmBatch(next.value));
        } catch (err) {
          sourceError = err;
          controller.error(err);
        }
      },
    },
    // Pull nothing ahead: the writer asks for the next row group when it has taken the last.
    { highWaterMark: 0 },
  );
  const handle = await open(path, 'wx');
  let bytes = 0;
  let ok = false;
  try {
    const output = (await parquet.transformParquetStream(
      input,
      writerProperties(options),
    )) as ReadableStream<Uint8Array>;
    const reader = output.getReader();
    try {
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done) break;
        await handle.write(chunk.value);
        bytes += chunk.value.length;
        if (sourceError !== null) break;
      }
    } finally {
      await reader.cancel().catch(() => undefined);
    }
    if (sourceError !== null) throw sourceError;
    await handle.sync();
    ok = true;
  } catch (err) {
    throw err instanceof UsageDbError
      ? err
      : new UsageDbError('USAGEDB_ERR_IO', `cannot write Parquet file ${path}: ${(err as Error).message}`, {
          cause: err,
        });
  } finally {
    await handle.close().catch(() => undefined);
    if (!ok) await rm(path, { force: true }).catch(() => undefined);
  }
  return { bytes };
}
