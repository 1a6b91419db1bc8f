/**
 * The CPU part of a flush: cluster the rows by (UTC day, bucket) partition, then account, and
 * encode them as one segment. Pure (no I/O), so it runs in a worker thread or inline.
 */
import { PAYLOAD_HASH_WORDS } from '../../model/payload-hash.ts';
import { type EventColumns, KIND_RETRACTION, selectRows, sortRowsForSegment } from '../../model/columns.ts';
import { type PackedIds, packIds } from '../../model/packed-ids.ts';
import { accountBucket, utcDay } from '../partition.ts';
import type { SegmentMeta } from './segment-format.ts';
import { encodeSegment } from './segment-writer.ts';

const DAY_MS = 86_400_000;
/** Above every UTC day number a timestamp can have (8.64e15 ms / DAY_MS = 1e8). */
const DAYS_PER_BUCKET_KEY = 100_000_001;

export interface EncodeRequest {
  columns: EventColumns;
  segmentId: number;
  bucketCount: number;
  createdAtMs: number;
  blockRows?: number;
  bloomBitsPerKey: number;
  /** zstd level of the streams; default DEFAULT_ZSTD_LEVEL (flushes ask for FLUSH_ZSTD_LEVEL). */
  zstdLevel?: number;
  /** Streams shorter than this are stored raw; default STREAM_COMPRESS_MIN_BYTES. */
  compressMinBytes?: number;
  /** False for a compaction merge: no hot-window data (payload hashes, packed ids) is built. */
  hotWindow?: boolean;
}

export interface EncodeResult {
  bytes: Uint8Array;
  meta: SegmentMeta;
  checksum: number;
  /** Original event ids retracted by Retractions in the segment. */
  retracted: string[];
  /**
   * Per input row (memtable order): the 128-bit hash of its canonical payload as four 32-bit
   * words, for the hot dedupe window. Computed here, off the main thread.
   */
  payloadHashes: Uint32Array;
  /** The input rows' event ids (memtable order), packed: the hot window keeps them. */
  eventIds: PackedIds;
  /** hash128 words h1, h2 of each event id (file order): the database id filter's keys. */
  idHashes: { h1: Uint32Array; h2: Uint32Array };
}

/** Rows sorted for the segment, and the rows where each (day, bucket) partition starts. */
export function clusterRows(
  c: EventColumns,
  bucketCount: number,
): { rows: Uint32Array; runStarts: number[] } {
  const bucketOfCode = c.account_id.dict.map((a) => accountBucket(a, bucketCount));
  // Bucket-major: one account's days lie side by side in the file, so a query of an account's
  // month reads one contiguous run per column instead of one read per day.
  const partitionOf = (row: number) =>
    bucketOfCode[c.account_id.codes[row]] * DAYS_PER_BUCKET_KEY + Math.floor(c.timestamp_ms[row] / DAY_MS);
  const rows = sortRowsForSegment(c, partitionOf);
  const runStarts: number[] = [];
  let previous = -1;
  for (let i = 0; i < rows.length; i++) {
    const p = partitionOf(rows[i]);
    if (p !== previous) runStarts.push(i);
    previous = p;
  }
  return { rows, runStarts };
}

export function encodeFlushSegment(req: EncodeRequest): EncodeResult {
  const { rows, runStarts } = clusterRows(req.columns, req.bucketCount);
  const sorted = selectRows(req.columns, rows);
  const encoded = encodeSegment(
    sorted,
    {
      segmentId: req.segmentId,
      day: utcDay(sorted.timestamp_ms[0]),
      bucket: 0,
      createdAtMs: req.createdAtMs,
    },
    {
      runStarts,
      bloomBitsPerKey: req.bloomBitsPerKey,
      ...(req.zstdLevel ? { zstdLevel: req.zstdLevel } : {}),
      ...(req.compressMinBytes ? { compressMinBytes: req.compressMinBytes } : {}),
      ...(req.blockRows ? { blockRows: req.blockRows } : {}),
    },
  );
  const retracted: string[] = [];
  for (let row = 0; row < sorted.rowCount; row++) {
    const original = sorted.correction_original_event_id[row];
    if (sorted.kind[row] === KIND_RETRACTION && original !== null) retracted.push(original);
  }
  const hot = req.hotWindow !== false;
  // The writer hashed the payloads in file order: the hot window wants memtable order.
  const payloadHashes = hot ? toInputOrder(encoded.payloadHashes, rows) : new Uint32Array(0);
  const eventIds = hot ? packIds(req.columns.event_id, req.columns.rowCount) : packIds([], 0);
  return {
    bytes: encoded.bytes,
    meta: encoded.meta,
    checksum: encoded.checksum,
    retracted,
    payloadHashes,
    eventIds,
    idHashes: encoded.idHashes,
  };
}

/** Row `rows[i]` of the input gets the payload hash words of row i of the file. */
function toInputOrder(fileOrder: Uint32Array, rows: Uint32Array): Uint32Array {
  const out = new Uint32Array(fileOrder.length);
  for (let i = 0; i < rows.length; i++) {
    const from = i * PAYLOAD_HASH_WORDS;
    const to = rows[i] * PAYLOAD_HASH_WORDS;
    out[to] = fileOrder[from];
    out[to + 1] = fileOrder[from + 1];
    out[to + 2] = fileOrder[from + 2];
    out[to + 3] = fileOrder[from + 3];
  }
  return out;
}

/** The buffers of a result a worker moves to the main thread instead of copying them. */
export function encodeResultTransfer(result: EncodeResult): ArrayBuffer[] {
  return [
    result.bytes.buffer,
    result.payloadHashes.buffer,
    result.idHashes.h1.buffer,
    result.idHashes.h2.buffer,
    result.eventIds.bytes.buffer,
    result.eventIds.ends.buffer,
  ] as ArrayBuffer[];
}
