/**
 * The rollup builder: makes rollup segments (one file per level) for raw segments no rollup
 * covers yet, and commits their coverage. `step()` builds one segment's rollups (for `tick()`),
 * `rollupAll()` every uncovered segment, `rebuild()` replaces the rollups of a time range.
 *
 * Invariants:
 * - a raw segment is covered at most once per level: a commit adds a level's rollup only if
 *   the segment is still live and uncovered at that level (a concurrent compaction or build
 *   may have got there first), otherwise the built file is dropped;
 * - nothing is visible before the commit; a crash leaves only unreferenced files, removed at
 *   the next open, so a build twice or a crash in the middle never counts an event twice;
 * - at most one build runs at a time.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert } from '../errors.ts';
import { type FileSystem, isFsError, joinPath } from '../storage/fs/file-system.ts';
import { ROLLUP_DIR, rollupPath, segmentPath } from '../storage/layout.ts';
import type { ManifestState, RawSegmentEntry, RollupLevel, RollupSegmentEntry } from '../storage/manifest.ts';
import type { VersionSet } from '../storage/version-set.ts';
import { WorkerJobs } from '../util/worker-jobs.ts';
import { bucketStart, HOUR_MS, ROLLUP_LEVELS } from './levels.ts';
import { encodeRollupFile, readRollupFile } from './rollup-file.ts';
import { type RollupOutput, type RollupRequest, runRollup } from './rollup-job.ts';
import type { RollupRows } from './rollup-rows.ts';

/** Smaller builds run inline: a worker round trip would cost more than it saves. */
const INLINE_ROLLUP_ROWS_MAX = 20_000;

const jobs = new WorkerJobs<RollupRequest, RollupOutput>(
  new URL(`./rollup-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
  'rollup build',
  { exitWhenIdle: true },
);

export interface RollupContext {
  fs: FileSystem;
  root: string;
  versions: VersionSet;
}

export interface RollupStats {
  /** Raw segments rolled up since open (builds, rebuilds and compaction outputs). */
  segmentsBuilt: number;
  rawRowsRolledUp: number;
  bytesWritten: number;
  /** Time spent building (decode, sum, encode, write), for throughput. */
  buildMs: number;
  running: boolean;
}

export interface RollupResult {
  /** Raw segments whose rollups this call committed. */
  segments: number;
  rawRows: number;
  /** Hour up to which everything flushed is rolled up (ms), or null with no raw segment. */
  watermark_ms: number | null;
}

/** Builds the rollup files of one raw segment (written and fsynced, not committed). */
export async function buildRollupFiles(
  ctx: RollupContext,
  raw: RawSegmentEntry,
  bytes?: Uint8Array,
): Promise<RollupSegmentEntry[]> {
  const data = bytes ?? (await ctx.fs.readFile(segmentPath(ctx.root, raw.id)));
  const request: RollupRequest = {
    segmentId: raw.id,
    // A worker takes the buffer: hand it a copy when the caller keeps using its bytes.
    bytes: bytes === undefined ? data : data.slice(),
    sizeBytes: raw.size_bytes,
    crc32c: raw.crc32c,
  };
  const out =
    raw.rows <= INLINE_ROLLUP_ROWS_MAX
      ? runRollup(request)
      : await jobs.run(request, [request.bytes.buffer as ArrayBuffer]);
  assert(out.rawRows === raw.rows, `rollup of segment ${raw.id} read ${out.rawRows} of ${raw.rows} rows`);
  const entries: RollupSegmentEntry[] = [];
  for (const { level, encoded } of out.levels) {
    const id = ctx.versions.allocateSegmentId();
    await ctx.fs.writeFile(rollupPath(ctx.root, id), encoded.bytes, { sync: true });
    entries.push({
      id,
      level,
      covers: [raw.id],
      rows: encoded.rows,
      min_ts: encoded.min_ts,
      max_ts: encoded.max_ts,
      size_bytes: encoded.bytes.length,
      crc32c: encoded.crc32c,
    });
  }
  await ctx.fs.syncDir(joinPath(ctx.root, ROLLUP_DIR));
  return entries;
}

/** Raw segments some level does not cover yet, oldest first. */
export function uncoveredSegments(state: ManifestState): RawSegmentEntry[] {
  const covered = coverage(state);
  return state.raw_segments.filter((e) => ROLLUP_LEVELS.some((l) => !covered.get(l)?.has(e.id)));
}

function coverage(state: ManifestState): Map<RollupLevel, Set<number>> {
  const m = new Map<RollupLevel, Set<number>>(ROLLUP_LEVELS.map((l) => [l, new Set<number>()]));
  for (const r of state.rollup_segments) for (const id of r.covers) m.get(r.level)?.add(id);
  return m;
}

/**
 * The hour up to which every flushed event is rolled up: the start of the hour of the
 * earliest event of an uncovered segment, or (all covered) the end of the hour of the latest
 * flushed event; null with no raw segment.
 */
export function rollupWatermark(state: ManifestState): number | null {
  if (state.raw_segments.length === 0) return null;
  const uncovered = uncoveredSegments(state);
  if (uncovered.length > 0) return bucketStart('hour', Math.min(...uncovered.map((e) => e.min_ts)));
  return bucketStart('hour', Math.max(...state.raw_segments.map((e) => e.max_ts))) + HOUR_MS;
}

/**
 * The state with `built` (rollups of one raw segment) added where that segment is still live
 * and uncovered at their level; `replace`: the segment's current rollups go (a rebuild).
 * Returns the state and the built entries it did not take.
 */
function withRollups(
  s: ManifestState,
  rawId: number,
  built: readonly RollupSegmentEntry[],
  replace: boolean,
): { state: ManifestState; unused: RollupSegmentEntry[] } {
  if (!s.raw_segments.some((e) => e.id === rawId)) return { state: s, unused: [...built] };
  let rollups = s.rollup_segments;
  if (replace) rollups = rollups.filter((r) => !r.covers.includes(rawId));
  const covered = new Set(rollups.filter((r) => r.covers.includes(rawId)).map((r) => r.level));
  const taken = built.filter((r) => !covered.has(r.level));
  return {
    state: { ...s, rollup_segments: [...rollups, ...taken] },
    unused: built.filter((r) => !taken.includes(r)),
  };
}

export class Roller {
  private readonly ctx: RollupContext;
  private running: Promise<unknown> | null = null;
  private readonly totals: Omit<RollupStats, 'running'> = {
    segmentsBuilt: 0,
    rawRowsRolledUp: 0,
    bytesWritten: 0,
    buildMs: 0,
  };
  /** For build timing (the database clock may be simulated). */
  private readonly now: () => number;

  constructor(ctx: RollupContext, now: () => number = () => performance.now()) {
    this.ctx = ctx;
    this.now = now;
  }

  get stats(): RollupStats {
    return { ...this.totals, running: this.running !== null };
  }

  /** Builds the rollups of `raw` (its file's bytes, when at hand), counting the work. */
  async build(raw: RawSegmentEntry, bytes?: Uint8Array): Promise<RollupSegmentEntry[]> {
    const started = this.now();
    const built = await buildRollupFiles(this.ctx, raw, bytes);
    this.totals.segmentsBuilt++;
    this.totals.rawRowsRolledUp += raw.rows;
    this.totals.bytesWritten += built.reduce((n, r) => n + r.size_bytes, 0);
    this.totals.buildMs += this.now() - started;
    return built;
  }

  /** One uncovered segment's rollups (background work); false when none is due or one runs. */
  async step(): Promise<boolean> {
    if (this.running !== null) return false;
    const next = uncoveredSegments(this.ctx.versions.current)[0];
    if (next === undefined) return false;
    await this.exclusive(() => this.buildAndCommit(next, false));
    return true;
  }

  /** Rolls up every uncovered raw segment now. */
  async rollupAll(): Promise<RollupResult> {
    return this.exclusive(async () => {
      let segments = 0;
      let rawRows = 0;
      const done = new Set<number>();
      for (;;) {
        const next = uncoveredSegments(this.ctx.versions.current).find((e) => !done.has(e.id));
        if (next === undefined) break;
        done.add(next.id);
        if (await this.buildAndCommit(next, false)) {
          segments++;
          rawRows += next.rows;
        }
      }
      return { segments, rawRows, watermark_ms: rollupWatermark(this.ctx.versions.current) };
    });
  }

  /** Drops and rebuilds from raw the rollups of every raw segment with events in [from, to). */
  async rebuild(fromMs: number, toMs: number): Promise<RollupResult> {
    return this.exclusive(async () => {
      let segments = 0;
      let rawRows = 0;
      const targets = this.ctx.versions.current.raw_segments.filter(
        (e) => e.max_ts >= fromMs && e.min_ts < toMs,
      );
      for (const raw of targets) {
        if (await this.buildAndCommit(raw, true)) {
          segments++;
          rawRows += raw.rows;
        }
      }
      return { segments, rawRows, watermark_ms: rollupWatermark(this.ctx.versions.current) };
    });
  }

  /** Waits for a running build, then runs `work` as the only one. */
  private async exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.running !== null) await this.running.catch(() => undefined);
    const run = work();
    // Settled either way: a failed build is reported to its caller, not left unhandled here.
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.running = settled;
    void settled.then(() => {
      if (this.running === settled) this.running = null;
    });
    return run;
  }

  /** Builds and commits one segment's rollups; false when the commit took none of them. */
  private async buildAndCommit(raw: RawSegmentEntry, replace: boolean): Promise<boolean> {
    const built = await this.build(raw);
    let unused: RollupSegmentEntry[] = [];
    await this.ctx.versions.commit((s) => {
      const r = withRollups(s, raw.id, built, replace);
      unused = r.unused;
      return r.state;
    });
    await this.removeFiles(unused);
    return unused.length < built.length;
  }

  /**
   * Test hook (src/testing.ts): rewrites rollup segment `id` with `mutate` applied to its rows,
   * under a new id and valid checksums, as a builder bug would leave it: `verify` must see it.
   */
  async replaceForTest(id: number, mutate: (rows: RollupRows) => void): Promise<void> {
    const old = this.ctx.versions.current.rollup_segments.find((r) => r.id === id);
    assert(old !== undefined, `no rollup segment ${id}`);
    const { rows } = readRollupFile(await this.ctx.fs.readFile(rollupPath(this.ctx.root, id)));
    assert(rows.length === 1, 'the test hook rewrites single-block rollup files');
    mutate(rows[0]);
    const encoded = encodeRollupFile(rows[0], old.level);
    const next: RollupSegmentEntry = {
      ...old,
      id: this.ctx.versions.allocateSegmentId(),
      rows: encoded.rows,
      size_bytes: encoded.bytes.length,
      crc32c: encoded.crc32c,
    };
    await this.ctx.fs.writeFile(rollupPath(this.ctx.root, next.id), encoded.bytes, { sync: true });
    await this.ctx.fs.syncDir(joinPath(this.ctx.root, ROLLUP_DIR));
    await this.ctx.versions.commit((s) => ({
      ...s,
      rollup_segments: s.rollup_segments.map((r) => (r.id === id ? next : r)),
    }));
  }

  /** Deletes built files no commit took (a crash before this leaves them to the next open). */
  async removeFiles(entries: readonly RollupSegmentEntry[]): Promise<void> {
    if (entries.length === 0) return;
    for (const r of entries) {
      try {
        await this.ctx.fs.unlink(rollupPath(this.ctx.root, r.id));
      } catch (err) {
        if (!isFsError(err, 'ENOENT')) throw err;
      }
    }
    await this.ctx.fs.syncDir(joinPath(this.ctx.root, ROLLUP_DIR));
  }
}
