/**
 * Which stored rows an export reads, grouped by UTC day: committed segments pruned by account
 * bucket and time metadata, then by block metadata, then row by row; plus the acknowledged
 * memtable rows of the snapshot.
 *
 * Invariants:
 * - a row is exported iff fromMs <= timestamp_ms < toMs and (no account filter or
 *   account_id === accountId): pruning only skips what cannot match;
 * - every row of the snapshot is visited at most once (a snapshot holds no event twice);
 * - decoded chunks hold at most max(chunkRows, one block) rows, so reading stays bounded.
 */
import type { ReadSnapshot } from '../db.ts';
import { assert } from '../errors.ts';
import { COLUMN_NAMES, type EventColumns } from '../model/columns.ts';
import type { SegmentEntry } from '../storage/manifest.ts';
import { accountBucket, utcDay } from '../storage/partition.ts';

const DAY_MS = 86_400_000;

export interface RowFilter {
  /** Inclusive lower bound (ms); -Infinity for none. */
  fromMs: number;
  /** Exclusive upper bound (ms); +Infinity for none. */
  toMs: number;
  accountId: string | null;
}

/** Rows of one columns object to export, in order. */
export interface RowChunk {
  columns: EventColumns;
  rows: Uint32Array;
}

export interface DayPlan {
  day: string;
  /** In (bucket, segment id) order. */
  segments: SegmentEntry[];
  memtableChunks: RowChunk[];
  /** Upper bound on the rows this day exports (segment rows are counted before block pruning). */
  estimatedRows: number;
}

function segmentMayMatch(entry: SegmentEntry, filter: RowFilter, bucket: number | null): boolean {
  if (entry.max_ts < filter.fromMs || entry.min_ts >= filter.toMs) return false;
  if (filter.accountId === null) return true;
  if (entry.bucket !== bucket) return false;
  return filter.accountId >= entry.min_account && filter.accountId <= entry.max_account;
}

/** Indexes of the rows of `c` (within [start, end)) that pass the filter. */
export function matchingRows(c: EventColumns, filter: RowFilter, start = 0, end = c.rowCount): Uint32Array {
  const accountCode = filter.accountId === null ? null : c.account_id.dict.indexOf(filter.accountId);
  if (accountCode === -1) return new Uint32Array(0);
  const out = new Uint32Array(end - start);
  let n = 0;
  const ts = c.timestamp_ms;
  const codes = c.account_id.codes;
  for (let row = start; row < end; row++) {
    const t = ts[row];
    if (t < filter.fromMs || t >= filter.toMs) continue;
    if (accountCode !== null && codes[row] !== accountCode) continue;
    out[n++] = row;
  }
  return out.subarray(0, n);
}

/** Memtable rows that pass the filter, split by UTC day (memtable order kept within a day). */
function memtableRowsByDay(memtables: readonly EventColumns[], filter: RowFilter): Map<string, RowChunk[]> {
  const byDay = new Map<string, RowChunk[]>();
  for (const columns of memtables) {
    const rows = matchingRows(columns, filter);
    const perDay = new Map<number, number[]>();
    for (const row of rows) {
      const dayIndex = Math.floor(columns.timestamp_ms[row] / DAY_MS);
      let list = perDay.get(dayIndex);
      if (list === undefined) perDay.set(dayIndex, (list = []));
      list.push(row);
    }
    for (const [dayIndex, list] of perDay) {
      const day = utcDay(dayIndex * DAY_MS);
      const chunks = byDay.get(day) ?? [];
      chunks.push({ columns, rows: Uint32Array.from(list) });
      byDay.set(day, chunks);
    }
  }
  return byDay;
}

/** The export plan: one entry per UTC day that may hold matching rows, days ascending. */
export function planExport(snapshot: ReadSnapshot, filter: RowFilter): DayPlan[] {
  const bucket = filter.accountId === null ? null : accountBucket(filter.accountId, snapshot.bucketCount);
  const days = new Map<string, DayPlan>();
  const dayPlan = (day: string): DayPlan => {
    let plan = days.get(day);
    if (plan === undefined) days.set(day, (plan = { day, segments: [], memtableChunks: [], estimatedRows: 0 }));
    return plan;
  };
  for (const entry of snapshot.segments) {
    if (!segmentMayMatch(entry, filter, bucket)) continue;
    const plan = dayPlan(entry.day);
    plan.segments.push(entry);
    plan.estimatedRows += entry.rows;
  }
  for (const [day, chunks] of memtableRowsByDay(snapshot.memtables, filter)) {
    const plan = dayPlan(day);
    plan.memtableChunks.push(...chunks);
    for (const c of chunks) plan.estimatedRows += c.rows.length;
  }
  const out = [...days.values()].sort((a, b) => (a.day < b.day ? -1 : a.day > b.day ? 1 : 0));
  for (const plan of out) plan.segments.sort((a, b) => a.bucket - b.bucket || a.id - b.id);
  return out;
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

/** The matching rows of one day: segment blocks decoded a run at a time, then memtable rows. */
export async function* dayChunks(
  snapshot: ReadSnapshot,
  plan: DayPlan,
  filter: RowFilter,
  chunkRows: number,
): AsyncGenerator<RowChunk> {
  const blockFilter = {
    accountId: filter.accountId ?? undefined,
    fromMs: Number.isFinite(filter.fromMs) ? filter.fromMs : undefined,
    toMs: Number.isFinite(filter.toMs) ? filter.toMs : undefined,
  };
  for (const entry of plan.segments) {
    const reader = await snapshot.store.reader(entry);
    const blocks = reader.selectBlocks(blockFilter);
    const rowCounts = reader.meta.blocks.map((b) => b.rowCount);
    for (const run of blockRuns(blocks, rowCounts, chunkRows)) {
      const columns = snapshot.store.decode(entry, reader, COLUMN_NAMES, run) as EventColumns;
      assert(columns.account_id.codes.length === columns.rowCount, 'decoded segment columns are incomplete');
      const rows = matchingRows(columns, filter);
      if (rows.length > 0) yield { columns, rows };
    }
  }
  for (const chunk of plan.memtableChunks) yield chunk;
}

