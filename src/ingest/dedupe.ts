/**
 * Permanent idempotency: finding whether an event id was ever stored, at any age.
 *
 * Lookup order for an id (DESIGN §1): memtables (exact, in the caller) -> hot cache of
 * recently flushed ids -> the id filter of every segment file (in memory; a "no" is final) ->
 * in a segment that says maybe, the blocks of the event's own (day, bucket) partition first,
 * then the rest (a retry whose timestamp or account changed: a conflict, rare).
 *
 * Invariants:
 * - a "not found" is only returned when every segment's id filter, or a search of the whole
 *   segment, says no: filters have no false negatives, so a flushed id is always found;
 * - every hit is confirmed against the exact event_id string; hashes never decide alone.
 */
import type { Clock } from '../storage/clock.ts';
import { COLUMN_NAMES, type EventColumns } from '../model/columns.ts';
import type { PartitionSlice, SegmentStore } from '../storage/segment-store.ts';
import { type StoredEvent, eventOfRow } from '../model/event.ts';
import { hash128 } from '../model/hash.ts';

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
   * Finds a stored (flushed) event by id. `partitionHint` names the partition to try first; it
   * is called only when some segment's id filter says maybe, so the common "new id" path
   * costs one hash and a few filter probes.
   */
  async find(eventId: string, partitionHint: () => { day: string; bucket: number } | null): Promise<StoredHit | null> {
    const h = hash128(eventId);
    const candidates = this.segments.filesMayContain(h.h1, h.h2);
    if (candidates.length === 0) return null;
    const hint = partitionHint();
    for (const entry of candidates) {
      const slices = this.segments.slicesOfSegment(entry.id);
      const first = hint === null ? [] : slices.filter((s) => s.day === hint.day && s.bucket === hint.bucket);
      const hit = (await this.search(entry.id, first, eventId)) ?? (await this.search(entry.id, slices, eventId));
      if (hit) return hit;
    }
    return null;
  }

  /** Looks for the id in the given slices' blocks, decoding only event ids until it is found. */
  private async search(segmentId: number, slices: readonly PartitionSlice[], eventId: string): Promise<StoredHit | null> {
    if (slices.length === 0) return null;
    const reader = await this.segments.fileReader(segmentId);
    for (const slice of slices) {
      for (let b = slice.first_block; b < slice.first_block + slice.block_count; b++) {
        const ids = this.segments.decodeBlocks(segmentId, reader, ['event_id'], [b]).event_id ?? [];
        const row = ids.indexOf(eventId);
        if (row < 0) continue;
        const block = this.segments.decodeBlocks(segmentId, reader, COLUMN_NAMES, [b]) as EventColumns;
        return { segmentId, event: eventOfRow(block, row) };
      }
    }
    return null;
  }
}
