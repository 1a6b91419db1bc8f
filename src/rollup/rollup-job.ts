/**
 * The CPU part of a rollup build, pure (no I/O), so it runs in a worker thread: decode the raw
 * segment's grain columns (the file verified whole against its manifest checksum), sum them per
 * level, and encode one rollup file per level.
 *
 * Invariant: at every level, the rows' counts add up to the segment's row count.
 */
import { assert } from '../errors.ts';
import type { EventColumns } from '../model/columns.ts';
import type { RollupLevel } from '../storage/manifest.ts';
import { SegmentReader } from '../storage/segment/segment-reader.ts';
import { ROLLUP_LEVELS } from './levels.ts';
import { type EncodedRollup, encodeRollupFile } from './rollup-file.ts';
import { buildRollupLevels, ROLLUP_SOURCE_COLUMNS } from './rollup-rows.ts';

export interface RollupRequest {
  segmentId: number;
  bytes: Uint8Array;
  sizeBytes: number;
  crc32c: number;
}

export interface RollupOutput {
  rawRows: number;
  levels: { level: RollupLevel; encoded: EncodedRollup }[];
}

export function runRollup(req: RollupRequest): RollupOutput {
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
