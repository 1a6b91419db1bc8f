/**
 * The flusher: freezes the current memtable when it is full or aged, and turns frozen
 * memtables into segments, oldest first, one manifest commit each. Applies backpressure, and
 * stops ingest with the flush's own error when flushes keep failing.
 *
 * Invariants:
 * - one flush loop runs at a time (`inFlight`);
 * - at most FROZEN_MEMTABLES_MAX memtables wait for their flush: memory stays bounded by
 *   (FROZEN_MEMTABLES_MAX + 1) × memtableBytesMax whatever the disk does;
 * - when that bound is reached and the last flush failed, ingest is refused with that error
 *   (nothing acknowledged) until a retry succeeds; retries happen at most every
 *   FLUSH_RETRY_INTERVAL_MS, on ingest and on tick, so the database recovers by itself;
 * - a frozen memtable leaves memory in the same synchronous step as its segment becomes
 *   visible (VersionSet.onCommit), so readers never see an event twice or miss one.
 */
import type { Clock } from '../storage/clock.ts';
import { flushColumns } from '../storage/flush.ts';
import type { FileSystem } from '../storage/fs/file-system.ts';
import { withIoErrors } from '../storage/fs/io-error.ts';
import type { RetractedOriginals } from '../storage/retractions.ts';
import type { SegmentStore } from '../storage/segment-store.ts';
import type { VersionSet } from '../storage/version-set.ts';
import type { UsageDbLogger } from '../util/logger.ts';
import type { Ingestor } from './ingestor.ts';
import type { Memtables } from './memtables.ts';
import { holdIdHashing } from '../storage/id-hashes.ts';

/** Frozen memtables that may wait for their flush before ingest waits (or fails). */
export const FROZEN_MEMTABLES_MAX = 2;
/** How often a failing flush is retried while ingest is held back. */
export const FLUSH_RETRY_INTERVAL_MS = 1_000;

export interface FlusherConfig {
  fs: FileSystem;
  root: string;
  clock: Clock;
  logger: UsageDbLogger;
  memtableBytesMax: number;
  flushIntervalMs: number;
  blockRows: number;
}

export class Flusher {
  private readonly config: FlusherConfig;
  private readonly memtables: Memtables;
  private readonly ingestor: Ingestor;
  private readonly versions: VersionSet;
  private readonly segments: SegmentStore;
  private readonly retracted: RetractedOriginals;
  private inFlight: Promise<void> | null = null;
  /** Resolved (and replaced) each time a frozen memtable leaves memory. */
  private progress = Promise.withResolvers<void>();
  private lastError: unknown = null;
  /** Bytes of segment files written by flushes (for write amplification). */
  bytesFlushed = 0;
  private lastAttemptMs = Number.NEGATIVE_INFINITY;

  constructor(init: {
    config: FlusherConfig;
    memtables: Memtables;
    ingestor: Ingestor;
    versions: VersionSet;
    segments: SegmentStore;
    retracted: RetractedOriginals;
  }) {
    this.config = init.config;
    this.memtables = init.memtables;
    this.ingestor = init.ingestor;
    this.versions = init.versions;
    this.segments = init.segments;
    this.retracted = init.retracted;
  }

  /** The error of the last flush attempt, null once one succeeds. */
  get failure(): unknown {
    return this.lastError;
  }

  /**
   * Backpressure before an ingest call: waits while FROZEN_MEMTABLES_MAX memtables wait for a
   * running flush (for the oldest only: the loop also takes memtables frozen meanwhile). When no
   * flush runs because the last one failed, retries it (at most every FLUSH_RETRY_INTERVAL_MS)
   * and throws its error if it fails again: the memory bound holds, nothing is acknowledged.
   */
  async waitForRoom(): Promise<void> {
    while (this.memtables.frozen.length >= FROZEN_MEMTABLES_MAX || this.currentOverdue()) {
      if (this.inFlight !== null) {
        await Promise.race([this.progress.promise, this.inFlight.catch(() => undefined)]);
        continue;
      }
      if (
        this.lastError !== null &&
        this.config.clock.nowMs() - this.lastAttemptMs < FLUSH_RETRY_INTERVAL_MS
      ) {
        throw this.lastError;
      }
      await this.flush();
    }
  }

  /** A memtable twice its limit: freezing it failed (e.g. the WAL could not rotate). */
  private currentOverdue(): boolean {
    return this.lastError !== null && this.memtables.current.approxBytes >= 2 * this.config.memtableBytesMax;
  }

  /** After an ingest call: starts a flush in the background when the memtable is full. */
  maybeStart(): void {
    if (this.memtables.current.approxBytes < this.config.memtableBytesMax) return;
    // Errors are kept in lastError and surface through waitForRoom and flush().
    this.run({ onlyFull: true }).catch(() => undefined);
  }

  /** Runs what is due: an aged memtable, or a retry of a failed flush (no new freeze otherwise). */
  async tick(): Promise<void> {
    const { current, currentCreatedMs, frozen } = this.memtables;
    const nowMs = this.config.clock.nowMs();
    const aged = current.rowCount > 0 && nowMs - currentCreatedMs >= this.config.flushIntervalMs;
    if (aged) await this.run();
    else if (frozen.length > 0 && this.inFlight === null) await this.flushFrozen();
  }

  /** Freezes the current memtable and flushes every frozen one. */
  flush(): Promise<void> {
    return this.run();
  }

  /**
   * Freezes and flushes everything acknowledged so far, for a caller that already holds the
   * ingest mutex (a period close): when it returns, every event admitted before is in a
   * committed segment. The flush loop itself never takes the mutex, so this cannot deadlock.
   */
  async flushHoldingMutex(): Promise<void> {
    await this.attempt(() =>
      withIoErrors('cannot freeze the memtable', async () => {
        await this.ingestor.freeze(this.config.clock.nowMs());
      }),
    );
    await this.flushFrozen();
  }

  /**
   * `onlyFull`: freeze only a memtable still over its size limit once the mutex is ours.
   * Concurrent ingest calls all see the same full memtable; without this, the later ones froze
   * its successor after a few rows, and wrote a tiny segment per call.
   */
  private async run(options: { onlyFull?: boolean } = {}): Promise<void> {
    await this.attempt(() =>
      withIoErrors('cannot freeze the memtable', () =>
        this.ingestor.mutex.run(async () => {
          if (options.onlyFull && this.memtables.current.approxBytes < this.config.memtableBytesMax) return;
          await this.ingestor.freeze(this.config.clock.nowMs());
        }),
      ),
    );
    await this.flushFrozen();
  }

  /** Flushes every frozen memtable (after the loop already running, if any). */
  private async flushFrozen(): Promise<void> {
    while (this.inFlight !== null) await this.inFlight.catch(() => undefined);
    if (this.memtables.frozen.length === 0) return;
    this.inFlight = this.attempt(() =>
      withIoErrors('cannot flush the memtable', () => this.flushLoop()),
    ).finally(() => {
      this.inFlight = null;
    });
    await this.inFlight;
  }

  /** Runs one attempt, recording its outcome for backpressure and retries. */
  private async attempt(work: () => Promise<void>): Promise<void> {
    this.lastAttemptMs = this.config.clock.nowMs();
    try {
      await work();
    } catch (err) {
      if (this.lastError === null) this.config.logger.warn({ err: String(err) }, 'flush failed; retrying');
      this.lastError = err;
      throw err;
    }
    if (this.lastError !== null) this.config.logger.info({}, 'flush recovered');
    this.lastError = null;
  }

  /**
   * Grows or writes the database id filter when due, in the background (one at a time; a
   * failure is logged and retried after a later flush: the filter in memory stays complete).
   */
  private idFilterUpkeep(): void {
    const filter = this.segments.idFilter;
    if (!filter.wantsGrowth && !filter.wantsWrite) return;
    filter
      .maintain(
        () => {
          const v = this.versions.pin();
          // A rebuild hashes every file's ids: one worker thread for all of them.
          const held = holdIdHashing();
          return {
            segments: v.state.raw_segments,
            release: () => {
              held();
              v.release();
            },
          };
        },
        (id) => this.segments.idHashes(id),
        () => this.versions.liveSegmentIds(),
      )
      .catch((err: unknown) => this.config.logger.warn({ err: String(err) }, 'id filter upkeep failed'));
  }

  private async flushLoop(): Promise<void> {
    const { fs, root, clock, blockRows } = this.config;
    while (this.memtables.frozen.length > 0) {
      const job = this.memtables.frozen[0];
      const segmentId = this.versions.allocateSegmentId();
      const { segment, payloadHashes, eventIds, idHashes } = await flushColumns(job.memtable.columns(), {
        fs,
        root,
        clock,
        bucketCount: this.versions.current.bucket_count,
        segmentId,
        blockRows,
      });
      this.bytesFlushed += segment.size_bytes;
      await this.segments.prepare(segment);
      try {
        if (segment.retractions > 0) await this.retracted.addSegment(segment.id, segment.retractions);
        await this.versions.commit(
          (s) => ({ ...s, wal_start: job.lastWalNumber + 1, raw_segments: [...s.raw_segments, segment] }),
          () => {
            // The same synchronous step as the segment becoming visible: the database id
            // filter gets its ids now (not earlier: a filter rebuild pins versions, and must
            // see either the segment in the version it pinned or this add).
            this.segments.idFilter.addSegment(segment.id, idHashes);
            this.memtables.frozen.shift();
            this.progress.resolve();
            this.progress = Promise.withResolvers<void>();
            // Recently flushed ids stay in memory, so their retries skip the segment lookup.
            this.memtables.recent.markFlushed(job.memtable, { payloadHashes, eventIds }, clock.nowMs());
          },
        );
      } catch (err) {
        this.segments.discard(segment.id);
        throw err;
      }
      this.idFilterUpkeep();
    }
  }
}
