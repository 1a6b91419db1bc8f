/**
 * Reads a written Parquet file back — footer and the whole quantity column — so an export is
 * only published when the file holds exactly what was read from the database. Runs in the
 * writer thread (parquet-wasm is loaded there); the quantity batches go to the main thread,
 * which sums them (quantity-sum.ts) while this reads the next.
 *
 * Invariants:
 * - the check reads the file from disk (not the buffers that produced it), one batch at a
 *   time, so it costs bounded memory;
 * - every row group has exactly the expected columns in order, every chunk zstd.
 */
import { openAsBlob } from 'node:fs';
import * as parquet from 'parquet-wasm';
import { UsageDbError } from '../errors.ts';

/** Rows per batch while reading back: word sums stay exact doubles below 2^53 (< 2^21 rows). */
export const READ_BACK_BATCH_ROWS = 65_536;

function mismatch(path: string, what: string): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_INTERNAL', `export verification failed for ${path}: ${what}`);
}

function checkFooter(
  path: string,
  file: parquet.ParquetFile,
  columnNames: readonly string[],
): { rows: number; rowGroups: number } {
  const meta = file.metadata();
  try {
    const groups = meta.rowGroups();
    for (let g = 0; g < groups.length; g++) {
      const columns = groups[g].columns();
      const names = columns.map((c) => c.columnPath().join('.'));
      if (names.join(',') !== columnNames.join(','))
        throw mismatch(path, `row group ${g} has columns ${names.join(',')}`);
      for (const c of columns) {
        if (c.compression() !== parquet.Compression.ZSTD)
          throw mismatch(path, `column ${c.columnPath().join('.')} is not zstd`);
        c.free();
      }
      groups[g].free();
    }
    return { rows: meta.fileMetadata().numRows(), rowGroups: groups.length };
  } finally {
    meta.free();
  }
}

/**
 * Checks the footer of a written export file (column names and order, zstd) and streams its
 * whole `quantity` column to `onQuantities`, as Arrow IPC batches of at most
 * READ_BACK_BATCH_ROWS rows. Returns the footer's row count and row groups.
 */
export async function readBack(
  path: string,
  columnNames: readonly string[],
  onQuantities: (ipc: Uint8Array) => void,
): Promise<{ rows: number; rowGroups: number }> {
  const file = await parquet.ParquetFile.fromFile(await openAsBlob(path));
  try {
    const footer = checkFooter(path, file, columnNames);
    const stream = (await file.stream({
      columns: ['quantity'],
      batchSize: READ_BACK_BATCH_ROWS,
    })) as ReadableStream<parquet.RecordBatch>;
    for await (const batch of stream) onQuantities(batch.intoIPCStream());
    return footer;
  } finally {
    file.free();
  }
}
