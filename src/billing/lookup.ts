/**
 * lookupEvent: where an event is, or why it was not billed. A stored event is found the way
 * permanent dedupe finds it (memtables and hot window, then segment id filters and id
 * indexes), so it works at any age, after restarts and compactions; rejected events and
 * conflicting copies are found in the rejection log.
 *
 * Status precedence: `retracted` (a stored Usage event a Retraction cancels), then `conflict`
 * (stored, and a copy with another payload was refused), then `stored`; an id stored nowhere
 * is `rejected` or `conflict` per its latest rejection-log entry, else `unknown`.
 */
import { UsageDbError } from '../errors.ts';
import { KIND_RETRACTION } from '../model/columns.ts';
import { eventOfRow, type StoredEvent, toWireEvent, type WireEvent } from '../model/event.ts';
import type { StoredEventFinder } from '../ingest/dedupe.ts';
import type { Memtables } from '../ingest/memtables.ts';
import type { QueryEngine } from '../query/index.ts';
import type { RetractedOriginals } from '../storage/retractions.ts';
import type { ReadSnapshot } from '../storage/snapshot.ts';
import type { VersionSet } from '../storage/version-set.ts';
import { periodOf } from './lines.ts';
import { collectEvents } from './read.ts';
import type { RejectionEntry, RejectionLog } from './rejection-log.ts';

export type LookupStatus = 'stored' | 'retracted' | 'rejected' | 'conflict' | 'unknown';

export interface LookupRejection {
  received_at_ms: number;
  index: number;
  status: 'rejected' | 'conflict';
  reason: string;
  event: unknown;
  event_truncated: boolean;
}

export interface EventLookup {
  event_id: string;
  status: LookupStatus;
  /** Stored events: where, which period and line, whether that period is closed. */
  location?: 'segment' | 'memtable';
  segment_id?: number | null;
  period?: string;
  period_closed?: boolean;
  line?: { product_id: string; meter_id: string; model_id: string | null; unit: string };
  event?: WireEvent;
  retracted_by?: { event_id: string; timestamp_ms: number; reason: string } | null;
  /** Rejected: when and why (the latest refusal). */
  received_at_ms?: number;
  reason?: string;
  /** Every refusal of this id the rejection log still holds, oldest first. */
  rejections: LookupRejection[];
}

export interface LookupDeps {
  memtables: Memtables;
  finder: StoredEventFinder;
  retracted: RetractedOriginals;
  versions: VersionSet;
  engine: QueryEngine;
  pinSnapshot(): ReadSnapshot;
  log: RejectionLog;
}

/** Every column search of the far future: listing bounds for "any time". */
const TIME_MAX_MS = 8_640_000_000_000_000;

export async function lookupEvent(deps: LookupDeps, eventId: unknown): Promise<EventLookup> {
  if (typeof eventId !== 'string' || eventId.length === 0 || Buffer.byteLength(eventId, 'utf8') > 256) {
    throw new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', 'event_id must be a string of 1-256 bytes');
  }
  const rejections = deps.log.entriesFor(eventId).map(toLookupRejection);
  const snapshot = deps.pinSnapshot();
  try {
    const found = await findStored(deps, eventId);
    if (found === null) {
      const last = rejections.at(-1);
      if (last === undefined) return { event_id: eventId, status: 'unknown', rejections };
      return {
        event_id: eventId,
        status: last.status,
        received_at_ms: last.received_at_ms,
        reason: last.reason,
        rejections,
      };
    }
    const e = found.event;
    const period = periodOf(e.timestamp_ms);
    const retractedBy = e.kind === 'Usage' ? await findRetraction(deps, snapshot, e) : null;
    const status: LookupStatus =
      retractedBy !== null
        ? 'retracted'
        : rejections.some((r) => r.status === 'conflict')
          ? 'conflict'
          : 'stored';
    return {
      event_id: eventId,
      status,
      location: found.segmentId === null ? 'memtable' : 'segment',
      segment_id: found.segmentId,
      period,
      period_closed: deps.versions.current.periods.some(
        (p) => p.account_id === e.account_id && p.period === period,
      ),
      line: { product_id: e.product_id, meter_id: e.meter_id, model_id: e.model_id, unit: e.unit },
      event: toWireEvent(e),
      retracted_by: retractedBy,
      rejections,
    };
  } finally {
    snapshot.release();
  }
}

function toLookupRejection(r: RejectionEntry): LookupRejection {
  return {
    received_at_ms: r.received_at_ms,
    index: r.index,
    status: r.status,
    reason: r.reason,
    event: r.event,
    event_truncated: r.event_truncated,
  };
}

async function findStored(
  deps: LookupDeps,
  eventId: string,
): Promise<{ segmentId: number | null; event: StoredEvent } | null> {
  const recent = deps.memtables.recent.lookup(eventId);
  if (recent?.kind === 'memtable')
    return { segmentId: null, event: eventOfRow(recent.memtable.columns(), recent.row) };
  const hit = await deps.finder.find(eventId);
  return hit === null ? null : { segmentId: hit.segmentId, event: hit.event };
}

/** The Retraction of `original`, from the memtables or the segment its side file names. */
async function findRetraction(
  deps: LookupDeps,
  snapshot: ReadSnapshot,
  original: StoredEvent,
): Promise<EventLookup['retracted_by']> {
  const id = original.event_id;
  for (const m of snapshot.memtables) {
    for (let row = 0; row < m.rowCount; row++) {
      if (m.kind[row] === KIND_RETRACTION && m.correction_original_event_id[row] === id) {
        const r = eventOfRow(m, row);
        return { event_id: r.event_id, timestamp_ms: r.timestamp_ms, reason: r.correction_ref?.reason ?? '' };
      }
    }
  }
  const segmentIds = new Set(await deps.retracted.segmentsRetracting(id));
  if (segmentIds.size === 0) return null;
  const only = {
    ...snapshot,
    memtables: [],
    segments: snapshot.segments.filter((s) => segmentIds.has(s.segment_id)),
  };
  const found = await collectEvents(deps.engine, only, original.account_id, 0, TIME_MAX_MS, (e) =>
    e.kind === 'Retraction' && e.correction_ref?.original_event_id === id ? e : null,
  );
  const r = found[0];
  return r === undefined
    ? null
    : { event_id: r.event_id, timestamp_ms: r.timestamp_ms, reason: r.correction_ref?.reason ?? '' };
}
