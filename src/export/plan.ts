/**
 * Which stored rows an export reads, grouped by UTC day: the snapshot's partition slices (one
 * (day, bucket) run of blocks inside a segment file) pruned by time range, account bucket and
 * account range, then blocks by their metadata (a block never spans two days), then row by
 * row; plus the acknowledged memtable rows of the snapshot.
 *
 * Invariants:
 * - a row is exported iff fromMs <= timestamp_ms < toMs and (no account filter or
 *   account_id === accountId): pruning only skips what cannot match;
 * - each row of the snapshot is visited once: by the day holding its timestamp, and a snapshot
 *   holds no event twice;
 * - decoded chunks hold at most max(chunkRows, one block) rows, so reading stays bounded.
 */
import { assert } from '../errors.ts';
import { COLUMN_NAMES, type ColumnBatch, type ColumnName, type EventColumns } from '../model/columns.ts';
import type { PackedIds } from '../model/packed-ids.ts';
import type { PartitionSlice } from '../storage/segment-store.ts';
import type { BlockMeta, SegmentReader } from '../storage/segment/segment-reader.ts';
import { accountBucket, utcDay } from '../storage/partition.ts';

const DAY_MS = 86_400_000;

/**
 * What the export reads of the storage layer (a read snapshot satisfies it): whole files,
 * verified, decoded block by block. The export holds no other handle on storage.
 */
export interface ExportSource {
  /** A verified reader of a whole file, not cached (a one-pass scan). */
  scanFileReader(segmentId: number): Promise<SegmentReader>;
  /** A verified reader of a whole file, through the segment cache (day partitions reread files). */
  fileReader(segmentId: number): Promise<SegmentReader>;
  decodeBlocks(
    segmentId: number,
    reader: SegmentReader,
    names: readonly ColumnName[],
    blocks: readonly number[],
  ): ColumnBatch;
  decodeEventIdBytes(segmentId: number, reader: SegmentReader, blocks: readonly number[]): PackedIds;
}

/** A pinned point-in-time view, as the export needs it. */
export interface ExportSnapshot {
  bucketCount: number;
  segments: readonly PartitionSlice[];
  store: ExportSource;
  memtables: readonly EventColumns[];
}

export interface RowFilter {
  /** Inclusive lower bound (ms); -Infinity for none. */
  fromMs: number;
  /** Exclusive upper bound (ms); +Infinity for none. */
  toMs: number;
  accountId: string | null;
}

/**
 * Stored columns as the export reads them. Event ids come as JS strings from a memtable, and
 * as UTF-8 bytes from segment files: the Arrow builder copies bytes, so strings would only be
 * built to be encoded back (measured: ~5% of the export's CPU, ~60 MiB of peak RSS at 10M).
 */
export type ExportColumns = Omit<EventColumns, 'event_id'> & { event_id: readonly string[] | PackedIds };

/** Rows of one columns object to export, in order. */
export interface RowChunk {
  columns: ExportColumns;
  rows: Uint32Array;
}

/** Every stored column but the event ids, which segment reads take as bytes. */
const COLUMNS_BUT_EVENT_ID = COLUMN_NAMES.filter((name) => name !== 'event_id');

export interface DayPlan {
  day: string;
  /** The day's bounds intersected with the filter's: [fromMs, toMs). */
  fromMs: number;
  toMs: number;
  /** Slices whose time range overlaps the day, in (segment, slice) order. */
  segments: PartitionSlice[];
  memtableChunks: RowChunk[];
}

export interface ExportPlan {
  days: DayPlan[];
  /** Upper bound on the rows exported (segment rows counted before block pruning). */
  estimatedRows: number;
}

/** Indexes of the rows of `c` that pass the filter. */
export function matchingRows(
  c: Pick<EventColumns, 'rowCount' | 'timestamp_ms' | 'account_id'>,
  filter: RowFilter,
): Uint32Array {
  const accountCode = filter.accountId === null ? null : c.account_id.dict.indexOf(filter.accountId);
  if (accountCode === -1) return new Uint32Array(0);
  const out = new Uint32Array(c.rowCount);
  let n = 0;
  const ts = c.timestamp_ms;
  const codes = c.account_id.codes;
  for (let row = 0; row < c.rowCount; row++) {
    const t = ts[row];
    if (t < filter.fromMs || t >= filter.toMs) continue;
    if (accountCode !== null && codes[row] !== accountCode) continue;
    out[n++] = row;
  }
  return out.subarray(0, n);
}

/** Memtable rows that pass the filter, split by UTC day index (memtable order kept within a day). */
function memtableRowsByDay(memtables: readonly EventColumns[], filter: RowFilter): Map<number, RowChunk[]> {
  const byDay = new Map<number, RowChunk[]>();
  for (const columns of memtables) {
    const perDay = new Map<number, number[]>();
    for (const row of matchingRows(columns, filter)) {
      const dayIndex = Math.floor(columns.timestamp_ms[row] / DAY_MS);
      let list = perDay.get(dayIndex);
      if (list === undefined) perDay.set(dayIndex, (list = []));
      list.push(row);
    }
    for (const [dayIndex, list] of perDay) {
      const chunks = byDay.get(dayIndex) ?? [];
      chunks.push({ columns, rows: Uint32Array.from(list) });
      byDay.set(dayIndex, chunks);
    }
  }
  return byDay;
}

function sliceMayHoldAccount(
  slice: PartitionSlice,
  accountId: string | null,
  bucket: number | null,
): boolean {
  if (accountId === null) return true;
  return slice.bucket === bucket && accountId >= slice.min_account && accountId <= slice.max_account;
}

/** The export plan: the UTC days that may hold matching rows, ascending. */
export function planExport(snapshot: ExportSnapshot, filter: RowFilter): ExportPlan {
  const days = new Map<number, DayPlan>();
  const dayPlan = (dayIndex: number): DayPlan => {
    let plan = days.get(dayIndex);
    if (plan === undefined) {
      const start = dayIndex * DAY_MS;
      plan = {
        day: utcDay(start),
        fromMs: Math.max(start, filter.fromMs),
        toMs: Math.min(start + DAY_MS, filter.toMs),
        segments: [],
        memtableChunks: [],
      };
      days.set(dayIndex, plan);
    }
    return plan;
  };
  let estimatedRows = 0;
  const bucket = filter.accountId === null ? null : accountBucket(filter.accountId, snapshot.bucketCount);
  const segments = [...snapshot.segments].sort((a, b) => a.id - b.id);
  for (const entry of segments) {
    if (!sliceMayHoldAccount(entry, filter.accountId, bucket)) continue;
    const from = Math.max(entry.min_ts, filter.fromMs);
    const last = Math.min(entry.max_ts, filter.toMs - 1);
    if (from > last) continue;
    estimatedRows += entry.rows;
    for (let d = Math.floor(from / DAY_MS); d <= Math.floor(last / DAY_MS); d++)
      dayPlan(d).segments.push(entry);
  }
  for (const [dayIndex, chunks] of memtableRowsByDay(snapshot.memtables, filter)) {
    dayPlan(dayIndex).memtableChunks.push(...chunks);
    for (const c of chunks) estimatedRows += c.rows.length;
  }
  const ordered = [...days.entries()].sort(([a], [b]) => a - b).map(([, plan]) => plan);
  return { days: ordered, estimatedRows };
}

/** Splits ascending block indexes into runs of at most `chunkRows` rows (a bigger block stands alone). */
function blockRuns(blocks: readonly number[], rowCounts: readonly number[], chunkRows: number): number[][] {
  const runs: number[][] = [];
  let run: number[] = [];
  let rows = 0;
  for (const b of blocks) {
    if (run.length > 0 && rows + rowCounts[b] > chunkRows) {
      runs.push(run);
      run = [];
      rows = 0;
    }
    run.push(b);
    rows += rowCounts[b];
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** Consecutive slices of one segment file (a day's slices come in (segment, slice) order). */
function byFile(slices: readonly PartitionSlice[]): PartitionSlice[][] {
  const groups: PartitionSlice[][] = [];
  for (const slice of slices) {
    const last = groups[groups.length - 1];
    if (last !== undefined && last[0].segment_id === slice.segment_id) last.push(slice);
    else groups.push([slice]);
  }
  return groups;
}

/** Block indexes of `slices` (one file's, in order) whose metadata may match the filter. */
function selectBlocks(
  blocks: readonly BlockMeta[],
  slices: readonly PartitionSlice[],
  fromMs: number,
  toMs: number,
  account: string | null,
): number[] {
  const out: number[] = [];
  for (const slice of slices) {
    for (let b = slice.first_block; b < slice.first_block + slice.block_count; b++) {
      const m = blocks[b];
      if (m.maxTimestampMs < fromMs || m.minTimestampMs >= toMs) continue;
      if (account !== null && (account < m.minAccountId || account > m.maxAccountId)) continue;
      out.push(b);
    }
  }
  return out;
}

/** The matching rows of `blocks` of one file, decoded a run of at most `chunkRows` rows at a time. */
function* blockChunks(
  snapshot: ExportSnapshot,
  segmentId: number,
  reader: SegmentReader,
  blocks: readonly number[],
  filter: RowFilter,
  chunkRows: number,
): Generator<RowChunk> {
  const rowCounts = reader.meta.blocks.map((m) => m.rowCount);
  for (const run of blockRuns(blocks, rowCounts, chunkRows)) {
    const batch = snapshot.store.decodeBlocks(segmentId, reader, COLUMNS_BUT_EVENT_ID, run);
    const rest = batch as Omit<EventColumns, 'event_id'>;
    assert(rest.account_id.codes.length === batch.rowCount, 'decoded segment columns are incomplete');
    const rows = matchingRows(rest, filter);
    if (rows.length === 0) continue;
    const eventIds = snapshot.store.decodeEventIdBytes(segmentId, reader, run);
    assert(eventIds.ends.length === batch.rowCount, 'decoded event ids are incomplete');
    yield { columns: { ...rest, event_id: eventIds }, rows };
  }
}

/**
 * Every matching row of the plan, segment file by segment file: each file is read once,
 * uncached (store.scanFileReader), and dropped before the next; then the memtable rows, day
 * by day. For one output file: day by day would read every file once per day.
 */
export async function* fileChunks(
  snapshot: ExportSnapshot,
  plan: ExportPlan,
  filter: RowFilter,
  chunkRows: number,
): AsyncGenerator<RowChunk> {
  const slices = [...new Set(plan.days.flatMap((d) => d.segments))].sort((a, b) => a.id - b.id);
  for (const group of byFile(slices)) {
    const segmentId = group[0].segment_id;
    const reader = await snapshot.store.scanFileReader(segmentId);
    const blocks = selectBlocks(reader.meta.blocks, group, filter.fromMs, filter.toMs, filter.accountId);
    yield* blockChunks(snapshot, segmentId, reader, blocks, filter, chunkRows);
  }
  for (const day of plan.days) yield* day.memtableChunks;
}

/**
 * The matching rows of one day: per segment file, the blocks of the day's slices that may
 * match, decoded a run at a time (one file reader and one decode call per run, not per slice:
 * a slice is often a few hundred rows); then memtable rows.
 */
export async function* dayChunks(
  snapshot: ExportSnapshot,
  plan: DayPlan,
  filter: RowFilter,
  chunkRows: number,
): AsyncGenerator<RowChunk> {
  const dayFilter: RowFilter = { fromMs: plan.fromMs, toMs: plan.toMs, accountId: filter.accountId };
  for (const group of byFile(plan.segments)) {
    const segmentId = group[0].segment_id;
    const reader = await snapshot.store.fileReader(segmentId);
    const blocks = selectBlocks(reader.meta.blocks, group, plan.fromMs, plan.toMs, filter.accountId);
    yield* blockChunks(snapshot, segmentId, reader, blocks, dayFilter, chunkRows);
  }
  for (const chunk of plan.memtableChunks) yield chunk;
}
