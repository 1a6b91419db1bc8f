/** fast-check arbitraries for segment tests: random rows in segment order, with distinct ids. */

import fc from 'fast-check';
import { KIND_NAMES } from '../../../src/model/columns.ts';
import { BIG_ABS_MAX } from '../../../src/storage/encoding/varint.ts';
import { canonicalDimensions, type Row, sortRows } from './generate-columns.ts';

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export const EXTREME_QUANTITIES: bigint[] = [
  0n,
  1n,
  -1n,
  BIG_ABS_MAX,
  -BIG_ABS_MAX,
  SAFE,
  -SAFE,
  SAFE + 1n,
  -(SAFE + 1n),
  2n ** 63n,
  -(2n ** 63n),
  2n ** 64n,
  -(2n ** 64n),
];

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Short strings that collide often (runs in sorted key columns), plus arbitrary Unicode. */
const keyString = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom('a', 'b', 'acct_1', 'acct_2', 'Z', 'é', '😀', '\uFEFF', '\uFEFFa'),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }) },
);

const quantity = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 100_000 }) },
  { weight: 2, arbitrary: fc.constantFrom(...EXTREME_QUANTITIES) },
  { weight: 1, arbitrary: fc.bigInt({ min: -BIG_ABS_MAX, max: BIG_ABS_MAX }) },
  { weight: 1, arbitrary: fc.maxSafeInteger() },
);

const timestamp = fc.oneof(
  fc.integer({ min: 1_747_180_800_000, max: 1_747_180_800_000 + 86_399_999 }),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(1, Number.MAX_SAFE_INTEGER),
);

const dimensions = fc.oneof(
  fc
    .dictionary(fc.constantFrom('region', 'tier', 'k'), fc.constantFrom('eu', 'us', 'x"y'), { maxKeys: 3 })
    .map(canonicalDimensions),
  fc.string({ maxLength: 10 }), // not canonical JSON: stored as plain strings
);

/** Event ids in one style per segment: any strings, evt_ + base62, or UUIDs. */
const eventIds = (count: number) =>
  fc.oneof(
    fc.uniqueArray(fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }), {
      minLength: count,
      maxLength: count,
    }),
    fc.uniqueArray(
      fc
        .array(fc.constantFrom(...BASE62), { minLength: 20, maxLength: 20 })
        .map((cs) => `evt_${cs.join('')}`),
      { minLength: count, maxLength: count },
    ),
    fc.uniqueArray(fc.uuid(), { minLength: count, maxLength: count }),
  );

const rowFields = fc.record({
  kind: fc.constantFrom(...KIND_NAMES),
  correction_original_event_id: fc.option(fc.string({ minLength: 1, maxLength: 10 }), { nil: null, freq: 3 }),
  correction_reason: fc.option(
    fc.oneof(fc.string({ unit: 'binary', maxLength: 10 }), fc.constantFrom('\uFEFF', '\uFEFF\u00e9')),
    {
      nil: null,
      freq: 3,
    },
  ),
  account_id: keyString,
  subscription_id: fc.option(keyString, { nil: null }),
  product_id: keyString,
  meter_id: keyString,
  model_id: fc.option(keyString, { nil: null }),
  unit: fc.constantFrom('tokens', 'requests'),
  source: keyString,
  dimensions,
  timestamp_ms: timestamp,
  quantity,
  ingested_at_ms: fc.oneof(fc.constantFrom(0, 1_747_180_900_000, 1_747_181_000_000), fc.maxSafeNat()),
});

/** 1..maxRows rows, sorted in segment order, event ids distinct. */
export function arbitraryRows(maxRows: number): fc.Arbitrary<Row[]> {
  return fc
    .integer({ min: 1, max: maxRows })
    .chain((count) => fc.tuple(eventIds(count), fc.array(rowFields, { minLength: count, maxLength: count })))
    .map(([ids, fields]) => sortRows(fields.map((f, i) => ({ ...f, event_id: ids[i] }) as Row)));
}
