/**
 * Event ids packed as UTF-8 in one buffer: the hot dedupe window keeps ~1M of them, and as JS
 * strings they cost ~48 bytes each of old-generation heap that every major GC traces; packed
 * they cost their length plus 4 bytes.
 *
 * Invariant: id i is bytes [ends[i - 1] (0 for i = 0), ends[i]).
 */

export interface PackedIds {
  bytes: Uint8Array;
  ends: Uint32Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Packs ids[0..count). */
export function packIds(ids: readonly string[], count = ids.length): PackedIds {
  let total = 0;
  for (let i = 0; i < count; i++) total += Buffer.byteLength(ids[i], 'utf8');
  const bytes = new Uint8Array(total);
  const ends = new Uint32Array(count);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    pos += encoder.encodeInto(ids[i], bytes.subarray(pos)).written;
    ends[i] = pos;
  }
  if (pos !== total) throw new Error('packIds: encoded length differs from the computed one');
  return { bytes, ends };
}

export function packedIdAt(p: PackedIds, i: number): string {
  return decoder.decode(p.bytes.subarray(i === 0 ? 0 : p.ends[i - 1], p.ends[i]));
}

/** packedIdAt(p, i) === id, without decoding when the id is ASCII (event ids nearly always are). */
export function packedIdEquals(p: PackedIds, i: number, id: string): boolean {
  const start = i === 0 ? 0 : p.ends[i - 1];
  const length = p.ends[i] - start;
  // UTF-8 never takes fewer bytes than UTF-16 code units.
  if (length < id.length) return false;
  const bytes = p.bytes;
  for (let k = 0; k < id.length; k++) {
    const c = id.charCodeAt(k);
    if (c >= 0x80) return packedIdAt(p, i) === id;
    if (bytes[start + k] !== c) return false;
  }
  return length === id.length;
}
