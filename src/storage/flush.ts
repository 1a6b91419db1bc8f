/**
 * Flush: turns a frozen memtable into one immutable segment file, clustered by (UTC day,
 * bucket) partition, then (account_id, product_id, meter_id, model_id, timestamp_ms). Each
 * partition is a contiguous run of blocks, so readers prune by partition through the footer.
 *
 * Why one file per flush rather than one per partition: a month of events over 64 buckets is
 * ~2,000 partitions; a file each meant ~2,000 fsyncs per flush (20 s for 100k events here) and
 * ~1 KB of dictionaries and footer per partition (40 bytes/event instead of ~23).
 *
 * Invariants:
 * - the file and its directory entry are fsynced before this returns: the caller may then
 *   reference it from a manifest commit;
 * - nothing here touches the manifest: a file written by a flush that fails or crashes is
 *   unreferenced, and removed at the next open (version-set.ts);
 * - the originals its Retractions retract go to a side file (retractions.ts), fsynced with it;
 * - encoding (seconds of CPU for a full memtable) runs in a worker thread: ingest is not stalled.
 */
import { assert } from '../errors.ts';
import type { EventColumns } from '../model/columns.ts';
import type { PackedIds } from '../model/packed-ids.ts';
import type { Clock } from './clock.ts';
import { type FileSystem, joinPath } from './fs/file-system.ts';
import type { IdHashes } from './id-filter.ts';
import { RAW_DIR, segmentPath } from './layout.ts';
import type { SegmentEntry } from './manifest.ts';
import { retractionFilePath, writeRetractionFile } from './retractions.ts';
import type { EncodeResult } from './segment/encode-flush.ts';
import { encodeFlush } from './segment/segment-encoder.ts';

/**
 * Bits per event id in the segment's Bloom filter: ~0.3% false positives, 1.5 bytes/event. A
 * cold lookup probes every file's filter, so each point of false positives costs an id index
 * read per hundred files probed: at 10M events (40 files), 8 bits (~2%) made 15k id index
 * reads in the tenth million, 12 bits made 2.9k.
 */
export const SEGMENT_BLOOM_BITS_PER_KEY = 12;
/**
 * How a flush compresses: zstd level 1, so the level-1 probe that ranks each chunk's
 * encodings is stored as is (no second pass at a slower level), and streams under 256 bytes
 * stored raw (one zstd call costs ~40 µs of setup whatever its size; a flush of the bench
 * workload holds ~2,000 partitions × 15 columns of small chunks). Measured on a 245k-row
 * flush: ~40% less encode CPU for ~4% more bytes (31.0 against 29.7 bytes/event). Flush files
 * are short-lived: compaction rewrites them at DEFAULT_ZSTD_LEVEL and STREAM_COMPRESS_MIN_BYTES.
 */
export const FLUSH_ZSTD_LEVEL = 1;
export const FLUSH_COMPRESS_MIN_BYTES = 256;
/** Smaller flushes encode inline: a worker round trip would cost more than it saves. */
export const INLINE_ENCODE_ROWS_MAX = 20_000;

export interface FlushContext {
  fs: FileSystem;
  root: string;
  clock: Clock;
  bucketCount: number;
  segmentId: number;
  blockRows?: number;
}

export interface FlushOutput {
  segment: SegmentEntry;
  /** Payload hash per memtable row (four words each), for the hot dedupe window. */
  payloadHashes: Uint32Array;
  /** The memtable rows' event ids, packed, for the hot dedupe window. */
  eventIds: PackedIds;
  /** hash128 h1, h2 of the segment's event ids, for the database id filter (SegmentStore.prepare). */
  idHashes: IdHashes;
}

export async function flushColumns(columns: EventColumns, ctx: FlushContext): Promise<FlushOutput> {
  assert(columns.rowCount > 0, 'flush of an empty memtable');
  const encoded = await encodeFlush(
    {
      columns,
      segmentId: ctx.segmentId,
      bucketCount: ctx.bucketCount,
      createdAtMs: ctx.clock.nowMs(),
      bloomBitsPerKey: SEGMENT_BLOOM_BITS_PER_KEY,
      zstdLevel: FLUSH_ZSTD_LEVEL,
      compressMinBytes: FLUSH_COMPRESS_MIN_BYTES,
      ...(ctx.blockRows ? { blockRows: ctx.blockRows } : {}),
    },
    { inline: columns.rowCount <= INLINE_ENCODE_ROWS_MAX },
  );
  assert(encoded.meta.rowCount === columns.rowCount, 'flush segment lost or invented rows');
  const segment = await writeEncodedSegment(ctx.fs, ctx.root, ctx.segmentId, encoded);
  return {
    segment,
    payloadHashes: encoded.payloadHashes,
    eventIds: encoded.eventIds,
    idHashes: encoded.idHashes,
  };
}

/**
 * Writes an encoded segment (and its retraction side file) durably: file and directory entry
 * fsynced, so a manifest commit may name it. Returns its manifest entry.
 */
export async function writeEncodedSegment(
  fs: FileSystem,
  root: string,
  segmentId: number,
  encoded: EncodeResult,
): Promise<SegmentEntry> {
  assert(encoded.meta.segmentId === segmentId, 'a segment is written under its own id');
  let retractions = 0;
  try {
    await fs.writeFile(segmentPath(root, segmentId), encoded.bytes, { sync: true });
    if (encoded.retracted.length > 0)
      retractions = await writeRetractionFile(fs, root, segmentId, encoded.retracted);
    await fs.syncDir(joinPath(root, RAW_DIR));
  } catch (err) {
    // No manifest names this id yet: nothing that looks like a segment may stay under its name.
    await emptyUncommitted(fs, root, segmentId);
    throw err;
  }
  return {
    id: segmentId,
    rows: encoded.meta.rowCount,
    min_ts: encoded.meta.minTimestampMs,
    max_ts: encoded.meta.maxTimestampMs,
    size_bytes: encoded.bytes.length,
    crc32c: encoded.checksum,
    retractions,
  };
}

/**
 * Empties the files of a segment no manifest generation names (its write or its commit
 * failed): on a full disk each retry would otherwise keep one more copy until the next open.
 * The empty name stays, so the id is not allocated again after a restart (the open deletes it).
 */
export async function emptyUncommitted(fs: FileSystem, root: string, segmentId: number): Promise<void> {
  for (const path of [segmentPath(root, segmentId), retractionFilePath(root, segmentId)]) {
    try {
      if (await fs.exists(path)) await fs.writeFile(path, new Uint8Array(0));
    } catch {
      // Best effort: the open deletes what no generation names anyway.
    }
  }
}
