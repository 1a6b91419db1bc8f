/**
 * Event-id hashes of a segment file, sorted, with the row of each: finds the row holding an
 * id with one binary search, so a lookup decodes one event id, not a block of them. The
 * writer builds it from the hashes it computes anyway and stores it in the file (format 2:
 * chunks of ID_INDEX_CHUNK_ENTRIES, hash prefixes Rice coded, rows bit-packed; ~3–4 bytes per
 * event); lookups read one chunk at a time through a bounded cache (segment-store.ts). A
 * format 1 file gets its whole index built from its event ids on first need.
 *
 * Invariant: `hashes` ascending; `rows[i]` is the row whose id hashes (hash128 h3, or in a
 * stored chunk its high bits, storedHashShift) to `hashes[i]`.
 */
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
 * the deltas of the shifted hashes after the first (the first is in the footer's directory),
 * each Rice coded (delta >> 8 in unary as ones ended by a zero, then its low 8 bits), then
 * every row in `rowBits` bits; zero bits pad the last byte.
 */
export function encodeIdIndexChunk(
  index: IdIndex,
  from: number,
  to: number,
  rowBits: number,
  shift: number,
): Uint8Array {
  const bits: number[] = [];
  let acc = 0;
  let accBits = 0;
  const put = (value: number, width: number): void => {
    for (let k = 0; k < width; k++) {
      acc |= ((value >>> k) & 1) << accBits;
      if (++accBits === 8) {
        bits.push(acc);
        acc = 0;
        accBits = 0;
      }
    }
  };
  for (let i = from + 1; i < to; i++) {
    const d = (index.hashes[i] >>> shift) - (index.hashes[i - 1] >>> shift);
    for (let q = d >>> RICE_BITS; q > 0; q--) put(1, 1);
    put(0, 1);
    put(d, RICE_BITS);
  }
  for (let i = from; i < to; i++) put(index.rows[i], rowBits);
  if (accBits > 0) bits.push(acc);
  return Uint8Array.from(bits);
}

/** Decodes a stored chunk of `count` entries (shifted hashes); throws RangeError on bytes that do not fit. */
export function decodeIdIndexChunk(
  bytes: Uint8Array,
  firstHash: number,
  count: number,
  rowBits: number,
): IdIndex {
  const hashes = new Uint32Array(count);
  const rows = new Uint32Array(count);
  // Bits not yet consumed sit in `acc` (low bits first), `have` of them; refilled a byte at a
  // time, so a field of up to 16 bits is one mask and shift (cold lookups decode whole chunks).
  let acc = 0;
  let have = 0;
  let pos = 0;
  const refill = (): void => {
    while (have <= 16 && pos < bytes.length) {
      acc |= bytes[pos++] << have;
      have += 8;
    }
  };
  const take = (width: number): number => {
    refill();
    if (have < width) throw new RangeError('id index chunk: truncated');
    const v = acc & ((1 << width) - 1);
    acc >>>= width;
    have -= width;
    return v;
  };
  const takeWide = (width: number): number =>
    width <= 16 ? take(width) : take(16) + take(width - 16) * 65536;
  let h = firstHash;
  hashes[0] = h;
  for (let i = 1; i < count; i++) {
    let q = 0;
    for (;;) {
      if (have === 0) {
        refill();
        if (have === 0) throw new RangeError('id index chunk: truncated');
      }
      const bit = acc & 1;
      acc >>>= 1;
      have--;
      if (bit === 0) break;
      q++;
    }
    h += q * 256 + take(RICE_BITS);
    if (h > 0xffffffff) throw new RangeError('id index chunk: hash out of range');
    hashes[i] = h;
  }
  for (let i = 0; i < count; i++) rows[i] = takeWide(rowBits);
  // Only the zero padding of the last byte may remain.
  if (pos !== bytes.length || have >= 8 || acc !== 0) throw new RangeError('id index chunk: trailing bits');
  return { hashes, rows };
}
