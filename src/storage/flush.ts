/**
 * Flush: turns a frozen memtable into immutable segments, one per (UTC day, bucket)
 * partition, plus one id filter over every event id of the flush.
 *
 * Invariants:
 * - every file is fsynced, and every directory entry it needs, before this returns: the
 *   caller may then reference them from a manifest commit;
 * - nothing here touches the manifest: files written by a flush that fails or crashes are
 *   unreferenced and ignored (and later deleted) by recovery;
 * - work is cut into one segment at a time with a yield in between, so ingest keeps going.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { assert } from '../errors.ts';
import { type EventColumns, KIND_RETRACTION, selectRows, sortRowsForSegment } from '../model/columns.ts';
import { hash128 } from '../model/hash.ts';
import type { Clock } from './clock.ts';
import { BloomFilter } from './encoding/bloom-filter.ts';
import { crc32c } from './encoding/crc32c.ts';
import { type FileSystem, dirName } from './fs/file-system.ts';
import { ID_FILTER_DIR, RAW_DIR, idFilterPath, rawPartitionDir, rawSegmentPath } from './layout.ts';
import type { IdFilterEntry, SegmentEntry } from './manifest.ts';
import { accountBucket, utcDay } from './partition.ts';
import { encodeSegment } from './segment/segment-writer.ts';
import { joinPath } from './fs/file-system.ts';

export const ID_FILTER_BITS_PER_KEY = 10;
const DAY_MS = 86_400_000;

export interface FlushOutput {
  segments: SegmentEntry[];
  idFilter: IdFilterEntry;
  filter: BloomFilter;
}

export interface FlushContext {
  fs: FileSystem;
  root: string;
  clock: Clock;
  bucketCount: number;
  firstSegmentId: number;
  filterId: number;
  blockRows?: number;
}

/** Groups rows by (day, bucket), in a deterministic partition order. */
export function partitionRows(c: EventColumns, bucketCount: number): Map<string, { day: string; bucket: number; rows: number[] }> {
  const bucketOfCode = c.account_id.dict.map((a) => accountBucket(a, bucketCount));
  const dayNames = new Map<number, string>();
  const parts = new Map<string, { day: string; bucket: number; rows: number[] }>();
  for (let row = 0; row < c.rowCount; row++) {
    const dayIndex = Math.floor(c.timestamp_ms[row] / DAY_MS);
    let day = dayNames.get(dayIndex);
    if (day === undefined) {
      day = utcDay(dayIndex * DAY_MS);
      dayNames.set(dayIndex, day);
    }
    const bucket = bucketOfCode[c.account_id.codes[row]];
    const key = `${day}/${bucket}`;
    let part = parts.get(key);
    if (!part) {
      part = { day, bucket, rows: [] };
      parts.set(key, part);
    }
    part.rows.push(row);
  }
  return new Map([...parts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Creates `dir` and makes the new entries durable up to `stopAt`. */
async function ensureDurableDir(fs: FileSystem, dir: string, stopAt: string, known: Set<string>): Promise<void> {
  if (known.has(dir)) return;
  const missing: string[] = [];
  for (let d = dir; d !== stopAt && d !== '.' && d !== '/'; d = dirName(d)) {
    if (known.has(d) || (await fs.exists(d))) break;
    missing.push(d);
  }
  await fs.mkdirp(dir);
  for (const d of missing.reverse()) await fs.syncDir(dirName(d));
  known.add(dir);
}

export async function flushColumns(columns: EventColumns, ctx: FlushContext): Promise<FlushOutput> {
  assert(columns.rowCount > 0, 'flush of an empty memtable');
  const createdAtMs = ctx.clock.nowMs();
  const knownDirs = new Set<string>();
  const segments: SegmentEntry[] = [];
  let segmentId = ctx.firstSegmentId;
  for (const part of partitionRows(columns, ctx.bucketCount).values()) {
    const sorted = sortRowsForSegment(columns, Uint32Array.from(part.rows));
    const partColumns = selectRows(columns, sorted);
    const encoded = encodeSegment(
      partColumns,
      { segmentId, day: part.day, bucket: part.bucket, createdAtMs },
      ctx.blockRows === undefined ? undefined : { blockRows: ctx.blockRows },
    );
    const dir = rawPartitionDir(ctx.root, part.day, part.bucket);
    await ensureDurableDir(ctx.fs, dir, joinPath(ctx.root, RAW_DIR), knownDirs);
    await ctx.fs.writeFile(rawSegmentPath(ctx.root, part.day, part.bucket, segmentId), encoded.bytes, { sync: true });
    await ctx.fs.syncDir(dir);
    const retracted: string[] = [];
    for (let row = 0; row < partColumns.rowCount; row++) {
      const original = partColumns.correction_original_event_id[row];
      if (partColumns.kind[row] === KIND_RETRACTION && original !== null) retracted.push(original);
    }
    const m = encoded.meta;
    segments.push({
      id: segmentId,
      day: part.day,
      bucket: part.bucket,
      rows: m.rowCount,
      min_ts: m.minTimestampMs,
      max_ts: m.maxTimestampMs,
      min_account: m.minAccountId,
      max_account: m.maxAccountId,
      size_bytes: encoded.bytes.length,
      crc32c: encoded.checksum,
      ...(retracted.length > 0 ? { retracted } : {}),
    });
    segmentId++;
    await yieldToEventLoop();
  }
  const filter = BloomFilter.create(columns.rowCount, ID_FILTER_BITS_PER_KEY);
  for (let row = 0; row < columns.rowCount; row++) {
    const h = hash128(columns.event_id[row]);
    filter.add(h.h1, h.h2);
  }
  const filterBytes = filter.toBytes();
  const filterPath = idFilterPath(ctx.root, ctx.filterId);
  await ensureDurableDir(ctx.fs, joinPath(ctx.root, ID_FILTER_DIR), ctx.root, knownDirs);
  await ctx.fs.writeFile(filterPath, filterBytes, { sync: true });
  await ctx.fs.syncDir(dirName(filterPath));
  return {
    segments,
    idFilter: { id: ctx.filterId, keys: columns.rowCount, size_bytes: filterBytes.length, crc32c: crc32c(filterBytes) },
    filter,
  };
}
