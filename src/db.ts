/**
 * UsageDb: the embedded database, the library API that the HTTP server and the CLI wrap
 * (docs/architecture.md). A façade: the work is done by named parts, each with its invariants
 * in its own file:
 * - admission chain (src/ingest/admission.ts): validate → correction rules → idempotency;
 * - ingestor (src/ingest/ingestor.ts): ingest mutex, WAL, durability policy, WAL repair;
 * - flusher (src/ingest/flusher.ts): freeze, flush, backpressure, flush failures;
 * - version set (src/storage/version-set.ts): manifest commits, segment ids, pinned versions,
 *   file deletion;
 * - query engine (src/query) and export (src/export) read pinned snapshots;
 * - billing (src/billing): periods, explain, event lookup, the rejection log.
 *
 * Invariants:
 * - every error that leaves a public method is a UsageDbError with a catalogue code;
 * - every read works on a pinned version, released when the call ends.
 */
import { ClosedPeriods } from './billing/closed-periods.ts';
import { type Explanation, type ExplainParams, explain } from './billing/explain.ts';
import { type EventLookup, lookupEvent } from './billing/lookup.ts';
import { type ClosedPeriodView, type OpenPeriodView, type PeriodView, Periods } from './billing/periods.ts';
import {
  DEFAULT_REJECTION_LOG_AGE_MAX_MS,
  DEFAULT_REJECTION_LOG_BYTES_MAX,
  RejectionLog,
  type RejectionLogReport,
  type RejectionsPage,
} from './billing/rejection-log.ts';
import { type CompactionStats, Compactor } from './compact/compactor.ts';
import type { MergeResult } from './compact/merge.ts';
import { UsageDbError } from './errors.ts';
import {
  checkExportRequest,
  type ExportParquetOptions,
  type ExportParquetResult,
  exportParquet,
} from './export/parquet.ts';
import { Admission, emptyIngestResult, type IngestResult, rejectEvent } from './ingest/admission.ts';
import { StoredEventFinder } from './ingest/dedupe.ts';
import { IdFilter } from './storage/id-filter.ts';
import { Flusher } from './ingest/flusher.ts';
import { type Durability, Ingestor } from './ingest/ingestor.ts';
import { Memtables } from './ingest/memtables.ts';
import { DEFAULT_HOT_ID_TTL_MS, DEFAULT_HOT_IDS_MAX, RecentIds } from './ingest/recent-ids.ts';
import { loadManifest, removeTmpFiles, replayWal, type TornTailReport } from './ingest/recovery.ts';
import { walFileName, WalWriter } from './ingest/wal.ts';
import { DEFAULT_FUTURE_SKEW_MS, type PendingEvent, validateEvent } from './model/validate.ts';
import { scanBatchBody, ValidatedBatch } from './model/batch-scan.ts';
import {
  createQueryEngine,
  DEFAULT_QUERY_CACHE_BYTES,
  type EventsPage,
  type EventsParams,
  type QueryEngine,
  type QueryResult,
  type SqlResult,
} from './query/index.ts';
import { type Clock, systemClock } from './storage/clock.ts';
import { dirName, type FileSystem, joinPath } from './storage/fs/file-system.ts';
import { ioError } from './storage/fs/io-error.ts';
import { NodeFileSystem } from './storage/fs/node-file-system.ts';
import { type CheckReport, checkFiles, inspectSegment, type SegmentInspection } from './storage/check.ts';
import { MANIFEST_DIR, RAW_DIR, ROLLUP_DIR, TMP_DIR, WAL_DIR } from './storage/layout.ts';
import { DirectoryLock } from './storage/lock.ts';
import { parseTimeInput } from './query/time.ts';
import { MANIFEST_FORMAT_VERSION, type ManifestState } from './storage/manifest.ts';
import { DEFAULT_BUCKET_COUNT } from './storage/partition.ts';
import { RetractedOriginals } from './storage/retractions.ts';
import { DEFAULT_SEGMENT_CACHE_BYTES, SegmentStore } from './storage/segment-store.ts';
import type { ReadSnapshot } from './storage/snapshot.ts';
import { VersionSet } from './storage/version-set.ts';
import { stderrLogger, type UsageDbLogger } from './util/logger.ts';
import { parseRange } from './query/time.ts';
import {
  Roller,
  type RollupResult,
  type RollupStats,
  rollupWatermark,
  uncoveredSegments,
} from './rollup/roller.ts';
import { DEFAULT_ROLLUP_CACHE_BYTES, RollupStore } from './rollup/rollup-store.ts';
import type { RollupRows } from './rollup/rollup-rows.ts';
import { type VerifyParams, type VerifyResult, verifyRollups } from './rollup/verify.ts';
import { holdIdHashing } from './storage/id-hashes.ts';

export type { Durability } from './ingest/ingestor.ts';
export type { IngestError, IngestResult, IngestStatus } from './ingest/admission.ts';
export type { ReadSnapshot } from './storage/snapshot.ts';
export type { MergeResult } from './compact/merge.ts';
export type { CheckReport, SegmentInspection } from './storage/check.ts';
export type { RollupResult, RollupStats } from './rollup/roller.ts';
export type { VerifyParams, VerifyResult, VerifyDrift } from './rollup/verify.ts';
export type { ClosedPeriodView, OpenPeriodView, PeriodView } from './billing/periods.ts';
export type { Explanation, ExplainParams } from './billing/explain.ts';
export type { EventLookup } from './billing/lookup.ts';
export type { RejectionLogReport, RejectionsPage } from './billing/rejection-log.ts';

/** `check()`: the files, and the rejection log's state. */
export interface CheckResult extends CheckReport {
  rejection_log: RejectionLogReport;
}

/** `db.rejections()` parameters: times as RFC 3339 or ms, half-open. */
export interface RejectionsParams {
  account_id?: string;
  from?: string | number;
  to?: string | number;
  limit?: number | string;
  cursor?: string | null;
}

export interface UsageDbLimits {
  /** Latest accepted timestamp_ms is now + this. Default 24 h. */
  futureSkewMs: number;
  /** Events per ingest call. Default 10,000. */
  batchEventsMax: number;
  /** Memtable size that triggers a flush. Default 64 MiB. */
  memtableBytesMax: number;
  /** Memtable age that triggers a flush on `tick()`. Default 10 min. */
  flushIntervalMs: number;
  /** Hot dedupe window: flushed ids kept in memory, and for how long. Default 1M ids, 6 h. */
  hotIdsMax: number;
  hotIdTtlMs: number;
  /** Memory for whole segment files the day-partitioned export reads (verified bytes). Default 128 MiB. */
  segmentCacheBytes: number;
  /** Rows per block inside a segment. Default 4096. */
  blockRows: number;
  /** Memory for decoded column chunks kept by the query engine. Default 128 MiB. */
  queryCacheBytes: number;
  /** Memory for decoded rollup blocks. Default 64 MiB. */
  rollupCacheBytes: number;
  /** Rejection log on disk: oldest entries dropped past this size. Default 16 MiB. */
  rejectionLogBytesMax: number;
  /** Rejection log entries older than this are dropped. Default 90 days. */
  rejectionLogAgeMaxMs: number;
}

export const DEFAULT_LIMITS: UsageDbLimits = {
  futureSkewMs: DEFAULT_FUTURE_SKEW_MS,
  batchEventsMax: 10_000,
  memtableBytesMax: 64 * 1024 * 1024,
  flushIntervalMs: 10 * 60 * 1000,
  hotIdsMax: DEFAULT_HOT_IDS_MAX,
  hotIdTtlMs: DEFAULT_HOT_ID_TTL_MS,
  segmentCacheBytes: DEFAULT_SEGMENT_CACHE_BYTES,
  blockRows: 4096,
  queryCacheBytes: DEFAULT_QUERY_CACHE_BYTES,
  rollupCacheBytes: DEFAULT_ROLLUP_CACHE_BYTES,
  rejectionLogBytesMax: DEFAULT_REJECTION_LOG_BYTES_MAX,
  rejectionLogAgeMaxMs: DEFAULT_REJECTION_LOG_AGE_MAX_MS,
};

export interface UsageDbStats {
  segments: number;
  /** Segments of conflicting copies set aside by compaction (never counted). */
  quarantineSegments: number;
  memtableRows: number;
  /** Estimated heap held by the current and frozen memtables. */
  memtableBytes: number;
  frozenMemtables: number;
  /** WAL fsyncs since open: how many, their total and longest time. */
  walFsync: { count: number; totalMs: number; maxMs: number };
  manifestGeneration: number;
  walFile: number;
  /** The error of the last flush attempt while flushes keep failing, else null. */
  flushError: string | null;
  /** Segment bytes written by flushes since open. */
  flushedBytes: number;
  /** Merges since open; write amplification = (flushedBytes + compaction.bytesWritten) / flushedBytes. */
  compaction: CompactionStats;
  /** Rollup segments live, builds since open, and the hour up to which everything flushed is rolled up. */
  rollups: RollupStats & { segments: number; uncoveredRawSegments: number; watermarkMs: number | null };
  /** What the last open dropped: a torn WAL tail holds no acknowledged event, but it is reported. */
  recovery: { walTornTail: TornTailReport };
}

export interface UsageDbOptions {
  dir: string;
  durability?: Durability;
  /** Fixed when the database is created; ignored (the stored value wins) afterwards. */
  bucketCount?: number;
  limits?: Partial<UsageDbLimits>;
  fs?: FileSystem;
  clock?: Clock;
  /** Where recovery and flush warnings go (pino-shaped). Default: JSON lines on stderr. */
  logger?: UsageDbLogger;
}

/** Test hooks: reachable through src/testing.ts, never from the package entry. */
export const ABANDON = Symbol('usagedb.abandonForCrashTest');
export const READ_SNAPSHOT = Symbol('usagedb.readSnapshot');
export const REPLACE_ROLLUP = Symbol('usagedb.replaceRollupForTest');
export const SEGMENT_STORE = Symbol('usagedb.segmentStore');

interface Parts {
  options: UsageDbOptions;
  limits: UsageDbLimits;
  fs: FileSystem;
  clock: Clock;
  lock: DirectoryLock;
  versions: VersionSet;
  segments: SegmentStore;
  memtables: Memtables;
  ingestor: Ingestor;
  flusher: Flusher;
  retracted: RetractedOriginals;
  rollupStore: RollupStore;
  finder: StoredEventFinder;
  logger: UsageDbLogger;
  closedPeriods: ClosedPeriods;
  rejectionLog: RejectionLog;
  tornTail: TornTailReport;
}

export class UsageDb {
  readonly dir: string;
  readonly durability: Durability;
  readonly limits: UsageDbLimits;
  private readonly fs: FileSystem;
  private readonly clock: Clock;
  private readonly lock: DirectoryLock;
  private readonly versions: VersionSet;
  private readonly segments: SegmentStore;
  private readonly memtables: Memtables;
  private readonly ingestor: Ingestor;
  private readonly flusher: Flusher;
  private readonly compactor: Compactor;
  private readonly roller: Roller;
  private readonly rollupStore: RollupStore;
  private readonly queryEngine: QueryEngine;
  private readonly tornTail: TornTailReport;
  private readonly retracted: RetractedOriginals;
  private readonly finder: StoredEventFinder;
  private readonly rejectionLog: RejectionLog;
  private readonly logger: UsageDbLogger;
  private readonly billingPeriods: Periods;
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Batches scanBatchBody made here: validated under this database's limits. */
  private readonly scannedBatches = new WeakSet<ValidatedBatch>();

  /** Billing periods per account and UTC month (docs/billing.md): same shapes as the HTTP API. */
  readonly periods: {
    get(accountId: string, period: string): Promise<PeriodView>;
    close(accountId: string, period: string): Promise<ClosedPeriodView>;
    reopen(accountId: string, period: string): Promise<OpenPeriodView>;
  };

  private constructor(parts: Parts) {
    this.dir = parts.options.dir;
    this.durability = parts.options.durability ?? 'balanced';
    this.limits = parts.limits;
    this.fs = parts.fs;
    this.clock = parts.clock;
    this.lock = parts.lock;
    this.versions = parts.versions;
    this.segments = parts.segments;
    this.memtables = parts.memtables;
    this.ingestor = parts.ingestor;
    this.flusher = parts.flusher;
    this.tornTail = parts.tornTail;
    this.retracted = parts.retracted;
    this.finder = parts.finder;
    this.rejectionLog = parts.rejectionLog;
    this.logger = parts.logger;
    this.queryEngine = createQueryEngine({ cacheBytes: this.limits.queryCacheBytes });
    this.rollupStore = parts.rollupStore;
    this.roller = new Roller({ fs: parts.fs, root: this.dir, versions: parts.versions });
    this.billingPeriods = new Periods({
      clock: parts.clock,
      versions: parts.versions,
      engine: this.queryEngine,
      pinSnapshot: () => this.pinSnapshot(),
      closed: parts.closedPeriods,
      withIngestDrained: (work) =>
        this.ingestor.mutex.run(async () => {
          if (this.ingestor.closed) throw new UsageDbError('USAGEDB_ERR_CLOSED', 'the database is closed');
          await this.flusher.flushHoldingMutex();
          return work();
        }),
      buildRollups: async () => {
        await this.roller.rollupAll();
      },
    });
    this.periods = {
      get: (accountId, period) => this.billing('cannot read the period', (p) => p.get(accountId, period)),
      close: (accountId, period) =>
        this.billing('cannot close the period', (p) => p.close(accountId, period)),
      reopen: (accountId, period) =>
        this.billing('cannot reopen the period', (p) => p.reopen(accountId, period)),
    };
    this.compactor = new Compactor({
      fs: parts.fs,
      root: this.dir,
      clock: parts.clock,
      blockRows: this.limits.blockRows,
      versions: parts.versions,
      segments: parts.segments,
      retracted: parts.retracted,
      rollups: (raw, bytes) => this.roller.build(raw, bytes),
      discardRollups: (entries) => this.roller.removeFiles(entries),
    });
  }

  /** Opens (creating if needed) the database in `options.dir`, recovering from any crash. */
  static async open(options: UsageDbOptions): Promise<UsageDb> {
    const durability = options.durability ?? 'balanced';
    if (!['strict', 'balanced', 'fast'].includes(durability)) {
      throw new UsageDbError(
        'USAGEDB_ERR_INVALID_ARGUMENT',
        `durability must be strict, balanced or fast, got ${durability}`,
      );
    }
    return publicErrors(`cannot open ${options.dir}`, () => UsageDb.openParts(options));
  }

  private static async openParts(options: UsageDbOptions): Promise<UsageDb> {
    const fs = options.fs ?? new NodeFileSystem();
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? stderrLogger;
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    const root = options.dir;
    await fs.mkdirp(root);
    await fs.syncDir(dirName(root));
    const lock = await DirectoryLock.acquire(fs, root, clock.nowMs());
    try {
      for (const d of [MANIFEST_DIR, WAL_DIR, RAW_DIR, ROLLUP_DIR, TMP_DIR])
        await fs.mkdirp(joinPath(root, d));
      await fs.syncDir(root);
      await removeTmpFiles(fs, root);
      const loaded = await loadManifest(fs, root);
      const walDir = joinPath(root, WAL_DIR);
      const create = () => initialManifest(options, clock);
      // A new database writes its first WAL file before the manifest that names it.
      if (loaded === null && !(await fs.exists(joinPath(walDir, walFileName(1))))) {
        await (await WalWriter.create(fs, walDir, 1)).close();
      }
      const versions = await VersionSet.open(fs, root, joinPath(root, MANIFEST_DIR), loaded, create);
      const manifest = versions.current;
      const segments = new SegmentStore(fs, root, manifest.bucket_count, limits.segmentCacheBytes);
      const retracted = new RetractedOriginals(fs, root);
      for (const entry of manifest.raw_segments) {
        await segments.prepare(entry);
        if (entry.retractions > 0) await retracted.addSegment(entry.id, entry.retractions);
      }
      // The database id filter: its newest file plus the ids of any segment the file lacks.
      const heldIdHashing = holdIdHashing();
      try {
        segments.setIdFilter(
          await IdFilter.open(fs, root, manifest.raw_segments, (id) => segments.idHashes(id)),
        );
      } finally {
        heldIdHashing();
      }
      segments.setEntries(manifest.raw_segments);
      const rollupStore = new RollupStore(fs, root, limits.rollupCacheBytes);
      versions.onCommit = (state) => {
        const live = versions.liveSegmentIds();
        segments.setEntries(state.raw_segments, live);
        rollupStore.retain(live);
      };
      const replayed = await replayWal(fs, root, manifest.wal_start);
      const wal = await WalWriter.reopen(fs, walDir, replayed.last.fileNumber, replayed.last.validBytes);
      const memtables = new Memtables(new RecentIds(limits.hotIdsMax, limits.hotIdTtlMs), clock.nowMs());
      const finder = new StoredEventFinder(segments);
      const closedPeriods = new ClosedPeriods(manifest.periods);
      const admission = new Admission(memtables, finder, retracted, () => versions.pin(), closedPeriods);
      const durability = options.durability ?? 'balanced';
      const ingestor = new Ingestor({ fs, walDir, durability, memtables, admission, wal });
      ingestor.restore(replayed.events);
      const flusher = new Flusher({
        config: { fs, root, clock, logger, ...limits },
        memtables,
        ingestor,
        versions,
        segments,
        retracted,
      });
      const rejectionLog = await RejectionLog.open({
        fs,
        root,
        bytesMax: limits.rejectionLogBytesMax,
        ageMaxMs: limits.rejectionLogAgeMaxMs,
        sync: durability !== 'fast',
        nowMs: () => clock.nowMs(),
      });
      if (replayed.tornTail.bytes > 0) {
        logger.warn(
          { dir: root, wal_file: replayed.last.fileNumber, ...replayed.tornTail },
          'dropped a torn WAL tail at open (a write cut short by a crash; it held no acknowledged event)',
        );
      }
      return new UsageDb({
        options,
        limits,
        fs,
        clock,
        lock,
        versions,
        segments,
        memtables,
        ingestor,
        flusher,
        retracted,
        rollupStore,
        finder,
        logger,
        closedPeriods,
        rejectionLog,
        tornTail: replayed.tornTail,
      });
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw err;
    }
  }

  get bucketCount(): number {
    return this.versions.current.bucket_count;
  }

  private assertOpen(): void {
    if (this.closed) throw new UsageDbError('USAGEDB_ERR_CLOSED', 'the database is closed');
  }

  // ---------------------------------------------------------------- ingest

  /**
   * Ingests a batch of wire events, or a batch body `scanBatchBody` already validated. Bad
   * events are rejected one by one, with a reason.
   */
  async ingest(events: readonly unknown[] | ValidatedBatch): Promise<IngestResult> {
    this.assertOpen();
    const scanned = events instanceof ValidatedBatch;
    if (scanned && !this.scannedBatches.has(events)) {
      throw new UsageDbError(
        'USAGEDB_ERR_INVALID_ARGUMENT',
        "ingest takes a ValidatedBatch only from this database's scanBatchBody",
      );
    }
    if (!scanned && !Array.isArray(events))
      throw new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', 'ingest expects an array of events');
    const count = scanned ? events.events.length : events.length;
    if (count > this.limits.batchEventsMax) {
      throw new UsageDbError(
        'USAGEDB_ERR_BATCH_TOO_LARGE',
        `batch of ${count} events exceeds the limit of ${this.limits.batchEventsMax}`,
      );
    }
    return publicErrors('cannot ingest', async () => {
      const result = emptyIngestResult();
      let nowMs: number;
      let valid: { index: number; event: PendingEvent }[];
      let sent: (index: number) => unknown;
      if (scanned) {
        nowMs = events.nowMs;
        valid = events.events.map((event, index) => ({ index, event }));
        sent = (index) => events.rawEvent(index);
      } else {
        nowMs = this.clock.nowMs();
        valid = [];
        for (let index = 0; index < events.length; index++) {
          const v = validateEvent(events[index], nowMs, this.limits);
          if (v.ok) valid.push({ index, event: v.event });
          else rejectEvent(result, index, v.event_id, v.reason, v.message);
        }
        sent = (index) => events[index];
      }
      await this.flusher.waitForRoom();
      // The refusals are final once classified: their log append runs beside the WAL fsync.
      await this.ingestor.ingest(valid, result, nowMs, () => this.logRejections(sent, result, nowMs));
      this.flusher.maybeStart();
      return result;
    });
  }

  /**
   * The events of a JSON batch body (`{"events":[...]}`) validated in one pass over its bytes,
   * for `ingest`; undefined when the body is outside that fast path (then parse it and pass
   * its events). Either way the answer of `ingest` is the same (model/batch-scan.ts).
   */
  scanBatchBody(body: Uint8Array): ValidatedBatch | undefined {
    // A closed database answers at ingest, as for any other batch.
    if (this.closed) return undefined;
    const batch = scanBatchBody(body, this.clock.nowMs(), this.limits);
    if (batch !== undefined) this.scannedBatches.add(batch);
    return batch;
  }

  /**
   * Appends the call's rejected events and conflicting copies to the rejection log. A failed
   * append does not undo the call (its accepted events are acknowledged): it is logged and
   * counted (`check().rejection_log.write_failures`).
   */
  private async logRejections(
    sent: (index: number) => unknown,
    result: IngestResult,
    nowMs: number,
  ): Promise<void> {
    if (result.errors.length === 0) return;
    const inputs = result.errors.map((e) => ({
      index: e.index,
      event_id: e.event_id,
      status: e.status,
      reason: e.reason,
      event: sent(e.index),
    }));
    await this.rejectionLog.append(nowMs, inputs).catch((err: unknown) => {
      this.logger.warn({ err: String(err) }, 'cannot append to the rejection log');
    });
  }

  // ---------------------------------------------------------------- billing

  private async billing<T>(what: string, work: (periods: Periods) => Promise<T>): Promise<T> {
    this.assertOpen();
    return publicErrors(what, () => work(this.billingPeriods));
  }

  /** Lines of an account's range with provenance and the corrections that moved them. */
  async explain(params: ExplainParams): Promise<Explanation> {
    return this.read('explain failed', (snapshot) => explain(this.queryEngine, snapshot, params));
  }

  /** Where an event is stored, or why it was not (GET /v1/events/{event_id}). */
  async lookupEvent(eventId: string): Promise<EventLookup> {
    this.assertOpen();
    return publicErrors('lookup failed', () =>
      lookupEvent(
        {
          memtables: this.memtables,
          finder: this.finder,
          retracted: this.retracted,
          versions: this.versions,
          engine: this.queryEngine,
          pinSnapshot: () => this.pinSnapshot(),
          log: this.rejectionLog,
        },
        eventId,
      ),
    );
  }

  /** One page of the rejection log, oldest first (GET /v1/accounts/{id}/rejections). */
  async rejections(params: RejectionsParams = {}): Promise<RejectionsPage> {
    this.assertOpen();
    return publicErrors('cannot read the rejection log', async () => {
      const from = params.from === undefined ? undefined : parseTimeInput(params.from, 'rejections.from');
      const to = params.to === undefined ? undefined : parseTimeInput(params.to, 'rejections.to');
      const limit =
        typeof params.limit === 'string' && /^\d{1,9}$/.test(params.limit)
          ? Number(params.limit)
          : params.limit;
      if (limit !== undefined && typeof limit !== 'number')
        throw new UsageDbError('USAGEDB_ERR_INVALID_QUERY', 'rejections.limit must be an integer');
      return this.rejectionLog.page({
        account_id: params.account_id,
        from,
        to,
        limit,
        cursor: params.cursor,
      });
    });
  }

  // ---------------------------------------------------------------- background work

  /**
   * Runs background work that is due: an age-based flush, a retry of a failed flush, the hot
   * window's expiry, one merge the compaction policy asks for or else one raw segment's rollups. Never cuts the current memtable because an older one is being flushed.
   */
  async tick(): Promise<void> {
    this.assertOpen();
    this.memtables.recent.evict(this.clock.nowMs());
    await publicErrors('background work failed', async () => {
      await this.flusher.tick();
      // A merge builds its output's rollups itself; rollups of flush files wait for a tick
      // without a merge, so files about to be merged are rarely rolled up twice.
      if ((await this.compactor.step()) === null) await this.roller.step();
    });
  }

  /**
   * Builds rollups now for every flushed raw segment no rollup covers yet (events still in the
   * memtable are not flushed by this: `flush()` first for those). `tick()` builds them one
   * segment at a time in the background. Returns what it built and the rollup watermark.
   */
  async rollup(): Promise<RollupResult> {
    this.assertOpen();
    return publicErrors('cannot build rollups', () => this.roller.rollupAll());
  }

  /** Drops and rebuilds from raw events the rollups of every raw segment with events in [from, to). */
  async rebuildRollups(from: unknown, to: unknown): Promise<RollupResult> {
    this.assertOpen();
    const range = parseRange(from, to, 'rebuildRollups');
    return publicErrors('cannot rebuild rollups', () => this.roller.rebuild(range.fromMs, range.toMs));
  }

  /**
   * Compares, on one snapshot, the raw path and the rollup path per billing line (and account):
   * `{ ok, drift }`, where 0 drift is the only healthy answer.
   */
  async verify(params: VerifyParams): Promise<VerifyResult> {
    return this.read('verify failed', (snapshot) => verifyRollups(this.queryEngine, snapshot, params));
  }

  /**
   * Writes every acknowledged event to segments now, and commits a checkpoint so that no WAL
   * file the new segments cover is left behind. In fast mode, throws USAGEDB_ERR_WAL_WRITE when
   * a failed background fsync dropped acknowledged events since the last flush (they must be
   * resent), after flushing the rest.
   */
  async flush(): Promise<void> {
    this.assertOpen();
    await publicErrors('cannot flush', async () => {
      await this.flusher.flush();
      await this.versions.checkpoint();
      const lost = this.ingestor.takeLostAcknowledged();
      if (lost > 0) {
        throw new UsageDbError(
          'USAGEDB_ERR_WAL_WRITE',
          `${lost} events acknowledged in fast mode were lost when a background WAL fsync failed; ` +
            'resend them (fast mode relies on upstream retries)',
        );
      }
    });
  }

  /**
   * Compacts now: merges every raw segment into one sorted segment (exact duplicates dropped,
   * conflicting copies quarantined), replacing them in one manifest commit. Returns null when
   * there is nothing to merge. `tick()` runs the policy's smaller merges in the background.
   */
  async compact(): Promise<MergeResult | null> {
    this.assertOpen();
    return publicErrors('cannot compact', async () => {
      const merged = await this.compactor.compactAll();
      // The outputs are covered by the filter in memory; written now, a reopen need not rescan them.
      if (merged !== null) await this.persistIdFilter();
      return merged;
    });
  }

  /**
   * Checks the files the current version names: each exists with its recorded size; with
   * `deep`, every byte is verified (whole-file and per-chunk checksums, full decode). Lists
   * every segment id and the quarantine. Reads only.
   */
  async check(options: { deep?: boolean } = {}): Promise<CheckResult> {
    this.assertOpen();
    const version = this.versions.pin();
    try {
      const report = await publicErrors('check failed', () =>
        checkFiles(this.fs, this.dir, version.state, options.deep === true),
      );
      return { ...report, rejection_log: this.rejectionLog.report() };
    } finally {
      version.release();
    }
  }

  /** One segment's footer (partitions, blocks, bytes per column, id filter), or NOT_FOUND. */
  async inspectSegment(segmentId: number): Promise<SegmentInspection> {
    this.assertOpen();
    const version = this.versions.pin();
    try {
      const found = await publicErrors('cannot inspect the segment', () =>
        inspectSegment(this.fs, this.dir, version.state, segmentId),
      );
      if (found === null) {
        throw new UsageDbError(
          'USAGEDB_ERR_NOT_FOUND',
          `no live segment ${segmentId} (see check for the list)`,
        );
      }
      return found;
    } finally {
      version.release();
    }
  }

  // ---------------------------------------------------------------- reads

  /** The JSON query (`POST /v1/query/json`): `{ rows, stats }`. */
  async query(input: unknown): Promise<QueryResult> {
    return this.read('query failed', (snapshot) => this.queryEngine.queryJson(snapshot, input));
  }

  /** The strict SQL subset (`POST /v1/query/sql`): `{ columns, rows, stats }`. */
  async sql(text: string): Promise<SqlResult> {
    return this.read('query failed', (snapshot) => this.queryEngine.runSql(snapshot, text));
  }

  /** One page of the raw audit of one account (`/usage/events`): `{ events, next_cursor }`. */
  async events(params: unknown): Promise<EventsPage> {
    return this.read('audit listing failed', (snapshot) =>
      this.queryEngine.listEvents(snapshot, params as EventsParams),
    );
  }

  /**
   * Exports to Parquet (docs/export.md). Flushes first, so the export holds every event
   * acknowledged before the call; events acknowledged while it runs are not in it.
   */
  async exportParquet(outPath: string, options: ExportParquetOptions = {}): Promise<ExportParquetResult> {
    this.assertOpen();
    // A request the export would refuse is refused before the flush it would have cost.
    await publicErrors('export failed', () => checkExportRequest(outPath, options));
    await this.flush();
    return this.read('export failed', (snapshot) => exportParquet(snapshot, outPath, options));
  }

  /** Runs `work` on a pinned snapshot, released when it ends. */
  private async read<T>(what: string, work: (snapshot: ReadSnapshot) => Promise<T>): Promise<T> {
    this.assertOpen();
    const snapshot = this.pinSnapshot();
    try {
      return await publicErrors(what, () => work(snapshot));
    } finally {
      snapshot.release();
    }
  }

  /** A consistent point-in-time view: one pinned version and the memtable rows of that instant. */
  private pinSnapshot(): ReadSnapshot {
    this.assertOpen();
    const version = this.versions.pin();
    return {
      bucketCount: version.state.bucket_count,
      segments: this.segments.slicesOf(version.state.raw_segments),
      store: this.segments,
      memtables: this.memtables.snapshots(),
      rollups: { entries: version.state.rollup_segments, store: this.rollupStore },
      release: version.release,
    };
  }

  /** For tests and tools (src/testing.ts): a pinned snapshot the caller releases. */
  [READ_SNAPSHOT](): ReadSnapshot {
    return this.pinSnapshot();
  }

  /** For tests (src/testing.ts): rewrites a rollup segment with wrong numbers and valid checksums. */
  [REPLACE_ROLLUP](id: number, mutate: (rows: RollupRows) => void): Promise<void> {
    return this.roller.replaceForTest(id, mutate);
  }

  /** Counts for operators (metrics) and tests. */
  stats(): UsageDbStats {
    const failure = this.flusher.failure;
    return {
      segments: this.segments.segmentCount,
      quarantineSegments: this.versions.current.quarantine.length,
      memtableRows: this.memtables.current.rowCount,
      memtableBytes: this.memtables.approxBytes,
      walFsync: {
        count: this.ingestor.fsyncs.count,
        totalMs: this.ingestor.fsyncs.totalMs,
        maxMs: this.ingestor.fsyncs.maxMs,
      },
      frozenMemtables: this.memtables.frozen.length,
      manifestGeneration: this.versions.current.generation,
      walFile: this.ingestor.walFileNumber,
      flushError: failure === null ? null : failure instanceof Error ? failure.message : String(failure),
      flushedBytes: this.flusher.bytesFlushed,
      compaction: this.compactor.stats,
      rollups: {
        ...this.roller.stats,
        segments: this.versions.current.rollup_segments.length,
        uncoveredRawSegments: uncoveredCount(this.versions.current),
        watermarkMs: rollupWatermark(this.versions.current),
      },
      recovery: { walTornTail: { ...this.tornTail } },
    };
  }

  // ---------------------------------------------------------------- close

  /**
   * Drains the memtable into segments (unless `flushMemtable: false`, which leaves it in the
   * WAL for the next open), then releases the lock. A failed flush loses nothing: the events
   * stay in the WAL and the next open replays them; the error is thrown after the release.
   */
  close(options: { flushMemtable?: boolean } = {}): Promise<void> {
    // A second call (two signals, a caller and a shutdown hook) waits for the first one.
    this.closing ??= this.closeOnce(options);
    return this.closing;
  }

  private async closeOnce(options: { flushMemtable?: boolean }): Promise<void> {
    if (this.closed) return;
    let flushError: unknown = null;
    if (options.flushMemtable !== false) {
      await this.flush().catch((err: unknown) => {
        flushError = err;
      });
    }
    this.closed = true;
    if (flushError === null) await this.persistIdFilter();
    await this.ingestor.close();
    await this.rejectionLog.close();
    await this.segments.close();
    await this.rollupStore.close();
    await publicErrors('cannot release the lock', () => this.lock.release());
    if (flushError !== null) throw flushError;
  }

  /**
   * Writes the id filter so the next open loads it instead of reading event ids. A failure
   * costs only that (the next open rebuilds what the newest valid file lacks).
   */
  private async persistIdFilter(): Promise<void> {
    const filter = this.segments.idFilter;
    await filter.idle();
    await filter.persist(() => this.versions.liveSegmentIds()).catch(() => undefined);
  }

  /** The segment store, for dedupe probes in tests and benchmarks (src/testing.ts). */
  [SEGMENT_STORE](): SegmentStore {
    return this.segments;
  }

  /** Drops this instance without any I/O, as a crash would (src/testing.ts). */
  [ABANDON](): void {
    this.closed = true;
    this.ingestor.closed = true;
    this.lock.abandon();
  }
}

function initialManifest(options: UsageDbOptions, clock: Clock): ManifestState {
  const bucketCount = options.bucketCount ?? DEFAULT_BUCKET_COUNT;
  if (!Number.isInteger(bucketCount) || bucketCount < 1 || bucketCount > 4096) {
    throw new UsageDbError(
      'USAGEDB_ERR_INVALID_ARGUMENT',
      `bucketCount must be an integer in 1..4096, got ${bucketCount}`,
    );
  }
  const now = clock.nowMs();
  return {
    format_version: MANIFEST_FORMAT_VERSION,
    generation: 1,
    database_id: `udb-${now.toString(36)}-${Math.floor(Math.random() * 2 ** 32).toString(36)}`,
    bucket_count: bucketCount,
    created_at_ms: now,
    next_segment_id: 1,
    wal_start: 1,
    raw_segments: [],
    rollup_segments: [],
    periods: [],
    quarantine: [],
  };
}

/**
 * Runs a public operation so that only catalogue errors leave it: file-system errors become
 * I/O errors with their errno as cause; anything else unexpected is an internal error.
 */
async function publicErrors<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const mapped = ioError(err, what);
    if (mapped instanceof UsageDbError) throw mapped;
    throw new UsageDbError('USAGEDB_ERR_INTERNAL', `${what}: ${(err as Error)?.message ?? String(err)}`, {
      cause: err,
    });
  }
}

function uncoveredCount(state: ManifestState): number {
  return uncoveredSegments(state).length;
}
