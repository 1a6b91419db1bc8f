/**
 * The tight loops of the aggregation: selection-vector filters and group-key arithmetic over
 * typed arrays, each monomorphic so V8 compiles it to a plain loop.
 *
 * Invariants:
 * - a filter reads `sel[0..n)` and writes the kept rows to `out[0..m)`, m <= n; `out` may be
 *   `sel` itself (compaction in place never overtakes the read position);
 * - dictionary masks are indexed by code + 1: NULL_CODE (2^32 - 1) + 1 wraps to 0 with `>>> 0`,
 *   so null is entry 0 without a branch;
 * - the shared scratch is only used inside one synchronous chunk step.
 */

/** Scratch shared by every aggregation (see the invariants). */
export class Scratch {
  identity = new Uint32Array(0);
  sel = new Uint32Array(0);
  keys = new Float64Array(0);
  /** Group index of each selected row (negative: left for the slow path). */
  groups = new Int32Array(0);

  ensureRows(n: number): void {
    if (this.identity.length >= n) return;
    const size = Math.max(n, this.identity.length * 2, 4096);
    this.identity = new Uint32Array(size);
    for (let i = 0; i < size; i++) this.identity[i] = i;
    this.sel = new Uint32Array(size);
    this.keys = new Float64Array(size);
    this.groups = new Int32Array(size);
  }
}

export const scratch = new Scratch();

export function filterByMask(
  sel: Uint32Array,
  n: number,
  codes: Uint32Array,
  bits: Uint8Array,
  out: Uint32Array,
): number {
  let m = 0;
  for (let j = 0; j < n; j++) {
    const row = sel[j];
    if (bits[(codes[row] + 1) >>> 0] === 1) out[m++] = row;
  }
  return m;
}

/**
 * The first filter of a chunk (the selection is every row): no indirection through `sel`,
 * and a branchless store, since a selective filter's branch mispredicts.
 */
export function filterAllByMask(n: number, codes: Uint32Array, bits: Uint8Array, out: Uint32Array): number {
  let m = 0;
  for (let row = 0; row < n; row++) {
    out[m] = row;
    m += bits[(codes[row] + 1) >>> 0];
  }
  return m;
}

export function filterKind(
  sel: Uint32Array,
  n: number,
  kind: Uint8Array,
  allowed: Uint8Array,
  out: Uint32Array,
): number {
  let m = 0;
  for (let j = 0; j < n; j++) {
    const row = sel[j];
    if (allowed[kind[row]] === 1) out[m++] = row;
  }
  return m;
}

export function filterTime(
  sel: Uint32Array,
  n: number,
  ts: Float64Array,
  fromMs: number,
  toMs: number,
  out: Uint32Array,
): number {
  let m = 0;
  for (let j = 0; j < n; j++) {
    const row = sel[j];
    const t = ts[row];
    if (t >= fromMs && t < toMs) out[m++] = row;
  }
  return m;
}

/** keys[j] = keys[j] * card + local code (card 0: first key, keys start fresh). */
export function addDictKey(
  keys: Float64Array,
  sel: Uint32Array,
  n: number,
  codes: Uint32Array,
  card: number,
): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = (codes[sel[j]] + 1) >>> 0;
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + ((codes[sel[j]] + 1) >>> 0);
}

const EMPTY_CODES = new Uint32Array(0);

/**
 * All keys at once for 1-4 dictionary keys: key = ((c0 * k1 + c1) * k2 + c2) * k3 + c3 over
 * codes + 1. Absent keys are skipped by loop-invariant flags (their arrays are never read).
 */
export function addDictKeys(
  keys: Float64Array,
  sel: Uint32Array,
  n: number,
  codes: readonly Uint32Array[],
  cards: readonly number[],
): void {
  const c0 = codes[0];
  const c1 = codes[1] ?? EMPTY_CODES;
  const c2 = codes[2] ?? EMPTY_CODES;
  const c3 = codes[3] ?? EMPTY_CODES;
  const k1 = codes.length > 1 ? cards[1] : 1;
  const k2 = codes.length > 2 ? cards[2] : 1;
  const k3 = codes.length > 3 ? cards[3] : 1;
  const has1 = codes.length > 1 ? 1 : 0;
  const has2 = codes.length > 2 ? 1 : 0;
  const has3 = codes.length > 3 ? 1 : 0;
  for (let j = 0; j < n; j++) {
    const row = sel[j];
    let key = (c0[row] + 1) >>> 0;
    if (has1 === 1) key = key * k1 + ((c1[row] + 1) >>> 0);
    if (has2 === 1) key = key * k2 + ((c2[row] + 1) >>> 0);
    if (has3 === 1) key = key * k3 + ((c3[row] + 1) >>> 0);
    keys[j] = key;
  }
}

export function addKindKey(
  keys: Float64Array,
  sel: Uint32Array,
  n: number,
  kind: Uint8Array,
  card: number,
): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = kind[sel[j]];
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + kind[sel[j]];
}

export function addMappedKey(
  keys: Float64Array,
  sel: Uint32Array,
  n: number,
  codes: Uint32Array,
  local: Uint32Array,
  card: number,
): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = local[(codes[sel[j]] + 1) >>> 0];
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + local[(codes[sel[j]] + 1) >>> 0];
}

export function addTimeKey(
  keys: Float64Array,
  sel: Uint32Array,
  n: number,
  ts: Float64Array,
  unit: number,
  lo: number,
  card: number,
): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = Math.floor(ts[sel[j]] / unit) - lo;
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + (Math.floor(ts[sel[j]] / unit) - lo);
}

export function addLocalKey(keys: Float64Array, n: number, local: Float64Array, card: number): void {
  if (card === 0) for (let j = 0; j < n; j++) keys[j] = local[j];
  else for (let j = 0; j < n; j++) keys[j] = keys[j] * card + local[j];
}

/** [min, max] of the time units (days or hours since the epoch) of the selected rows. */
export function timeUnitRange(ts: Float64Array, sel: Uint32Array, n: number, unit: number): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let j = 0; j < n; j++) {
    const u = Math.floor(ts[sel[j]] / unit);
    if (u < lo) lo = u;
    if (u > hi) hi = u;
  }
  return [lo, hi];
}

export function timeUnits(ts: Float64Array, sel: Uint32Array, n: number, unit: number): Float64Array {
  const units = new Float64Array(n);
  for (let j = 0; j < n; j++) units[j] = Math.floor(ts[sel[j]] / unit);
  return units;
}

/** Renumbers keys[0..n) densely (first-seen order); returns the new key space size. */
export function densify(keys: Float64Array, n: number): number {
  const ids = new Map<number, number>();
  for (let j = 0; j < n; j++) {
    let id = ids.get(keys[j]);
    if (id === undefined) {
      id = ids.size;
      ids.set(keys[j], id);
    }
    keys[j] = id;
  }
  return Math.max(1, ids.size);
}
