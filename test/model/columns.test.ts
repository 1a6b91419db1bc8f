import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sortRowsForSegment } from '../../src/model/columns.ts';
import {
  compareRows,
  columnsToRows,
  realisticRows,
  rowsToColumns,
  seededRandom,
} from '../storage/segment/generate-columns.ts';

describe('sortRowsForSegment', () => {
  it('orders rows by partition, then the segment order, ties by event id (against a plain sort)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 400 }),
        fc.integer(),
        fc.integer({ min: 1, max: 200 }),
        fc.boolean(),
        (n, seed, partitions, coarse) => {
          // Coarse timestamps make ties that only the event id breaks.
          const generated = realisticRows({ rows: n, seed }).map((r) =>
            coarse ? { ...r, timestamp_ms: Math.floor(r.timestamp_ms / 1e8) * 1e8 } : r,
          );
          // Memtable order (arrival), not segment order.
          const rand = seededRandom(seed);
          for (let i = generated.length - 1; i > 0; i--) {
            const j = Math.floor(rand() * (i + 1));
            [generated[i], generated[j]] = [generated[j], generated[i]];
          }
          // Junk dictionary entries first: codes out of value order, as in a memtable.
          const cols = rowsToColumns(generated, { junkDictEntries: true });
          const rows = columnsToRows(cols);
          const partitionOf = (row: number) => (rows[row].timestamp_ms * 7) % partitions;
          const want = rows
            .map((_, i) => i)
            .sort(
              (a, b) =>
                partitionOf(a) - partitionOf(b) ||
                compareRows(rows[a], rows[b]) ||
                (rows[a].event_id < rows[b].event_id ? -1 : rows[a].event_id > rows[b].event_id ? 1 : 0),
            );
          expect([...sortRowsForSegment(cols, partitionOf)]).toEqual(want);
        },
      ),
      { numRuns: 80 },
    );
  });
});
