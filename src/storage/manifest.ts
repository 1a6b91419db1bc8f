/**
 * The manifest: which files make up the database, as numbered generations
 * `manifest/manifest-NNNNNN.json` plus `manifest/CURRENT` naming the newest.
 *
 * Invariants:
 * - a generation is written to a tmp name, fsynced, renamed, and the directory fsynced before
 *   anything relies on it (commit is atomic: a reader sees the old or the new generation);
 * - every generation carries a CRC32C of its body; a generation that fails it is never used;
 * - the newest valid generation is the state of the database; with none valid, open fails;
 * - the last MANIFEST_GENERATIONS_KEPT generations are kept for rollback.
 */
import { assert, UsageDbError } from '../errors.ts';
import { crc32c } from './encoding/crc32c.ts';
import { type FileSystem, isFsError, joinPath } from './fs/file-system.ts';

export const MANIFEST_FORMAT_VERSION = 1;
export const MANIFEST_GENERATIONS_KEPT = 10;

/**
 * A raw segment file: the events of one flush (or compaction), clustered by (UTC day, bucket)
 * partition and then account. Each partition is a contiguous run of blocks inside the file;
 * the partition index lives in the file's footer, so the manifest stays small.
 */
export interface SegmentEntry {
  id: number;
  rows: number;
  min_ts: number;
  max_ts: number;
  size_bytes: number;
  /** CRC32C of the whole file: a misdirected or swapped file is caught. */
  crc32c: number;
  /** Original event ids that Retractions in this segment retract (usually absent). */
  retracted?: string[];
}

export interface ManifestState {
  format_version: number;
  generation: number;
  database_id: string;
  bucket_count: number;
  created_at_ms: number;
  next_segment_id: number;
  /** WAL files numbered >= wal_start hold events not yet in segments. */
  wal_start: number;
  segments: SegmentEntry[];
  /** Reserved for rollup segments (coverage by raw segment id) and period snapshots. */
  rollups: unknown[];
  periods: unknown[];
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

/** Decodes and verifies a generation; throws a UsageDbError naming the problem. */
export function decodeManifest(bytes: Uint8Array, expectedGeneration: number): ManifestState {
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
  let state: ManifestState;
  try {
    state = JSON.parse(body) as ManifestState;
  } catch {
    throw fail('body is not JSON');
  }
  if (state.format_version !== MANIFEST_FORMAT_VERSION)
    throw fail(`unsupported format ${state.format_version}`);
  if (state.generation !== expectedGeneration) throw fail('generation does not match its file name');
  return state;
}

export interface LoadedManifest {
  state: ManifestState;
  /** Newer generations that exist but failed verification (we rolled back past them). */
  skippedGenerations: number[];
  /** All valid generations kept on disk (for deciding which files are still referenced). */
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

  /** Loads the newest valid generation, or null when the database has none at all. */
  async load(): Promise<LoadedManifest | null> {
    const generations = await this.generationsOnDisk();
    if (generations.length === 0) return null;
    const skipped: number[] = [];
    const kept: ManifestState[] = [];
    let newest: ManifestState | null = null;
    for (const g of generations) {
      try {
        const state = decodeManifest(await this.fs.readFile(joinPath(this.dir, manifestFileName(g))), g);
        kept.push(state);
        newest ??= state;
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
    return { state: newest, skippedGenerations: skipped, keptStates: kept };
  }

  /** Atomically makes `state` the newest generation. */
  async commit(state: ManifestState): Promise<void> {
    assert(state.generation > 0, 'manifest generation must be positive');
    const name = manifestFileName(state.generation);
    const tmpPath = joinPath(this.dir, `${name}.tmp`);
    await this.fs.writeFile(tmpPath, encodeManifest(state), { sync: true });
    await this.fs.rename(tmpPath, joinPath(this.dir, name));
    await this.fs.syncDir(this.dir);
    const currentTmp = joinPath(this.dir, 'CURRENT.tmp');
    await this.fs.writeFile(currentTmp, encoder.encode(`${name}\n`), { sync: true });
    await this.fs.rename(currentTmp, joinPath(this.dir, 'CURRENT'));
    await this.fs.syncDir(this.dir);
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
