/**
 * Reads a written Parquet file back — footer and the whole quantity column — so an export is
 * only published when the file holds exactly what was read from the database.
 *
 * Invariants:
 * - the check reads the file from disk (not the buffers that produced it), one row group at a
 *   time, so it costs bounded memory;
 * - the quantity sum is exact: i128 words are summed per word and recombined as a bigint.
 */
import { openAsBlob } from 'node:fs';
import { tableFromIPC } from 'apache-arrow';
import * as parquet from 'parquet-wasm';
import { UsageDbError } from '../errors.ts';
import { EXPORT_COLUMN_NAMES } from './schema.ts';

/** Rows per batch while reading back: word sums stay exact doubles below 2^53 (< 2^21 rows). */
const READ_BACK_BATCH_ROWS = 65_536;
const TWO_POW_128 = 1n << 128n;

export interface WrittenTotals {
  rows: number;
  quantitySum: bigint;
  rowGroups: number;
}

function mismatch(path: string, what: string): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_INTERNAL', `export verification failed for ${path}: ${what}`);
}

/** Sums little-endian two's complement i128 values given as 4 words each. */
export function sumI128Words(words: Uint32Array, count: number): bigint {
  const sums = [0, 0, 0, 0];
  let negatives = 0;
  for (let i = 0; i < count; i++) {
    const at = i * 4;
    sums[0] += words[at];
    sums[1] += words[at + 1];
    sums[2] += words[at + 2];
    sums[3] += words[at + 3];
    if (words[at + 3] >= 0x80000000) negatives++;
  }
  // Unsigned value minus 2^128 for each negative one: the exact signed sum.
  let total = 0n;
  for (let w = 3; w >= 0; w--) total = (total << 32n) + BigInt(sums[w]);
  return total - BigInt(negatives) * TWO_POW_128;
}

function checkFooter(path: string, file: parquet.ParquetFile): { rows: number; rowGroups: number } {
  const meta = file.metadata();
  try {
    const groups = meta.rowGroups();
    for (let g = 0; g < groups.length; g++) {
      const columns = groups[g].columns();
      const names = columns.map((c) => c.columnPath().join('.'));
      if (names.join(',') !== EXPORT_COLUMN_NAMES.join(','))
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

/** Row count (footer and streamed), row groups and exact SUM(quantity) of a written export file. */
export async function readBackTotals(path: string): Promise<WrittenTotals> {
  const file = await parquet.ParquetFile.fromFile(await openAsBlob(path));
  try {
    const footer = checkFooter(path, file);
    const stream = (await file.stream({
      columns: ['quantity'],
      batchSize: READ_BACK_BATCH_ROWS,
    })) as ReadableStream<parquet.RecordBatch>;
    let rows = 0;
    let sum = 0n;
    for await (const batch of stream) {
      const table = tableFromIPC(batch.intoIPCStream());
      const column = table.getChildAt(0);
      if (column === null) throw mismatch(path, 'no quantity column');
      for (const data of column.data) {
        const words = (data.values as Uint32Array).subarray(data.offset * 4, (data.offset + data.length) * 4);
        sum += sumI128Words(words, data.length);
        rows += data.length;
      }
    }
    if (rows !== footer.rows)
      throw mismatch(path, `footer says ${footer.rows} rows, the quantity column holds ${rows}`);
    return { rows, quantitySum: sum, rowGroups: footer.rowGroups };
  } finally {
    file.free();
  }
}
