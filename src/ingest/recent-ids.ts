/**
 * Every event id the ingest path can answer from memory: the ids of the memtables (exact rows)
 * and of the most recently flushed memtables (the hot window: a 128-bit payload hash per id).
 * One table from id hash to a sequence number answers both (id-table.ts), so a new event
 * costs a single probe.
 *
 * Sequence numbers: each memtable is a *generation* that owns the contiguous numbers
 * [base, base + rows); row r of the memtable is base + r. A flushed generation keeps only its
 * ids, packed as bytes (to confirm a hit, and to delete its ids when it leaves the window), and
 * the payload hashes the flush computed, so the memtable's columns and id strings can be freed.
 *
 * Invariants:
 * - an id of an unflushed memtable is always in the table (generations leave the window only
 *   once flushed), so dedupe against memtables is exact whatever the window size;
 * - an id is in the table at most once, under the number of its row;
 * - the hot window holds whole flushed generations, oldest dropped first, while it holds more
 *   than `maxFlushedIds` ids or the oldest was flushed more than `ttlMs` ago.
 */
import { assert } from '../errors.ts';
import { type Hash128, hash128 } from '../model/hash.ts';
import { type PackedIds, packedIdEquals } from '../model/packed-ids.ts';
import { IdSeqTable } from './id-table.ts';
import { GrowableU32, type Memtable } from './memtable.ts';

export const DEFAULT_HOT_IDS_MAX = 1_000_000;
export const DEFAULT_HOT_ID_TTL_MS = 6 * 60 * 60 * 1000;

interface Generation {
  base: number;
  /** Set while the generation is a memtable (current or frozen). */
  memtable: Memtable | null;
  /** Row count, fixed once flushed. */
  rows: number;
  /** Set once flushed: the rows' ids and payload hashes. */
  flushed: FlushedIds | null;
  flushedAtMs: number;
  /**
   * Each row's table key (hash128 h1), kept so that leaving the window deletes the rows
   * without decoding and hashing every id again (~0.4 µs per id). Grows while a memtable.
   */
  keys: GrowableU32;
}

export interface FlushedIds {
  eventIds: PackedIds;
  /** Four 32-bit words per row (model/payload-hash.ts). */
  payloadHashes: Uint32Array;
}

export type RecentHit =
  { kind: 'memtable'; memtable: Memtable; row: number } | { kind: 'flushed'; payloadHash: Hash128 };

export class RecentIds {
  private readonly seqOf = new IdSeqTable();
  /** Oldest first; the last one is the current memtable. */
  private readonly generations: Generation[] = [];
  private flushedIds = 0;
  private readonly maxFlushedIds: number;
  private readonly ttlMs: number;

  constructor(maxFlushedIds: number, ttlMs: number) {
    this.maxFlushedIds = Math.max(0, maxFlushedIds);
    this.ttlMs = ttlMs;
  }

  get size(): number {
    return this.seqOf.size;
  }

  /** Starts the generation of a new, empty current memtable. */
  startMemtable(memtable: Memtable): void {
    assert(memtable.rowCount === 0, 'a generation starts with an empty memtable');
    const last = this.generations.at(-1);
    const base = last === undefined ? 0 : last.base + (last.memtable?.rowCount ?? last.rows);
    this.generations.push({
      base,
      memtable,
      rows: 0,
      flushed: null,
      flushedAtMs: 0,
      keys: new GrowableU32(),
    });
  }

  /** Records row `row` of the current memtable (call right after appending it); `h1` = hash128(eventId).h1. */
  add(eventId: string, row: number, h1: number = hash128(eventId).h1): void {
    const current = this.generations.at(-1);
    assert(current?.memtable != null, 'no current memtable generation');
    // Messages built only on failure: this runs for every accepted event.
    if (current.memtable.eventIds[row] !== eventId)
      assert(false, `row ${row} does not hold event ${eventId}`);
    if (this.seqOfId(eventId, h1) >= 0) assert(false, `event ${eventId} is already held in memory`);
    this.seqOf.insert(h1, current.base + row);
    current.keys.push(row, h1);
  }

  /** Forgets row `row` of the current memtable, about to be cut (never acknowledged). */
  remove(eventId: string, row: number): void {
    const current = this.generations.at(-1);
    assert(current?.memtable != null, 'no current memtable generation');
    const h = hash128(eventId);
    this.seqOf.delete(h.h1, current.base + row);
  }

  /** `h1` = hash128(eventId).h1, when the caller has it. */
  lookup(eventId: string, h1: number = hash128(eventId).h1): RecentHit | undefined {
    const seq = this.seqOfId(eventId, h1);
    if (seq < 0) return undefined;
    for (let i = this.generations.length - 1; i >= 0; i--) {
      const g = this.generations[i];
      if (seq < g.base) continue;
      const row = seq - g.base;
      if (g.memtable !== null) {
        if (g.memtable.eventIds[row] !== eventId) assert(false, `recent id ${eventId} points at another row`);
        return { kind: 'memtable', memtable: g.memtable, row };
      }
      const h = (g.flushed as FlushedIds).payloadHashes;
      const o = row * 4;
      return { kind: 'flushed', payloadHash: { h1: h[o], h2: h[o + 1], h3: h[o + 2], h4: h[o + 3] } };
    }
    throw new Error(`recent id ${eventId} has no generation`);
  }

  /** The sequence number of `eventId` (fingerprint `h1`), or -1. */
  private seqOfId(eventId: string, h1: number): number {
    const table = this.seqOf;
    for (let slot = table.firstSlot(h1); slot >= 0; slot = table.nextSlot(slot, h1)) {
      const seq = table.seqAt(slot);
      if (this.holds(seq, eventId)) return seq;
    }
    return -1;
  }

  /** Whether `seq` is the number of `eventId`. */
  private holds(seq: number, eventId: string): boolean {
    for (let i = this.generations.length - 1; i >= 0; i--) {
      const g = this.generations[i];
      if (seq < g.base) continue;
      if (g.memtable !== null) return g.memtable.eventIds[seq - g.base] === eventId;
      return packedIdEquals((g.flushed as FlushedIds).eventIds, seq - g.base, eventId);
    }
    return false;
  }

  /**
   * The memtable is now in a committed segment: its generation keeps only ids and payload
   * hashes (four words per memtable row). Then old generations leave the window.
   */
  markFlushed(memtable: Memtable, flushed: FlushedIds, nowMs: number): void {
    const g = this.generations.find((x) => x.memtable === memtable);
    assert(g !== undefined, 'flushed memtable has no generation');
    assert(g !== this.generations.at(-1), 'the current memtable cannot be flushed');
    assert(flushed.payloadHashes.length === memtable.rowCount * 4, 'one payload hash per flushed row');
    assert(flushed.eventIds.ends.length === memtable.rowCount, 'one packed id per flushed row');
    g.rows = memtable.rowCount;
    g.memtable = null;
    g.flushed = flushed;
    g.keys.data = g.keys.data.slice(0, g.rows);
    g.flushedAtMs = nowMs;
    this.flushedIds += g.rows;
    this.evict(nowMs);
  }

  /** Drops flushed generations beyond the window's size or age (also runs on tick). */
  evict(nowMs: number): void {
    while (this.generations.length > 1) {
      const oldest = this.generations[0];
      if (oldest.memtable !== null) break;
      if (this.flushedIds <= this.maxFlushedIds && nowMs - oldest.flushedAtMs < this.ttlMs) break;
      for (let row = 0; row < oldest.rows; row++) {
        const removed = this.seqOf.delete(oldest.keys.data[row], oldest.base + row);
        assert(removed, 'a flushed id left the recent table early');
      }
      this.flushedIds -= oldest.rows;
      this.generations.shift();
    }
  }
}
