/**
 * The writer's paired assertion: a freshly encoded segment is opened with the reader, every
 * column decoded and compared with the input, before a single byte reaches the disk. A
 * mismatch is a codec bug, never bad input, so it throws a plain Error.
 *
 * Invariants:
 * - verifyEncodedSegment returns only if the bytes decode to exactly `columns` (dictionary
 *   columns compared by value, quantities by exact integer value) and to `encoded.meta`.
 */

import {
  COLUMN_NAMES,
  DICT_COLUMN_NAMES,
  dictValue,
  type EventColumns,
  quantityBigAt,
} from '../../model/columns.ts';
import type { EncodedSegment } from './segment-format.ts';
import { SegmentReader } from './segment-reader.ts';

function fail(what: string): never {
  throw new Error(`encodeSegment: self-check failed: ${what}`);
}

export function verifyEncodedSegment(encoded: EncodedSegment, columns: EventColumns): void {
  const reader = SegmentReader.fromBytes(encoded.bytes, {
    sizeBytes: encoded.bytes.length,
    checksum: encoded.checksum,
  });
  if (JSON.stringify(reader.meta) !== JSON.stringify(encoded.meta)) fail('footer metadata differs');
  const got = reader.readColumns(COLUMN_NAMES) as EventColumns;
  const n = columns.rowCount;
  if (got.rowCount !== n) fail(`row count ${got.rowCount}, expected ${n}`);
  for (let i = 0; i < n; i++) {
    if (got.event_id[i] !== columns.event_id[i]) fail(`event_id row ${i}`);
    if (got.kind[i] !== columns.kind[i]) fail(`kind row ${i}`);
    if (got.correction_original_event_id[i] !== columns.correction_original_event_id[i])
      fail(`correction_original_event_id row ${i}`);
    if (got.correction_reason[i] !== columns.correction_reason[i]) fail(`correction_reason row ${i}`);
    if (got.timestamp_ms[i] !== columns.timestamp_ms[i]) fail(`timestamp_ms row ${i}`);
    if (got.ingested_at_ms[i] !== columns.ingested_at_ms[i]) fail(`ingested_at_ms row ${i}`);
    const q = got.quantity.values[i];
    if (
      Number.isNaN(q)
        ? quantityBigAt(got.quantity, i) !== quantityBigAt(columns.quantity, i)
        : q !== columns.quantity.values[i]
    ) {
      // A big input inside the safe range is normalised to a number; compare exactly then.
      if (quantityBigAt(got.quantity, i) !== quantityBigAt(columns.quantity, i)) fail(`quantity row ${i}`);
    }
  }
  for (const name of DICT_COLUMN_NAMES) {
    const a = got[name];
    const b = columns[name];
    for (let i = 0; i < n; i++) if (dictValue(a, i) !== dictValue(b, i)) fail(`${name} row ${i}`);
  }
}
