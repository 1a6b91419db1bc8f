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
 * - every hit is confirmed against the exact event_id string; an id hash never decides alone
 *   (a payload hash may tell a duplicate from a conflict: neither is stored, see samePayload).
 */

import { COLUMN_NAMES, type ColumnName, type EventColumns } from '../model/columns.ts';
import { canonicalPayload, eventOfRow, type StoredEvent, type UsageEvent } from '../model/event.ts';
import { hash128 } from '../model/hash.ts';
import { payloadHash } from '../model/payload-hash.ts';
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
    return (await this.findWith(eventId, OTHER_COLUMNS)) as StoredHit | null;
  }

  /**
   * What a retry of a stored event is compared with (duplicate or conflict), or null when the
   * id was never flushed: the payload hash the file's id index stores next to the row (format
   * 3: nothing more is read), else the canonical payload of the row, read without
   * ingested_at_ms. Independent of any one retry's payload, so a batch's copies of an id can
   * share the lookup.
   */
  async findPayload(eventId: string): Promise<StoredPayload | null> {
    const hit = await this.findWith(eventId, PAYLOAD_COLUMNS, true);
    if (hit === null) return null;
    return 'hash' in hit ? hit : { canonical: canonicalPayload(hit.event) };
  }

  private async findWith(
    eventId: string,
    names: readonly ColumnName[],
    hashWillDo = false,
  ): Promise<StoredHit | PayloadHash | null> {
    const h = hash128(eventId);
    if (!this.segments.mayBeStored(h.h1, h.h2)) return null;
    for (const entry of await this.segments.filesMayContain(h.h1, h.h2)) {
      for (const { row, payload } of await this.segments.idIndexHits(entry.id, h.h3)) {
        if ((await this.segments.readEventIdAt(entry.id, row)) !== eventId) continue;
        if (hashWillDo && payload !== null) return { hash: payload };
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

/** Payload hash words h1, h2 (model/payload-hash.ts) of a stored row, from its file's id index. */
interface PayloadHash {
  hash: [number, number];
}

/** A stored event's payload as findPayload gives it. */
export type StoredPayload = PayloadHash | { canonical: string };

/**
 * Whether `event` repeats the stored payload (a duplicate) rather than changing it (a
 * conflict). With a stored hash, equal 64-bit hashes count as equal payloads: a conflict is
 * taken for a duplicate once in 2^64 conflicting retries, and either answer stores nothing.
 */
export function samePayload(event: UsageEvent, stored: StoredPayload): boolean {
  if ('canonical' in stored) return stored.canonical === canonicalPayload(event);
  const h = payloadHash(event);
  return h.h1 === stored.hash[0] && h.h2 === stored.hash[1];
}

/** Stands in for ingested_at_ms when it was not read (payload-only lookups). */
const NOT_READ = new Float64Array(0);
