/**
 * Usage events: the validated in-memory form, the canonical payload (what "same payload"
 * means for idempotency) and the wire (JSON) form returned to users.
 *
 * Invariants:
 * - a UsageEvent is always validated and normalised (see validate.ts): kind set, nullable
 *   fields null rather than absent, dimensions sorted by key, quantity a canonical Quantity;
 * - `canonicalPayload(e)` of an incoming event and `canonicalPayload(eventOfRow(columns, row))`
 *   of its stored row produce the same text, so stored events and retries compare exactly.
 */
import {
  dictValue,
  type EventColumns,
  type EventKind,
  KIND_NAMES,
  NULL_CODE,
  quantityAt,
} from './columns.ts';
import { type Quantity, parseQuantityString, quantityToString } from './quantity.ts';

export interface CorrectionRef {
  original_event_id: string;
  reason: string;
}

/** A validated, normalised event (without the server stamp). */
export interface UsageEvent {
  event_id: string;
  kind: EventKind;
  correction_ref: CorrectionRef | null;
  account_id: string;
  subscription_id: string | null;
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  source: string;
  timestamp_ms: number;
  quantity: Quantity;
  /** Canonical JSON of the key-sorted dimension map; '{}' when empty. */
  dimensions_json: string;
}

export interface StoredEvent extends UsageEvent {
  ingested_at_ms: number;
}

/** An event as returned to users (the wire form; quantities as decimal strings). */
export interface WireEvent extends Omit<StoredEvent, 'quantity' | 'dimensions_json'> {
  quantity: string;
  dimensions: Record<string, string>;
}

/** The canonical payload text: the normalised event without `ingested_at_ms`. */
export function canonicalPayload(e: UsageEvent): string {
  return JSON.stringify(payloadTuple(e));
}

/**
 * The canonical payload as a tuple, in its persisted field order (WAL records hold exactly
 * these tuples — never reorder): event_id, kind, original id, reason, account, subscription,
 * product, meter, model, unit, source, timestamp_ms, quantity (decimal string), dimensions.
 */
export type PayloadTuple = [
  string,
  EventKind,
  string | null,
  string | null,
  string,
  string | null,
  string,
  string,
  string | null,
  string,
  string,
  number,
  string,
  string,
];

export function payloadTuple(e: UsageEvent): PayloadTuple {
  return [
    e.event_id,
    e.kind,
    e.correction_ref?.original_event_id ?? null,
    e.correction_ref?.reason ?? null,
    e.account_id,
    e.subscription_id,
    e.product_id,
    e.meter_id,
    e.model_id,
    e.unit,
    e.source,
    e.timestamp_ms,
    quantityToString(e.quantity),
    e.dimensions_json,
  ];
}

/** Inverse of payloadTuple. */
export function eventOfPayloadTuple(t: PayloadTuple): UsageEvent {
  return {
    event_id: t[0],
    kind: t[1],
    correction_ref: t[2] === null ? null : { original_event_id: t[2], reason: t[3] ?? '' },
    account_id: t[4],
    subscription_id: t[5],
    product_id: t[6],
    meter_id: t[7],
    model_id: t[8],
    unit: t[9],
    source: t[10],
    timestamp_ms: t[11],
    quantity: parseQuantityString(t[12]),
    dimensions_json: t[13],
  };
}

/** Reads one stored row back into an event. */
export function eventOfRow(c: EventColumns, row: number): StoredEvent {
  const originalId = c.correction_original_event_id[row];
  const reason = c.correction_reason[row];
  return {
    event_id: c.event_id[row],
    kind: KIND_NAMES[c.kind[row]],
    correction_ref: originalId === null ? null : { original_event_id: originalId, reason: reason ?? '' },
    account_id: requiredDict(c.account_id.dict, c.account_id.codes[row]),
    subscription_id: dictValue(c.subscription_id, row),
    product_id: requiredDict(c.product_id.dict, c.product_id.codes[row]),
    meter_id: requiredDict(c.meter_id.dict, c.meter_id.codes[row]),
    model_id: dictValue(c.model_id, row),
    unit: requiredDict(c.unit.dict, c.unit.codes[row]),
    source: requiredDict(c.source.dict, c.source.codes[row]),
    timestamp_ms: c.timestamp_ms[row],
    quantity: quantityAt(c.quantity, row),
    dimensions_json: requiredDict(c.dimensions.dict, c.dimensions.codes[row]),
    ingested_at_ms: c.ingested_at_ms[row],
  };
}

function requiredDict(dict: string[], code: number): string {
  if (code === NULL_CODE) throw new Error('required column holds a null');
  return dict[code];
}

export function toWireEvent(e: StoredEvent): WireEvent {
  return {
    event_id: e.event_id,
    kind: e.kind,
    correction_ref: e.correction_ref,
    account_id: e.account_id,
    subscription_id: e.subscription_id,
    product_id: e.product_id,
    meter_id: e.meter_id,
    model_id: e.model_id,
    unit: e.unit,
    source: e.source,
    timestamp_ms: e.timestamp_ms,
    quantity: quantityToString(e.quantity),
    dimensions: JSON.parse(e.dimensions_json) as Record<string, string>,
    ingested_at_ms: e.ingested_at_ms,
  };
}

/**
 * Canonical JSON of a dimension map: keys sorted by UTF-16 code unit order. Built by hand
 * because JS objects put integer-like keys first, whatever their insertion order.
 */
export function canonicalDimensionsJson(dims: Record<string, string>): string {
  const keys = Object.keys(dims);
  if (keys.length === 0) return '{}';
  keys.sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(dims[k])}`).join(',')}}`;
}

/** UTC day (YYYY-MM-DD) of a timestamp. */
export function utcDay(timestampMs: number): string {
  return new Date(timestampMs).toISOString().slice(0, 10);
}
