/**
 * The CPU part of a merge, pure (no I/O), so it runs in a worker thread: decode the input
 * files (each verified whole against its manifest checksum), keep the first copy of every
 * event id (oldest input first), count exact duplicates, set conflicting copies aside, and
 * encode the kept rows as one sorted segment.
 *
 * Invariant: kept + duplicates + quarantined = input rows.
 */
import { assert } from '../errors.ts';
import { Memtable } from '../ingest/memtable.ts';
import { COLUMN_NAMES, type EventColumns } from '../model/columns.ts';
import { canonicalPayload, eventOfRow } from '../model/event.ts';
import { type EncodeResult, encodeFlushSegment } from '../storage/segment/encode-flush.ts';
import { SegmentReader } from '../storage/segment/segment-reader.ts';

export interface MergeInput {
  id: number;
  bytes: Uint8Array;
  sizeBytes: number;
  crc32c: number;
}

export interface MergeRequest {
  inputs: MergeInput[];
  outputId: number;
  bucketCount: number;
  blockRows: number;
  createdAtMs: number;
  bloomBitsPerKey: number;
}

export interface MergeOutput {
  inputRows: number;
  duplicatesDropped: number;
  /** The kept rows, encoded as segment `outputId`. */
  encoded: EncodeResult;
  /** Conflicting copies, one column set per segment to write (a segment holds an id once). */
  quarantined: EventColumns[];
}

export function runMerge(req: MergeRequest): MergeOutput {
  const kept = new Memtable();
  const quarantined: { rows: Memtable; ids: Set<string> }[] = [];
  const payloadOf = new Map<string, string>();
  let inputRows = 0;
  let duplicatesDropped = 0;
  for (const input of req.inputs) {
    let reader: SegmentReader;
    let columns: EventColumns;
    try {
      reader = SegmentReader.fromBytes(input.bytes, { sizeBytes: input.sizeBytes, checksum: input.crc32c });
      columns = reader.readColumns(COLUMN_NAMES) as EventColumns;
    } catch (err) {
      throw new Error(`segment ${input.id} is corrupt: ${(err as Error).message}`, { cause: err });
    }
    inputRows += columns.rowCount;
    for (let row = 0; row < columns.rowCount; row++) {
      const event = eventOfRow(columns, row);
      const payload = canonicalPayload(event);
      const seen = payloadOf.get(event.event_id);
      if (seen === undefined) {
        payloadOf.set(event.event_id, payload);
        kept.append(event, event.ingested_at_ms);
      } else if (seen === payload) {
        duplicatesDropped++;
      } else {
        let q = quarantined.find((m) => !m.ids.has(event.event_id));
        if (q === undefined) quarantined.push((q = { rows: new Memtable(), ids: new Set() }));
        q.ids.add(event.event_id);
        q.rows.append(event, event.ingested_at_ms);
      }
    }
  }
  const quarantinedRows = quarantined.reduce((n, q) => n + q.rows.rowCount, 0);
  assert(kept.rowCount + duplicatesDropped + quarantinedRows === inputRows, 'merge lost or invented rows');
  const encoded = encodeFlushSegment({
    columns: kept.columns(),
    segmentId: req.outputId,
    bucketCount: req.bucketCount,
    createdAtMs: req.createdAtMs,
    blockRows: req.blockRows,
    bloomBitsPerKey: req.bloomBitsPerKey,
  });
  assert(encoded.meta.rowCount === kept.rowCount, 'merge output lost or invented rows');
  return { inputRows, duplicatesDropped, encoded, quarantined: quarantined.map((q) => q.rows.columns()) };
}
