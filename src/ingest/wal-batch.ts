/**
 * The payload of one WAL record: the events a single ingest call accepted, with the stamp they
 * share, as JSON (one native JSON.stringify per record: hand-built text measured slower).
 *
 * Invariants (persisted — never change a format; add one):
 * - format 3 (written): [3, ingested_at_ms, strings, rows]. `strings` holds each distinct value
 *   of the repeating fields once (account, subscription, product, meter, model, unit, source,
 *   dimensions JSON); a row is [event_id, kind, original id | null, reason | null, account,
 *   subscription, product, meter, model, unit, source, timestamp_ms, quantity, dimensions]
 *   where the repeating fields are indexes into `strings` (-1 = null) and the quantity is a
 *   JSON number when it is a safe integer, else its decimal string. Against format 2 a record
 *   is ~45% smaller and ~1/3 cheaper to encode (no dimensions JSON escaped per event);
 * - format 2 (still read): [2, ingested_at_ms, PayloadTuple[]] (model/event.ts).
 */
import type { EventKind } from '../model/columns.ts';
import { type PayloadTuple, type StoredEvent, type UsageEvent, eventOfPayloadTuple } from '../model/event.ts';
import { parseQuantityString, type Quantity } from '../model/quantity.ts';

const BATCH_FORMAT = 3;
const BATCH_FORMAT_TUPLES = 2;
const decoder = new TextDecoder('utf-8', { fatal: true });

type Row = [
  string,
  EventKind,
  string | null,
  string | null,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number,
  number | string,
  number,
];

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
  const rows = new Array<Row>(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    const ref = e.correction_ref;
    const q = e.quantity;
    rows[i] = [
      e.event_id,
      e.kind,
      ref === null ? null : ref.original_event_id,
      ref === null ? null : ref.reason,
      code(e.account_id),
      code(e.subscription_id),
      code(e.product_id),
      code(e.meter_id),
      code(e.model_id),
      code(e.unit),
      code(e.source),
      e.timestamp_ms,
      typeof q === 'number' ? q : q.toString(),
      code(e.dimensions_json),
    ];
  }
  return Buffer.from(JSON.stringify([BATCH_FORMAT, ingestedAtMs, strings, rows]), 'utf8');
}

export function decodeWalBatch(payload: Uint8Array): StoredEvent[] {
  const batch = JSON.parse(decoder.decode(payload)) as unknown[];
  const [format, ingestedAtMs] = batch as [number, number];
  if (format === BATCH_FORMAT_TUPLES) {
    const tuples = batch[2] as PayloadTuple[];
    return tuples.map((t) => ({ ...eventOfPayloadTuple(t), ingested_at_ms: ingestedAtMs }));
  }
  if (format !== BATCH_FORMAT) throw new Error(`unsupported WAL batch format ${format}`);
  const strings = batch[2] as string[];
  const rows = batch[3] as Row[];
  const text = (c: number): string => {
    const s = strings[c];
    if (typeof s !== 'string') throw new Error(`WAL batch string ${c} is missing`);
    return s;
  };
  const nullable = (c: number): string | null => (c === -1 ? null : text(c));
  return rows.map((r) => ({
    event_id: r[0],
    kind: r[1],
    correction_ref: r[2] === null ? null : { original_event_id: r[2], reason: r[3] ?? '' },
    account_id: text(r[4]),
    subscription_id: nullable(r[5]),
    product_id: text(r[6]),
    meter_id: text(r[7]),
    model_id: nullable(r[8]),
    unit: text(r[9]),
    source: text(r[10]),
    timestamp_ms: r[11],
    quantity: quantityOf(r[12]),
    dimensions_json: text(r[13]),
    ingested_at_ms: ingestedAtMs,
  }));
}

function quantityOf(q: number | string): Quantity {
  return typeof q === 'number' ? q : parseQuantityString(q);
}
