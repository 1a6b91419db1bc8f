/**
 * The compaction policy: size-tiered by rows. A segment's tier is how many times its rows
 * reach MERGE_FANOUT × the tier below, starting from TIER_BASE_ROWS (about one full memtable).
 * When a tier holds MERGE_FANOUT segments, its oldest MERGE_FANOUT merge into one segment of
 * the next tier. So the number of live raw segments stays below MERGE_FANOUT per tier, about
 * log4(events / TIER_BASE_ROWS) tiers: dedupe probes one id filter per file, so its cost per
 * new event grows with the number of tiers, not with the number of flushes. Each event is
 * rewritten once per tier it climbs (write amplification ≈ number of tiers).
 *
 * A merge never takes more than MERGE_ROWS_MAX rows: the top tier stops merging there, so a
 * step of background work, and the merge worker's memory (~120 bytes per row while it runs),
 * stay bounded. Above it, files of MERGE_ROWS_MAX rows accumulate: one filter probe per 4M
 * events of history.
 */
import type { RawSegmentEntry } from '../storage/manifest.ts';

export const MERGE_FANOUT = 4;
export const TIER_BASE_ROWS = 250_000;
export const MERGE_ROWS_MAX = 4_000_000;

export function tierOf(rows: number): number {
  let tier = 0;
  let ceiling = TIER_BASE_ROWS * MERGE_FANOUT;
  while (rows >= ceiling) {
    tier++;
    ceiling *= MERGE_FANOUT;
  }
  return tier;
}

/** The next merge due (inputs oldest first), or null when every tier has room. */
export function planMerge(raw: readonly RawSegmentEntry[]): RawSegmentEntry[] | null {
  const byTier = new Map<number, RawSegmentEntry[]>();
  for (const e of raw) {
    const t = tierOf(e.rows);
    const list = byTier.get(t);
    if (list === undefined) byTier.set(t, [e]);
    else list.push(e);
  }
  for (const tier of [...byTier.keys()].sort((a, b) => a - b)) {
    const group = (byTier.get(tier) as RawSegmentEntry[]).slice(0, MERGE_FANOUT);
    if (group.length < MERGE_FANOUT) continue;
    if (group.reduce((n, e) => n + e.rows, 0) <= MERGE_ROWS_MAX) return group;
  }
  return null;
}
