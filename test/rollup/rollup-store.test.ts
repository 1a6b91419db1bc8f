/**
 * The rollup store's block selection: the blocks found by binary search over account bounds
 * are exactly those a scan of every block with the account and bucket test finds. Files of
 * the month and meter levels are held whole after their first use, their blocks decoded ahead,
 * and queries then neither touch the file nor decode; a damaged block is still refused.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RollupBlockMeta } from '../../src/rollup/rollup-file.ts';
import { blocksFor, type RollupStore } from '../../src/rollup/rollup-store.ts';
import type { UsageDbError } from '../../src/errors.ts';
import { rollupPath } from '../../src/storage/layout.ts';
import { readSnapshot } from '../../src/testing.ts';
import { DAY_MS, simDb, T0, usage } from '../support/events.ts';
import { countReads } from '../support/reads.ts';

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

describe('rollup files held whole', () => {
  it('a month file is read once whole, and later first reads of its blocks touch no file', async () => {
    const sim = simDb(11, { limits: { rollupCacheBytes: 0 } });
    const db = await sim.open();
    const events = Array.from({ length: 3_000 }, (_, i) =>
      usage(i, { account_id: `acct_${i % 23}`, timestamp_ms: T0 + (i % 20) * DAY_MS + i }),
    );
    for (let i = 0; i < events.length; i += 1_000) await db.ingest(events.slice(i, i + 1_000));
    await db.flush();
    await db.rollup();
    await db.close();

    const again = await sim.open();
    const rollupReads = countReads(sim.fs, '/rollup/');
    const q = (account: string, source: 'auto' | 'raw') =>
      again.query({
        account_id: account,
        from: T0,
        to: T0 + 30 * DAY_MS,
        group_by: ['meter_id', 'unit'],
        source,
      });
    const first = await q('acct_1', 'auto');
    expect(first.stats.path).toBe('rollup');
    const store = readSnapshot(again).rollups?.store as RollupStore;
    await store.settled();
    expect(store.heldFileBytes).toBeGreaterThan(0);
    const before = rollupReads.bytes;
    const decodes = store.blocksRead;
    // The block cache holds nothing (0 bytes): the blocks come from the held file, decoded
    // ahead of use, so a query neither reads a file nor decodes a block.
    for (const account of ['acct_1', 'acct_7', 'acct_19']) {
      const got = await q(account, 'auto');
      expect(got.stats.path).toBe('rollup');
      expect(got.rows).toEqual((await q(account, 'raw')).rows);
    }
    expect(rollupReads.bytes).toBe(before);
    expect(store.blocksRead).toBe(decodes);
    await again.close();
  });

  it('a damaged block of a held file is refused, also after the blocks were decoded ahead', async () => {
    const sim = simDb(12);
    const db = await sim.open();
    const events = Array.from({ length: 2_000 }, (_, i) =>
      usage(i, { account_id: `acct_${i % 17}`, timestamp_ms: T0 + (i % 20) * DAY_MS + i }),
    );
    await db.ingest(events);
    await db.flush();
    await db.rollup();
    const rollups = readSnapshot(db).rollups?.entries ?? [];
    await db.close();
    for (const entry of rollups.filter((r) => r.level === 'month' || r.level.startsWith('meter'))) {
      const bytes = await sim.fs.readFile(rollupPath('/db', entry.id));
      bytes[6] ^= 0x10; // inside block 0
      await sim.fs.writeFile(rollupPath('/db', entry.id), bytes, { sync: true });
    }
    const again = await sim.open();
    const q = () =>
      again.query({ account_id: 'acct_3', from: T0, to: T0 + 30 * DAY_MS, group_by: ['meter_id'] });
    for (let i = 0; i < 2; i++) {
      const err = await q().catch((e: unknown) => e);
      expect((err as UsageDbError).code).toBe('USAGEDB_ERR_SEGMENT_CORRUPT');
      await (readSnapshot(again).rollups?.store as RollupStore).settled();
    }
    await again.close();
  });
});
