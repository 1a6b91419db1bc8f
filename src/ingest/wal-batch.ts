/**
 * The payload of one WAL record: the events a single ingest call accepted, as their canonical
 * payload tuples (model/event.ts), with the stamp they share. JSON arrays keep records small.
 *
 * Invariant (persisted): [BATCH_FORMAT, ingested_at_ms, PayloadTuple[]].
 */
import {
  type PayloadTuple,
  type StoredEvent,
  type UsageEvent,
  eventOfPayloadTuple,
  payloadTuple,
} from '../model/event.ts';

const BATCH_FORMAT = 2;
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeWalBatch(events: readonly UsageEvent[], ingestedAtMs: number): Uint8Array {
  return Buffer.from(JSON.stringify([BATCH_FORMAT, ingestedAtMs, events.map(payloadTuple)]), 'utf8');
}

export function decodeWalBatch(payload: Uint8Array): StoredEvent[] {
  const [format, ingestedAtMs, rows] = JSON.parse(decoder.decode(payload)) as [
    number,
    number,
    PayloadTuple[],
  ];
  if (format !== BATCH_FORMAT) throw new Error(`unsupported WAL batch format ${format}`);
  return rows.map((t) => ({ ...eventOfPayloadTuple(t), ingested_at_ms: ingestedAtMs }));
}
