/**
 * Time bounds of queries: RFC 3339 text or epoch milliseconds, and the labels of the `day` and
 * `hour` group keys.
 *
 * Invariants:
 * - a parsed bound is a safe integer of milliseconds, >= 0;
 * - fractions below a millisecond round up: for integer timestamps t and any instant x,
 *   `t >= x` and `t < x` are the same as `t >= ceil(x)` and `t < ceil(x)`, so half-open
 *   ranges stay exact.
 */
import { UsageDbError } from '../errors.ts';

export const DAY_MS = 86_400_000;
export const HOUR_MS = 3_600_000;

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2}))?$/;

function invalid(what: string, message: string): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_INVALID_QUERY', `${what}: ${message}`);
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** Parses RFC 3339 (`2026-05-01T00:00:00Z`, offsets, fractions; a bare date = 00:00 UTC). */
export function parseRfc3339(text: string, what: string): number {
  const m = RFC3339.exec(text);
  if (m === null)
    throw invalid(
      what,
      `"${text}" is not an RFC 3339 time (e.g. 2026-05-01T00:00:00Z) or epoch milliseconds`,
    );
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  const hour = Number(m[4] ?? 0);
  const minute = Number(m[5] ?? 0);
  const second = Number(m[6] ?? 0);
  if (
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw invalid(what, `"${text}" is not a valid calendar time`);
  }
  let ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const fraction = m[7];
  if (fraction !== undefined) {
    const millis = Number(fraction.slice(0, 3).padEnd(3, '0'));
    const belowMs = /[1-9]/.test(fraction.slice(3));
    ms += millis + (belowMs ? 1 : 0);
  }
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const offH = Number(zone.slice(1, 3));
    const offM = Number(zone.slice(4, 6));
    if (offH > 23 || offM > 59) throw invalid(what, `"${text}" has an invalid UTC offset`);
    ms -= sign * (offH * HOUR_MS + offM * 60_000);
  }
  if (ms < 0) throw invalid(what, `"${text}" is before 1970-01-01T00:00:00Z`);
  return ms;
}

/** A `from`/`to` bound: RFC 3339 text or non-negative integer milliseconds. */
export function parseTimeInput(value: unknown, what: string): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0)
      throw invalid(what, `${value} is not a non-negative integer of milliseconds`);
    return value;
  }
  if (typeof value === 'string') {
    // Digits only: epoch milliseconds sent as text (query strings carry everything as text).
    if (/^\d{1,16}$/.test(value)) return parseTimeInput(Number(value), what);
    return parseRfc3339(value, what);
  }
  if (value === undefined) throw invalid(what, 'is required');
  throw invalid(what, 'must be an RFC 3339 string or epoch milliseconds');
}

/** `from` < `to`, both valid. */
export function parseRange(from: unknown, to: unknown, where: string): { fromMs: number; toMs: number } {
  const fromMs = parseTimeInput(from, `${where}.from`);
  const toMs = parseTimeInput(to, `${where}.to`);
  if (fromMs >= toMs) {
    throw invalid(
      where,
      `from (${new Date(fromMs).toISOString()}) must be before to (${new Date(toMs).toISOString()}); the range is half-open [from, to)`,
    );
  }
  return { fromMs, toMs };
}

/** Labels made so far: a daily series asks for the same few hundred days again and again. */
const LABELS_MAX = 100_000;
const dayLabels = new Map<number, string>();
const hourLabels = new Map<number, string>();

function remembered(cache: Map<number, string>, n: number, make: (n: number) => string): string {
  let label = cache.get(n);
  if (label === undefined) {
    if (cache.size >= LABELS_MAX) cache.clear();
    label = make(n);
    cache.set(n, label);
  }
  return label;
}

/** "YYYY-MM-DD" of a UTC day number (days since the epoch). */
export function dayLabel(dayNumber: number): string {
  return remembered(dayLabels, dayNumber, (d) => new Date(d * DAY_MS).toISOString().slice(0, 10));
}

/** "YYYY-MM-DDTHH:00:00Z" of a UTC hour number (hours since the epoch). */
export function hourLabel(hourNumber: number): string {
  return remembered(
    hourLabels,
    hourNumber,
    (h) => `${new Date(h * HOUR_MS).toISOString().slice(0, 13)}:00:00Z`,
  );
}
