/**
 * The compaction policy: size-tiered by rows. A segment's tier is how many times its rows
 * reach MERGE_FANOUT × the tier below, starting from TIER_BASE_ROWS. When a tier holds
 * MERGE_FANOUT segments, its oldest MERGE_FANOUT merge into one segment of the next tier, so
 * live segments stay below MERGE_FANOUT per tier and each event is rewritten about once per
 * tier it climbs (write amplification ≈ tiers climbed + 1).
 *
 * Every merge is capped in rows, because the merge worker holds about 600 bytes per row while
 * it encodes (measured: a 1M-row merge added ~500 MiB of RSS): background merges (`tick()`)
 * take at most BACKGROUND_MERGE_ROWS_MAX rows, so they only consolidate the small segments of
 * age-based flushes (a full memtable's segment is already that size); an explicit `compact()`
 * merges up to COMPACT_MERGE_ROWS_MAX rows at a time.
 */
import type { RawSegmentEntry } from '../storage/manifest.ts';

export const MERGE_FANOUT = 4;
export const TIER_BASE_ROWS = 15_625;
export const BACKGROUND_MERGE_ROWS_MAX = 250_000;
export const COMPACT_MERGE_ROWS_MAX = 1_000_000;

export function tierOf(rows: number): number {
  let tier = 0;
  let ceiling = TIER_BASE_ROWS * MERGE_FANOUT;
  while (rows >= ceiling) {
    tier++;
    ceiling *= MERGE_FANOUT;
  }
  return tier;
}

const rowsOf = (entries: readonly RawSegmentEntry[]): number => entries.reduce((n, e) => n + e.rows, 0);

/** The next tiered merge due (inputs oldest first, at most `rowsMax` rows), or null. */
export function planMerge(raw: readonly RawSegmentEntry[], rowsMax: number): RawSegmentEntry[] | null {
  const byTier = new Map<number, RawSegmentEntry[]>();
  for (const e of raw) {
    const t = tierOf(e.rows);
    const list = byTier.get(t);
    if (list === undefined) byTier.set(t, [e]);
    else list.push(e);
  }
  for (const tier of [...byTier.keys()].sort((a, b) => a - b)) {
    const group = (byTier.get(tier) as RawSegmentEntry[]).slice(0, MERGE_FANOUT);
    if (group.length === MERGE_FANOUT && rowsOf(group) <= rowsMax) return group;
  }
  return null;
}

/**
 * For an explicit compaction: a tiered merge if one is due, else the smallest segments that fit
 * together under `rowsMax` (at least two), in manifest order; null when nothing can merge.
 */
export function planCompaction(raw: readonly RawSegmentEntry[], rowsMax: number): RawSegmentEntry[] | null {
  const tiered = planMerge(raw, rowsMax);
  if (tiered !== null) return tiered;
  const picked = new Set<RawSegmentEntry>();
  let rows = 0;
  for (const e of [...raw].sort((a, b) => a.rows - b.rows)) {
    if (rows + e.rows > rowsMax) break;
    picked.add(e);
    rows += e.rows;
  }
  return picked.size < 2 ? null : raw.filter((e) => picked.has(e));
}
