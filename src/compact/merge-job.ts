/**
 * The CPU part of a merge, pure (no I/O), so it runs in a worker thread: decode the input
 * files (each verified whole against its manifest checksum), keep the first copy of every
 * event id (oldest input first), count exact duplicates, set conflicting copies aside, and
 * encode the kept rows as one sorted segment.
 *
 * Invariant: kept + duplicates + quarantined = input rows.
 */
import { assert } from '../errors.ts';
import { IdSeqTable } from '../ingest/id-table.ts';
import { COLUMN_NAMES, concatRows, type EventColumns, type RowSelection } from '../model/columns.ts';
import { canonicalPayload, eventOfRow } from '../model/event.ts';
import { hash128Into } from '../model/hash.ts';
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
  const parts: EventColumns[] = [];
  for (const input of req.inputs) {
    try {
      const reader = SegmentReader.fromBytes(input.bytes, {
        sizeBytes: input.sizeBytes,
        checksum: input.crc32c,
      });
      parts.push(reader.readColumns(COLUMN_NAMES) as EventColumns);
    } catch (err) {
      throw new Error(`segment ${input.id} is corrupt: ${(err as Error).message}`, { cause: err });
    }
  }
  // First copy of each id wins (inputs oldest first). Ids are found through a table of 32-bit
  // fingerprints -> global row (typed arrays: millions of rows, no object per row); a hit is
  // confirmed on the exact id, and only then are payloads compared.
  const offsets: number[] = [];
  let inputRows = 0;
  for (const c of parts) {
    offsets.push(inputRows);
    inputRows += c.rowCount;
  }
  const partOf = (globalRow: number): number => {
    let p = parts.length - 1;
    while (offsets[p] > globalRow) p--;
    return p;
  };
  const firstRow = new IdSeqTable();
  const kept: number[][] = parts.map(() => []);
  const quarantined: { rows: RowSelection[]; ids: Set<string> }[] = [];
  let duplicatesDropped = 0;
  const hash = new Uint32Array(4);
  for (let p = 0; p < parts.length; p++) {
    const c = parts[p];
    for (let row = 0; row < c.rowCount; row++) {
      const id = c.event_id[row];
      hash128Into(id, hash);
      let first = -1;
      for (let slot = firstRow.firstSlot(hash[0]); slot >= 0; slot = firstRow.nextSlot(slot, hash[0])) {
        const g = firstRow.seqAt(slot);
        const q = partOf(g);
        if (parts[q].event_id[g - offsets[q]] === id) {
          first = g;
          break;
        }
      }
      if (first < 0) {
        firstRow.insert(hash[0], offsets[p] + row);
        kept[p].push(row);
        continue;
      }
      const q = partOf(first);
      const same =
        canonicalPayload(eventOfRow(parts[q], first - offsets[q])) === canonicalPayload(eventOfRow(c, row));
      if (same) {
        duplicatesDropped++;
        continue;
      }
      let target = quarantined.find((m) => !m.ids.has(id));
      if (target === undefined) quarantined.push((target = { rows: [], ids: new Set() }));
      target.ids.add(id);
      target.rows.push({ columns: c, rows: [row] });
    }
  }
  const keptColumns = concatRows(parts.map((columns, p) => ({ columns, rows: kept[p] })));
  const quarantinedColumns = quarantined.map((q) => concatRows(q.rows));
  const quarantinedRows = quarantinedColumns.reduce((n, q) => n + q.rowCount, 0);
  assert(
    keptColumns.rowCount + duplicatesDropped + quarantinedRows === inputRows,
    'merge lost or invented rows',
  );
  const encoded = encodeFlushSegment({
    columns: keptColumns,
    segmentId: req.outputId,
    bucketCount: req.bucketCount,
    createdAtMs: req.createdAtMs,
    blockRows: req.blockRows,
    bloomBitsPerKey: req.bloomBitsPerKey,
    hotWindow: false,
  });
  assert(encoded.meta.rowCount === keptColumns.rowCount, 'merge output lost or invented rows');
  return { inputRows, duplicatesDropped, encoded, quarantined: quarantinedColumns };
}
