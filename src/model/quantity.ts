/**
 * Exact integer quantities.
 *
 * Invariants:
 * - a Quantity is a `number` exactly when the value is a safe integer, otherwise a `bigint`;
 *   so equal values always have the same representation and `===` compares them;
 * - |q| <= QUANTITY_ABS_MAX (fits i128 and Parquet Decimal128(38,0)).
 */

export type Quantity = number | bigint;

export const QUANTITY_ABS_MAX = 10n ** 38n - 1n;
/**
 * Longest decimal-string quantity, sign and leading zeros included. Leading zeros are accepted
 * at any length ("0005" is 5): the value counts, and QUANTITY_ABS_MAX bounds it. This only
 * bounds the work of parsing a string of zeros.
 */
export const QUANTITY_TEXT_CHARS_MAX = 256;
const DECIMAL_PATTERN = /^-?[0-9]+$/;

/** Normalises a bigint to the canonical Quantity form (number when safe). */
export function toQuantity(value: bigint): Quantity {
  if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
    return Number(value);
  }
  return value;
}

export type QuantityParseResult = { ok: true; value: Quantity } | { ok: false; message: string };

/** Parses a wire quantity: a safe-integer JSON number or a decimal integer string. */
export function parseQuantity(raw: unknown): QuantityParseResult {
  if (typeof raw === 'number') {
    if (!Number.isSafeInteger(raw)) {
      return {
        ok: false,
        message:
          'quantity must be an integer within ±(2^53 − 1) as a JSON number; send larger values as a decimal string',
      };
    }
    return { ok: true, value: raw === 0 ? 0 : raw };
  }
  if (typeof raw === 'string') {
    if (raw.length > QUANTITY_TEXT_CHARS_MAX) {
      return { ok: false, message: `quantity string exceeds ${QUANTITY_TEXT_CHARS_MAX} characters` };
    }
    if (!DECIMAL_PATTERN.test(raw)) {
      return {
        ok: false,
        message: 'quantity string must be a decimal integer (digits with an optional leading -)',
      };
    }
    const value = BigInt(raw);
    if (value > QUANTITY_ABS_MAX || value < -QUANTITY_ABS_MAX) {
      return { ok: false, message: 'quantity magnitude must be at most 10^38 − 1' };
    }
    return { ok: true, value: toQuantity(value) };
  }
  return { ok: false, message: 'quantity must be an integer (JSON number or decimal string)' };
}

/** Parses a decimal string written by quantityToString (trusted input: WAL, storage). */
export function parseQuantityString(text: string): Quantity {
  if (text.length <= 15) return Number(text);
  return toQuantity(BigInt(text));
}

export function quantityToString(q: Quantity): string {
  return typeof q === 'bigint' ? q.toString() : String(q);
}

export function negateQuantity(q: Quantity): Quantity {
  return typeof q === 'bigint' ? toQuantity(-q) : q === 0 ? 0 : -q;
}

export function isNegative(q: Quantity): boolean {
  return typeof q === 'bigint' ? q < 0n : q < 0;
}

/**
 * An exact running sum: adds numbers while the total stays safe, then switches to bigint.
 * Used wherever quantities are summed (queries, checks), so sums are exact at any size.
 */
export class ExactSum {
  private small = 0;
  private big: bigint | null = null;

  add(q: Quantity): void {
    if (typeof q === 'number' && this.big === null) {
      const next = this.small + q;
      if (Number.isSafeInteger(next)) {
        this.small = next;
        return;
      }
    }
    this.big = (this.big ?? BigInt(this.small)) + (typeof q === 'bigint' ? q : BigInt(q));
  }

  addSum(other: ExactSum): void {
    this.add(other.value());
  }

  value(): Quantity {
    return this.big === null ? this.small : toQuantity(this.big);
  }

  toString(): string {
    return quantityToString(this.value());
  }
}

export function compareQuantity(a: Quantity, b: Quantity): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
