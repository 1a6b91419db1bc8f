/** The writer thread's file queue: files are written in order, each answered on its own. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RowGroupBuilder } from '../../src/export/row-group-builder.ts';
import { EXPORT_COLUMN_NAMES } from '../../src/export/schema.ts';
import { ParquetWriterThread } from '../../src/export/writer-thread.ts';
import { columnsOf } from './fixtures.ts';

const dir = mkdtempSync(join(tmpdir(), 'usagedb-writer-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const OPTIONS = { rowGroupRows: 4, createdBy: 'usagedb-test' };

/** Row groups of at most 4 rows holding `quantities`. */
function rowGroupsOf(quantities: bigint[]): Uint8Array[] {
  const c = columnsOf(quantities, ['a', 'b']);
  const builder = new RowGroupBuilder(4);
  const out: Uint8Array[] = [];
  for (let start = 0; start < quantities.length; start += 4) {
    const rows = Uint32Array.from({ length: Math.min(4, quantities.length - start) }, (_, i) => start + i);
    builder.append(c, rows);
    out.push(builder.takeIpc());
  }
  return out;
}

async function* stream(groups: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* groups;
}

describe('ParquetWriterThread', () => {
  it('streams the next file while the previous one finishes; a failed file does not stop the next', async () => {
    const writer = new ParquetWriterThread();
    try {
      const first = join(dir, 'first.parquet');
      const missing = join(dir, 'no-such-dir', 'second.parquet');
      const third = join(dir, 'third.parquet');
      const a = await writer.startFile(
        first,
        stream(rowGroupsOf([1n, 2n, 3n, 4n, 5n])),
        OPTIONS,
        EXPORT_COLUMN_NAMES,
      );
      const b = await writer.startFile(missing, stream(rowGroupsOf([7n])), OPTIONS, EXPORT_COLUMN_NAMES);
      const big = 10n ** 30n;
      const c = await writer.startFile(
        third,
        stream(rowGroupsOf([big, -1n, 2n])),
        OPTIONS,
        EXPORT_COLUMN_NAMES,
      );
      // Finished out of order: each answer belongs to its own file.
      const written = await c.finish();
      expect([written.rows, written.rowGroups, written.quantityRows]).toEqual([3, 1, 3]);
      expect(written.quantitySum).toBe(big + 1n);
      await expect(b.finish()).rejects.toMatchObject({ code: 'USAGEDB_ERR_IO' });
      expect(existsSync(missing)).toBe(false);
      const firstWritten = await a.finish();
      expect([firstWritten.rows, firstWritten.rowGroups, firstWritten.quantitySum]).toEqual([5, 2, 15n]);
    } finally {
      await writer.close();
    }
  });

  it('removes the partial file when its source fails, and goes on with the next file', async () => {
    const writer = new ParquetWriterThread();
    try {
      const broken = join(dir, 'broken.parquet');
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield* rowGroupsOf([1n, 2n, 3n, 4n]);
        throw new Error('source failed');
      }
      await expect(writer.startFile(broken, failing(), OPTIONS, EXPORT_COLUMN_NAMES)).rejects.toThrow(
        /source failed/,
      );
      expect(existsSync(broken)).toBe(false);
      const next = await (
        await writer.startFile(
          join(dir, 'next.parquet'),
          stream(rowGroupsOf([9n])),
          OPTIONS,
          EXPORT_COLUMN_NAMES,
        )
      ).finish();
      expect([next.rows, next.quantitySum]).toEqual([1, 9n]);
    } finally {
      await writer.close();
    }
  });
});
