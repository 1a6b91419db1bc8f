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
import { type EncodedRollup, encodeRollupFile, readRollupFile } from './rollup-file.ts';
import { buildRollupLevels, mergeRollupRows, ROLLUP_SOURCE_COLUMNS, type RollupRows } from './rollup-rows.ts';

/** Build: the rollups of one raw segment file. */
export interface BuildRequest {
  op: 'build';
  segmentId: number;
  bytes: Uint8Array;
  sizeBytes: number;
  crc32c: number;
}

/** Merge: several rollup files of one level into one. */
export interface MergeRollupsRequest {
  op: 'merge';
  level: RollupLevel;
  files: { id: number; bytes: Uint8Array; crc32c: number }[];
}

export type RollupRequest = BuildRequest | MergeRollupsRequest;

export interface RollupOutput {
  rawRows: number;
  levels: { level: RollupLevel; encoded: EncodedRollup }[];
}

export function runRollup(req: RollupRequest): RollupOutput {
  return req.op === 'build' ? runBuild(req) : runMergeRollups(req);
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

function runBuild(req: BuildRequest): RollupOutput {
  let columns: EventColumns;
  try {
    const reader = SegmentReader.fromBytes(req.bytes, { sizeBytes: req.sizeBytes, checksum: req.crc32c });
    columns = reader.readColumns(ROLLUP_SOURCE_COLUMNS) as EventColumns;
  } catch (err) {
    throw new Error(`segment ${req.segmentId} is corrupt: ${(err as Error).message}`, { cause: err });
  }
  return rollupColumns(columns);
}

/** Rollup files of every level for one segment's decoded columns. */
export function rollupColumns(columns: EventColumns): RollupOutput {
  const built = buildRollupLevels(columns);
  const levels = ROLLUP_LEVELS.map((level) => {
    const rows = built.get(level);
    assert(rows !== undefined, `no ${level} rollup rows`);
    let events = 0;
    for (let i = 0; i < rows.rowCount; i++) events += rows.count[i];
    assert(events === columns.rowCount, `${level} rollup counts ${events} events of ${columns.rowCount}`);
    return { level, encoded: encodeRollupFile(rows, level) };
  });
  return { rawRows: columns.rowCount, levels };
}

export function rollupOutputTransfer(out: RollupOutput): ArrayBuffer[] {
  return out.levels.map((l) => l.encoded.bytes.buffer as ArrayBuffer);
}
