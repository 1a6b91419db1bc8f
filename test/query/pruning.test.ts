/**
 * Pruning is visible in stats: a one-account query opens only its bucket's segments, block
 * metadata skips blocks outside the time range, segment value sets skip segments without the
 * filtered meter, only the needed columns are decoded, and the chunk cache serves repeats.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueryEngine } from '../../src/query/engine.ts';
import { parseJsonQuery } from '../../src/query/index.ts';
import { accountBucket } from '../../src/storage/partition.ts';
import {
  ACCOUNTS,
  DAY,
  type Fixture,
  generateEvents,
  HOUR,
  MAY,
  openFixture,
  type PlainEvent,
  referenceQuery,
} from './fixtures.ts';
import { readSnapshot } from '../../src/testing.ts';

describe('pruning by bucket, manifest ranges and segment value sets', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await openFixture(generateEvents(11, 2000, 6), { bucketCount: 8, batches: 4 });
  });
  afterAll(async () => {
    await fx.db.close();
  });

  it('a one-account query reads only blocks of that account’s bucket, in range', async () => {
    const snap = readSnapshot(fx.db);
    for (const account of ACCOUNTS) {
      const engine = createQueryEngine();
      const q = {
        account_id: account,
        from: MAY + DAY,
        to: MAY + 3 * DAY,
        group_by: ['product_id', 'meter_id', 'model_id', 'unit'],
      };
      const { rows, stats } = await engine.runQuery(snap, parseJsonQuery(q));
      expect(rows).toEqual(referenceQuery(fx.events, q));
      // Expected, from the metadata: blocks of the account's bucket whose time and account
      // ranges hold the query, in segments overlapping the range that contain the account.
      const bucket = accountBucket(account, snap.bucketCount);
      let wanted = 0;
      let otherBucketBlocks = 0;
      for (const entry of snap.segments) {
        if (entry.max_ts < q.from || entry.min_ts >= q.to) continue;
        const meta = (await snap.store.reader(entry)).meta;
        if (!meta.accountIds.includes(account)) continue;
        for (const b of meta.blocks) {
          const inBucket = accountBucket(b.minAccountId, snap.bucketCount) === bucket;
          if (!inBucket) otherBucketBlocks++;
          if (
            inBucket &&
            b.maxTimestampMs >= q.from &&
            b.minTimestampMs < q.to &&
            b.minAccountId <= account &&
            account <= b.maxAccountId
          )
            wanted++;
        }
      }
      expect(stats.segmentsConsidered).toBe(snap.segments.length);
      expect(stats.blocksRead).toBe(wanted);
      expect(stats.segmentsPruned + stats.segmentsOpened).toBe(snap.segments.length);
      // Pruning did something at every level it can.
      expect(stats.segmentsPruned + stats.blocksSkipped).toBeGreaterThanOrEqual(
        otherBucketBlocks > 0 ? 1 : 0,
      );
      expect(stats.blocksRead).toBeLessThan(
        snap.segments.reduce((n, s) => n + Math.ceil(s.rows / 64), 0) / 2,
      );
      expect(stats.memtableRows).toBeGreaterThan(0);
      // With one segment per (day, bucket), segments of other buckets are not even opened.
      const perPartition = snap.segments.filter((s) => (s as { bucket?: number }).bucket !== undefined);
      if (perPartition.length === snap.segments.length) {
        const opened = snap.segments.filter(
          (s) => (s as { bucket?: number }).bucket === bucket && s.max_ts >= q.from && s.min_ts < q.to,
        );
        expect(stats.segmentsOpened).toBeLessThanOrEqual(opened.length);
      }
    }
  });

  it('segments whose meter set lacks the filtered meter are opened but not read', async () => {
    // Day 1 holds only tokens.input, day 2 only requests: a requests query reads no day-1 block
    // of a segment that knows it has no requests.
    const events: PlainEvent[] = [];
    for (let i = 0; i < 400; i++) {
      const day = i % 2;
      events.push({
        ...generateEvents(5, 1, 1)[0],
        event_id: `v${i}`,
        kind: 'Usage',
        correction_ref: null,
        account_id: 'acct-a',
        meter_id: day === 0 ? 'tokens.input' : 'requests',
        timestamp_ms: MAY + day * DAY + i * 1000,
      });
    }
    const f = await openFixture(events, { batches: 2 });
    try {
      const snap = readSnapshot(f.db);
      const q = { from: MAY, to: MAY + 2 * DAY, filters: { meter_id: 'requests' } };
      const { rows, stats } = await createQueryEngine().runQuery(snap, parseJsonQuery(q));
      expect(rows).toEqual(referenceQuery(events, q));
      let withoutMeter = 0;
      for (const entry of snap.segments)
        if (!(await snap.store.reader(entry)).meta.meterIds.includes('requests')) withoutMeter++;
      expect(stats.segmentsOpened - stats.segmentsScanned).toBe(withoutMeter);
    } finally {
      await f.db.close();
    }
  });
});

describe('block skipping inside a segment', () => {
  it('a narrow time range reads only the blocks that overlap it', async () => {
    // One account, one line: rows sort by time, so blocks have disjoint time ranges.
    const events: PlainEvent[] = Array.from({ length: 960 }, (_, i) => ({
      ...generateEvents(3, 1, 1)[0],
      event_id: `t${String(i).padStart(4, '0')}`,
      kind: 'Usage' as const,
      correction_ref: null,
      account_id: 'acct-b',
      product_id: 'llm-api',
      meter_id: 'tokens.output',
      model_id: 'gpt-x',
      timestamp_ms: MAY + i * 90_000, // one a minute and a half: 960 rows = one day
    }));
    const f = await openFixture(events, { batches: 2, blockRows: 16 });
    try {
      const snap = readSnapshot(f.db);
      const q = {
        account_id: 'acct-b',
        from: MAY + 3 * HOUR,
        to: MAY + 4 * HOUR,
        metrics: ['sum', 'count'] as ('sum' | 'count')[],
      };
      const { rows, stats } = await createQueryEngine().runQuery(
        { ...snap, memtables: [] },
        parseJsonQuery(q),
      );
      const flushed = events.slice(0, 480);
      expect(rows).toEqual(referenceQuery(flushed, q));
      expect(rows[0].count).toBe(40);
      expect(stats.blocksSkipped).toBeGreaterThan(20);
      expect(stats.blocksRead).toBeLessThanOrEqual(4);
      expect(stats.rowsScanned).toBeLessThanOrEqual(4 * 16);
    } finally {
      await f.db.close();
    }
  });
});

describe('column projection and the chunk cache', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await openFixture(generateEvents(13, 1200, 4));
  });
  afterAll(async () => {
    await fx.db.close();
  });

  it('a count over whole days decodes no column at all', async () => {
    const { rows, stats } = await createQueryEngine().runQuery(
      readSnapshot(fx.db),
      parseJsonQuery({ from: MAY, to: MAY + 10 * DAY, metrics: ['count'] }),
    );
    expect(rows).toEqual(referenceQuery(fx.events, { from: MAY, to: MAY + 10 * DAY, metrics: ['count'] }));
    expect(stats.blocksRead).toBeGreaterThan(10);
    expect(stats.cacheMisses + stats.cacheHits).toBe(0);
  });

  it('a q1-shaped query decodes only its columns, and a repeat is served from block summaries', async () => {
    const engine = createQueryEngine();
    const q = parseJsonQuery({
      from: MAY,
      to: MAY + 10 * DAY,
      group_by: ['product_id', 'meter_id', 'model_id', 'unit'],
    });
    const first = await engine.runQuery(readSnapshot(fx.db), q);
    // Whole days: every block is summarised from account, product, meter, model, unit and
    // quantity — six of the fifteen columns per block.
    expect(first.stats.cacheMisses).toBe(first.stats.blocksRead * 6);
    const second = await engine.runQuery(readSnapshot(fx.db), q);
    expect(second.rows).toEqual(first.rows);
    expect(second.stats.cacheMisses).toBe(0);
    // One summary per block, no column decoded.
    expect(second.stats.cacheHits).toBe(first.stats.blocksRead);
  });

  it('a query summaries cannot serve (an hour key) decodes only its columns, and repeats hit them', async () => {
    const engine = createQueryEngine();
    const q = parseJsonQuery({ from: MAY, to: MAY + 10 * DAY, group_by: ['hour', 'meter_id'] });
    const first = await engine.runQuery(readSnapshot(fx.db), q);
    expect(first.stats.blocksRead).toBeGreaterThan(10);
    // timestamp, meter, quantity.
    expect(first.stats.cacheMisses).toBe(first.stats.blocksRead * 3);
    const second = await engine.runQuery(readSnapshot(fx.db), q);
    expect(second.rows).toEqual(first.rows);
    expect(second.stats.cacheMisses).toBe(0);
    expect(second.stats.cacheHits).toBe(first.stats.blocksRead * 3);
  });

  it('the cache stays within its byte limit and evicts least recently used chunks', async () => {
    const engine = createQueryEngine({ cacheBytes: 8_000 });
    const q = parseJsonQuery({
      from: MAY,
      to: MAY + 10 * DAY,
      group_by: ['account_id'],
      metrics: ['sum', 'min', 'max'],
    });
    const a = await engine.runQuery(readSnapshot(fx.db), q);
    expect(engine.cache.sizeBytes).toBeLessThanOrEqual(8_000);
    expect(engine.cache.entryCount).toBeGreaterThan(0);
    const b = await engine.runQuery(readSnapshot(fx.db), q);
    expect(b.rows).toEqual(a.rows);
    expect(b.stats.cacheMisses).toBeGreaterThan(0);
    engine.cache.clear();
    expect(engine.cache.sizeBytes).toBe(0);
    expect(engine.cache.entryCount).toBe(0);
  });
});
