/**
 * The rollup store's block selection: the blocks found by binary search over account bounds
 * are exactly those a scan of every block with the account and bucket test finds.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RollupBlockMeta } from '../../src/rollup/rollup-file.ts';
import { blocksFor } from '../../src/rollup/rollup-store.ts';

const account = (i: number) => `acct_${String(i).padStart(3, '0')}`;

describe('rollup block selection', () => {
  it('finds the blocks of the filter accounts and range that a scan of every block finds', () => {
    fc.assert(
      fc.property(
        // Rows as (account, bucket) sorted by account, cut into blocks of 1-5 rows.
        fc.array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 5 })), {
          maxLength: 60,
        }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 60, maxLength: 60 }),
        fc.option(fc.uniqueArray(fc.integer({ min: 0, max: 13 }), { maxLength: 5 })),
        fc.integer({ min: 0, max: 6 }),
        fc.integer({ min: 0, max: 6 }),
        (rawRows, cuts, picked, a, b) => {
          const rows = [...rawRows].sort((x, y) => x[0] - y[0]);
          const blocks: RollupBlockMeta[] = [];
          for (let at = 0, c = 0; at < rows.length; c++) {
            const part = rows.slice(at, at + cuts[c]);
            at += part.length;
            blocks.push({
              offset: 0,
              length: 0,
              crc32c: 0,
              zstd: false,
              raw_length: 0,
              rows: part.length,
              chunks: [],
              min_account: account(part[0][0]),
              max_account: account(part[part.length - 1][0]),
              min_bucket: Math.min(...part.map((r) => r[1])),
              max_bucket: Math.max(...part.map((r) => r[1])),
            });
          }
          const accountIds = picked === null ? null : picked.map(account).sort();
          const filter = { accountIds, fromMs: Math.min(a, b), toMs: Math.max(a, b) };
          const scan = blocks
            .map((blk, i) => ({ blk, i }))
            .filter(({ blk }) => blk.max_bucket >= filter.fromMs && blk.min_bucket < filter.toMs)
            .filter(
              ({ blk }) =>
                accountIds === null || accountIds.some((x) => x >= blk.min_account && x <= blk.max_account),
            )
            .map(({ i }) => i);
          expect(
            blocksFor(
              blocks,
              filter,
              blocks.map((blk) => blk.max_account),
            ),
          ).toEqual(scan);
        },
      ),
      { numRuns: 500 },
    );
  });
});
