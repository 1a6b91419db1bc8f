/**
 * Rollup levels and time buckets: hour, day and UTC calendar month; the meter-grain levels
 * use the day and month buckets. A query range is cut into
 * pieces that whole buckets of one level serve (the coarsest its grouping allows), with raw
 * edges where the range does not fall on hour boundaries.
 *
 * Invariant: the pieces of a range are disjoint, in order, and cover exactly [from, to).
 */
import { ROLLUP_LEVELS, type RollupBucket, type RollupLevel } from '../storage/manifest.ts';

export { ROLLUP_LEVELS };

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** The time bucket of a level. */
export function bucketOf(level: RollupLevel): RollupBucket {
  return level === 'meter_day' ? 'day' : level === 'meter_month' ? 'month' : level;
}

/** The meter-grain level of a bucket (none per hour). */
export function meterLevelOf(bucket: RollupBucket): RollupLevel | null {
  return bucket === 'day' ? 'meter_day' : bucket === 'month' ? 'meter_month' : null;
}

/** The dictionary columns a meter-grain row keeps (the others are null). */
export const METER_GRAIN_COLUMNS = ['account_id', 'meter_id', 'unit'] as const;

/** Start of the bucket of `level` holding `ms`. */
export function bucketStart(level: RollupBucket, ms: number): number {
  if (level === 'hour') return ms - mod(ms, HOUR_MS);
  if (level === 'day') return ms - mod(ms, DAY_MS);
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Start of the bucket after the one starting at `start`. */
export function nextBucket(level: RollupBucket, start: number): number {
  if (level === 'hour') return start + HOUR_MS;
  if (level === 'day') return start + DAY_MS;
  const d = new Date(start);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

/** The first bucket start of `level` at or after `ms`. */
export function ceilBucket(level: RollupBucket, ms: number): number {
  const start = bucketStart(level, ms);
  return start === ms ? ms : nextBucket(level, start);
}

function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

/** A part of a query range and what serves it: a rollup level, or raw events. */
export interface RangePiece {
  source: RollupBucket | 'raw';
  fromMs: number;
  toMs: number;
}

/**
 * Cuts [fromMs, toMs) into pieces: the coarsest level up to `coarsest` in the middle, finer
 * levels towards the edges, raw where not even an hour fits.
 */
export function splitRange(fromMs: number, toMs: number, coarsest: RollupBucket): RangePiece[] {
  const order: RollupBucket[] = ['hour', 'day', 'month'];
  const top = order.indexOf(coarsest);
  const pieces: RangePiece[] = [];
  const cut = (from: number, to: number, levelIndex: number): void => {
    if (from >= to) return;
    if (levelIndex < 0) {
      pieces.push({ source: 'raw', fromMs: from, toMs: to });
      return;
    }
    const level = order[levelIndex];
    const a = ceilBucket(level, from);
    const b = bucketStart(level, to);
    // Not even one whole bucket (or past the range of Date for months): finer levels.
    if (!(a < b)) {
      cut(from, to, levelIndex - 1);
      return;
    }
    cut(from, a, levelIndex - 1);
    pieces.push({ source: level, fromMs: a, toMs: b });
    cut(b, to, levelIndex - 1);
  };
  cut(fromMs, toMs, top);
  return pieces;
}
