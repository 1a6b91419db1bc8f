/**
 * Permanent idempotency: finding whether an event id was ever stored, at any age.
 *
 * Lookup order for an id: memtables and the hot window of recently flushed ids
 * (RecentIds, in the caller) -> the database id filter (one probe of one cache line, in
 * memory; a "no" is final) -> on a maybe, each segment file's own id filter (read on demand,
 * cached) -> in a file that says maybe, its id index (sorted id hashes with their row, read a
 * chunk at a time, cached) -> the exact id of that row. Works whatever partition the stored
 * event is in (a retry whose timestamp or account changed is a conflict, and is found).
 *
 * Invariants:
 * - a "not found" is only returned when the database filter, or every segment's id filter or
 *   id index, says no: none has false negatives, so a flushed id is always found;
 * - a new event costs one filter probe whatever the number of files, unless the database
 *   filter answers a false positive;
 * - every hit is confirmed against the exact event_id string; hashes never decide alone.
 */

import { COLUMN_NAMES, type ColumnName, type EventColumns } from '../model/columns.ts';
import { canonicalPayload, eventOfRow, type StoredEvent } from '../model/event.ts';
import { hash128 } from '../model/hash.ts';
import type { SegmentStore } from '../storage/segment-store.ts';

/** Where a stored event was found. */
export interface StoredHit {
  segmentId: number;
  event: StoredEvent;
}

const OTHER_COLUMNS = COLUMN_NAMES.filter((name) => name !== 'event_id');
/** What the canonical payload is made of: neither the id (known) nor ingested_at_ms. */
const PAYLOAD_COLUMNS = OTHER_COLUMNS.filter((name) => name !== 'ingested_at_ms');

export class StoredEventFinder {
  private readonly segments: SegmentStore;

  constructor(segments: SegmentStore) {
    this.segments = segments;
  }

  /** `h1`, `h2` = hash128(event id). False means the id was never flushed (filters have no false negatives). */
  mayBeStored(h1: number, h2: number): boolean {
    return this.segments.mayBeStored(h1, h2);
  }

  /**
   * Finds a stored (flushed) event by id, at any age and whatever partition it is in: every
   * segment file whose id filter says maybe is searched through its id index (a binary search
   * on the id hash gives candidate rows; only their event ids are decoded, then the block of
   * the one that matches).
   */
  async find(eventId: string): Promise<StoredHit | null> {
    return this.findWith(eventId, OTHER_COLUMNS);
  }

  /**
   * The canonical payload of a stored event (duplicate or conflict), or null: like find but
   * without ingested_at_ms, one chunk fewer to read and decode on every cold retry.
   */
  async findPayload(eventId: string): Promise<string | null> {
    const hit = await this.findWith(eventId, PAYLOAD_COLUMNS);
    return hit === null ? null : canonicalPayload(hit.event);
  }

  private async findWith(eventId: string, names: readonly ColumnName[]): Promise<StoredHit | null> {
    const h = hash128(eventId);
    if (!this.segments.mayBeStored(h.h1, h.h2)) return null;
    for (const entry of await this.segments.filesMayContain(h.h1, h.h2)) {
      for (const row of await this.segments.idIndexRows(entry.id, h.h3)) {
        if ((await this.segments.readEventIdAt(entry.id, row)) !== eventId) continue;
        // Every column but event_id (known to match): ids are the costliest to decode.
        const columns = (await this.segments.readRow(entry.id, names, row)) as EventColumns;
        const payloadOnly = columns.ingested_at_ms === undefined;
        if (payloadOnly) columns.ingested_at_ms = NOT_READ;
        const event = eventOfRow({ ...columns, event_id: [eventId] }, 0);
        // Not read: NaN, never a plausible instant.
        if (payloadOnly) event.ingested_at_ms = Number.NaN;
        return { segmentId: entry.id, event };
      }
    }
    return null;
  }
}

/** Stands in for ingested_at_ms when it was not read (payload-only lookups). */
const NOT_READ = new Float64Array(0);
