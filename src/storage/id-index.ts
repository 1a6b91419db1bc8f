/**
 * Event-id hashes of a segment file, sorted, with the row of each: finds the row holding an
 * id with one binary search, so a lookup decodes one event id, not a block of them. The
 * writer builds it from the hashes it computes anyway and stores it in the file (format 2:
 * chunks of ID_INDEX_CHUNK_ENTRIES, hash prefixes Rice coded, rows bit-packed; ~3–4 bytes per
 * event; format 3 adds each entry's payload hash, 8 bytes); lookups read one chunk at a time
 * through a bounded cache (segment-store.ts). A format 1 file gets its whole index built from
 * its event ids on first need.
 *
 * Invariant: `hashes` ascending; `rows[i]` is the row whose id hashes (hash128 h3, or in a
 * stored chunk its high bits, storedHashShift) to `hashes[i]`.
 */
import { PAYLOAD_HASH_WORDS } from '../model/payload-hash.ts';
export interface IdIndex {
  hashes: Uint32Array;
  /** Row in the file of each hash. */
  rows: Uint32Array;
}

/** Rows up to which (hash, row) pairs sort as exact doubles (hash · 2^21 + row < 2^53). */
const PACKED_SORT_ROWS_MAX = 2 ** 21;

/**
 * The index of a file whose row r has id hash `hashOfRow[r]`. `packedSortRowsMax` is only
 * lowered by tests, to reach the comparator sort.
 */
export function buildIdIndex(hashOfRow: Uint32Array, packedSortRowsMax = PACKED_SORT_ROWS_MAX): IdIndex {
  const n = hashOfRow.length;
  const hashes = new Uint32Array(n);
  const rows = new Uint32Array(n);
  if (n <= Math.min(packedSortRowsMax, PACKED_SORT_ROWS_MAX)) {
    // A native sort of doubles: ~5× faster than sorting rows with a comparator.
    const keys = new Float64Array(n);
    for (let r = 0; r < n; r++) keys[r] = hashOfRow[r] * PACKED_SORT_ROWS_MAX + r;
    keys.sort();
    for (let i = 0; i < n; i++) {
      const row = keys[i] % PACKED_SORT_ROWS_MAX;
      rows[i] = row;
      hashes[i] = hashOfRow[row];
    }
  } else {
    for (let r = 0; r < n; r++) rows[r] = r;
    rows.sort((a, b) => hashOfRow[a] - hashOfRow[b] || a - b);
    for (let i = 0; i < n; i++) hashes[i] = hashOfRow[rows[i]];
  }
  return { hashes, rows };
}

/**
 * Entries per stored id-index chunk (format 2, docs/segment-format.md): a cold lookup reads
 * and decodes one chunk (~5 KiB on disk, 16 KiB decoded) instead of the whole index.
 */
export const ID_INDEX_CHUNK_ENTRIES = 2048;
/**
 * Format 3: its 8 bytes of payload hash per entry would make a 2,048-entry chunk ~21 KiB, and
 * a cold lookup reads one whole chunk (and its CRC) for a single entry: a quarter of the
 * entries keeps a chunk at ~5 KiB.
 */
export const ID_INDEX_CHUNK_ENTRIES_V3 = 512;

/** Entries per stored chunk of a file of this format (2 or later). */
export function idIndexChunkEntries(formatVersion: number): number {
  return formatVersion >= 3 ? ID_INDEX_CHUNK_ENTRIES_V3 : ID_INDEX_CHUNK_ENTRIES;
}

/** Bits that hold any row number of a file of `rowCount` rows (at least 1). */
export function rowBitsOf(rowCount: number): number {
  return Math.max(1, Math.ceil(Math.log2(Math.max(2, rowCount))));
}

/**
 * Low hash bits a stored index drops: it keeps rowBits + 8 bits of each hash, so a lookup
 * meets a wrong candidate row (one decoded id, then rejected) at most once in 256, and the
 * sorted deltas stay near one byte.
 */
export function storedHashShift(rowCount: number): number {
  return Math.max(0, 32 - (rowBitsOf(rowCount) + 8));
}

/** Rice parameter of the stored hash deltas: they average 256–512 (storedHashShift). */
const RICE_BITS = 8;

/**
 * One stored chunk of an id index: entries [from, to) of `index`, hashes shifted right by
 * `shift` (storedHashShift). Layout, a bit stream (least significant bit of each byte first):
 * every row in `rowBits` bits (fixed width, so row i is at bit i · rowBits), then the deltas of
 * the shifted hashes after the first (the first is in the footer's directory), each Rice coded
 * (delta >> 8 in unary as ones ended by a zero, then its low 8 bits); zero bits pad the last
 * byte. A lookup decodes deltas only up to its key, then reads the matching rows directly.
 */
export function encodeIdIndexChunk(
  index: IdIndex,
  from: number,
  to: number,
  rowBits: number,
  shift: number,
  payload?: Uint32Array,
): Uint8Array {
  const bytes: number[] = [];
  if (payload !== undefined) {
    // Format 3: each entry's payload words first, 8 bytes per entry, little-endian.
    const push32 = (w: number): void => {
      bytes.push(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24);
    };
    for (let i = from; i < to; i++) {
      const at = index.rows[i] * PAYLOAD_HASH_WORDS;
      push32(payload[at]);
      push32(payload[at + 1]);
    }
  }
  let acc = 0;
  let accBits = 0;
  const put = (value: number, width: number): void => {
    for (let k = 0; k < width; k++) {
      acc |= ((value >>> k) & 1) << accBits;
      if (++accBits === 8) {
        bytes.push(acc);
        acc = 0;
        accBits = 0;
      }
    }
  };
  for (let i = from; i < to; i++) put(index.rows[i], rowBits);
  for (let i = from + 1; i < to; i++) {
    const d = (index.hashes[i] >>> shift) - (index.hashes[i - 1] >>> shift);
    for (let q = d >>> RICE_BITS; q > 0; q--) put(1, 1);
    put(0, 1);
    put(d, RICE_BITS);
  }
  if (accBits > 0) bytes.push(acc);
  return Uint8Array.from(bytes);
}

/**
 * Format 3 chunks start with each entry's payload hash (words h1, h2 of model/payload-hash.ts,
 * 8 bytes per entry): a cold retry then tells a duplicate from a conflict with the chunk its
 * lookup reads anyway, instead of reading and decoding the stored row. `payload` of
 * encodeIdIndexChunk is payloadHashesOfColumns' output for the file's rows.
 */
export const PAYLOAD_BYTES_PER_ENTRY = 8;

/** The bit stream of a stored chunk of `count` entries: past the payload words in format 3. */
export function idIndexChunkBits(bytes: Uint8Array, count: number, withPayload: boolean): Uint8Array {
  if (!withPayload) return bytes;
  const at = count * PAYLOAD_BYTES_PER_ENTRY;
  if (bytes.length < at) throw new RangeError('id index chunk: shorter than its payload hashes');
  return bytes.subarray(at);
}

/** Payload hash words h1, h2 of entry `entry` of a format 3 chunk (the whole chunk's bytes). */
export function idIndexPayloadAt(bytes: Uint8Array, entry: number): [number, number] {
  const at = entry * PAYLOAD_BYTES_PER_ENTRY;
  const word = (o: number) =>
    (bytes[o] | (bytes[o + 1] << 8) | (bytes[o + 2] << 16) | (bytes[o + 3] << 24)) >>> 0;
  return [word(at), word(at + 4)];
}

/** Reads stored id index bits: fields of up to 16 bits per mask and shift. */
class BitReader {
  private readonly bytes: Uint8Array;
  private acc = 0;
  private have = 0;
  private pos: number;

  constructor(bytes: Uint8Array, bit: number) {
    this.bytes = bytes;
    this.pos = bit >>> 3;
    this.take(bit & 7);
  }

  private refill(): void {
    while (this.have <= 16 && this.pos < this.bytes.length) {
      this.acc |= this.bytes[this.pos++] << this.have;
      this.have += 8;
    }
  }

  take(width: number): number {
    if (width > 16) return this.take(16) + this.take(width - 16) * 65536;
    this.refill();
    if (this.have < width) throw new RangeError('id index chunk: truncated');
    const v = this.acc & ((1 << width) - 1);
    this.acc >>>= width;
    this.have -= width;
    return v;
  }

  /** One Rice-coded delta. */
  delta(): number {
    let q = 0;
    for (;;) {
      if (this.have === 0) {
        this.refill();
        if (this.have === 0) throw new RangeError('id index chunk: truncated');
      }
      const bit = this.acc & 1;
      this.acc >>>= 1;
      this.have--;
      if (bit === 0) break;
      q++;
    }
    return q * 256 + this.take(RICE_BITS);
  }

  /** True when only the zero padding of the last byte is left. */
  atPaddedEnd(): boolean {
    return this.pos === this.bytes.length && this.have < 8 && this.acc === 0;
  }
}

function checkChunkSize(bytes: Uint8Array, count: number, rowBits: number): void {
  if (count < 1 || bytes.length * 8 < count * rowBits + (count - 1) * (RICE_BITS + 1))
    throw new RangeError('id index chunk: shorter than its entries');
}

/** Decodes a whole stored chunk of `count` entries (shifted hashes); RangeError on bytes that do not fit. */
export function decodeIdIndexChunk(
  bytes: Uint8Array,
  firstHash: number,
  count: number,
  rowBits: number,
): IdIndex {
  checkChunkSize(bytes, count, rowBits);
  const hashes = new Uint32Array(count);
  const rows = new Uint32Array(count);
  const rowReader = new BitReader(bytes, 0);
  for (let i = 0; i < count; i++) rows[i] = rowReader.take(rowBits);
  const r = new BitReader(bytes, count * rowBits);
  let h = firstHash;
  hashes[0] = h;
  for (let i = 1; i < count; i++) {
    h += r.delta();
    if (h > 0xffffffff) throw new RangeError('id index chunk: hash out of range');
    hashes[i] = h;
  }
  if (!r.atPaddedEnd()) throw new RangeError('id index chunk: trailing bits');
  return { hashes, rows };
}

/**
 * Rows of a stored chunk whose shifted hash equals `key`: decodes deltas only up to the key,
 * then reads those rows at their fixed positions. RangeError on bytes that do not fit.
 */
export function searchIdIndexChunk(
  bytes: Uint8Array,
  firstHash: number,
  count: number,
  rowBits: number,
  key: number,
): number[] {
  return searchIdIndexEntries(bytes, firstHash, count, rowBits, key).map((i) =>
    idIndexRowAt(bytes, i, rowBits),
  );
}

/** Entries (positions in the chunk) of a chunk's bit stream whose shifted hash equals `key`. */
export function searchIdIndexEntries(
  bytes: Uint8Array,
  firstHash: number,
  count: number,
  rowBits: number,
  key: number,
): number[] {
  checkChunkSize(bytes, count, rowBits);
  const matches: number[] = [];
  const r = new BitReader(bytes, count * rowBits);
  let h = firstHash;
  for (let i = 0; i < count && h <= key; i++) {
    if (i > 0) h += r.delta();
    if (h === key) matches.push(i);
  }
  return matches;
}

/** The row of entry `entry` of a chunk's bit stream. */
export function idIndexRowAt(bytes: Uint8Array, entry: number, rowBits: number): number {
  return new BitReader(bytes, entry * rowBits).take(rowBits);
}
