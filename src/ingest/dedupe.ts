/**
 * Permanent idempotency: finding whether an event id was ever stored, at any age.
 *
 * Lookup order for an id (DESIGN §1): memtables (exact, in the caller) -> hot cache of
 * recently flushed ids -> id filters of every flush (in memory, a "no" is final) -> segments
 * of the event's own (day, bucket) partition -> every other segment whose own id filter says
 * maybe (a retry whose timestamp or account changed: a conflict, rare).
 *
 * Invariants:
 * - a "not found" is only returned when every flush's id filter, or every segment, says no:
 *   filters have no false negatives, so an id that was ever flushed is always found;
 * - every hit is confirmed against the exact event_id string; hashes never decide alone.
 */
import type { Clock } from '../storage/clock.ts';
import type { BloomFilter } from '../storage/encoding/bloom-filter.ts';
import type { SegmentEntry } from '../storage/manifest.ts';
import type { SegmentStore } from '../storage/segment-store.ts';
import { type StoredEvent, eventOfRow } from '../model/event.ts';
import { type Hash128, hash128 } from '../model/hash.ts';

export const DEFAULT_HOT_IDS_MAX = 1_000_000;
export const DEFAULT_HOT_ID_TTL_MS = 6 * 60 * 60 * 1000;

/**
 * Recently flushed ids -> payload hash, bounded in count and age. Two generations: ids live
 * between ttl/2 and ttl (or until 2 x maxIds/2 newer ones arrived), with no per-entry clock.
 */
export class HotIdCache {
  private current = new Map<string, string>();
  private previous = new Map<string, string>();
  private readonly generationIds: number;
  private readonly generationMs: number;
  private readonly clock: Clock;
  private generationStartMs: number;

  constructor(maxIds: number, ttlMs: number, clock: Clock) {
    this.generationIds = Math.max(1, Math.floor(maxIds / 2));
    this.generationMs = Math.max(1, Math.floor(ttlMs / 2));
    this.clock = clock;
    this.generationStartMs = clock.nowMs();
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }

  private rotateIfDue(): void {
    const now = this.clock.nowMs();
    if (this.current.size >= this.generationIds || now - this.generationStartMs >= this.generationMs) {
      this.previous = now - this.generationStartMs >= 2 * this.generationMs ? new Map() : this.current;
      this.current = new Map();
      this.generationStartMs = now;
    }
  }

  get(eventId: string): string | undefined {
    return this.current.get(eventId) ?? this.previous.get(eventId);
  }

  set(eventId: string, payloadHashKey: string): void {
    this.rotateIfDue();
    this.current.set(eventId, payloadHashKey);
  }
}

export interface IdFilterHandle {
  id: number;
  filter: BloomFilter;
}

/** Where a stored event was found. */
export interface StoredHit {
  entry: SegmentEntry;
  row: number;
  event: StoredEvent;
}

export class StoredEventFinder {
  private readonly segments: SegmentStore;
  private flushFilters: IdFilterHandle[] = [];

  constructor(segments: SegmentStore) {
    this.segments = segments;
  }

  setFlushFilters(filters: IdFilterHandle[]): void {
    this.flushFilters = filters;
  }

  addFlushFilter(filter: IdFilterHandle): void {
    this.flushFilters = [...this.flushFilters, filter];
  }

  /** False means the id was never flushed (no false negatives). */
  mayBeStored(h: Hash128): boolean {
    for (const f of this.flushFilters) if (f.filter.mayContain(h.h1, h.h2)) return true;
    return false;
  }

  /**
   * Finds a stored (flushed) event by id. `partitionHint` names the partition to try first
   * (called only when some filter says maybe, so the common "new id" path skips it).
   */
  async find(eventId: string, partitionHint: () => { day: string; bucket: number } | null): Promise<StoredHit | null> {
    const h = hash128(eventId);
    if (!this.mayBeStored(h)) return null;
    const tried = new Set<number>();
    const hint = partitionHint();
    if (hint !== null) {
      for (const entry of this.segments.inPartition(hint.day, hint.bucket)) {
        tried.add(entry.id);
        const hit = await this.tryEntry(entry, eventId, h);
        if (hit) return hit;
      }
    }
    for (const entry of this.segments.entries()) {
      if (tried.has(entry.id)) continue;
      const hit = await this.tryEntry(entry, eventId, h);
      if (hit) return hit;
    }
    return null;
  }

  private async tryEntry(entry: SegmentEntry, eventId: string, h: Hash128): Promise<StoredHit | null> {
    const filter = await this.segments.filter(entry);
    if (!filter.mayContain(h.h1, h.h2)) return null;
    const row = await this.segments.findRow(entry, eventId);
    if (row === undefined) return null;
    const columns = await this.segments.allColumns(entry);
    return { entry, row, event: eventOfRow(columns, row) };
  }
}
