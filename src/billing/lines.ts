/**
 * Billing periods (UTC calendar months) and billing lines: one line per
 * (product_id, meter_id, model_id, unit) with an exact quantity and an event count.
 *
 * Invariants:
 * - a period `YYYY-MM` is the half-open range [first ms of the month, first ms of the next);
 * - line quantities are decimal strings, summed exactly (BigInt);
 * - lines come out sorted by their key, so equal inputs give byte-equal outputs.
 */
import { UsageDbError } from '../errors.ts';
import type { PeriodLine } from '../storage/manifest.ts';

export type { PeriodLine } from '../storage/manifest.ts';

const PERIOD = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** The range of a period `YYYY-MM`; USAGEDB_ERR_INVALID_ARGUMENT when malformed. */
export function periodRange(period: string): { fromMs: number; toMs: number } {
  const m = typeof period === 'string' ? PERIOD.exec(period) : null;
  if (m === null) {
    throw new UsageDbError(
      'USAGEDB_ERR_INVALID_ARGUMENT',
      `period must be YYYY-MM (a UTC calendar month), got ${String(period).slice(0, 32)}`,
    );
  }
  const year = Number(m[1]);
  const month = Number(m[2]);
  if (year < 1970) throw new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', `period ${period} is before 1970`);
  return { fromMs: Date.UTC(year, month - 1, 1), toMs: Date.UTC(year, month, 1) };
}

/** The period `YYYY-MM` holding a timestamp. */
export function periodOf(timestampMs: number): string {
  return new Date(timestampMs).toISOString().slice(0, 7);
}

/** The month after `period`. */
export function nextPeriod(period: string): string {
  return periodOf(periodRange(period).toMs);
}

export interface LineKey {
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
}

/** A collision-free key (JSON of the four fields). */
export function lineKeyOf(k: LineKey): string {
  return JSON.stringify([k.product_id, k.meter_id, k.model_id, k.unit]);
}

function compareKeys(a: LineKey, b: LineKey): number {
  const ka = lineKeyOf(a);
  const kb = lineKeyOf(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Accumulates lines exactly. */
export class LineSums {
  private readonly byKey = new Map<string, { key: LineKey; quantity: bigint; count: number }>();

  add(key: LineKey, quantity: bigint | number | string, count = 1): void {
    const k = lineKeyOf(key);
    const q = BigInt(quantity);
    const line = this.byKey.get(k);
    if (line === undefined) {
      const { product_id, meter_id, model_id, unit } = key;
      this.byKey.set(k, { key: { product_id, meter_id, model_id, unit }, quantity: q, count });
    } else {
      line.quantity += q;
      line.count += count;
    }
  }

  addLines(lines: readonly PeriodLine[]): void {
    for (const l of lines) this.add(l, l.quantity, l.event_count);
  }

  get size(): number {
    return this.byKey.size;
  }

  lines(): PeriodLine[] {
    return [...this.byKey.values()]
      .sort((a, b) => compareKeys(a.key, b.key))
      .map((l) => ({ ...l.key, quantity: l.quantity.toString(), event_count: l.count }));
  }
}

/** The sum of several line lists, per key. */
export function sumLines(...lists: (readonly PeriodLine[])[]): PeriodLine[] {
  const sums = new LineSums();
  for (const l of lists) sums.addLines(l);
  return sums.lines();
}
