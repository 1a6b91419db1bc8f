/**
 * The exact sum of Decimal128(38,0) quantities read back from an export file (Arrow IPC
 * batches of the `quantity` column, from verify.ts).
 *
 * Invariant: the sum is exact: i128 words are summed per word as doubles (exact while a batch
 * holds fewer than 2^21 values) and recombined as a bigint.
 */
import { tableFromIPC } from 'apache-arrow';
import { UsageDbError } from '../errors.ts';

const TWO_POW_128 = 1n << 128n;

/** Sums little-endian two's complement i128 values given as 4 words each. */
export function sumI128Words(words: Uint32Array, count: number): bigint {
  const sums = [0, 0, 0, 0];
  let negatives = 0;
  for (let i = 0; i < count; i++) {
    const at = i * 4;
    sums[0] += words[at];
    sums[1] += words[at + 1];
    sums[2] += words[at + 2];
    sums[3] += words[at + 3];
    if (words[at + 3] >= 0x80000000) negatives++;
  }
  // Unsigned value minus 2^128 for each negative one: the exact signed sum.
  let total = 0n;
  for (let w = 3; w >= 0; w--) total = (total << 32n) + BigInt(sums[w]);
  return total - BigInt(negatives) * TWO_POW_128;
}

/** Rows and exact sum of one IPC batch holding the quantity column. */
export function sumQuantityIpc(ipc: Uint8Array): { rows: number; sum: bigint } {
  const column = tableFromIPC(ipc).getChildAt(0);
  if (column === null)
    throw new UsageDbError(
      'USAGEDB_ERR_INTERNAL',
      'export verification failed: no quantity column read back',
    );
  let rows = 0;
  let sum = 0n;
  for (const data of column.data) {
    const words = (data.values as Uint32Array).subarray(data.offset * 4, (data.offset + data.length) * 4);
    sum += sumI128Words(words, data.length);
    rows += data.length;
  }
  return { rows, sum };
}
