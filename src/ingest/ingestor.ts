/**
 * The ingestor: the ingest mutex, the WAL, the durability policy and WAL repair. Admitted
 * events go to the WAL, then into the current memtable; the call is acknowledged per policy.
 *
 * Invariants:
 * - ingest calls classify and append one at a time (the ingest mutex), so a batch sees every
 *   event accepted before it; waiting for the fsync happens outside the mutex, so concurrent
 *   calls share fsyncs (balanced);
 * - an ingest call resolves only when every event it accepted, and every stored event it
 *   reported as a duplicate, is durable (strict, balanced); on a WAL failure it rejects and
 *   everything it appended is removed from memory and cut from the WAL;
 * - the WAL file that holds the current memtable's events is `wal.fileNumber`; a freeze syncs
 *   it whole before rotating, so a frozen memtable is entirely durable.
 */
import { UsageDbError } from '../errors.ts';
import type { StoredEvent } from '../model/event.ts';
import type { PendingEvent } from '../model/validate.ts';
import type { FileSystem } from '../storage/fs/file-system.ts';
import { AsyncMutex } from '../util/async-mutex.ts';
import type { Admission, IngestResult } from './admission.ts';
import { FIELD_DICTS } from './memtable.ts';
import type { Memtables } from './memtables.ts';
import { FsyncTimes, WalWriter } from './wal.ts';
import { encodeWalBatch } from './wal-batch.ts';

export type Durability = 'strict' | 'balanced' | 'fast';

interface WalRecordMark {
  endOffset: number;
  rowsAfter: number;
}

/** Where a call's records end, and the memtable rows that are then durable. */
export interface DurableTarget {
  offset: number;
  rowsAfter: number;
}

export class Ingestor {
  private readonly fs: FileSystem;
  private readonly walDir: string;
  private readonly durability: Durability;
  private readonly memtables: Memtables;
  private readonly admission: Admission;
  readonly mutex = new AsyncMutex();
  private wal: WalWriter;
  private walMarks: WalRecordMark[] = [];
  private durableRowsBase = 0;
  /** Fast mode: acknowledged rows a failed background fsync dropped, not yet reported. */
  private lostAcknowledged = 0;
  closed = false;

  constructor(init: {
    fs: FileSystem;
    walDir: string;
    durability: Durability;
    memtables: Memtables;
    admission: Admission;
    wal: WalWriter;
  }) {
    this.fs = init.fs;
    this.walDir = init.walDir;
    this.durability = init.durability;
    this.memtables = init.memtables;
    this.admission = init.admission;
    this.wal = init.wal;
    this.wal.fsyncs = this.fsyncs;
  }

  /** WAL fsync latency since open. */
  readonly fsyncs = new FsyncTimes();

  get walFileNumber(): number {
    return this.wal.fileNumber;
  }

  /** Puts replayed WAL events back into the memtable (they are durable: visible at once). */
  restore(events: readonly StoredEvent[]): void {
    const { current, recent } = this.memtables;
    for (const e of events) {
      // A replayed id can only repeat if it was already stored: the WAL only holds accepted events.
      if (recent.lookup(e.event_id) !== undefined) continue;
      recent.add(e.event_id, current.append(e, e.ingested_at_ms));
    }
    this.durableRowsBase = current.rowCount;
    this.memtables.visibleRows = current.rowCount;
  }

  /**
   * Classifies and appends a batch, then waits until it is acknowledged under the policy.
   * `whileDurable` runs once `result` is complete, alongside the wait for the WAL fsync (the
   * rejection log's own write and fsync then cost no extra round trip); it must not throw,
   * and the call returns only after it settles.
   */
  async ingest(
    valid: { index: number; event: PendingEvent }[],
    result: IngestResult,
    nowMs: number,
    whileDurable?: () => Promise<void>,
  ): Promise<void> {
    const waitFor = await this.mutex.run(() => this.classifyAndAppend(valid, result, nowMs));
    const side = whileDurable?.();
    try {
      if (waitFor !== null) await this.awaitDurable(waitFor);
    } finally {
      await side;
    }
  }

  /** Runs under the ingest mutex. Returns the WAL offset to wait for, or null. */
  private async classifyAndAppend(
    valid: { index: number; event: PendingEvent }[],
    result: IngestResult,
    nowMs: number,
  ): Promise<DurableTarget | null> {
    if (this.closed) throw new UsageDbError('USAGEDB_ERR_CLOSED', 'the database is closed');
    if (this.wal.failed) await this.repairWal();
    const admitted = await this.admission.classify(valid, result);
    const memtable = this.memtables.current;
    if (admitted.events.length > 0) {
      // One dictionary lookup per field, shared by the WAL record and the memtable rows.
      const codes = memtable.codeFields(admitted.events);
      const payload = encodeWalBatch(admitted.events, nowMs, { codes, dicts: memtable.fieldDicts });
      let endOffset: number;
      try {
        endOffset = await this.wal.append(payload);
      } catch (err) {
        await this.repairWal().catch(() => undefined);
        throw walWriteError('cannot write the WAL', err);
      }
      // Start the fsync now, so it runs while the rows go into the memtable (~1 ms per 1,000
      // events); awaitDurable joins it. A failure is reported there.
      if (this.durability !== 'fast') this.wal.syncTo(endOffset).catch(() => undefined);
      const recent = this.memtables.recent;
      for (let i = 0; i < admitted.events.length; i++) {
        const e = admitted.events[i];
        recent.add(e.event_id, memtable.appendCoded(e, nowMs, codes, i * FIELD_DICTS), admitted.idKeys[i]);
      }
      this.walMarks.push({ endOffset, rowsAfter: memtable.rowCount });
    }
    const target = { offset: this.wal.sizeBytes, rowsAfter: memtable.rowCount };
    if (this.durability === 'strict') {
      await this.awaitDurable(target, true);
      return null;
    }
    return target;
  }

  /** `holdingMutex`: the caller already holds the ingest mutex (strict mode). */
  private async awaitDurable(target: DurableTarget, holdingMutex = false): Promise<void> {
    const wal = this.wal;
    const repair = () => (holdingMutex ? this.repairWal() : this.mutex.run(() => this.repairWal()));
    if (this.durability === 'fast') {
      wal.syncTo(target.offset).catch(() => repair().catch(() => undefined));
    } else {
      try {
        await wal.syncTo(target.offset);
      } catch (err) {
        await repair().catch(() => undefined);
        throw walWriteError('cannot fsync the WAL', err);
      }
    }
    // The WAL may have rotated meanwhile (a freeze syncs it fully first): then all rows are frozen.
    const m = this.memtables;
    if (wal === this.wal)
      m.visibleRows = Math.max(m.visibleRows, Math.min(target.rowsAfter, m.current.rowCount));
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
    const { current, recent } = this.memtables;
    // In fast mode those rows were acknowledged already: the loss must reach the caller.
    if (this.durability === 'fast') this.lostAcknowledged += current.rowCount - keepRows;
    const ids = current.eventIds;
    for (let row = keepRows; row < current.rowCount; row++) recent.remove(ids[row], row);
    current.truncate(keepRows);
    this.memtables.visibleRows = Math.min(this.memtables.visibleRows, keepRows);
    await this.wal.cutToDurable();
  }

  /** Acknowledged (fast mode) events lost since the last call, then forgets them. */
  takeLostAcknowledged(): number {
    const lost = this.lostAcknowledged;
    this.lostAcknowledged = 0;
    return lost;
  }

  /**
   * Makes the WAL durable, rotates it, freezes the current memtable. Caller holds the mutex.
   * Returns false when the memtable is empty (nothing to freeze).
   */
  async freeze(nowMs: number): Promise<boolean> {
    if (this.memtables.current.rowCount === 0) return false;
    if (this.wal.failed) await this.repairWal();
    await this.wal.syncTo(this.wal.sizeBytes);
    const next = await WalWriter.create(this.fs, this.walDir, this.wal.fileNumber + 1);
    next.fsyncs = this.fsyncs;
    this.memtables.freezeCurrent(this.wal.fileNumber, nowMs);
    await this.wal.close();
    this.wal = next;
    this.walMarks = [];
    this.durableRowsBase = 0;
    return true;
  }

  /** Marks the ingestor closed and closes the WAL durably (best effort: the WAL is replayed). */
  async close(): Promise<void> {
    await this.mutex.run(async () => {
      if (this.closed) return;
      this.closed = true;
      if (!this.wal.failed) await this.wal.syncTo(this.wal.sizeBytes).catch(() => undefined);
      await this.wal.close().catch(() => undefined);
    });
  }
}

/** A WAL failure: nothing of the call is acknowledged. The errno stays the cause. */
function walWriteError(what: string, err: unknown): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_WAL_WRITE', `${what}: ${(err as Error).message}`, { cause: err });
}
