/**
 * Event-id hashes of a segment file, sorted, with the row of each: finds the row holding an
 * id with one binary search, so a lookup decodes one event id, not a block of them. Derived
 * from the file (not stored: it would cost ~8 bytes/event on disk), 8 bytes/event of memory.
 * A flush builds it in its worker from the hashes it already has; a file opened later gets it
 * on the first id-filter hit (segment-store.ts).
 *
 * Invariant: `hashes` ascending; `rows[i]` is the row whose id hashes (hash128 h3) to `hashes[i]`.
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
