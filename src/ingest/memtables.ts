/**
 * The in-memory half of the database: the current memtable (appended to under the ingest
 * mutex), the frozen ones waiting for their flush (oldest first), and the id table over both
 * and the hot window of recently flushed ids.
 *
 * Invariants:
 * - an acknowledged event not yet in a committed segment is in exactly one memtable here;
 * - readers see the frozen memtables whole and the current one up to `visibleRows` (the rows
 *   whose WAL record is durable in strict and balanced mode);
 * - a frozen memtable leaves `frozen` in the same synchronous step that its segment becomes
 *   visible (flusher.ts), so no reader sees an event twice or not at all.
 */
import type { EventColumns } from '../model/columns.ts';
import { Memtable } from './memtable.ts';
import { RecentIds } from './recent-ids.ts';

export interface FrozenMemtable {
  memtable: Memtable;
  /** The newest WAL file holding its events (older ones back to wal_start too). */
  lastWalNumber: number;
}

export class Memtables {
  current: Memtable;
  /** When the current memtable started (an aged one is flushed on tick). */
  currentCreatedMs: number;
  /** Rows of the current memtable readers may see. */
  visibleRows = 0;
  readonly frozen: FrozenMemtable[] = [];
  readonly recent: RecentIds;

  constructor(recent: RecentIds, nowMs: number) {
    this.recent = recent;
    this.current = new Memtable();
    this.recent.startMemtable(this.current);
    this.currentCreatedMs = nowMs;
  }

  /** Moves the current memtable to `frozen` and starts a new one (caller holds the ingest mutex). */
  freezeCurrent(lastWalNumber: number, nowMs: number): void {
    this.frozen.push({ memtable: this.current, lastWalNumber });
    // The next memtable will likely fill as this one did: room for its rows and a tenth more.
    this.current = new Memtable(this.current.rowCount * 1.1);
    this.recent.startMemtable(this.current);
    this.visibleRows = 0;
    this.currentCreatedMs = nowMs;
  }

  /** Whether a Retraction in a memtable retracts `originalId`. */
  retractedInMemory(originalId: string): boolean {
    if (this.current.retractedOriginals.has(originalId)) return true;
    return this.frozen.some((f) => f.memtable.retractedOriginals.has(originalId));
  }

  /** Acknowledged memtable rows, as columns (frozen memtables are fully acknowledged). */
  snapshots(): EventColumns[] {
    return [...this.frozen.map((f) => f.memtable.columns()), this.current.columns(this.visibleRows)];
  }

  get approxBytes(): number {
    return this.current.approxBytes + this.frozen.reduce((n, f) => n + f.memtable.approxBytes, 0);
  }
}
