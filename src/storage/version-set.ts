/**
 * The version set: the manifest state as a sequence of versions, the only place that commits
 * manifest edits, hands out segment ids, pins versions for readers, and deletes files.
 *
 * Invariants:
 * - edits commit one at a time (the manifest mutex), each as the next generation;
 * - segment ids are never reused: the allocator starts above every id named by a kept
 *   generation or present in raw/, and advances on every allocation, committed or not;
 * - a segment file (and its side files) is deleted only when neither the current version, a
 *   pinned version, nor any generation kept on disk names it: older generations that name it
 *   are removed first (the current and the previous one are always kept);
 * - WAL files are deleted one generation late (below the previous generation's wal_start),
 *   so rolling back past one corrupt generation never needs a deleted WAL file.
 *
 * Lifecycle of a version: `pin()` hands out the current one (synchronously, so a reader's
 * view and the memtables it takes are one instant); `release()` ends the pin. A commit makes a
 * new current version; the old one lives on while pinned.
 */
import { assert, UsageDbError } from '../errors.ts';
import { type FileSystem, isFsError, joinPath } from './fs/file-system.ts';
import { RAW_DIR, ROLLUP_DIR, rollupFileName, segmentFileName, WAL_DIR } from './layout.ts';
import {
  MANIFEST_FORMAT_VERSION,
  MANIFEST_GENERATIONS_KEPT,
  type LoadedManifest,
  manifestFileName,
  type ManifestState,
  ManifestStore,
} from './manifest.ts';
import { retractionFileName, writeRetractionFile } from './retractions.ts';
import { emptyUncommitted } from './flush.ts';
import { AsyncMutex } from '../util/async-mutex.ts';

/** A version a reader holds: the manifest state it started on. Release it when done. */
export interface PinnedVersion {
  readonly state: ManifestState;
  release(): void;
}

interface VersionRecord {
  state: ManifestState;
  pins: number;
}

/** Every segment id a state names (raw, rollup, quarantine). */
export function segmentIdsOf(state: ManifestState): number[] {
  return [
    ...state.raw_segments.map((e) => e.id),
    ...state.rollup_segments.map((e) => e.id),
    ...state.quarantine.map((e) => e.id),
  ];
}

/** `NNNNNNNN.useg` / `.rtx` (and other per-segment files) -> segment id. */
function segmentIdOfFileName(name: string): number | null {
  const m = /^(\d{8,})\.[a-z]+$/.exec(name);
  return m ? Number(m[1]) : null;
}

export class VersionSet {
  private readonly fs: FileSystem;
  private readonly root: string;
  private readonly store: ManifestStore;
  private readonly mutex = new AsyncMutex();
  private currentRecord: VersionRecord;
  /** Older versions still pinned by a reader. */
  private readonly pinnedOld = new Set<VersionRecord>();
  /** Newest first, the current one included: what a rollback may return to. */
  private kept: ManifestState[];
  private nextSegmentId: number;
  /** Segment ids dropped from the current version whose files still exist. */
  private readonly obsolete = new Set<number>();
  /** Called after every commit, synchronously (readers switch views here). */
  onCommit: (state: ManifestState) => void = () => undefined;

  private constructor(fs: FileSystem, root: string, store: ManifestStore, loaded: LoadedManifest) {
    this.fs = fs;
    this.root = root;
    this.store = store;
    this.currentRecord = { state: loaded.state, pins: 0 };
    this.kept = loaded.keptStates.length > 0 ? loaded.keptStates : [loaded.state];
    this.nextSegmentId = loaded.state.next_segment_id;
  }

  /**
   * Opens the versions of a database whose manifest was loaded (`loaded`), or creates the first
   * generation. Upgrades a format 1 generation (its inline retracted ids go to side files),
   * and deletes segment files no kept generation names (left by a flush that never committed).
   */
  static async open(
    fs: FileSystem,
    root: string,
    manifestDir: string,
    loaded: LoadedManifest | null,
    create: () => ManifestState,
  ): Promise<VersionSet> {
    const store = new ManifestStore(fs, manifestDir);
    if (loaded === null) {
      const state = create();
      await store.commit(state);
      loaded = { state, legacyRetracted: null, skippedGenerations: [], keptStates: [state] };
    }
    const set = new VersionSet(fs, root, store, loaded);
    if (loaded.skippedGenerations.length > 0) await set.checkRollbackFiles(loaded.skippedGenerations);
    await set.removeUnreferencedFiles();
    if (loaded.legacyRetracted !== null) await set.upgrade(loaded.legacyRetracted);
    await store.prune(set.current.generation);
    return set;
  }

  get current(): ManifestState {
    return this.currentRecord.state;
  }

  /** The generation before the current one, as kept on disk (the current one when none). */
  private get previous(): ManifestState {
    return this.kept[1] ?? this.kept[0];
  }

  /** A fresh segment id, never handed out before (also not after a failed commit). */
  allocateSegmentId(): number {
    return this.nextSegmentId++;
  }

  /** Pins the current version (synchronous). */
  pin(): PinnedVersion {
    const record = this.currentRecord;
    record.pins++;
    let released = false;
    return {
      state: record.state,
      release: () => {
        if (released) return;
        released = true;
        record.pins--;
        assert(record.pins >= 0, 'a version released more often than pinned');
        if (record.pins === 0 && record !== this.currentRecord) {
          this.pinnedOld.delete(record);
          void this.deleteObsoleteFiles().catch(() => undefined);
        }
      },
    };
  }

  /** Segment ids named by the current version or a pinned one (what readers may still open). */
  liveSegmentIds(): Set<number> {
    const ids = new Set(segmentIdsOf(this.current));
    for (const r of this.pinnedOld) for (const id of segmentIdsOf(r.state)) ids.add(id);
    return ids;
  }

  /**
   * Commits the next generation: `edit` gets the current state and returns the new one (its
   * generation and next_segment_id are set here). Runs under the manifest mutex. `onCommit`
   * and then `afterInstall` run synchronously right after the new version is installed.
   */
  async commit(
    edit: (current: ManifestState) => Omit<ManifestState, 'generation' | 'next_segment_id'>,
    afterInstall: (state: ManifestState) => void = () => undefined,
  ): Promise<ManifestState> {
    return this.mutex.run(async () => {
      const before = this.current;
      const next: ManifestState = {
        ...edit(before),
        format_version: MANIFEST_FORMAT_VERSION,
        generation: before.generation + 1,
        next_segment_id: Math.max(before.next_segment_id, this.nextSegmentId),
      };
      try {
        await this.store.commit(next);
      } catch (err) {
        await this.dropUnpublished(before, next).catch(() => undefined);
        throw err;
      }
      // Synchronous from here to the end of afterInstall: readers switch in one step.
      this.install(next);
      afterInstall(next);
      await this.afterCommit(before);
      return next;
    });
  }

  /**
   * After a failed commit: when the new generation's file never appeared, no generation names
   * the segments it added, so their files are emptied now (a flush retried on a full disk would
   * otherwise keep one more copy per attempt until the next open).
   */
  private async dropUnpublished(before: ManifestState, next: ManifestState): Promise<void> {
    if (await this.fs.exists(joinPath(this.store.dir, manifestFileName(next.generation)))) return;
    const old = new Set(segmentIdsOf(before));
    for (const id of segmentIdsOf(next)) if (!old.has(id)) await emptyUncommitted(this.fs, this.root, id);
  }

  /** Commits an unchanged generation, so the WAL files the last flush covered can go. */
  async checkpoint(): Promise<void> {
    if (this.previous.wal_start >= this.current.wal_start) return;
    await this.commit((s) => s);
  }

  private install(next: ManifestState): void {
    const old = this.currentRecord;
    if (old.pins > 0) this.pinnedOld.add(old);
    this.currentRecord = { state: next, pins: 0 };
    this.kept = [next, ...this.kept].slice(0, MANIFEST_GENERATIONS_KEPT);
    const live = new Set(segmentIdsOf(next));
    for (const id of segmentIdsOf(old.state)) if (!live.has(id)) this.obsolete.add(id);
    this.onCommit(next);
  }

  /** Housekeeping after a commit: WAL files one generation late, old generations, dead files. */
  private async afterCommit(before: ManifestState): Promise<void> {
    const walDir = joinPath(this.root, WAL_DIR);
    let deleted = 0;
    for (const name of await this.fs.readdir(walDir)) {
      const m = /^wal-(\d{6,})\.log$/.exec(name);
      if (m !== null && Number(m[1]) < before.wal_start && Number(m[1]) < this.current.wal_start) {
        await this.fs.unlink(joinPath(walDir, name));
        deleted++;
      }
    }
    if (deleted > 0) await this.fs.syncDir(walDir);
    await this.store.prune(this.current.generation);
    await this.deleteObsoleteFiles();
  }

  /**
   * Deletes files of segments that no version anyone may use names any more: not the current
   * one, not a pinned one, not the previous generation (a rollback past one corrupt generation
   * finds every file it names, as it finds its WAL). Older generations that still name such a
   * file are removed from disk before it: a kept generation never names a missing file.
   */
  private async deleteObsoleteFiles(): Promise<void> {
    if (this.obsolete.size === 0) return;
    const referenced = this.liveSegmentIds();
    for (const id of segmentIdsOf(this.previous)) referenced.add(id);
    const dead = [...this.obsolete].filter((id) => !referenced.has(id));
    if (dead.length === 0) return;
    // Older generations that name a file about to go leave the disk first: every generation
    // kept for rollback finds every file it names.
    const deadIds = new Set(dead);
    const stale = this.kept.slice(2).filter((state) => segmentIdsOf(state).some((id) => deadIds.has(id)));
    if (stale.length > 0) {
      for (const state of stale) await this.store.remove(state.generation);
      await this.fs.syncDir(this.store.dir);
      this.kept = this.kept.filter((state) => !stale.includes(state));
    }
    const rawDir = joinPath(this.root, RAW_DIR);
    const rollupDir = joinPath(this.root, ROLLUP_DIR);
    for (const id of dead) {
      for (const path of [
        joinPath(rawDir, segmentFileName(id)),
        joinPath(rawDir, retractionFileName(id)),
        joinPath(rollupDir, rollupFileName(id)),
      ]) {
        try {
          await this.fs.unlink(path);
        } catch (err) {
          if (!isFsError(err, 'ENOENT')) throw err;
        }
      }
      this.obsolete.delete(id);
    }
    await this.fs.syncDir(rawDir);
    await this.fs.syncDir(rollupDir);
  }

  /** A rollback is allowed only if every file the generation names is still there. */
  private async checkRollbackFiles(skipped: readonly number[]): Promise<void> {
    const files = [
      ...[...this.current.raw_segments, ...this.current.quarantine].map((e) => ({
        id: e.id,
        path: joinPath(this.root, RAW_DIR, segmentFileName(e.id)),
      })),
      ...this.current.rollup_segments.map((e) => ({
        id: e.id,
        path: joinPath(this.root, ROLLUP_DIR, rollupFileName(e.id)),
      })),
    ];
    for (const e of files) {
      if (await this.fs.exists(e.path)) continue;
      throw new UsageDbError(
        'USAGEDB_ERR_MANIFEST_CORRUPT',
        `manifest generation(s) ${skipped.join(', ')} are corrupt, and rolling back to generation ` +
          `${this.current.generation} would lose events (its segment ${e.id} is gone); refusing to start`,
      );
    }
  }

  /**
   * At open: files in raw/ and rollup/ that no kept generation names were written by a flush or compaction
   * whose commit never happened. The allocator starts above them too, then they go.
   */
  private async removeUnreferencedFiles(): Promise<void> {
    const referenced = new Set<number>();
    for (const s of this.kept) for (const id of segmentIdsOf(s)) referenced.add(id);
    for (const dir of [RAW_DIR, ROLLUP_DIR]) {
      const path = joinPath(this.root, dir);
      let removed = 0;
      for (const name of await this.fs.readdir(path)) {
        const id = segmentIdOfFileName(name);
        if (id === null) continue;
        this.nextSegmentId = Math.max(this.nextSegmentId, id + 1);
        if (referenced.has(id)) continue;
        await this.fs.unlink(joinPath(path, name));
        removed++;
      }
      if (removed > 0) await this.fs.syncDir(path);
    }
  }

  /** Format 1 -> 2: inline retracted ids move to side files; then one format 2 generation. */
  private async upgrade(legacyRetracted: Map<number, string[]>): Promise<void> {
    for (const [segmentId, originals] of legacyRetracted) {
      await writeRetractionFile(this.fs, this.root, segmentId, originals);
    }
    if (legacyRetracted.size > 0) await this.fs.syncDir(joinPath(this.root, RAW_DIR));
    await this.commit((s) => s);
  }
}
