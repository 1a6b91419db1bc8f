/**
 * The quantity column codec: bit-class coding (class byte + mantissa bits, see int-codec) for
 * safe integers, and an exact i128 path: a big row gets class CLASS_BIG and its value goes to
 * a third stream as a zigzag LEB128 bigint, in row order.
 *
 * Invariants:
 * - decode(encode(q)) is exactly q for every |q| <= 10^38 - 1;
 * - the output keeps the QuantityColumn contract: values[i] is the exact value when it is a
 *   safe integer, else NaN with big.get(i) set (a big value inside the safe range is
 *   normalised to a number); big is null when there are no big rows.
 */

import type { QuantityColumn } from '../../model/columns.ts';
import { BitClassWriter, CLASS_BIG, decodeBitClassInto, type Streams } from './int-codec.ts';
import { BIG_ABS_MAX, ByteReader, ByteWriter, DecodeError } from './varint.ts';

const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** Encodes rows [start, end) of a quantity column; throws RangeError on a value outside the contract. */
export function encodeQuantities(col: QuantityColumn, start: number, end: number): Streams {
  const classes = new BitClassWriter(end - start);
  const bigs = new ByteWriter(16);
  for (let i = start; i < end; i++) {
    const v = col.values[i];
    if (Number.isSafeInteger(v)) {
      classes.put(v);
      continue;
    }
    if (!Number.isNaN(v)) throw new RangeError(`quantity: row ${i} holds ${v}, not a safe integer or NaN`);
    const big = col.big?.get(i);
    if (big === undefined) throw new RangeError(`quantity: row ${i} is NaN with no big value`);
    if ((big < 0n ? -big : big) > BIG_ABS_MAX)
      throw new RangeError(`quantity: row ${i} holds ${big}, beyond 10^38 - 1`);
    if (big >= SAFE_MIN && big <= SAFE_MAX) {
      classes.put(Number(big));
      continue;
    }
    classes.putClass(CLASS_BIG);
    bigs.writeBigZigZag(big);
  }
  return [...classes.finish(), bigs.finish()];
}

/** Decodes `count` rows into `values` at `offset`, adding big rows (row index + offset) to `big`. */
export function decodeQuantitiesInto(
  streams: Streams,
  values: Float64Array,
  offset: number,
  count: number,
  big: Map<number, bigint>,
): void {
  if (streams.length !== 3) throw new DecodeError(`quantity: ${streams.length} streams, expected 3`);
  const bigRows: number[] = [];
  decodeBitClassInto(streams[0], streams[1], values.subarray(offset, offset + count), false, bigRows);
  const bigs = new ByteReader(streams[2]);
  for (const row of bigRows) big.set(offset + row, bigs.readBigZigZag());
  if (!bigs.atEnd()) throw new DecodeError(`quantity: ${bigs.remaining} trailing big-value bytes`);
}
