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
 * - at most one piece of rollup work (a step, `rollupAll`, a rebuild) runs at a time; inside
 *   `rollupAll` up to ROLLUP_WORKERS segments build at once, each committed on its own.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert, UsageDbError } from '../errors.ts';
import { type FileSystem, isFsError, joinPath } from '../storage/fs/file-system.ts';
import { ROLLUP_DIR, rollupPath, segmentPath } from '../storage/layout.ts';
import type { ManifestState, RawSegmentEntry, RollupLevel, RollupSegmentEntry } from '../storage/manifest.ts';
import type { VersionSet } from '../storage/version-set.ts';
import { WorkerJobs } from '../util/worker-jobs.ts';
import { bucketStart, HOUR_MS, ROLLUP_LEVELS } from './levels.ts';
import {
  assembleRollupFile,
  type EncodedRollup,
  encodeRollupFile,
  type RollupBlocks,
  readRollupFile,
} from './rollup-file.ts';
import {
  CARRIED_LEVELS,
  type RollupOutput,
  type RollupRequest,
  rowsTransfer,
  runRollup,
} from './rollup-job.ts';
import { type RollupRows, sharedDictionaries, splitRowsByAccount } from './rollup-rows.ts';

/** Smaller builds run inline: a worker round trip would cost more than it saves. */
const INLINE_ROLLUP_ROWS_MAX = 20_000;

/**
 * Worker threads `rollup()` runs builds and merges on at once: one per core, at most two (each
 * holds a segment's columns or a merge's rows; `tick()` uses the first only).
 */
export const ROLLUP_WORKERS = Math.max(1, Math.min(2, availableParallelism()));

/**
 * How long the first worker, the one `tick()` builds on, stays after its last job. Under steady
 * ingest a tick builds a flushed segment every few seconds; a thread started for each build
 * ran it mostly unoptimised and cost about four times the CPU per event of a warm one (10M-event
 * scale runs: ~8% less CPU per ingested event from the 3rd million on with the thread kept,
 * all work counted). The second lane serves only `rollup()` and ends with it.
 */
const TICK_WORKER_LINGER_MS = 10_000;

const lanes = Array.from(
  { length: ROLLUP_WORKERS },
  (_, lane) =>
    new WorkerJobs<RollupRequest, RollupOutput>(
      new URL(`./rollup-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
      'rollup build',
      { exitWhenIdle: true, lingerMs: lane === 0 ? TICK_WORKER_LINGER_MS : 0 },
    ),
);

/** Keeps every rollup worker alive until the returned release (a run of many jobs). */
function holdWorkers(): () => void {
  const releases = lanes.map((l) => l.hold());
  return () => {
    for (const r of releases) r();
  };
}

/**
 * Runs `work` over `items` with up to ROLLUP_WORKERS at once, each on its own worker lane;
 * `perLane` items at once on each lane (a lane's worker then has its next job queued while the
 * main thread writes, fsyncs and commits the one before).
 */
async function onLanes<T>(
  items: readonly T[],
  work: (item: T, lane: number) => Promise<void>,
  perLane = 1,
): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async (index: number): Promise<void> => {
    try {
      while (!failed && next < items.length) await work(items[next++], index);
    } catch (err) {
      failed = true;
      throw err;
    }
  };
  // Every lane settles before this returns, and none starts an item after a failure: no work
  // of a failed call goes on after it.
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(ROLLUP_WORKERS * perLane, items.length) }, (_, i) =>
      lane(i % ROLLUP_WORKERS),
    ),
  );
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
}

export interface RollupContext {
  fs: FileSystem;
  root: string;
  versions: VersionSet;
}

export interface RollupStats {
  /** Raw segments rolled up since open (builds, rebuilds and compaction outputs). */
  segmentsBuilt: number;
  rawRowsRolledUp: number;
  /** Merges of rollup files of one level into one. */
  merges: number;
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

/**
 * Runs a build or merge inline (small) or in the worker; damaged input (a checksum that does
 * not match, bytes that do not decode) is USAGEDB_ERR_SEGMENT_CORRUPT, never a number.
 */
async function runJob(
  request: RollupRequest,
  rows: number,
  transfer: ArrayBuffer[],
  lane = 0,
): Promise<RollupOutput> {
  try {
    return rows <= INLINE_ROLLUP_ROWS_MAX ? runRollup(request) : await lanes[lane].run(request, transfer);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (!/ is corrupt: /.test(message)) throw err;
    throw new UsageDbError('USAGEDB_ERR_SEGMENT_CORRUPT', message.split('\n')[0], { cause: err });
  }
}

/** Builds the rollup files of one raw segment (written and fsynced, not committed). */
export async function buildRollupFiles(
  ctx: RollupContext,
  raw: RawSegmentEntry,
  bytes?: Uint8Array,
  lane = 0,
): Promise<RollupSegmentEntry[]> {
  return (await buildRollups(ctx, raw, bytes, lane, false)).entries;
}

/**
 * buildRollupFiles, or with `carry` only the hour file, the day rows handed back to be
 * combined with other segments' (one file per level for many segments).
 */
async function buildRollups(
  ctx: RollupContext,
  raw: RawSegmentEntry,
  bytes: Uint8Array | undefined,
  lane: number,
  carry: boolean,
): Promise<{ entries: RollupSegmentEntry[]; carriedDay?: RollupRows }> {
  const data = bytes ?? (await ctx.fs.readFile(segmentPath(ctx.root, raw.id)));
  const request: RollupRequest = {
    op: 'build',
    segmentId: raw.id,
    // A worker takes the buffer: hand it a copy when the caller keeps using its bytes.
    bytes: bytes === undefined ? data : data.slice(),
    sizeBytes: raw.size_bytes,
    crc32c: raw.crc32c,
    carry,
  };
  const out = await runJob(request, raw.rows, [request.bytes.buffer as ArrayBuffer], lane);
  assert(out.rawRows === raw.rows, `rollup of segment ${raw.id} read ${out.rawRows} of ${raw.rows} rows`);
  const entries: RollupSegmentEntry[] = [];
  for (const { level, encoded } of out.levels)
    entries.push(await writeRollupFile(ctx, level, [raw.id], encoded));
  await ctx.fs.syncDir(joinPath(ctx.root, ROLLUP_DIR));
  return { entries, carriedDay: out.carriedDay };
}

/** Writes (and fsyncs) one encoded rollup file under a new id; the directory is synced by the caller. */
async function writeRollupFile(
  ctx: RollupContext,
  level: RollupLevel,
  covers: number[],
  encoded: EncodedRollup,
): Promise<RollupSegmentEntry> {
  const id = ctx.versions.allocateSegmentId();
  await ctx.fs.writeFile(rollupPath(ctx.root, id), encoded.bytes, { sync: true });
  return {
    id,
    level,
    covers,
    rows: encoded.rows,
    min_ts: encoded.min_ts,
    max_ts: encoded.max_ts,
    size_bytes: encoded.bytes.length,
    crc32c: encoded.crc32c,
  };
}

/** Rows one rollup merge reads at most: bounds its memory. */
export const ROLLUP_MERGE_ROWS_MAX = 4_000_000;
/** Levels whose files are merged: the ones long ranges and top-N queries read. */
const MERGED_LEVELS: readonly RollupLevel[] = ['meter_month', 'month', 'meter_day', 'day'];

/**
 * Rollup files of `level` to merge into one, smallest first while under ROLLUP_MERGE_ROWS_MAX
 * rows; null when fewer than two. One file per level then serves a query for all the raw
 * segments it covers (instead of one file per flush).
 */
export function planRollupMerge(state: ManifestState, level: RollupLevel): RollupSegmentEntry[] | null {
  const files = state.rollup_segments.filter((r) => r.level === level).sort((a, b) => a.rows - b.rows);
  const picked: RollupSegmentEntry[] = [];
  let rows = 0;
  for (const f of files) {
    if (picked.length >= 2 && rows + f.rows > ROLLUP_MERGE_ROWS_MAX) break;
    picked.push(f);
    rows += f.rows;
  }
  return picked.length >= 2 ? picked : null;
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
    merges: 0,
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
  async build(raw: RawSegmentEntry, bytes?: Uint8Array, lane = 0): Promise<RollupSegmentEntry[]> {
    const started = this.now();
    const built = await buildRollupFiles(this.ctx, raw, bytes, lane);
    this.totals.segmentsBuilt++;
    this.totals.rawRowsRolledUp += raw.rows;
    this.totals.bytesWritten += built.reduce((n, r) => n + r.size_bytes, 0);
    this.totals.buildMs += this.now() - started;
    return built;
  }

  /**
   * One piece of background work: an uncovered segment's rollups, else one merge of rollup
   * files of a level; false when none is due or work runs.
   */
  async step(): Promise<boolean> {
    if (this.running !== null) return false;
    const next = uncoveredSegments(this.ctx.versions.current)[0];
    if (next !== undefined) {
      await this.exclusive(() => this.buildAndCommit(next, false));
      return true;
    }
    for (const level of MERGED_LEVELS) {
      const files = planRollupMerge(this.ctx.versions.current, level);
      if (files === null) continue;
      await this.exclusive(() => this.mergeAndCommit(level, files));
      return true;
    }
    return false;
  }

  /** Merges rollup files of `level` into one, replacing them in one commit (their covers unite). */
  private async mergeAndCommit(
    level: RollupLevel,
    files: readonly RollupSegmentEntry[],
    lane = 0,
  ): Promise<boolean> {
    const started = this.now();
    const request: RollupRequest = {
      op: 'merge',
      level,
      files: [],
    };
    for (const f of files)
      request.files.push({
        id: f.id,
        bytes: await this.ctx.fs.readFile(rollupPath(this.ctx.root, f.id)),
        crc32c: f.crc32c,
      });
    const rows = files.reduce((n, f) => n + f.rows, 0);
    const out = await runJob(
      request,
      rows,
      request.files.map((f) => f.bytes.buffer as ArrayBuffer),
      lane,
    );
    const encoded = out.levels[0].encoded;
    const id = this.ctx.versions.allocateSegmentId();
    await this.ctx.fs.writeFile(rollupPath(this.ctx.root, id), encoded.bytes, { sync: true });
    await this.ctx.fs.syncDir(joinPath(this.ctx.root, ROLLUP_DIR));
    const merged: RollupSegmentEntry = {
      id,
      level,
      covers: files.flatMap((f) => f.covers).sort((a, b) => a - b),
      rows: encoded.rows,
      min_ts: encoded.min_ts,
      max_ts: encoded.max_ts,
      size_bytes: encoded.bytes.length,
      crc32c: encoded.crc32c,
    };
    const ids = new Set(files.map((f) => f.id));
    let taken = false;
    await this.ctx.versions.commit((s) => {
      // A compaction or rebuild may have replaced one of them meanwhile: then nothing changes.
      taken = files.every((f) => s.rollup_segments.some((r) => r.id === f.id));
      if (!taken) return s;
      return { ...s, rollup_segments: [...s.rollup_segments.filter((r) => !ids.has(r.id)), merged] };
    });
    if (!taken) await this.removeFiles([merged]);
    else {
      this.totals.merges++;
      this.totals.bytesWritten += merged.size_bytes;
      this.totals.buildMs += this.now() - started;
    }
    return taken;
  }

  /**
   * Rolls up every uncovered raw segment now, on every worker lane at once. Segments no level
   * covers are built together: each segment's hour file (committed as it is done), and one
   * file per other level for up to ROLLUP_MERGE_ROWS_MAX day rows of them, summed from the day
   * rows the builds hand back, the coarser levels derived from that sum (no file per segment
   * to write, read back and merge). Others get the levels they lack one by one. Then the files
   * of each merged level are merged, levels side by side.
   */
  async rollupAll(): Promise<RollupResult> {
    return this.exclusive(async () => {
      let segments = 0;
      let rawRows = 0;
      const done = new Set<number>();
      const release = holdWorkers();
      try {
        for (;;) {
          const state = this.ctx.versions.current;
          const due = uncoveredSegments(state).filter((e) => !done.has(e.id));
          if (due.length === 0) break;
          for (const e of due) done.add(e.id);
          const covered = new Set(state.rollup_segments.flatMap((r) => r.covers));
          // A group pays off from two segments on; one (the usual case of a period close or
          // a call after a flush) is built the per-segment way: five files, one commit.
          let fresh = due.filter((e) => !covered.has(e.id));
          let partial = due.filter((e) => covered.has(e.id));
          if (fresh.length < 2) {
            partial = due;
            fresh = [];
          }
          await onLanes(partial, async (next, lane) => {
            if (await this.buildAndCommit(next, false, lane)) {
              segments++;
              rawRows += next.rows;
            }
          });
          const r = await this.buildCarrying(fresh);
          segments += r.segments;
          rawRows += r.rawRows;
        }
        await onLanes(MERGED_LEVELS, (level, lane) => this.mergeLevel(level, lane));
      } finally {
        release();
      }
      return { segments, rawRows, watermark_ms: rollupWatermark(this.ctx.versions.current) };
    });
  }

  /**
   * Builds segments no level covers, on every lane: each one's hour file (committed as built)
   * and its day rows, carried; whenever the carried day rows reach ROLLUP_MERGE_ROWS_MAX (and
   * at the end), they are combined into one file per other level (combineCarried). The lane
   * that fills a batch combines it while the other lane goes on building.
   */
  private async buildCarrying(
    fresh: readonly RawSegmentEntry[],
  ): Promise<{ segments: number; rawRows: number }> {
    let segments = 0;
    let rawRows = 0;
    let batch: { raw: RawSegmentEntry; day: RollupRows }[] = [];
    let batchRows = 0;
    await onLanes(
      fresh,
      async (raw, lane) => {
        const started = this.now();
        const built = await buildRollups(this.ctx, raw, undefined, lane, true);
        assert(built.carriedDay !== undefined, 'a carrying build hands back its day rows');
        this.totals.bytesWritten += built.entries.reduce((n, r) => n + r.size_bytes, 0);
        this.totals.buildMs += this.now() - started;
        let unused: RollupSegmentEntry[] = [];
        await this.ctx.versions.commit((s) => {
          const r = withRollups(s, raw.id, built.entries, false);
          unused = r.unused;
          return r.state;
        });
        await this.removeFiles(unused);
        if (unused.length < built.entries.length) {
          segments++;
          rawRows += raw.rows;
          this.totals.segmentsBuilt++;
          this.totals.rawRowsRolledUp += raw.rows;
        }
        batch.push({ raw, day: built.carriedDay });
        batchRows += built.carriedDay.rowCount;
        if (batchRows >= ROLLUP_MERGE_ROWS_MAX) {
          const full = batch;
          batch = [];
          batchRows = 0;
          await this.combineCarried(full);
        }
      },
      2,
    );
    if (batch.length > 0) await this.combineCarried(batch);
    return { segments, rawRows };
  }

  /**
   * One file per level but hour for segments whose day rows builds carried: the day rows
   * summed and the coarser levels derived (a job per half of the accounts, the two side by
   * side), then each level's halves encoded as the parts of one file (a job per half and
   * level, on every lane), the files committed together; each file taken when every segment
   * it covers is still live and uncovered at its level (else dropped: built again later).
   */
  private async combineCarried(carried: { raw: RawSegmentEntry; day: RollupRows }[]): Promise<void> {
    // The order of the segments, not of the builds' ends: the same files for the same input.
    carried.sort((a, b) => a.raw.id - b.raw.id);
    const covers = carried.map((c) => c.raw.id);
    const events = carried.reduce((n, c) => n + c.raw.rows, 0);
    const started = this.now();
    const parts = carried.map((c) => c.day);
    const rows = parts.reduce((n, p) => n + p.rowCount, 0);
    // Large enough for two lanes: one combine per account range, side by side.
    const ranges = (ROLLUP_WORKERS > 1 && rows > 2 * INLINE_ROLLUP_ROWS_MAX && splitRowsByAccount(parts)) || [
      parts,
    ];
    const outs: RollupOutput[] = [];
    await onLanes(
      ranges.map((range, index) => ({ range, index })),
      async ({ range, index }, lane) => {
        const request: RollupRequest = { op: 'combine', parts: range };
        const count = range.reduce((n, p) => n + p.rowCount, 0);
        outs[index] = await runJob(request, count, range.flatMap(rowsTransfer), lane);
      },
    );
    const counted = outs.reduce((n, o) => n + o.rawRows, 0);
    assert(counted === events, `combined rollups count ${counted} of ${events} events`);
    const derived = outs.map((o) => {
      assert(o.derived !== undefined, 'a combine hands back the rows of its levels');
      return o.derived;
    });
    // Each level's file in parts, one per account range, encoded side by side on every lane
    // (encoded whole, the day file kept one thread busy for a second at 10M events while the
    // other had little left to do), codes mapped into the file's dictionaries; the file is
    // assembled here once its parts are in (meanwhile the lane's next part is queued).
    const combined: RollupSegmentEntry[] = [];
    const jobs = CARRIED_LEVELS.flatMap((level) => {
      const sets = derived.map((d) => d[level]);
      const shared = sharedDictionaries(sets, true);
      const parts: (RollupBlocks | undefined)[] = sets.map(() => undefined);
      const file = { level, dicts: shared.dicts, parts, events: 0, pending: sets.length };
      return sets.map((rows, part) => ({ file, part, rows, codeMaps: shared.maps[part] }));
    });
    await onLanes(
      jobs,
      async ({ file, part, rows, codeMaps }, lane) => {
        const encode: RollupRequest = { op: 'encode', level: file.level, rows, codeMaps };
        const out = await runJob(encode, rows.rowCount, rowsTransfer(rows), lane);
        assert(out.blocks !== undefined, 'an encode hands back its blocks');
        file.parts[part] = out.blocks;
        file.events += out.rawRows;
        if (--file.pending > 0) return;
        assert(
          file.events === events,
          `a combined ${file.level} rollup counts ${file.events} of ${events} events`,
        );
        const encoded = assembleRollupFile(file.level, file.dicts, file.parts as RollupBlocks[]);
        combined.push(await writeRollupFile(this.ctx, file.level, covers, encoded));
      },
      2,
    );
    await this.ctx.fs.syncDir(joinPath(this.ctx.root, ROLLUP_DIR));
    // One commit for the files: each taken when every segment it covers is still live and
    // uncovered at its level.
    let taken: RollupSegmentEntry[] = [];
    await this.ctx.versions.commit((s) => {
      const live = new Set(s.raw_segments.map((e) => e.id));
      taken = combined.filter((entry) => {
        const atLevel = new Set(
          s.rollup_segments.filter((r) => r.level === entry.level).flatMap((r) => r.covers),
        );
        return covers.every((id) => live.has(id) && !atLevel.has(id));
      });
      return taken.length === 0 ? s : { ...s, rollup_segments: [...s.rollup_segments, ...taken] };
    });
    await this.removeFiles(combined.filter((e) => !taken.includes(e)));
    this.totals.bytesWritten += taken.reduce((n, e) => n + e.size_bytes, 0);
    this.totals.buildMs += this.now() - started;
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

  /** Merges the files of `level` until one is left (or the cap stops it). */
  private async mergeLevel(level: RollupLevel, lane: number): Promise<void> {
    for (;;) {
      const files = planRollupMerge(this.ctx.versions.current, level);
      if (files === null || !(await this.mergeAndCommit(level, files, lane))) break;
    }
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
  private async buildAndCommit(raw: RawSegmentEntry, replace: boolean, lane = 0): Promise<boolean> {
    const built = await this.build(raw, undefined, lane);
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
