/**
 * The manifest: which files make up the database, as numbered generations
 * `manifest/manifest-NNNNNN.json` plus `manifest/CURRENT` naming the newest.
 *
 * Invariants:
 * - a generation is written to a tmp name, fsynced, renamed, and the directory fsynced before
 *   anything relies on it (commit is atomic: a reader sees the old or the new generation);
 * - every generation carries a CRC32C of its body and is validated field by field on load; a
 *   generation that fails either is never used (the open rolls back past it);
 * - the newest valid generation is the state of the database; with none valid, open fails;
 * - the last MANIFEST_GENERATIONS_KEPT generations are kept for rollback;
 * - format 1 generations (written by earlier versions) load as format 2 (`upgradeV1`); only
 *   format 2 is ever written.
 */
import { assert, UsageDbError } from '../errors.ts';
import { crc32c } from './encoding/crc32c.ts';
import { type FileSystem, isFsError, joinPath } from './fs/file-system.ts';

/** Persisted. 1: segments with inline retracted ids; 2: typed entries, retractions in side files. */
export const MANIFEST_FORMAT_VERSION = 2;
export const MANIFEST_GENERATIONS_KEPT = 10;
export const CURRENT_FILE = 'CURRENT';

/**
 * A raw segment file: the events of one flush (or compaction), clustered by (UTC day, bucket)
 * partition and then account. The partition index lives in the file's footer.
 */
export interface RawSegmentEntry {
  id: number;
  rows: number;
  min_ts: number;
  max_ts: number;
  size_bytes: number;
  /** CRC32C of the whole file: a misdirected or swapped file is caught. */
  crc32c: number;
  /** Originals retracted by Retractions in this segment; > 0: listed in its side file. */
  retractions: number;
}

/** Kept for the names used across the storage layer. */
export type SegmentEntry = RawSegmentEntry;

/** The time bucket of a rollup level. */
export type RollupBucket = 'hour' | 'day' | 'month';
/**
 * Levels: the full grain per hour, day and month, and the meter grain (account, meter, unit,
 * kind) per day and month (docs/rollups.md).
 */
export type RollupLevel = RollupBucket | 'meter_day' | 'meter_month';
export const ROLLUP_LEVELS: readonly RollupLevel[] = ['hour', 'day', 'month', 'meter_day', 'meter_month'];

/** A rollup segment: aggregates of exactly the raw segments it covers. */
export interface RollupSegmentEntry {
  id: number;
  level: RollupLevel;
  /** Raw segment ids it was built from (each covered at most once per level). */
  covers: number[];
  rows: number;
  min_ts: number;
  max_ts: number;
  size_bytes: number;
  crc32c: number;
}

export interface PeriodLine {
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  /** Decimal string: exact. */
  quantity: string;
  event_count: number;
}

/** The frozen snapshot of one closed account-month. */
export interface PeriodSnapshotEntry {
  account_id: string;
  /** YYYY-MM (UTC). */
  period: string;
  closed_at_ms: number;
  watermark_ms: number;
  raw_segment_ids: number[];
  rollup_segment_ids: number[];
  evidence_digest: string;
  lines: PeriodLine[];
  /**
   * Ids of the Correction and Retraction events behind the snapshot: any other one in the
   * account-month arrived after the close (an adjustment). Absent in earlier files: [].
   */
  correction_event_ids: string[];
}

/** A segment of conflicting copies set aside by compaction: reported, never counted. */
export interface QuarantineEntry {
  id: number;
  rows: number;
  size_bytes: number;
  crc32c: number;
  reason: string;
}

export interface ManifestState {
  format_version: typeof MANIFEST_FORMAT_VERSION;
  generation: number;
  database_id: string;
  bucket_count: number;
  created_at_ms: number;
  /** Above every segment id ever handed out when this generation was written. */
  next_segment_id: number;
  /** WAL files numbered >= wal_start hold events not yet in segments. */
  wal_start: number;
  raw_segments: RawSegmentEntry[];
  rollup_segments: RollupSegmentEntry[];
  periods: PeriodSnapshotEntry[];
  quarantine: QuarantineEntry[];
}

export function manifestFileName(generation: number): string {
  return `manifest-${String(generation).padStart(6, '0')}.json`;
}

function parseManifestFileName(name: string): number | null {
  const m = /^manifest-(\d{6,})\.json$/.exec(name);
  return m ? Number(m[1]) : null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const PREFIX = '{"crc32c":"';
const INFIX = '","manifest":';
const PREFIX_BYTES = PREFIX.length + 8 + INFIX.length;

export function encodeManifest(state: ManifestState): Uint8Array {
  const body = JSON.stringify(state);
  const crc = crc32c(encoder.encode(body)).toString(16).padStart(8, '0');
  return encoder.encode(`${PREFIX}${crc}","manifest":${body}}\n`);
}

/** What decoding a generation gives: the state, and the retracted ids a format 1 kept inline. */
export interface DecodedManifest {
  state: ManifestState;
  /** Format 1 only: segment id -> retracted originals, to move into side files. */
  legacyRetracted: Map<number, string[]> | null;
}

/** Decodes and verifies a generation; throws a UsageDbError naming the problem. */
export function decodeManifest(bytes: Uint8Array, expectedGeneration: number): DecodedManifest {
  const text = decoder.decode(bytes);
  const fail = (what: string) =>
    new UsageDbError('USAGEDB_ERR_MANIFEST_CORRUPT', `manifest generation ${expectedGeneration}: ${what}`);
  if (
    !text.startsWith(PREFIX) ||
    text.slice(PREFIX.length + 8, PREFIX_BYTES) !== INFIX ||
    !text.endsWith('}\n')
  ) {
    throw fail('malformed envelope');
  }
  const crc = text.slice(PREFIX.length, PREFIX.length + 8);
  const body = text.slice(PREFIX_BYTES, text.length - 2);
  if (crc32c(encoder.encode(body)).toString(16).padStart(8, '0') !== crc) throw fail('checksum mismatch');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw fail('body is not JSON');
  }
  const problem = (what: string): never => {
    throw fail(what);
  };
  const decoded = readManifest(parsed, problem);
  if (decoded.state.generation !== expectedGeneration) throw fail('generation does not match its file name');
  return decoded;
}

// ---------------------------------------------------------------- validation

type Problem = (what: string) => never;
type Obj = Record<string, unknown>;

function obj(v: unknown, where: string, problem: Problem): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) problem(`${where} is not an object`);
  return v as Obj;
}

function int(o: Obj, key: string, where: string, problem: Problem, min = 0): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
    problem(`${where}.${key} is not an integer >= ${min}`);
  return v as number;
}

function str(o: Obj, key: string, where: string, problem: Problem): string {
  const v = o[key];
  if (typeof v !== 'string') problem(`${where}.${key} is not a string`);
  return v as string;
}

function arr(o: Obj, key: string, where: string, problem: Problem): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) problem(`${where}.${key} is not an array`);
  return v as unknown[];
}

function ids(o: Obj, key: string, where: string, problem: Problem): number[] {
  return arr(o, key, where, problem).map((v, i) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
      problem(`${where}.${key}[${i}] is not an id`);
    return v as number;
  });
}

function fileFields(o: Obj, where: string, problem: Problem) {
  const entry = {
    id: int(o, 'id', where, problem, 1),
    rows: int(o, 'rows', where, problem, 1),
    size_bytes: int(o, 'size_bytes', where, problem, 1),
    crc32c: int(o, 'crc32c', where, problem),
  };
  if (entry.crc32c > 0xffffffff) problem(`${where}.crc32c is not a 32-bit value`);
  return entry;
}

function timeRange(o: Obj, where: string, problem: Problem): { min_ts: number; max_ts: number } {
  const min_ts = int(o, 'min_ts', where, problem, 1);
  const max_ts = int(o, 'max_ts', where, problem, 1);
  if (max_ts < min_ts) problem(`${where} has max_ts < min_ts`);
  return { min_ts, max_ts };
}

function readRaw(v: unknown, where: string, problem: Problem): RawSegmentEntry {
  const o = obj(v, where, problem);
  return {
    ...fileFields(o, where, problem),
    ...timeRange(o, where, problem),
    retractions: int(o, 'retractions', where, problem),
  };
}

function readRollup(v: unknown, where: string, problem: Problem): RollupSegmentEntry {
  const o = obj(v, where, problem);
  const level = str(o, 'level', where, problem) as RollupLevel;
  if (!ROLLUP_LEVELS.includes(level)) problem(`${where}.level is not one of ${ROLLUP_LEVELS.join(', ')}`);
  const { id, rows, size_bytes, crc32c: crc } = fileFields(o, where, problem);
  return {
    id,
    level,
    covers: ids(o, 'covers', where, problem),
    rows,
    ...timeRange(o, where, problem),
    size_bytes,
    crc32c: crc,
  };
}

function readLine(v: unknown, where: string, problem: Problem): PeriodLine {
  const o = obj(v, where, problem);
  const model = o.model_id;
  if (model !== null && typeof model !== 'string') problem(`${where}.model_id is not a string or null`);
  const quantity = str(o, 'quantity', where, problem);
  if (!/^-?\d+$/.test(quantity)) problem(`${where}.quantity is not a decimal integer`);
  return {
    product_id: str(o, 'product_id', where, problem),
    meter_id: str(o, 'meter_id', where, problem),
    model_id: model as string | null,
    unit: str(o, 'unit', where, problem),
    quantity,
    event_count: int(o, 'event_count', where, problem),
  };
}

function readPeriod(v: unknown, where: string, problem: Problem): PeriodSnapshotEntry {
  const o = obj(v, where, problem);
  const period = str(o, 'period', where, problem);
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(period)) problem(`${where}.period is not YYYY-MM`);
  return {
    account_id: str(o, 'account_id', where, problem),
    period,
    closed_at_ms: int(o, 'closed_at_ms', where, problem),
    watermark_ms: int(o, 'watermark_ms', where, problem),
    raw_segment_ids: ids(o, 'raw_segment_ids', where, problem),
    rollup_segment_ids: ids(o, 'rollup_segment_ids', where, problem),
    evidence_digest: str(o, 'evidence_digest', where, problem),
    lines: arr(o, 'lines', where, problem).map((l, i) => readLine(l, `${where}.lines[${i}]`, problem)),
    correction_event_ids:
      o.correction_event_ids === undefined
        ? []
        : arr(o, 'correction_event_ids', where, problem).map((v, i) => {
            if (typeof v !== 'string') problem(`${where}.correction_event_ids[${i}] is not a string`);
            return v as string;
          }),
  };
}

function readQuarantine(v: unknown, where: string, problem: Problem): QuarantineEntry {
  const o = obj(v, where, problem);
  return { ...fileFields(o, where, problem), reason: str(o, 'reason', where, problem) };
}

/** The fields both formats share. */
function readHeader(o: Obj, problem: Problem) {
  const header = {
    generation: int(o, 'generation', 'manifest', problem, 1),
    database_id: str(o, 'database_id', 'manifest', problem),
    bucket_count: int(o, 'bucket_count', 'manifest', problem, 1),
    created_at_ms: int(o, 'created_at_ms', 'manifest', problem),
    next_segment_id: int(o, 'next_segment_id', 'manifest', problem, 1),
    wal_start: int(o, 'wal_start', 'manifest', problem, 1),
  };
  if (header.bucket_count > 4096) problem('manifest.bucket_count is above 4096');
  return header;
}

function readManifest(parsed: unknown, problem: Problem): DecodedManifest {
  const o = obj(parsed, 'manifest', problem);
  const version = o.format_version;
  if (version === 1) return upgradeV1(o, problem);
  if (version !== MANIFEST_FORMAT_VERSION) problem(`unsupported format ${String(version)}`);
  const state: ManifestState = {
    format_version: MANIFEST_FORMAT_VERSION,
    ...readHeader(o, problem),
    raw_segments: arr(o, 'raw_segments', 'manifest', problem).map((v, i) =>
      readRaw(v, `raw_segments[${i}]`, problem),
    ),
    rollup_segments: arr(o, 'rollup_segments', 'manifest', problem).map((v, i) =>
      readRollup(v, `rollup_segments[${i}]`, problem),
    ),
    periods: arr(o, 'periods', 'manifest', problem).map((v, i) => readPeriod(v, `periods[${i}]`, problem)),
    quarantine: arr(o, 'quarantine', 'manifest', problem).map((v, i) =>
      readQuarantine(v, `quarantine[${i}]`, problem),
    ),
  };
  checkConsistent(state, problem);
  return { state, legacyRetracted: null };
}

/** Format 1: `segments` with inline `retracted` ids; rollups and periods were never written. */
function upgradeV1(o: Obj, problem: Problem): DecodedManifest {
  const legacyRetracted = new Map<number, string[]>();
  const raw = arr(o, 'segments', 'manifest', problem).map((v, i) => {
    const where = `segments[${i}]`;
    const e = obj(v, where, problem);
    const retracted = e.retracted === undefined ? [] : arr(e, 'retracted', where, problem);
    if (retracted.some((id) => typeof id !== 'string')) problem(`${where}.retracted holds a non-string`);
    const entry: RawSegmentEntry = {
      ...fileFields(e, where, problem),
      ...timeRange(e, where, problem),
      retractions: new Set(retracted).size,
    };
    if (retracted.length > 0) legacyRetracted.set(entry.id, retracted as string[]);
    return entry;
  });
  const state: ManifestState = {
    format_version: MANIFEST_FORMAT_VERSION,
    ...readHeader(o, problem),
    raw_segments: raw,
    rollup_segments: [],
    periods: [],
    quarantine: [],
  };
  checkConsistent(state, problem);
  return { state, legacyRetracted };
}

/** Cross-field checks: ids unique and below next_segment_id, coverage refers to live raw ids. */
function checkConsistent(state: ManifestState, problem: Problem): void {
  const seen = new Set<number>();
  const all = [...state.raw_segments, ...state.rollup_segments, ...state.quarantine];
  for (const e of all) {
    if (seen.has(e.id)) problem(`segment id ${e.id} appears twice`);
    if (e.id >= state.next_segment_id) problem(`segment id ${e.id} is not below next_segment_id`);
    seen.add(e.id);
  }
  const raw = new Set(state.raw_segments.map((e) => e.id));
  for (const level of ROLLUP_LEVELS) {
    const covered = new Set<number>();
    for (const r of state.rollup_segments) {
      if (r.level !== level) continue;
      for (const id of r.covers) {
        if (!raw.has(id)) problem(`rollup segment ${r.id} covers raw segment ${id}, which is not live`);
        if (covered.has(id)) problem(`raw segment ${id} is covered twice at level ${level}`);
        covered.add(id);
      }
    }
  }
}

// ---------------------------------------------------------------- the store

export interface LoadedManifest {
  state: ManifestState;
  /** Format 1 inline retracted ids of the newest generation (null when it is format 2). */
  legacyRetracted: Map<number, string[]> | null;
  /** Newer generations that exist but failed verification (we rolled back past them). */
  skippedGenerations: number[];
  /** All valid generations kept on disk, newest first (their files are still referenced). */
  keptStates: ManifestState[];
}

export class ManifestStore {
  private readonly fs: FileSystem;
  readonly dir: string;

  constructor(fs: FileSystem, dir: string) {
    this.fs = fs;
    this.dir = dir;
  }

  private async generationsOnDisk(): Promise<number[]> {
    const names = await this.fs.readdir(this.dir);
    return names
      .map(parseManifestFileName)
      .filter((g): g is number => g !== null)
      .sort((a, b) => b - a);
  }

  /**
   * Loads the newest valid generation, or null when the database has none at all. CURRENT is
   * cross-checked: it must not name a generation newer than every valid one (a CURRENT ahead
   * of the files means a generation went missing, not merely a crash before the rename).
   */
  async load(): Promise<LoadedManifest | null> {
    const generations = await this.generationsOnDisk();
    if (generations.length === 0) return null;
    const skipped: number[] = [];
    const kept: ManifestState[] = [];
    let newest: DecodedManifest | null = null;
    for (const g of generations) {
      try {
        const decoded = decodeManifest(await this.fs.readFile(joinPath(this.dir, manifestFileName(g))), g);
        kept.push(decoded.state);
        newest ??= decoded;
      } catch (err) {
        if (!(err instanceof UsageDbError) && !isFsError(err)) throw err;
        if (newest === null) skipped.push(g);
      }
    }
    if (newest === null) {
      throw new UsageDbError(
        'USAGEDB_ERR_MANIFEST_CORRUPT',
        `no valid manifest generation in ${this.dir} (found ${generations.length}, all corrupt); refusing to start`,
      );
    }
    const current = await this.readCurrent();
    if (current !== null && current > generations[0]) {
      throw new UsageDbError(
        'USAGEDB_ERR_MANIFEST_CORRUPT',
        `${CURRENT_FILE} names generation ${current}, but the newest on disk is ${generations[0]}; refusing to start`,
      );
    }
    return {
      state: newest.state,
      legacyRetracted: newest.legacyRetracted,
      skippedGenerations: skipped,
      keptStates: kept,
    };
  }

  /** The generation CURRENT names, or null when it is missing or unreadable (a crash may do both). */
  private async readCurrent(): Promise<number | null> {
    try {
      const text = decoder.decode(await this.fs.readFile(joinPath(this.dir, CURRENT_FILE))).trim();
      return parseManifestFileName(text);
    } catch (err) {
      if (isFsError(err)) return null;
      throw err;
    }
  }

  /** Atomically makes `state` the newest generation. */
  async commit(state: ManifestState): Promise<void> {
    assert(state.generation > 0, 'manifest generation must be positive');
    assert(state.format_version === MANIFEST_FORMAT_VERSION, 'only the current format is written');
    const name = manifestFileName(state.generation);
    const tmpPath = joinPath(this.dir, `${name}.tmp`);
    await this.fs.writeFile(tmpPath, encodeManifest(state), { sync: true });
    await this.fs.rename(tmpPath, joinPath(this.dir, name));
    await this.fs.syncDir(this.dir);
    const currentTmp = joinPath(this.dir, `${CURRENT_FILE}.tmp`);
    await this.fs.writeFile(currentTmp, encoder.encode(`${name}\n`), { sync: true });
    await this.fs.rename(currentTmp, joinPath(this.dir, CURRENT_FILE));
    await this.fs.syncDir(this.dir);
  }

  /** Removes one generation's file (not durable before a syncDir of `dir`). */
  async remove(generation: number): Promise<void> {
    try {
      await this.fs.unlink(joinPath(this.dir, manifestFileName(generation)));
    } catch (err) {
      if (!isFsError(err, 'ENOENT')) throw err;
    }
  }

  /** Deletes generations beyond the newest MANIFEST_GENERATIONS_KEPT, and stray tmp files. */
  async prune(newestGeneration: number): Promise<void> {
    const names = await this.fs.readdir(this.dir);
    for (const name of names) {
      const g = parseManifestFileName(name);
      const stale = g !== null && g <= newestGeneration - MANIFEST_GENERATIONS_KEPT;
      if (stale || name.endsWith('.tmp')) await this.fs.unlink(joinPath(this.dir, name));
    }
  }
}
