import { hash } from 'node:crypto';

/**
 * 128-bit hashes (truncated SHA-256): the event-id hash keys the id filters, the payload hash
 * decides duplicate vs conflict. SHA-256 rather than a fast non-cryptographic hash because a
 * crafted collision would let a sender make a billable event look like a duplicate.
 */
export interface Hash128 {
  /** 16 bytes. */
  bytes: Uint8Array;
  /** First two little-endian 32-bit words, used for filter probing (double hashing). */
  h1: number;
  h2: number;
}

export function hash128(text: string): Hash128 {
  const digest = hash('sha256', text, 'buffer');
  const bytes = new Uint8Array(digest.buffer, digest.byteOffset, 16);
  return { bytes, h1: digest.readUInt32LE(0), h2: digest.readUInt32LE(4) };
}

/** 128-bit hash as 32 lowercase hex characters. */
export function hash128Hex(text: string): string {
  return hash('sha256', text, 'hex').slice(0, 32);
}
