/**
 * Size and speed of realistic segments: bytes per event per column, encode and decode rows/s.
 * Used by segment-size.test.ts; run directly for a report:
 *   node_modules/.bin/node test/storage/segment/measure-segment.ts [rows ...]
 */

import { COLUMN_NAMES } from '../../../src/model/columns.ts';
import { SegmentReader } from '../../../src/storage/segment/segment-reader.ts';
import { type EncodeSegmentOptions, encodeSegment } from '../../../src/storage/segment/segment-writer.ts';
import { type Row, realisticRows, rowsToColumns } from './generate-columns.ts';

export interface SizeReport {
  rows: number;
  totalBytes: number;
  bytesPerEvent: number;
  /** Bytes per event of each column and region. */
  perEvent: Record<string, number>;
}

const INFO = { segmentId: 1, day: '2026-05-14', bucket: 7, createdAtMs: 1_747_260_000_000 };

export function measureSize(rows: Row[], options: EncodeSegmentOptions = {}): SizeReport {
  const encoded = encodeSegment(rowsToColumns(rows), INFO, options);
  const breakdown = SegmentReader.fromBytes(encoded.bytes).sizeBreakdown();
  const perEvent: Record<string, number> = {};
  for (const [name, bytes] of Object.entries(breakdown)) perEvent[name] = bytes / rows.length;
  return {
    rows: rows.length,
    totalBytes: encoded.bytes.length,
    bytesPerEvent: encoded.bytes.length / rows.length,
    perEvent,
  };
}

function bestMs(fn: () => void, rounds: number): number {
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    fn();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

export function measureSpeed(rows: Row[], rounds = 15): Record<string, number> {
  const cols = rowsToColumns(rows);
  const encoded = encodeSegment(cols, INFO);
  const reader = SegmentReader.fromBytes(encoded.bytes);
  const expected = { sizeBytes: encoded.bytes.length, checksum: encoded.checksum };
  const perSec = (ms: number) => Math.round((rows.length / ms) * 1000);
  return {
    encodeRowsPerSec: perSec(bestMs(() => encodeSegment(cols, INFO, { verify: false }), rounds)),
    encodeVerifiedRowsPerSec: perSec(bestMs(() => encodeSegment(cols, INFO), rounds)),
    openRowsPerSec: perSec(bestMs(() => SegmentReader.fromBytes(encoded.bytes, expected), rounds)),
    decodeAllRowsPerSec: perSec(bestMs(() => reader.readColumns(COLUMN_NAMES), rounds)),
    decodeBillingRowsPerSec: perSec(
      bestMs(
        () =>
          reader.readColumns([
            'account_id',
            'product_id',
            'meter_id',
            'model_id',
            'unit',
            'timestamp_ms',
            'quantity',
          ]),
        rounds,
      ),
    ),
    decodeEventIdsRowsPerSec: perSec(bestMs(() => reader.readColumns(['event_id']), rounds)),
  };
}

function main(): void {
  const sizes = process.argv.slice(2).map(Number);
  for (const n of sizes.length > 0 ? sizes : [5000, 500]) {
    const rows = realisticRows({ rows: n, seed: 42 });
    const size = measureSize(rows);
    console.log(`\n${n} rows: ${size.totalBytes} bytes, ${size.bytesPerEvent.toFixed(3)} bytes/event`);
    for (const [name, perEvent] of Object.entries(size.perEvent).sort((a, b) => b[1] - a[1])) {
      console.log(`  ${name.padEnd(30)} ${perEvent.toFixed(3)}`);
    }
    for (const [name, value] of Object.entries(measureSpeed(rows)))
      console.log(`  ${name.padEnd(30)} ${value.toLocaleString('en')}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
