/**
 * The payload of one WAL record: the events a single ingest call accepted, with the stamp they
 * share, as JSON (one native JSON.stringify per record: hand-built text measured slower).
 *
 * Invariants (persisted — never change a format; add one):
 * - format 3 (written), by column: [3, ingested_at_ms, strings, event_ids, fields, timestamps,
 *   quantities, corrections]. `strings` holds each distinct value of the repeating fields once;
 *   `fields` holds 8 indexes into it per event (account, subscription, product, meter, model,
 *   unit, source, dimensions JSON; -1 = null); a quantity is a JSON number when it is a safe
 *   integer, else its decimal string; `corrections` lists the events that are not Usage as
 *   flat quadruples [index, kind, original id, reason] (a Usage event has no correction_ref).
 *   Against format 2 a record is ~50% smaller and ~40% cheaper to encode: no dimensions JSON
 *   escaped per event, no array per event;
 * - format 2 (still read): [2, ingested_at_ms, PayloadTuple[]] (model/event.ts).
 */
import type { EventKind } from '../model/columns.ts';
import { type PayloadTuple, type StoredEvent, type UsageEvent, eventOfPayloadTuple } from '../model/event.ts';
import { parseQuantityString, type Quantity } from '../model/quantity.ts';

const BATCH_FORMAT = 3;
const BATCH_FORMAT_TUPLES = 2;
/** Indexes into `strings` per event in format 3. */
const FIELDS = 8;
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeWalBatch(events: readonly UsageEvent[], ingestedAtMs: number): Uint8Array {
  const codes = new Map<string, number>();
  const strings: string[] = [];
  const code = (value: string | null): number => {
    if (value === null) return -1;
    let c = codes.get(value);
    if (c === undefined) {
      c = strings.length;
      strings.push(value);
      codes.set(value, c);
    }
    return c;
  };
  const n = events.length;
  const ids = new Array<string>(n);
  const fields = new Array<number>(n * FIELDS);
  const timestamps = new Array<number>(n);
  const quantities = new Array<number | string>(n);
  const corrections: (number | string | null)[] = [];
  for (let i = 0; i < n; i++) {
    const e = events[i];
    ids[i] = e.event_id;
    const o = i * FIELDS;
    fields[o] = code(e.account_id);
    fields[o + 1] = code(e.subscription_id);
    fields[o + 2] = code(e.product_id);
    fields[o + 3] = code(e.meter_id);
    fields[o + 4] = code(e.model_id);
    fields[o + 5] = code(e.unit);
    fields[o + 6] = code(e.source);
    fields[o + 7] = code(e.dimensions_json);
    timestamps[i] = e.timestamp_ms;
    const q = e.quantity;
    quantities[i] = typeof q === 'number' ? q : q.toString();
    const ref = e.correction_ref;
    if (e.kind !== 'Usage' || ref !== null) {
      corrections.push(i, e.kind, ref?.original_event_id ?? null, ref?.reason ?? null);
    }
  }
  const batch = [BATCH_FORMAT, ingestedAtMs, strings, ids, fields, timestamps, quantities, corrections];
  return Buffer.from(JSON.stringify(batch), 'utf8');
}

export function decodeWalBatch(payload: Uint8Array): StoredEvent[] {
  const batch = JSON.parse(decoder.decode(payload)) as unknown[];
  const [format, ingestedAtMs] = batch as [number, number];
  if (format === BATCH_FORMAT_TUPLES) {
    const tuples = batch[2] as PayloadTuple[];
    return tuples.map((t) => ({ ...eventOfPayloadTuple(t), ingested_at_ms: ingestedAtMs }));
  }
  if (format !== BATCH_FORMAT) throw new Error(`unsupported WAL batch format ${format}`);
  const [, , strings, ids, fields, timestamps, quantities, corrections] = batch as [
    number,
    number,
    string[],
    string[],
    number[],
    number[],
    (number | string)[],
    (number | string | null)[],
  ];
  const n = ids.length;
  if (fields.length !== n * FIELDS || timestamps.length !== n || quantities.length !== n)
    throw new Error('WAL batch columns differ in length');
  const text = (c: number): string => {
    const s = strings[c];
    if (typeof s !== 'string') throw new Error(`WAL batch string ${c} is missing`);
    return s;
  };
  const nullable = (c: number): string | null => (c === -1 ? null : text(c));
  const events: StoredEvent[] = new Array<StoredEvent>(n);
  for (let i = 0; i < n; i++) {
    const o = i * FIELDS;
    events[i] = {
      event_id: ids[i],
      kind: 'Usage',
      correction_ref: null,
      account_id: text(fields[o]),
      subscription_id: nullable(fields[o + 1]),
      product_id: text(fields[o + 2]),
      meter_id: text(fields[o + 3]),
      model_id: nullable(fields[o + 4]),
      unit: text(fields[o + 5]),
      source: text(fields[o + 6]),
      timestamp_ms: timestamps[i],
      quantity: quantityOf(quantities[i]),
      dimensions_json: text(fields[o + 7]),
      ingested_at_ms: ingestedAtMs,
    };
  }
  for (let j = 0; j < corrections.length; j += 4) {
    const e = events[corrections[j] as number];
    if (e === undefined) throw new Error(`WAL batch correction of event ${corrections[j]} is out of range`);
    e.kind = corrections[j + 1] as EventKind;
    const original = corrections[j + 2] as string | null;
    e.correction_ref =
      original === null
        ? null
        : { original_event_id: original, reason: (corrections[j + 3] as string | null) ?? '' };
  }
  return events;
}

function quantityOf(q: number | string): Quantity {
  return typeof q === 'number' ? q : parseQuantityString(q);
}
