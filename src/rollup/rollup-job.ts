/**
 * The CPU part of rollup work, pure (no I/O), so it runs in a worker thread: a build decodes a
 * raw segment's grain columns (the file verified whole against its manifest checksum), sums
 * them per level and encodes one rollup file per level; a merge sums several rollup files of
 * one level into one.
 *
 * Invariant: the rows' counts add up to the events they summarise (the segment's rows, or the
 * merged files' counts).
 */
import { assert } from '../errors.ts';
import type { EventColumns } from '../model/columns.ts';
import type { RollupLevel } from '../storage/manifest.ts';
import { SegmentReader } from '../storage/segment/segment-reader.ts';
import { ROLLUP_LEVELS } from './levels.ts';
import { crc32c } from '../storage/encoding/crc32c.ts';
import {
  type EncodedRollup,
  encodeRollupBlocks,
  encodeRollupFile,
  type RollupBlocks,
  readRollupFile,
} from './rollup-file.ts';
import {
  buildRollupLevels,
  combineDayRows,
  mergeRollupRows,
  releaseReusableGroups,
  ROLLUP_DICT_COLUMNS,
  type RollupDictColumn,
  ROLLUP_SOURCE_COLUMNS,
  type RollupRows,
} from './rollup-rows.ts';

/** Build: the rollups of one raw segment file. */
export interface BuildRequest {
  op: 'build';
  segmentId: number;
  bytes: Uint8Array;
  sizeBytes: number;
  crc32c: number;
  /**
   * Encode only the hour file and hand back the day rows (`carriedDay`), to be summed with
   * other segments' day rows (`combine`), the coarser levels derived from the sum, one file
   * per level for them all instead of a file each.
   */
  carry?: boolean;
}

/**
 * Combine: the day rows several builds carried (each of other segments, in segment order)
 * summed, and the month and meter levels derived from the sum, handed back as rows (`derived`)
 * to be encoded level by level on every worker lane.
 */
export interface CombineRequest {
  op: 'combine';
  parts: RollupRows[];
}

/**
 * Encode: rows of `level` as blocks (one part of a file, assembled by the caller), their
 * codes written through `codeMaps` into the file's dictionaries: the combines of a batch split
 * by account are encoded side by side, a job per part and level.
 */
export interface EncodeRequest {
  op: 'encode';
  level: RollupLevel;
  rows: RollupRows;
  codeMaps: Record<RollupDictColumn, Uint32Array>;
}

/** Merge: several rollup files of one level into one. */
export interface MergeRollupsRequest {
  op: 'merge';
  level: RollupLevel;
  files: { id: number; bytes: Uint8Array; crc32c: number }[];
}

export type RollupRequest = BuildRequest | MergeRollupsRequest | CombineRequest | EncodeRequest;

export interface RollupOutput {
  rawRows: number;
  levels: { level: RollupLevel; encoded: EncodedRollup }[];
  /** A carrying build's day rows. */
  carriedDay?: RollupRows;
  /** A combine's rows of every level but hour. */
  derived?: CarriedRows;
  /** An encode's blocks. */
  blocks?: RollupBlocks;
}

/** Levels a combine makes from carried day rows (every level but hour). */
export const CARRIED_LEVELS = ['day', 'month', 'meter_day', 'meter_month'] as const;
export type CarriedLevel = (typeof CARRIED_LEVELS)[number];
export type CarriedRows = Record<CarriedLevel, RollupRows>;

export function runRollup(req: RollupRequest): RollupOutput {
  if (req.op === 'build') return runBuild(req);
  if (req.op === 'combine') return runCombine(req);
  if (req.op === 'encode')
    return {
      rawRows: countEvents(req.rows),
      levels: [],
      blocks: encodeRollupBlocks(req.rows, req.level, req.codeMaps),
    };
  return runMergeRollups(req);
}

function countEvents(rows: RollupRows): number {
  let events = 0;
  for (let i = 0; i < rows.rowCount; i++) events += rows.count[i];
  return events;
}

function runCombine(req: CombineRequest): RollupOutput {
  const events = req.parts.reduce((n, p) => n + countEvents(p), 0);
  const built = combineDayRows(req.parts);
  const derived = {} as CarriedRows;
  for (const level of CARRIED_LEVELS) {
    const rows = built.get(level);
    assert(rows !== undefined, `no combined ${level} rows`);
    const counted = countEvents(rows);
    assert(counted === events, `a combined ${level} rollup counts ${counted} events of ${events}`);
    derived[level] = rows;
  }
  return { rawRows: events, levels: [], derived };
}

/** The buffers of rows' columns (each its own: toRows allocates every column). */
export function rowsTransfer(rows: RollupRows): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const name of ROLLUP_DICT_COLUMNS) out.add(rows[name].codes.buffer as ArrayBuffer);
  for (const a of [rows.kind, rows.timestamp_ms, rows.count, rows.first_ts, rows.last_ts])
    out.add(a.buffer as ArrayBuffer);
  for (const q of [rows.quantity, rows.min, rows.max]) out.add(q.values.buffer as ArrayBuffer);
  return [...out];
}

/**
 * One file of `req.level` from several (each verified whole against its manifest checksum):
 * the events they count, summed once per grain key and bucket.
 */
function runMergeRollups(req: MergeRollupsRequest): RollupOutput {
  const parts: RollupRows[] = [];
  let events = 0;
  for (const f of req.files) {
    try {
      if (crc32c(f.bytes) !== f.crc32c >>> 0) throw new Error('file checksum mismatch');
      for (const block of readRollupFile(f.bytes).rows) {
        parts.push(block);
        for (let i = 0; i < block.rowCount; i++) events += block.count[i];
      }
    } catch (err) {
      throw new Error(`rollup segment ${f.id} is corrupt: ${(err as Error).message}`, { cause: err });
    }
  }
  const rows = mergeRollupRows(parts, req.level);
  let merged = 0;
  for (let i = 0; i < rows.rowCount; i++) merged += rows.count[i];
  assert(merged === events, `a ${req.level} rollup merge counts ${merged} events of ${events}`);
  return { rawRows: events, levels: [{ level: req.level, encoded: encodeRollupFile(rows, req.level) }] };
}

/**
 * The typed columns of this thread's last build, reused by the next (every built row is
 * copied out of them): ~11 MB per segment less for the garbage collector.
 */
let columnScratch = new ArrayBuffer(0);

/** Drops the buffers this thread keeps between builds (it then idles small). */
export function releaseBuildScratch(): void {
  columnScratch = new ArrayBuffer(0);
  releaseReusableGroups();
}

function runBuild(req: BuildRequest): RollupOutput {
  let columns: EventColumns;
  try {
    const reader = SegmentReader.fromBytes(req.bytes, { sizeBytes: req.sizeBytes, checksum: req.crc32c });
    // 45 bytes per row (seven dictionary codes, kind, time, quantity), with room to spare.
    if (columnScratch.byteLength < 48 * reader.meta.rowCount)
      columnScratch = new ArrayBuffer(48 * reader.meta.rowCount);
    columns = reader.readColumns(ROLLUP_SOURCE_COLUMNS, undefined, columnScratch) as EventColumns;
  } catch (err) {
    throw new Error(`segment ${req.segmentId} is corrupt: ${(err as Error).message}`, { cause: err });
  }
  return rollupColumns(columns, req.carry === true);
}

/** Rollup files of every level (`carry`: the hour file and the day rows) for one segment. */
export function rollupColumns(columns: EventColumns, carry = false): RollupOutput {
  const built = buildRollupLevels(columns, undefined, carry);
  const rowsOf = (level: RollupLevel): RollupRows => {
    const rows = built.get(level);
    assert(rows !== undefined, `no ${level} rollup rows`);
    const events = countEvents(rows);
    assert(events === columns.rowCount, `${level} rollup counts ${events} events of ${columns.rowCount}`);
    return rows;
  };
  const encoded = (carry ? (['hour'] as const) : ROLLUP_LEVELS).map((level) => ({
    level,
    encoded: encodeRollupFile(rowsOf(level), level),
  }));
  return {
    rawRows: columns.rowCount,
    levels: encoded,
    ...(carry ? { carriedDay: rowsOf('day') } : {}),
  };
}

export function rollupOutputTransfer(out: RollupOutput): ArrayBuffer[] {
  const buffers = out.levels.map((l) => l.encoded.bytes.buffer as ArrayBuffer);
  if (out.carriedDay !== undefined) buffers.push(...rowsTransfer(out.carriedDay));
  const derived = out.derived;
  if (derived !== undefined) for (const l of CARRIED_LEVELS) buffers.push(...rowsTransfer(derived[l]));
  if (out.blocks !== undefined) buffers.push(out.blocks.bytes.buffer as ArrayBuffer);
  return buffers;
}
