/**
 * The payload of one WAL record: the events a single ingest call accepted, with the stamp
 * they share. JSON arrays (not objects) keep records small and replay fast.
 *
 * Invariant (persisted — never reorder): row layout as in `encodeRow`.
 */
import { KIND_NAMES } from '../model/columns.ts';
import type { StoredEvent, UsageEvent } from '../model/event.ts';
import { type Quantity, quantityToString, toQuantity } from '../model/quantity.ts';

const BATCH_FORMAT = 1;
const decoder = new TextDecoder('utf-8', { fatal: true });

type Row = [
  string,
  number,
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
  number | string,
  string,
];

function encodeQuantity(q: Quantity): number | string {
  return typeof q === 'number' ? q : quantityToString(q);
}

function encodeRow(e: UsageEvent): Row {
  return [
    e.event_id,
    KIND_NAMES.indexOf(e.kind),
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
    encodeQuantity(e.quantity),
    e.dimensions_json,
  ];
}

export function encodeWalBatch(events: readonly UsageEvent[], ingestedAtMs: number): Uint8Array {
  return Buffer.from(JSON.stringify([BATCH_FORMAT, ingestedAtMs, events.map(encodeRow)]), 'utf8');
}

export function decodeWalBatch(payload: Uint8Array): StoredEvent[] {
  const [format, ingestedAtMs, rows] = JSON.parse(decoder.decode(payload)) as [number, number, Row[]];
  if (format !== BATCH_FORMAT) throw new Error(`unsupported WAL batch format ${format}`);
  return rows.map((r) => ({
    event_id: r[0],
    kind: KIND_NAMES[r[1]],
    correction_ref: r[2] === null ? null : { original_event_id: r[2], reason: r[3] ?? '' },
    account_id: r[4],
    subscription_id: r[5],
    product_id: r[6],
    meter_id: r[7],
    model_id: r[8],
    unit: r[9],
    source: r[10],
    timestamp_ms: r[11],
    quantity: typeof r[12] === 'number' ? r[12] : toQuantity(BigInt(r[12])),
    dimensions_json: r[13],
    ingested_at_ms: ingestedAtMs,
  }));
}
