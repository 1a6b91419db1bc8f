/**
 * UsageDb: the embedded database (DESIGN §3). The HTTP server and the CLI only wrap it.
 *
 * Invariants:
 * - ingest calls classify and append to the WAL one at a time (the ingest mutex), so a
 *   batch sees every event accepted before it; waiting for the fsync happens outside the
 *   mutex, so concurrent calls share fsyncs (balanced);
 * - an ingest call resolves only when every event it accepted, and every stored event it
 *   reported as a duplicate, is durable (strict, balanced); on a WAL failure it rejects and
 *   everything it appended is removed from memory and cut from the WAL;
 * - an event is in exactly one place a reader looks: the current memtable, a frozen memtable,
 *   or a committed segment (the switch from frozen memtable to segments is synchronous).
 */
import { assert, UsageDbError } from './errors.ts';
import { type ExportParquetOptions, type ExportParquetResult, exportParquet } from './export/parquet.ts';
import { StoredEventFinder } from './ingest/dedupe.ts';
import { Memtable } from './ingest/memtable.ts';
import { parseWalFileName, walFileName, WalWriter } from './ingest/wal.ts';
import { DEFAULT_HOT_ID_TTL_MS, DEFAULT_HOT_IDS_MAX, RecentIds } from './ingest/recent-ids.ts';
import { encodeWalBatch } from './ingest/wal-batch.ts';
import { COLUMN_NAMES, type EventColumns } from './model/columns.ts';
import { canonicalPayload, eventOfRow, type StoredEvent, type UsageEvent } from './model/event.ts';
import { hash128Into } from './model/hash.ts';
import { payloadHash } from './model/payload-hash.ts';
import { negateQuantity } from './model/quantity.ts';
import {
  DEFAULT_FUTURE_SKEW_MS,
  type PendingEvent,
  type RejectReason,
  validateEvent,
} from './model/validate.ts';
import {
  createQueryEngine,
  DEFAULT_QUERY_CACHE_BYTES,
  type EventsPage,
  type QueryEngine,
  type QueryResult,
  type SqlResult,
} from './query/index.ts';
import { type Clock, systemClock } from './storage/clock.ts';
import { flushColumns } from './storage/flush.ts';
import { dirName, type FileSystem, joinPath } from './storage/fs/file-system.ts';
import { withIoErrors } from './storage/fs/io-error.ts';
import { NodeFileSystem } from './storage/fs/node-file-system.ts';
import { MANIFEST_DIR, RAW_DIR, TMP_DIR, WAL_DIR } from './storage/layout.ts';
import { DirectoryLock } from './storage/lock.ts';
import { MANIFEST_FORMAT_VERSION, type ManifestState, ManifestStore } from './storage/manifest.ts';
import { accountBucket, DEFAULT_BUCKET_COUNT } from './storage/partition.ts';
import { loadManifest, removeTmpFiles, replayWal, type TornTailReport } from './storage/recovery.ts';
import { DEFAULT_SEGMENT_CACHE_BYTES, type PartitionSlice, SegmentStore } from './storage/segment-store.ts';
import { AsyncMutex } from './util/async-mutex.ts';
import { stderrLogger, type UsageDbLogger } from './util/logger.ts';

export type Durability = 'strict' | 'balanced' | 'fast';

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
  /** Memory for opened segment files (verified bytes). Default 128 MiB. */
  segmentCacheBytes: number;
  /** Rows per block inside a segment. Default 4096. */
  blockRows: number;
  /** Memory for decoded column chunks kept by the query engine. Default 128 MiB. */
  queryCacheBytes: number;
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
};

export interface UsageDbStats {
  segments: number;
  memtableRows: number;
  frozenMemtables: number;
  manifestGeneration: number;
  walFile: number;
  /** What the last open dropped: a torn WAL tail holds no acknowledged event, but it is reported. */
  recovery: { walTornTail: TornTailReport };
}

export interface UsageDbOptions {
  dir: string;
  /** Where recovery warnings go (pino-shaped). Default: JSON lines on stderr. */
  logger?: UsageDbLogger;
  durability?: Durability;
  /** Fixed when the database is created; ignored (the stored value wins) afterwards. */
  bucketCount?: number;
  limits?: Partial<UsageDbLimits>;
  fs?: FileSystem;
  clock?: Clock;
}

export type IngestStatus = 'rejected' | 'conflict';

export interface IngestError {
  index: number;
  event_id: string | null;
  status: IngestStatus;
  reason: RejectReason | 'conflict';
  message: string;
}

export interface IngestResult {
  accepted: number;
  duplicates: number;
  conflicts: number;
  rejected: number;
  errors: IngestError[];
}

/** What a reader sees: committed segments + acknowledged memtable rows (see readSnapshot). */
export interface ReadSnapshot {
  bucketCount: number;
  segments: readonly PartitionSlice[];
  store: SegmentStore;
  memtables: EventColumns[];
}

interface FrozenMemtable {
  memtable: Memtable;
  /** The newest WAL file holding its events; older ones back to wal_start too. */
  lastWalNumber: number;
  flushedAtMs: number | null;
}

interface WalRecordMark {
  endOffset: number;
  rowsAfter: number;
}

/** How an incoming event relates to what is stored (strings: nothing allocated per event). */
type Lookup = 'new' | 'duplicate' | 'conflict';

export class UsageDb {
  readonly dir: string;
  readonly durability: Durability;
  readonly limits: UsageDbLimits;
  private readonly fs: FileSystem;
  private readonly clock: Clock;
  private readonly lock: DirectoryLock;
  private readonly manifestStore: ManifestStore;
  private manifest: ManifestState;
  private readonly segments: SegmentStore;
  private readonly finder: StoredEventFinder;
  private readonly recent: RecentIds;
  private readonly queryEngine: QueryEngine;
  private readonly ingestMutex = new AsyncMutex();
  private readonly manifestMutex = new AsyncMutex();
  private memtable: Memtable;
  private memtableCreatedMs: number;
  private visibleRows = 0;
  private frozen: FrozenMemtable[] = [];
  private wal: WalWriter;
  private walMarks: WalRecordMark[] = [];
  private durableRowsBase = 0;
  private storedRetracted = new Set<string>();
  private flushInFlight: Promise<void> | null = null;
  /** hash128 of the event being classified (scratch: the ingest mutex serialises its use). */
  private readonly idHash = new Uint32Array(4);
  /** Resolved (and replaced) each time a frozen memtable leaves `frozen`. */
  private flushProgress = Promise.withResolvers<void>();
  /** wal_start of the generation before the current one (see afterCommit). */
  private walStartOfPrevious = 1;
  private closed = false;
  private tornTail: TornTailReport = { files: 0, bytes: 0, records: 0 };

  private constructor(init: {
    options: UsageDbOptions;
    fs: FileSystem;
    clock: Clock;
    lock: DirectoryLock;
    manifestStore: ManifestStore;
    manifest: ManifestState;
    segments: SegmentStore;
    wal: WalWriter;
    limits: UsageDbLimits;
  }) {
    this.dir = init.options.dir;
    this.durability = init.options.durability ?? 'balanced';
    this.limits = init.limits;
    this.fs = init.fs;
    this.clock = init.clock;
    this.lock = init.lock;
    this.manifestStore = init.manifestStore;
    this.manifest = init.manifest;
    this.segments = init.segments;
    this.finder = new StoredEventFinder(this.segments);
    this.queryEngine = createQueryEngine({ cacheBytes: this.limits.queryCacheBytes });
    this.recent = new RecentIds(this.limits.hotIdsMax, this.limits.hotIdTtlMs);
    this.wal = init.wal;
    this.memtable = new Memtable();
    this.recent.startMemtable(this.memtable);
    this.memtableCreatedMs = this.clock.nowMs();
  }

  /** Opens (creating if needed) the database in `options.dir`, recovering from any crash. */
  static async open(options: UsageDbOptions): Promise<UsageDb> {
    return withIoErrors(`cannot open ${options.dir}`, () => UsageDb.openOrThrowFsError(options));
  }

  private static async openOrThrowFsError(options: UsageDbOptions): Promise<UsageDb> {
    const durability = options.durability ?? 'balanced';
    if (!['strict', 'balanced', 'fast'].includes(durability)) {
      throw new UsageDbError(
        'USAGEDB_ERR_INVALID_ARGUMENT',
        `durability must be strict, balanced or fast, got ${durability}`,
      );
    }
    const fs = options.fs ?? new NodeFileSystem();
    const clock = options.clock ?? systemClock;
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    const root = options.dir;
    await fs.mkdirp(root);
    await fs.syncDir(dirName(root));
    const lock = await DirectoryLock.acquire(fs, root, clock.nowMs());
    try {
      for (const d of [MANIFEST_DIR, WAL_DIR, RAW_DIR, TMP_DIR]) await fs.mkdirp(joinPath(root, d));
      await fs.syncDir(root);
      await removeTmpFiles(fs, root);
      const manifestStore = new ManifestStore(fs, joinPath(root, MANIFEST_DIR));
      const loaded = await loadManifest(fs, root);
      let manifest: ManifestState;
      if (loaded === null) {
        manifest = UsageDb.initialManifest(options, clock);
        // The WAL file first: every committed manifest names a WAL file that exists.
        const walPath = joinPath(root, WAL_DIR, walFileName(manifest.wal_start));
        if (!(await fs.exists(walPath))) {
          await (await WalWriter.create(fs, joinPath(root, WAL_DIR), manifest.wal_start)).close();
        }
        await manifestStore.commit(manifest);
      } else {
        manifest = loaded.state;
      }
      await manifestStore.prune(manifest.generation);
      const segments = new SegmentStore(fs, root, manifest.bucket_count, limits.segmentCacheBytes);
      for (const entry of manifest.segments) await segments.prepare(entry);
      segments.setEntries(manifest.segments);
      const replayed = await replayWal(fs, root, manifest.wal_start);
      const wal = await WalWriter.reopen(
        fs,
        joinPath(root, WAL_DIR),
        replayed.last.fileNumber,
        replayed.last.validBytes,
      );
      const db = new UsageDb({ options, fs, clock, lock, manifestStore, manifest, segments, wal, limits });
      db.walStartOfPrevious = loaded?.keptStates[1]?.wal_start ?? manifest.wal_start;
      db.storedRetracted = new Set(manifest.segments.flatMap((e) => e.retracted ?? []));
      db.restoreMemtable(replayed.events);
      db.tornTail = replayed.tornTail;
      if (replayed.tornTail.bytes > 0) {
        (options.logger ?? stderrLogger).warn(
          { dir: root, wal_file: replayed.last.fileNumber, ...replayed.tornTail },
          'dropped a torn WAL tail at open (a write cut short by a crash; it held no acknowledged event)',
        );
      }
      return db;
    } catch (err) {
      await lock.release().catch(() => undefined);
      throw err;
    }
  }

  private static initialManifest(options: UsageDbOptions, clock: Clock): ManifestState {
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
      segments: [],
      rollups: [],
      periods: [],
    };
  }

  /** Puts replayed WAL events back into the memtable (they are durable: visible at once). */
  private restoreMemtable(events: StoredEvent[]): void {
    for (const e of events) {
      // A replayed id can only repeat if it was already stored: the WAL only holds accepted events.
      if (this.recent.lookup(e.event_id) !== undefined) continue;
      this.recent.add(e.event_id, this.memtable.append(e, e.ingested_at_ms));
    }
    this.durableRowsBase = this.memtable.rowCount;
    this.visibleRows = this.memtable.rowCount;
  }

  get bucketCount(): number {
    return this.manifest.bucket_count;
  }

  private assertOpen(): void {
    if (this.closed) throw new UsageDbError('USAGEDB_ERR_CLOSED', 'the database is closed');
  }

  // ---------------------------------------------------------------- ingest

  /** Ingests a batch of wire events (DESIGN §1). Bad events are rejected one by one. */
  async ingest(events: readonly unknown[]): Promise<IngestResult> {
    this.assertOpen();
    if (!Array.isArray(events))
      throw new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', 'ingest expects an array of events');
    if (events.length > this.limits.batchEventsMax) {
      throw new UsageDbError(
        'USAGEDB_ERR_BATCH_TOO_LARGE',
        `batch of ${events.length} events exceeds the limit of ${this.limits.batchEventsMax}`,
      );
    }
    const result: IngestResult = { accepted: 0, duplicates: 0, conflicts: 0, rejected: 0, errors: [] };
    const nowMs = this.clock.nowMs();
    const valid: { index: number; event: PendingEvent }[] = [];
    for (let index = 0; index < events.length; index++) {
      const v = validateEvent(events[index], nowMs, this.limits);
      if (v.ok) valid.push({ index, event: v.event });
      else this.reject(result, index, v.event_id, v.reason, v.message);
    }
    // Backpressure: at most two memtables wait for their flush. Wait for the oldest one only:
    // the flush loop also takes memtables frozen meanwhile, and waiting for all stalled ingest.
    while (this.frozen.length >= 2 && this.flushInFlight !== null) {
      await Promise.race([this.flushProgress.promise, this.flushInFlight.catch(() => undefined)]);
    }
    const waitFor = await this.ingestMutex.run(() => this.classifyAndAppend(valid, result, nowMs));
    if (waitFor !== null) await this.awaitDurable(waitFor);
    this.maybeScheduleFlush();
    return result;
  }

  private reject(
    result: IngestResult,
    index: number,
    eventId: string | null,
    reason: RejectReason,
    message: string,
  ): void {
    result.rejected++;
    result.errors.push({ index, event_id: eventId, status: 'rejected', reason, message });
  }

  /** Runs under the ingest mutex. Returns the WAL offset to wait for, or null. */
  private async classifyAndAppend(
    valid: { index: number; event: PendingEvent }[],
    result: IngestResult,
    nowMs: number,
  ): Promise<{ offset: number; rowsAfter: number } | null> {
    this.assertOpen();
    if (this.wal.failed) await this.repairWal();
    const accepted: UsageEvent[] = [];
    // The id table key (hash128 h1) of each accepted event, for recent.add below.
    const acceptedIdKeys = new Uint32Array(valid.length);
    const batch = new Map<string, UsageEvent>();
    const batchRetracted = new Set<string>();
    for (const { index, event: pending } of valid) {
      let event: UsageEvent;
      if (pending.kind === 'Usage') {
        event = pending as UsageEvent;
      } else {
        const checked = await this.resolveCorrection(pending, batch);
        if ('reason' in checked) {
          this.reject(result, index, pending.event_id, checked.reason, checked.message);
          continue;
        }
        event = checked.event;
      }
      // Most events are new and settle without awaiting: only a filter hit goes to the segments.
      hash128Into(event.event_id, this.idHash);
      const idKey = this.idHash[0];
      let found = this.lookupInMemory(event, this.idHash, batch);
      if (found === 'maybe_stored') found = await this.lookupStored(event);
      if (found === 'duplicate') {
        result.duplicates++;
        continue;
      }
      if (found === 'conflict') {
        result.conflicts++;
        result.errors.push({
          index,
          event_id: event.event_id,
          status: 'conflict',
          reason: 'conflict',
          message: 'event_id was already stored with a different payload',
        });
        continue;
      }
      const original = event.correction_ref?.original_event_id;
      if (event.kind === 'Retraction' && original !== undefined) {
        if (batchRetracted.has(original) || this.isRetracted(original)) {
          this.reject(
            result,
            index,
            event.event_id,
            'already_retracted',
            `event ${original} is already retracted`,
          );
          continue;
        }
        batchRetracted.add(original);
      }
      accepted.push(event);
      acceptedIdKeys[accepted.length - 1] = idKey;
      batch.set(event.event_id, event);
    }
    result.accepted = accepted.length;
    result.errors.sort((a, b) => a.index - b.index);
    if (accepted.length > 0) {
      const payload = encodeWalBatch(accepted, nowMs);
      let endOffset: number;
      try {
        endOffset = await this.wal.append(payload);
      } catch (err) {
        await this.repairWal().catch(() => undefined);
        throw new UsageDbError('USAGEDB_ERR_WAL_WRITE', `cannot write the WAL: ${(err as Error).message}`, {
          cause: err,
        });
      }
      // Start the fsync now, so it runs while the rows go into the memtable (~1 ms per 1,000
      // events); awaitDurable joins it. A failure is reported there.
      if (this.durability !== 'fast') this.wal.syncTo(endOffset).catch(() => undefined);
      for (let i = 0; i < accepted.length; i++) {
        const e = accepted[i];
        this.recent.add(e.event_id, this.memtable.append(e, nowMs), acceptedIdKeys[i]);
      }
      this.walMarks.push({ endOffset, rowsAfter: this.memtable.rowCount });
    }
    const target = { offset: this.wal.sizeBytes, rowsAfter: this.memtable.rowCount };
    if (this.durability === 'strict') {
      await this.awaitDurable(target, true);
      return null;
    }
    return target;
  }

  /** `holdingMutex`: the caller already holds the ingest mutex (strict mode). */
  private async awaitDurable(
    target: { offset: number; rowsAfter: number },
    holdingMutex = false,
  ): Promise<void> {
    const wal = this.wal;
    const repair = () => (holdingMutex ? this.repairWal() : this.ingestMutex.run(() => this.repairWal()));
    if (this.durability === 'fast') {
      wal.syncTo(target.offset).catch(() => repair().catch(() => undefined));
    } else {
      try {
        await wal.syncTo(target.offset);
      } catch (err) {
        await repair().catch(() => undefined);
        throw new UsageDbError('USAGEDB_ERR_WAL_WRITE', `cannot fsync the WAL: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    // The WAL may have rotated meanwhile (a freeze syncs it fully first): then all rows are frozen.
    if (wal === this.wal)
      this.visibleRows = Math.max(this.visibleRows, Math.min(target.rowsAfter, this.memtable.rowCount));
  }

  /**
   * After a failed WAL append or fsync: forget every row not yet durable and cut the WAL back
   * to its durable prefix. Caller holds the ingest mutex. If the cut fails too, the WAL stays
   * failed and the next ingest tries again.
   */
  private async repairWal(): Promise<void> {
    if (!this.wal.failed) return;
    const durable = this.wal.durableOffset;
    let keepRows = this.durableRowsBase;
    for (const mark of this.walMarks) if (mark.endOffset <= durable) keepRows = mark.rowsAfter;
    this.walMarks = this.walMarks.filter((m) => m.endOffset <= durable);
    const ids = this.memtable.eventIds;
    for (let row = keepRows; row < this.memtable.rowCount; row++) this.recent.remove(ids[row], row);
    this.memtable.truncate(keepRows);
    this.visibleRows = Math.min(this.visibleRows, keepRows);
    await this.wal.cutToDurable();
  }

  /** Checks a Correction/Retraction against its original; fills a Retraction's quantity. */
  private async resolveCorrection(
    pending: PendingEvent,
    batch: Map<string, UsageEvent>,
  ): Promise<{ event: UsageEvent } | { reason: RejectReason; message: string }> {
    const ref = pending.correction_ref;
    if (pending.kind === 'Usage' || ref === null) return { event: pending as UsageEvent };
    const original = batch.get(ref.original_event_id) ?? (await this.findEvent(ref.original_event_id));
    if (original === null) {
      return {
        reason: 'unknown_original',
        message: `original event ${ref.original_event_id} does not exist`,
      };
    }
    if (original.kind !== 'Usage') {
      return {
        reason: 'correction_mismatch',
        message: `original event ${ref.original_event_id} is not a Usage event`,
      };
    }
    for (const field of ['account_id', 'product_id', 'meter_id', 'unit'] as const) {
      if (original[field] !== pending[field]) {
        return { reason: 'correction_mismatch', message: `${field} differs from the original event's` };
      }
    }
    if (pending.kind === 'Retraction') {
      const expected = negateQuantity(original.quantity);
      if (pending.quantity === null) return { event: { ...pending, quantity: expected } };
      if (pending.quantity !== expected) {
        return {
          reason: 'retraction_quantity_mismatch',
          message: `a Retraction's quantity must be the original's negation (${String(expected)})`,
        };
      }
    }
    assert(pending.quantity !== null, 'only a Retraction may omit quantity');
    return { event: pending as UsageEvent };
  }

  private isRetracted(originalId: string): boolean {
    if (this.storedRetracted.has(originalId) || this.memtable.retractedOriginals.has(originalId)) return true;
    return this.frozen.some((f) => f.memtable.retractedOriginals.has(originalId));
  }

  /**
   * Duplicate, conflict or new against the batch, the memtables and the hot window; or
   * 'maybe_stored' when a segment's id filter says the id may be stored. The canonical payload
   * is only built on an id hit: most events are new.
   */
  private lookupInMemory(
    event: UsageEvent,
    idHash: Uint32Array,
    batch: Map<string, UsageEvent>,
  ): Lookup | 'maybe_stored' {
    const inBatch = batch.get(event.event_id);
    if (inBatch) return this.compare(event, canonicalPayload(inBatch));
    const hit = this.recent.lookup(event.event_id, idHash[0]);
    if (hit?.kind === 'memtable') {
      return this.compare(event, canonicalPayload(eventOfRow(hit.memtable.columns(), hit.row)));
    }
    if (hit?.kind === 'flushed') {
      const h = payloadHash(event);
      const p = hit.payloadHash;
      const same = h.h1 === p.h1 && h.h2 === p.h2 && h.h3 === p.h3 && h.h4 === p.h4;
      return same ? 'duplicate' : 'conflict';
    }
    return this.finder.mayBeStored(idHash[0], idHash[1]) ? 'maybe_stored' : 'new';
  }

  private async lookupStored(event: UsageEvent): Promise<Lookup> {
    const hit = await this.finder.find(event.event_id);
    return hit ? this.compare(event, canonicalPayload(hit.event)) : 'new';
  }

  private compare(event: UsageEvent, storedPayload: string): Lookup {
    return storedPayload === canonicalPayload(event) ? 'duplicate' : 'conflict';
  }

  /** Finds a stored or pending event by id (memtables first, then segments). */
  private async findEvent(eventId: string): Promise<StoredEvent | null> {
    const recent = this.recent.lookup(eventId);
    if (recent?.kind === 'memtable') return eventOfRow(recent.memtable.columns(), recent.row);
    const hit = await this.finder.find(eventId);
    return hit?.event ?? null;
  }

  // ---------------------------------------------------------------- flush

  private maybeScheduleFlush(): void {
    if (this.closed || this.memtable.approxBytes < this.limits.memtableBytesMax) return;
    this.startFlush({ onlyFull: true }).catch(() => undefined);
  }

  /**
   * Runs background work that is due: an age-based flush, a retry of a failed flush. Never
   * cuts the current memtable because an older one is being flushed: a server ticking every
   * second would otherwise write a small segment per tick.
   */
  async tick(): Promise<void> {
    this.assertOpen();
    const aged =
      this.memtable.rowCount > 0 &&
      this.clock.nowMs() - this.memtableCreatedMs >= this.limits.flushIntervalMs;
    this.recent.evict(this.clock.nowMs());
    if (aged) await this.startFlush();
    else if (this.frozen.length > 0 && this.flushInFlight === null) await this.flushFrozenMemtables();
  }

  /** Writes every acknowledged event to segments now. */
  async flush(): Promise<void> {
    this.assertOpen();
    await this.startFlush();
  }

  /**
   * Freezes the memtable and flushes every frozen one. `onlyFull`: freeze only a memtable
   * still over its size limit once the mutex is ours. Concurrent ingest calls all see the
   * same full memtable; without this, the later ones froze its successor after a few rows,
   * and wrote a tiny segment per call.
   */
  private async startFlush(options: { onlyFull?: boolean } = {}): Promise<void> {
    await withIoErrors('cannot freeze the memtable', () =>
      this.ingestMutex.run(async () => {
        if (options.onlyFull && this.memtable.approxBytes < this.limits.memtableBytesMax) return;
        await this.freezeMemtable();
      }),
    );
    await this.flushFrozenMemtables();
  }

  /** Flushes every frozen memtable (after any flush already running). */
  private async flushFrozenMemtables(): Promise<void> {
    while (this.flushInFlight !== null) await this.flushInFlight.catch(() => undefined);
    if (this.frozen.length === 0) return;
    this.flushInFlight = withIoErrors('cannot flush the memtable', () => this.flushFrozen()).finally(() => {
      this.flushInFlight = null;
    });
    await this.flushInFlight;
  }

  /** Caller holds the ingest mutex. Makes the WAL durable, rotates it, freezes the memtable. */
  private async freezeMemtable(): Promise<void> {
    if (this.memtable.rowCount === 0) return;
    if (this.wal.failed) await this.repairWal();
    await this.wal.syncTo(this.wal.sizeBytes);
    const next = await WalWriter.create(this.fs, joinPath(this.dir, WAL_DIR), this.wal.fileNumber + 1);
    this.frozen.push({ memtable: this.memtable, lastWalNumber: this.wal.fileNumber, flushedAtMs: null });
    await this.wal.close();
    this.wal = next;
    this.walMarks = [];
    this.durableRowsBase = 0;
    this.memtable = new Memtable();
    this.recent.startMemtable(this.memtable);
    this.visibleRows = 0;
    this.memtableCreatedMs = this.clock.nowMs();
  }

  /** Flushes frozen memtables oldest first; each becomes segments in one manifest commit. */
  private async flushFrozen(): Promise<void> {
    while (this.frozen.length > 0) {
      const job = this.frozen[0];
      const columns = job.memtable.columns();
      await this.manifestMutex.run(async () => {
        const { segment, payloadHashes, eventIds, idIndex } = await flushColumns(columns, {
          fs: this.fs,
          root: this.dir,
          clock: this.clock,
          bucketCount: this.manifest.bucket_count,
          segmentId: this.manifest.next_segment_id,
          blockRows: this.limits.blockRows,
        });
        await this.segments.prepare(segment, idIndex);
        const next: ManifestState = {
          ...this.manifest,
          generation: this.manifest.generation + 1,
          next_segment_id: this.manifest.next_segment_id + 1,
          wal_start: job.lastWalNumber + 1,
          segments: [...this.manifest.segments, segment],
        };
        await this.commitManifest(next);
        // Synchronous from here: readers switch from the frozen memtable to the segment at once.
        this.segments.setEntries(next.segments);
        for (const id of segment.retracted ?? []) this.storedRetracted.add(id);
        this.frozen.shift();
        this.flushProgress.resolve();
        this.flushProgress = Promise.withResolvers<void>();
        // Recently flushed ids stay in memory, so their retries skip the segment lookup.
        this.recent.markFlushed(job.memtable, { payloadHashes, eventIds }, this.clock.nowMs());
      });
      await this.afterCommit();
    }
  }

  /** Commits `next` as the newest generation (caller holds the manifest mutex). */
  private async commitManifest(next: ManifestState): Promise<void> {
    assert(next.generation === this.manifest.generation + 1, 'manifest generations advance by one');
    await this.manifestStore.commit(next);
    this.walStartOfPrevious = this.manifest.wal_start;
    this.manifest = next;
  }

  /**
   * Housekeeping after a manifest commit. WAL files are deleted one generation late: those
   * below the *previous* generation's wal_start. So rolling back past one corrupt generation
   * always finds the WAL it needs and loses nothing.
   */
  private async afterCommit(): Promise<void> {
    const walDir = joinPath(this.dir, WAL_DIR);
    let deleted = 0;
    for (const name of await this.fs.readdir(walDir)) {
      const n = parseWalFileName(name);
      if (n !== null && n < this.walStartOfPrevious) {
        await this.fs.unlink(joinPath(walDir, name));
        deleted++;
      }
    }
    if (deleted > 0) await this.fs.syncDir(walDir);
    await this.manifestStore.prune(this.manifest.generation);
  }

  /** Commits an unchanged generation so WAL files covered by the last flush can go (at close). */
  private async checkpoint(): Promise<void> {
    if (this.walStartOfPrevious >= this.manifest.wal_start) return;
    await this.manifestMutex.run(() =>
      this.commitManifest({ ...this.manifest, generation: this.manifest.generation + 1 }),
    );
    await this.afterCommit();
  }

  // ---------------------------------------------------------------- reads

  /**
   * Raw events of one account with timestamp in [fromMs, toMs), from segments and memtables,
   * ordered by (timestamp_ms, event_id). The query engine builds on the same sources.
   */
  async scan(accountId: string, fromMs: number, toMs: number): Promise<StoredEvent[]> {
    this.assertOpen();
    const out: StoredEvent[] = [];
    const take = (c: EventColumns, row: number) => {
      const t = c.timestamp_ms[row];
      if (t >= fromMs && t < toMs && c.account_id.dict[c.account_id.codes[row]] === accountId)
        out.push(eventOfRow(c, row));
    };
    const memSources = this.memtableSnapshots();
    const bucket = accountBucket(accountId, this.manifest.bucket_count);
    for (const slice of [...this.segments.inBucket(bucket)]) {
      if (slice.max_ts < fromMs || slice.min_ts >= toMs) continue;
      if (accountId < slice.min_account || accountId > slice.max_account) continue;
      const reader = await this.segments.reader(slice);
      const blocks = reader.selectBlocks({ accountId, fromMs, toMs });
      if (blocks.length === 0) continue;
      const c = this.segments.decode(slice, reader, COLUMN_NAMES, blocks) as EventColumns;
      for (let row = 0; row < c.rowCount; row++) take(c, row);
    }
    for (const c of memSources) for (let row = 0; row < c.rowCount; row++) take(c, row);
    out.sort(
      (a, b) =>
        a.timestamp_ms - b.timestamp_ms || (a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0),
    );
    return out;
  }

  /** The JSON query of DESIGN §4 (`POST /v1/query/json`): `{ rows, stats }`. */
  async query(input: unknown): Promise<QueryResult> {
    this.assertOpen();
    return this.queryEngine.queryJson(this.readSnapshot(), input);
  }

  /** The strict SQL subset of DESIGN §4 (`POST /v1/query/sql`): `{ columns, rows, stats }`. */
  async sql(text: string): Promise<SqlResult> {
    this.assertOpen();
    return this.queryEngine.runSql(this.readSnapshot(), text);
  }

  /** One page of the raw audit of one account (`/usage/events`): `{ events, next_cursor }`. */
  async events(params: unknown): Promise<EventsPage> {
    this.assertOpen();
    return this.queryEngine.listEvents(
      this.readSnapshot(),
      params as Parameters<QueryEngine['listEvents']>[1],
    );
  }

  /**
   * Exports to Parquet (DESIGN §6). Flushes first, so the export holds every event
   * acknowledged before the call; events acknowledged while it runs are not in it.
   */
  async exportParquet(outPath: string, options: ExportParquetOptions = {}): Promise<ExportParquetResult> {
    this.assertOpen();
    await this.flush();
    return exportParquet(this.readSnapshot(), outPath, options);
  }

  /**
   * A consistent point-in-time view for readers (query engine, export): the committed
   * segments and the acknowledged memtable rows. Taken synchronously, so no event is in both.
   */
  readSnapshot(): ReadSnapshot {
    this.assertOpen();
    return {
      bucketCount: this.manifest.bucket_count,
      segments: this.segments.slices(),
      store: this.segments,
      memtables: this.memtableSnapshots(),
    };
  }

  /** Acknowledged memtable rows, as columns (frozen memtables are fully acknowledged). */
  memtableSnapshots(): EventColumns[] {
    return [...this.frozen.map((f) => f.memtable.columns()), this.memtable.columns(this.visibleRows)];
  }

  /** Counts for tests and tools. */
  stats(): UsageDbStats {
    return {
      segments: this.segments.segmentCount,
      memtableRows: this.memtable.rowCount,
      frozenMemtables: this.frozen.length,
      manifestGeneration: this.manifest.generation,
      walFile: this.wal.fileNumber,
      recovery: { walTornTail: { ...this.tornTail } },
    };
  }

  // ---------------------------------------------------------------- close

  /**
   * Drains the memtable into segments (unless `flushMemtable: false`, which leaves it in the
   * WAL for the next open), then releases the lock.
   */
  async close(options: { flushMemtable?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    let flushError: unknown = null;
    // A failed flush loses nothing: the events stay in the WAL and the next open replays them.
    if (options.flushMemtable !== false) {
      await this.startFlush()
        .then(() => this.checkpoint())
        .catch((err: unknown) => {
          flushError = err;
        });
    }
    await this.ingestMutex.run(async () => {
      this.closed = true;
      if (!this.wal.failed) await this.wal.syncTo(this.wal.sizeBytes).catch(() => undefined);
      await this.wal.close().catch(() => undefined);
    });
    await this.segments.close();
    await withIoErrors('cannot release the lock', () => this.lock.release());
    if (flushError !== null) throw flushError;
  }

  /** Drops this instance without any I/O, as a crash would (simulation tests only). */
  abandonForCrashTest(): void {
    this.closed = true;
    this.lock.abandon();
  }
}
