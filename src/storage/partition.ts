/**
 * Partitioning of raw events: (UTC day of timestamp_ms, bucket of account_id).
 *
 * Invariant (persisted — never change): bucket = FNV-1a 32-bit of the UTF-8 bytes of
 * account_id, modulo the database's fixed bucket_count. Queries prune by it.
 */
import { utcDay } from '../model/event.ts';

export const DEFAULT_BUCKET_COUNT = 64;
const encoder = new TextEncoder();

export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  const bytes = encoder.encode(text);
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function accountBucket(accountId: string, bucketCount: number): number {
  return fnv1a32(accountId) % bucketCount;
}

export { utcDay };

const DAY_MS = 86_400_000;

/** Start (ms) of the UTC day holding `timestampMs`. */
export function dayStartMs(timestampMs: number): number {
  return Math.floor(timestampMs / DAY_MS) * DAY_MS;
}
