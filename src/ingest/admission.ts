/**
 * The admission chain: what happens to each event of a batch before it may be appended.
 * validate (model) → correction rules (billing) → idempotency (duplicate / conflict / new) →
 * `period_closed` (new Usage events only) → `already_retracted`.
 *
 * Invariants:
 * - `classify` runs under the ingest mutex, so a batch sees every event accepted before it,
 *   including the earlier events of the same batch;
 * - most events are new and settle without awaiting: only an id-filter hit reads segments;
 * - an accepted event's id was found nowhere: not in the batch, the memtables, the hot window
 *   or any segment (exact string comparison confirms every hash hit).
 */
import type { ClosedPeriods } from '../billing/closed-periods.ts';
import { resolveCorrection } from '../billing/corrections.ts';
import { canonicalPayload, eventOfRow, type StoredEvent, type UsageEvent } from '../model/event.ts';
import { hash128Into } from '../model/hash.ts';
import { payloadHash } from '../model/payload-hash.ts';
import type { PendingEvent, RejectReason } from '../model/validate.ts';
import type { RetractedOriginals } from '../storage/retractions.ts';
import type { PinnedVersion } from '../storage/version-set.ts';
import { samePayload, type StoredEventFinder, type StoredPayload } from './dedupe.ts';
import type { Memtables } from './memtables.ts';

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

export function emptyIngestResult(): IngestResult {
  return { accepted: 0, duplicates: 0, conflicts: 0, rejected: 0, errors: [] };
}

export function rejectEvent(
  result: IngestResult,
  index: number,
  eventId: string | null,
  reason: RejectReason,
  message: string,
): void {
  result.rejected++;
  result.errors.push({ index, event_id: eventId, status: 'rejected', reason, message });
}

/** Per valid event, what prefetchStored did: nothing (not a Usage event), or hashed its id and… */
const PREFETCH_NONE = 0;
/** …left the answer to the loop (the id is in memory: the loop looks it up again, in order); */
const PREFETCH_HASHED = 1;
/** …found that no segment holds it (the id filter said no: final); */
const PREFETCH_NOT_STORED = 2;
/** …started the stored lookup (in `lookups`). */
const PREFETCH_LOOKUP = 3;

/**
 * What prefetchStored learnt of a batch, by position in `valid`: typed arrays rather than a
 * map entry per event (~1,000 string-keyed entries per batch of mostly new events).
 */
interface Prefetch {
  state: Uint8Array;
  /** hash128 words h1, h2 of each hashed event id. */
  h1: Uint32Array;
  h2: Uint32Array;
  /** The stored lookups started, by event id. */
  lookups: Map<string, Promise<StoredPayload | null>>;
}

/** How an incoming event relates to what is stored (strings: nothing allocated per event). */
type Lookup = 'new' | 'duplicate' | 'conflict';

export interface Admitted {
  events: UsageEvent[];
  /** The id table key (hash128 h1) of each admitted event. */
  idKeys: Uint32Array;
}

export class Admission {
  private readonly memtables: Memtables;
  private readonly finder: StoredEventFinder;
  private readonly retracted: RetractedOriginals;
  /** hash128 of the event being classified (scratch: the ingest mutex serialises its use). */
  private readonly idHash = new Uint32Array(4);

  private readonly pin: () => PinnedVersion;
  private readonly closed: ClosedPeriods | null;

  /**
   * `pin`: pins the current version, so a compaction committing meanwhile keeps what lookups
   * read. `closed`: the closed account-months (new Usage events into them are rejected).
   */
  constructor(
    memtables: Memtables,
    finder: StoredEventFinder,
    retracted: RetractedOriginals,
    pin: () => PinnedVersion,
    closed: ClosedPeriods | null = null,
  ) {
    this.memtables = memtables;
    this.finder = finder;
    this.retracted = retracted;
    this.pin = pin;
    this.closed = closed;
  }

  /** Classifies validated events; counts duplicates and records rejections and conflicts. */
  async classify(
    valid: readonly { index: number; event: PendingEvent }[],
    result: IngestResult,
  ): Promise<Admitted> {
    const version = this.pin();
    const prefetch = this.prefetchStored(valid);
    try {
      return await this.classifyPinned(valid, result, prefetch);
    } finally {
      // Lookups the loop did not need still read the pinned files: done before the release.
      if (prefetch.lookups.size > 0) await Promise.allSettled(prefetch.lookups.values());
      version.release();
    }
  }

  private async classifyPinned(
    valid: readonly { index: number; event: PendingEvent }[],
    result: IngestResult,
    prefetch: Prefetch,
  ): Promise<Admitted> {
    const events: UsageEvent[] = [];
    const idKeys = new Uint32Array(valid.length);
    const batch = new Map<string, UsageEvent>();
    const batchRetracted = new Set<string>();
    for (let v = 0; v < valid.length; v++) {
      const { index, event: pending } = valid[v];
      let event: UsageEvent;
      if (pending.kind === 'Usage') {
        event = pending as UsageEvent;
      } else {
        const checked = await resolveCorrection(pending, (id) => this.findOriginal(id, batch));
        if ('reason' in checked) {
          rejectEvent(result, index, pending.event_id, checked.reason, checked.message);
          continue;
        }
        event = checked.event;
      }
      // The prefetch hashed the Usage events' ids already (a Correction's id is hashed here).
      const state = prefetch.state[v];
      if (state === PREFETCH_NONE) hash128Into(event.event_id, this.idHash);
      else {
        this.idHash[0] = prefetch.h1[v];
        this.idHash[1] = prefetch.h2[v];
      }
      const idKey = this.idHash[0];
      let found = this.lookupInMemory(event, this.idHash, batch, state, prefetch);
      if (found === 'maybe_stored') found = await this.lookupStored(event, prefetch);
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
      // After idempotency: a retry of an event already billed in the closed period is a duplicate.
      if (event.kind === 'Usage' && this.closed?.isClosed(event.account_id, event.timestamp_ms)) {
        rejectEvent(
          result,
          index,
          event.event_id,
          'period_closed',
          `the period ${new Date(event.timestamp_ms).toISOString().slice(0, 7)} of account ${event.account_id} is closed; send a Correction instead`,
        );
        continue;
      }
      const original = event.correction_ref?.original_event_id;
      if (event.kind === 'Retraction' && original !== undefined) {
        if (batchRetracted.has(original) || (await this.isRetracted(original))) {
          rejectEvent(
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
      events.push(event);
      idKeys[events.length - 1] = idKey;
      batch.set(event.event_id, event);
    }
    result.accepted = events.length;
    result.errors.sort((a, b) => a.index - b.index);
    return { events, idKeys };
  }

  private async isRetracted(originalId: string): Promise<boolean> {
    return this.memtables.retractedInMemory(originalId) || (await this.retracted.has(originalId));
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
    state: number,
    prefetch: Prefetch,
  ): Lookup | 'maybe_stored' {
    const inBatch = batch.get(event.event_id);
    if (inBatch) return compare(event, canonicalPayload(inBatch));
    // The prefetch found the id neither in memory nor in a filter, and nothing was appended
    // since (the caller holds the ingest mutex): new, without probing the table again.
    if (state === PREFETCH_NOT_STORED) return 'new';
    const hit = this.memtables.recent.lookup(event.event_id, idHash[0]);
    if (hit?.kind === 'memtable') {
      return compare(event, canonicalPayload(eventOfRow(hit.memtable.columns(), hit.row)));
    }
    if (hit?.kind === 'flushed') {
      const h = payloadHash(event);
      const p = hit.payloadHash;
      const same = h.h1 === p.h1 && h.h2 === p.h2 && h.h3 === p.h3 && h.h4 === p.h4;
      return same ? 'duplicate' : 'conflict';
    }
    if (state === PREFETCH_LOOKUP || prefetch.lookups.has(event.event_id)) return 'maybe_stored';
    return this.finder.mayBeStored(idHash[0], idHash[1]) ? 'maybe_stored' : 'new';
  }

  private async lookupStored(event: UsageEvent, prefetch: Prefetch): Promise<Lookup> {
    const stored = await (prefetch.lookups.get(event.event_id) ?? this.finder.findPayload(event.event_id));
    return stored === null ? 'new' : samePayload(event, stored) ? 'duplicate' : 'conflict';
  }

  /**
   * Starts the stored lookups of a batch's Usage events that memory cannot answer, all at
   * once: a cold retry waits on a dozen small reads, and the batch's retries then wait
   * together instead of one after another. The loop still decides in order (an earlier event
   * of the batch or a memtable answers first); a lookup it does not need is only wasted work.
   */
  private prefetchStored(valid: readonly { event: PendingEvent }[]): Prefetch {
    const n = valid.length;
    const out: Prefetch = {
      state: new Uint8Array(n),
      h1: new Uint32Array(n),
      h2: new Uint32Array(n),
      lookups: new Map(),
    };
    const h = this.idHash;
    for (let v = 0; v < n; v++) {
      const event = valid[v].event;
      if (event.kind !== 'Usage') continue;
      hash128Into(event.event_id, h);
      out.h1[v] = h[0];
      out.h2[v] = h[1];
      out.state[v] = PREFETCH_HASHED;
      if (out.lookups.has(event.event_id)) continue;
      if (this.memtables.recent.lookup(event.event_id, h[0]) !== undefined) continue;
      if (!this.finder.mayBeStored(h[0], h[1])) {
        // The filter's answer, kept: the loop then probes it no second time.
        out.state[v] = PREFETCH_NOT_STORED;
        continue;
      }
      const lookup = this.finder.findPayload(event.event_id);
      // Awaited in the loop, unless an earlier failure ends it first: never unhandled.
      lookup.catch(() => undefined);
      out.lookups.set(event.event_id, lookup);
      out.state[v] = PREFETCH_LOOKUP;
    }
    return out;
  }

  private async findOriginal(
    eventId: string,
    batch: Map<string, UsageEvent>,
  ): Promise<StoredEvent | UsageEvent | null> {
    return batch.get(eventId) ?? (await findStoredEvent(this.memtables, this.finder, eventId));
  }
}

function compare(event: UsageEvent, storedPayload: string): Lookup {
  return storedPayload === canonicalPayload(event) ? 'duplicate' : 'conflict';
}

/** Finds a stored or pending event by id (memtables first, then segments). */
async function findStoredEvent(
  memtables: Memtables,
  finder: StoredEventFinder,
  eventId: string,
): Promise<StoredEvent | null> {
  const recent = memtables.recent.lookup(eventId);
  if (recent?.kind === 'memtable') return eventOfRow(recent.memtable.columns(), recent.row);
  const hit = await finder.find(eventId);
  return hit?.event ?? null;
}
