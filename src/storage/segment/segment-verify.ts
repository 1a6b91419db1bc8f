/**
 * The writer's paired assertion: a freshly encoded segment is opened with the reader, every
 * column decoded and compared with the input, before a single byte reaches the disk. A
 * mismatch is a codec bug, never bad input, so it throws a plain Error.
 *
 * Invariants:
 * - verifyEncodedSegment returns only if the bytes decode to exactly `columns` (dictionary
 *   columns compared by value, quantities by exact integer value) and to `encoded.meta`, and
 *   (format 3) every id index entry holds the payload hash of the row it names.
 */
import { PAYLOAD_HASH_WORDS } from '../../model/payload-hash.ts';

import {
  COLUMN_NAMES,
  DICT_COLUMN_NAMES,
  type DictColumn,
  type EventColumns,
  NULL_CODE,
  quantityBigAt,
} from '../../model/columns.ts';
import {
  decodeIdIndexChunk,
  idIndexChunkEntries,
  idIndexChunkBits,
  idIndexPayloadAt,
  rowBitsOf,
} from '../id-index.ts';
import { type EncodedSegment, FORMAT_VERSION_3 } from './segment-format.ts';
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
  const n = columns.rowCount;
  const sameCodes = new SameCodes();
  let row = 0;
  // Block by block: the decoded copy of a whole flush (~30 MiB at 250k rows) would double the
  // encoder's peak memory.
  reader.meta.blocks.forEach((block, b) => {
    if (block.firstRow !== row) fail(`block ${b} starts at row ${block.firstRow}, expected ${row}`);
    const got = reader.readColumns(COLUMN_NAMES, [b]) as EventColumns;
    if (got.rowCount !== block.rowCount)
      fail(`block ${b} holds ${got.rowCount} rows, footer says ${block.rowCount}`);
    compareRows(got, columns, row, sameCodes);
    row += block.rowCount;
  });
  if (row !== n) fail(`row count ${row}, expected ${n}`);
  if (reader.meta.formatVersion >= FORMAT_VERSION_3) verifyPayloadHashes(encoded, reader, n);
}

/** Every id index entry carries the payload hash of the row it names (format 3). */
function verifyPayloadHashes(encoded: EncodedSegment, reader: SegmentReader, n: number): void {
  const layout = reader.idIndexLayout;
  if (layout === null) fail('a format 3 file without an id index');
  const rowBits = rowBitsOf(n);
  const hashes = encoded.payloadHashes;
  const chunkEntries = idIndexChunkEntries(reader.meta.formatVersion);
  layout.regions.forEach((region, c) => {
    const bytes = encoded.bytes.subarray(region.offset, region.offset + region.length);
    const count = Math.min(chunkEntries, n - c * chunkEntries);
    const { rows } = decodeIdIndexChunk(
      idIndexChunkBits(bytes, count, true),
      layout.firstHashes[c],
      count,
      rowBits,
    );
    for (let e = 0; e < count; e++) {
      const [p1, p2] = idIndexPayloadAt(bytes, e);
      const at = rows[e] * PAYLOAD_HASH_WORDS;
      if (p1 !== hashes[at] || p2 !== hashes[at + 1])
        fail(`payload hash of id index entry ${e} of chunk ${c}`);
    }
  });
}

/**
 * Pairs of dictionary codes (decoded, input) already found to name equal values, per decoded
 * dictionary: a row then compares two integers instead of two strings. A pair not seen yet is
 * compared by value, so the check stays exact.
 */
class SameCodes {
  private readonly byDict = new Map<readonly string[], Uint32Array>();

  /** For a decoded dictionary: known[g] = the input code + 1 that code g was found equal to (0: none yet). */
  knownFor(dict: readonly string[]): Uint32Array {
    let known = this.byDict.get(dict);
    if (known === undefined) {
      known = new Uint32Array(dict.length);
      this.byDict.set(dict, known);
    }
    return known;
  }
}

function sameValue(
  known: Uint32Array,
  got: DictColumn,
  gotRow: number,
  want: DictColumn,
  wantRow: number,
): boolean {
  const g = got.codes[gotRow];
  const w = want.codes[wantRow];
  if (g === NULL_CODE || w === NULL_CODE) return g === w;
  if (known[g] === w + 1) return true;
  if (got.dict[g] !== want.dict[w]) return false;
  known[g] = w + 1;
  return true;
}

/** Rows [0, got.rowCount) of `got` equal rows [offset, offset + got.rowCount) of `want`. */
function compareRows(got: EventColumns, want: EventColumns, offset: number, same: SameCodes): void {
  const known = DICT_COLUMN_NAMES.map((name) => same.knownFor(got[name].dict));
  for (let k = 0; k < got.rowCount; k++) {
    const i = offset + k;
    if (got.event_id[k] !== want.event_id[i]) fail(`event_id row ${i}`);
    if (got.kind[k] !== want.kind[i]) fail(`kind row ${i}`);
    if (got.correction_original_event_id[k] !== want.correction_original_event_id[i])
      fail(`correction_original_event_id row ${i}`);
    if (got.correction_reason[k] !== want.correction_reason[i]) fail(`correction_reason row ${i}`);
    if (got.timestamp_ms[k] !== want.timestamp_ms[i]) fail(`timestamp_ms row ${i}`);
    if (got.ingested_at_ms[k] !== want.ingested_at_ms[i]) fail(`ingested_at_ms row ${i}`);
    const q = got.quantity.values[k];
    // A big input inside the safe range is normalised to a number: compare exact values then.
    if (!(
      q === want.quantity.values[i] || quantityBigAt(got.quantity, k) === quantityBigAt(want.quantity, i)
    ))
      fail(`quantity row ${i}`);
    for (let j = 0; j < DICT_COLUMN_NAMES.length; j++) {
      const name = DICT_COLUMN_NAMES[j];
      if (!sameValue(known[j], got[name], k, want[name], i)) fail(`${name} row ${i}`);
    }
  }
}
