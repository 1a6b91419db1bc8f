/**
 * Permanent idempotency: finding whether an event id was ever stored, at any age.
 *
 * Lookup order for an id (DESIGN §1): memtables (exact, in the caller) -> hot cache of
 * recently flushed ids -> the id filter of every segment file (in memory; a "no" is final) ->
 * in a file that says maybe, its id index (sorted id hashes with their block) -> the exact
 * id in that block. Works whatever partition the stored event is in (a retry whose timestamp
 * or account changed is a conflict, and is found).
 *
 * Invariants:
 * - a "not found" is only returned when every segment's id filter or id index says no:
 *   neither has false negatives, so a flushed id is always found;
 * - every hit is confirmed against the exact event_id string; hashes never decide alone.
 */

import { COLUMN_NAMES, type EventColumns } from '../model/columns.ts';
import { eventOfRow, type StoredEvent } from '../model/event.ts';
import { hash128 } from '../model/hash.ts';
import type { Clock } from '../storage/clock.ts';
import type { SegmentStore } from '../storage/segment-store.ts';
import { lowerBound } from '../util/lower-bound.ts';

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

/** Where a stored event was found. */
export interface StoredHit {
  segmentId: number;
  event: StoredEvent;
}

export class StoredEventFinder {
  private readonly segments: SegmentStore;

  constructor(segments: SegmentStore) {
    this.segments = segments;
  }

  /** False means the id was never flushed (filters have no false negatives). */
  mayBeStored(eventId: string): boolean {
    const h = hash128(eventId);
    return this.segments.anyFileMayContain(h.h1, h.h2);
  }

  /**
   * Finds a stored (flushed) event by id, at any age and whatever partition it is in: every
   * segment file whose id filter says maybe is searched through its id index (a binary search
   * on the id hash, then the exact id in the one block it names).
   */
  async find(eventId: string): Promise<StoredHit | null> {
    const h = hash128(eventId);
    for (const entry of this.segments.filesMayContain(h.h1, h.h2)) {
      const index = await this.segments.idIndex(entry.id);
      for (let i = lowerBound(index.hashes, h.h3); i < index.hashes.length && index.hashes[i] === h.h3; i++) {
        const hit = await this.searchBlock(entry.id, index.blocks[i], eventId);
        if (hit) return hit;
      }
    }
    return null;
  }

  private async searchBlock(segmentId: number, block: number, eventId: string): Promise<StoredHit | null> {
    const ids = (await this.segments.readBlocks(segmentId, ['event_id'], [block])).event_id ?? [];
    const row = ids.indexOf(eventId);
    if (row < 0) return null;
    const columns = (await this.segments.readBlocks(segmentId, COLUMN_NAMES, [block])) as EventColumns;
    return { segmentId, event: eventOfRow(columns, row) };
  }
}
