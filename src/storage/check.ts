/**
 * Integrity checks and inspection for operators (`usagedb check [--deep]`,
 * `usagedb inspect-segment ID`). Reads only; changes nothing.
 *
 * - check: every file the current manifest names exists with the size it records; with
 *   `deep`, every byte is read: each file's whole-file CRC32C, every column chunk's CRC and
 *   decode, each retraction side file's checksum and count; each rollup file's checksums,
 *   every block, and its event count against the raw segments it covers.
 * - inspect: one segment's footer: partitions, blocks, bytes per column, id filter.
 */
import { COLUMN_NAMES } from '../model/columns.ts';
import { type FileSystem, isFsError, joinPath } from './fs/file-system.ts';
import { rollupPath, segmentPath } from './layout.ts';
import { readRollupFile } from '../rollup/rollup-file.ts';
import { crc32c } from './encoding/crc32c.ts';
import type { ManifestState } from './manifest.ts';
import { decodeRetractionFile, retractionFilePath } from './retractions.ts';
import { SegmentReader } from './segment/segment-reader.ts';
import { accountBucket, utcDay } from './partition.ts';

export interface SegmentCheck {
  id: number;
  kind: 'raw' | 'quarantine' | 'rollup';
  rows: number;
  size_bytes: number;
  ok: boolean;
  problem?: string;
}

export interface CheckReport {
  ok: boolean;
  deep: boolean;
  manifest: {
    generation: number;
    format_version: number;
    database_id: string;
    bucket_count: number;
    wal_start: number;
  };
  segments: SegmentCheck[];
  quarantine: { id: number; rows: number; reason: string }[];
  problems: string[];
}

/** Checks the files `state` names (see the module comment for what `deep` adds). */
export async function checkFiles(
  fs: FileSystem,
  root: string,
  state: ManifestState,
  deep: boolean,
): Promise<CheckReport> {
  const segments: SegmentCheck[] = [];
  const files = [
    ...state.raw_segments.map((e) => ({ entry: e, kind: 'raw' as const, retractions: e.retractions })),
    ...state.quarantine.map((e) => ({ entry: e, kind: 'quarantine' as const, retractions: 0 })),
  ];
  for (const { entry, kind, retractions } of files) {
    let problem: string | null;
    try {
      problem = await checkOne(fs, root, entry, retractions, deep);
    } catch (err) {
      // An I/O error is a finding too: report it, keep checking the rest.
      if (!isFsError(err)) throw err;
      problem = err.message;
    }
    segments.push({
      id: entry.id,
      kind,
      rows: entry.rows,
      size_bytes: entry.size_bytes,
      ok: problem === null,
      ...(problem === null ? {} : { problem }),
    });
  }
  const rawRows = new Map(state.raw_segments.map((e) => [e.id, e.rows]));
  for (const entry of state.rollup_segments) {
    let problem: string | null;
    try {
      const covered = entry.covers.reduce((n, id) => n + (rawRows.get(id) ?? 0), 0);
      problem = await checkRollup(fs, root, entry, covered, deep);
    } catch (err) {
      if (!isFsError(err)) throw err;
      problem = err.message;
    }
    segments.push({
      id: entry.id,
      kind: 'rollup',
      rows: entry.rows,
      size_bytes: entry.size_bytes,
      ok: problem === null,
      ...(problem === null ? {} : { problem }),
    });
  }
  const problems = segments.filter((s) => !s.ok).map((s) => `segment ${s.id}: ${s.problem}`);
  return {
    ok: problems.length === 0,
    deep,
    manifest: {
      generation: state.generation,
      format_version: state.format_version,
      database_id: state.database_id,
      bucket_count: state.bucket_count,
      wal_start: state.wal_start,
    },
    segments,
    quarantine: state.quarantine.map((q) => ({ id: q.id, rows: q.rows, reason: q.reason })),
    problems,
  };
}

/** The file is missing or not the size its manifest entry records: the problem, else null. */
async function sizeProblem(fs: FileSystem, path: string, sizeBytes: number): Promise<string | null> {
  if (!(await fs.exists(path))) return `${path} is missing`;
  const actual = (await fs.stat(path)).sizeBytes;
  return actual === sizeBytes ? null : `${path} is ${actual} bytes, the manifest says ${sizeBytes}`;
}

async function checkOne(
  fs: FileSystem,
  root: string,
  entry: { id: number; rows: number; size_bytes: number; crc32c: number },
  retractions: number,
  deep: boolean,
): Promise<string | null> {
  const path = segmentPath(root, entry.id);
  const missing = await sizeProblem(fs, path, entry.size_bytes);
  if (missing !== null || !deep) return missing;
  try {
    const reader = SegmentReader.fromBytes(await fs.readFile(path), {
      sizeBytes: entry.size_bytes,
      checksum: entry.crc32c,
    });
    if (reader.meta.segmentId !== entry.id) return `${path} holds segment ${reader.meta.segmentId}`;
    if (reader.meta.rowCount !== entry.rows)
      return `${path} holds ${reader.meta.rowCount} rows, the manifest says ${entry.rows}`;
    // Every chunk's own CRC, and a full decode of every column.
    for (let b = 0; b < reader.meta.blocks.length; b++) reader.readColumns(COLUMN_NAMES, [b]);
    if (retractions > 0) {
      const ids = decodeRetractionFile(await fs.readFile(retractionFilePath(root, entry.id)), entry.id);
      if (ids.length !== retractions)
        return `retraction list holds ${ids.length} ids, the manifest says ${retractions}`;
    }
  } catch (err) {
    if (isFsError(err)) throw err;
    return (err as Error).message;
  }
  return null;
}

/** A rollup file: size; with `deep`, its checksums, every block, and counts = covered raw rows. */
async function checkRollup(
  fs: FileSystem,
  root: string,
  entry: ManifestState['rollup_segments'][number],
  coveredRows: number,
  deep: boolean,
): Promise<string | null> {
  const path = rollupPath(root, entry.id);
  const missing = await sizeProblem(fs, path, entry.size_bytes);
  if (missing !== null || !deep) return missing;
  try {
    const bytes = await fs.readFile(path);
    if (crc32c(bytes) !== entry.crc32c >>> 0) return `${path}: file checksum mismatch`;
    const { footer, rows } = readRollupFile(bytes);
    let events = 0;
    for (const block of rows) for (let r = 0; r < block.rowCount; r++) events += block.count[r];
    if (footer.rows !== entry.rows)
      return `${path} holds ${footer.rows} rows, the manifest says ${entry.rows}`;
    if (events !== coveredRows)
      return `${path} counts ${events} events, the raw segments it covers hold ${coveredRows}`;
  } catch (err) {
    if (isFsError(err)) throw err;
    return (err as Error).message;
  }
  return null;
}

export interface SegmentInspection {
  id: number;
  kind: 'raw' | 'quarantine';
  path: string;
  size_bytes: number;
  crc32c: number;
  rows: number;
  created_at_ms: number;
  min_ts: number;
  max_ts: number;
  blocks: number;
  accounts: number;
  id_filter: { bits: number; hashes: number; bytes_per_event: number };
  bytes_by_column: Record<string, number>;
  partitions: {
    day: string;
    bucket: number;
    rows: number;
    blocks: number;
    min_account: string;
    max_account: string;
  }[];
}

/** The footer of one segment the current manifest names, read whole and verified. */
export async function inspectSegment(
  fs: FileSystem,
  root: string,
  state: ManifestState,
  segmentId: number,
): Promise<SegmentInspection | null> {
  const raw = state.raw_segments.find((e) => e.id === segmentId);
  const quarantined = state.quarantine.find((e) => e.id === segmentId);
  const entry = raw ?? quarantined;
  if (entry === undefined) return null;
  const path = segmentPath(root, segmentId);
  const reader = SegmentReader.fromBytes(await fs.readFile(path), {
    sizeBytes: entry.size_bytes,
    checksum: entry.crc32c,
  });
  const meta = reader.meta;
  const bytesByColumn: Record<string, number> = {};
  for (const chunk of reader.chunkLayout())
    bytesByColumn[chunk.column] = (bytesByColumn[chunk.column] ?? 0) + chunk.length;
  const partitions: SegmentInspection['partitions'] = [];
  for (const b of meta.blocks) {
    const day = utcDay(b.minTimestampMs);
    const bucket = accountBucket(b.minAccountId, state.bucket_count);
    const last = partitions.at(-1);
    if (last !== undefined && last.day === day && last.bucket === bucket) {
      last.rows += b.rowCount;
      last.blocks++;
      if (b.maxAccountId > last.max_account) last.max_account = b.maxAccountId;
    } else {
      partitions.push({
        day,
        bucket,
        rows: b.rowCount,
        blocks: 1,
        min_account: b.minAccountId,
        max_account: b.maxAccountId,
      });
    }
  }
  return {
    id: segmentId,
    kind: raw !== undefined ? 'raw' : 'quarantine',
    path: joinPath(path),
    size_bytes: entry.size_bytes,
    crc32c: entry.crc32c,
    rows: meta.rowCount,
    created_at_ms: meta.createdAtMs,
    min_ts: meta.minTimestampMs,
    max_ts: meta.maxTimestampMs,
    blocks: meta.blocks.length,
    accounts: meta.accountIds.length,
    id_filter: {
      bits: reader.filter?.bitCount ?? 0,
      hashes: reader.filter?.hashCount ?? 0,
      bytes_per_event: Math.round(((reader.filter?.bitCount ?? 0) / 8 / meta.rowCount) * 100) / 100,
    },
    bytes_by_column: bytesByColumn,
    partitions,
  };
}
