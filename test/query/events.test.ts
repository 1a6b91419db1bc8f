/**
 * The raw audit listing: exact pages in (timestamp_ms, event_id) order, the keyset cursor
 * while ingest and flushes go on, limits and validation, and early stopping.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { eventOfRow, toWireEvent } from '../../src/model/event.ts';
import { createQueryEngine } from '../../src/query/engine.ts';
import { wireEventOf } from '../../src/query/events.ts';
import { listEvents } from '../../src/query/index.ts';
import type { EventsParams } from '../../src/query/types.ts';
import { DimensionsCache } from '../../src/query/value-ids.ts';
import {
  ACCOUNTS,
  DAY,
  type Fixture,
  generateEvents,
  JUNE,
  MAY,
  METERS,
  MODELS,
  openFixture,
  type PlainEvent,
  PRODUCTS,
  toWire,
} from './fixtures.ts';
import { readSnapshot } from '../../src/testing.ts';

const SEED = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);

function expected(
  events: readonly PlainEvent[],
  p: {
    account_id: string;
    from: number;
    to: number;
    meter_id?: string;
    product_id?: string;
    model_id?: string | null;
  },
) {
  return events
    .filter(
      (e) =>
        e.account_id === p.account_id &&
        e.timestamp_ms >= p.from &&
        e.timestamp_ms < p.to &&
        (p.meter_id === undefined || e.meter_id === p.meter_id) &&
        (p.product_id === undefined || e.product_id === p.product_id) &&
        (p.model_id === undefined || e.model_id === p.model_id),
    )
    .sort((a, b) => a.timestamp_ms - b.timestamp_ms || (a.event_id < b.event_id ? -1 : 1));
}

async function allPages(db: UsageDb, params: EventsParams, between?: (page: number) => Promise<void>) {
  const out = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await listEvents(readSnapshot(db), { ...params, cursor });
    out.push(...page.events);
    cursor = page.next_cursor;
    pages++;
    if (between !== undefined) await between(pages);
  } while (cursor !== null);
  return { events: out, pages };
}

describe('listEvents', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await openFixture(generateEvents(21, 1500, 6));
  });
  afterAll(async () => {
    await fx.db.close();
  });

  it(`pages hold exactly the matching events in order, for any filters and limit (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          account: fc.constantFrom(...ACCOUNTS),
          from: fc.integer({ min: MAY - DAY, max: MAY + 6 * DAY }),
          span: fc.integer({ min: 1, max: 7 * DAY }),
          meter: fc.option(fc.constantFrom(...METERS), { nil: undefined }),
          product: fc.option(fc.constantFrom(...PRODUCTS), { nil: undefined }),
          model: fc.option(fc.constantFrom(...MODELS), { nil: undefined, freq: 2 }),
          limit: fc.integer({ min: 1, max: 60 }),
        }),
        async (r) => {
          const p = {
            account_id: r.account,
            from: r.from,
            to: r.from + r.span,
            meter_id: r.meter,
            product_id: r.product,
            model_id: r.model,
          };
          const want = expected(fx.events, p);
          const got = await allPages(fx.db, { ...p, limit: r.limit });
          expect(got.events.map((e) => e.event_id)).toEqual(want.map((e) => e.event_id));
          expect(got.pages).toBe(Math.max(1, Math.ceil(want.length / r.limit)));
        },
      ),
      { seed: SEED, numRuns: 80 },
    );
  });

  it('events come back in the wire form (decimal quantities, dimension objects, correction_ref)', async () => {
    const account = 'acct-c';
    const want = expected(fx.events, { account_id: account, from: MAY, to: JUNE });
    const { events } = await listEvents(readSnapshot(fx.db), {
      account_id: account,
      from: MAY,
      to: JUNE,
      limit: 10_000,
    });
    expect(events).toEqual(
      want.map((e) => ({
        ...toWire(e),
        correction_ref: e.correction_ref,
        quantity: e.quantity.toString(),
        ingested_at_ms: JUNE,
      })),
    );
    expect(events.some((e) => e.kind !== 'Usage')).toBe(true);
    expect(events.some((e) => e.quantity.length > 20)).toBe(true);
  });

  it('wireEventOf matches toWireEvent(eventOfRow()) and hands out unshared dimension objects', () => {
    const m = readSnapshot(fx.db).memtables.find((c) => c.rowCount > 0);
    if (m === undefined) throw new Error('fixture has an empty memtable');
    const dims = new DimensionsCache();
    for (let row = 0; row < m.rowCount; row++)
      expect(wireEventOf(m, row, dims)).toEqual(toWireEvent(eventOfRow(m, row)));
    const a = wireEventOf(m, 0, dims);
    a.dimensions.mutated = 'x';
    expect(wireEventOf(m, 0, dims).dimensions.mutated).toBeUndefined();
  });

  it('next_cursor is null on the last page, also when it is exactly full', async () => {
    const p = { account_id: 'acct-a', from: MAY, to: JUNE };
    const n = expected(fx.events, p).length;
    const page = await listEvents(readSnapshot(fx.db), { ...p, limit: n });
    expect(page.events).toHaveLength(n);
    expect(page.next_cursor).toBeNull();
    const short = await listEvents(readSnapshot(fx.db), { ...p, limit: n - 1 });
    expect(short.next_cursor).not.toBeNull();
    const rest = await listEvents(readSnapshot(fx.db), { ...p, limit: n - 1, cursor: short.next_cursor });
    expect(rest.events).toHaveLength(1);
    expect(rest.next_cursor).toBeNull();
    expect(
      (await listEvents(readSnapshot(fx.db), { account_id: 'acct-none', from: MAY, to: JUNE })).events,
    ).toEqual([]);
  });

  it('events sharing a timestamp page in event_id order, across segments, blocks and the memtable', async () => {
    // Few distinct timestamps: every page boundary falls inside a run of equal timestamps.
    const events = generateEvents(5, 1200, 1, 't').map((e, i) => ({
      ...e,
      timestamp_ms: MAY + (i % 7) * 1000,
    }));
    const tied = await openFixture(events, { blockRows: 16 });
    try {
      for (const filters of [{}, { meter_id: METERS[0] }, { meter_id: METERS[1], model_id: MODELS[1] }]) {
        for (const limit of [1, 7, 50]) {
          const p = { account_id: 'acct-a', from: MAY, to: JUNE, ...filters };
          const got = await allPages(tied.db, { ...p, limit });
          expect(got.events.map((e) => e.event_id)).toEqual(expected(events, p).map((e) => e.event_id));
        }
      }
    } finally {
      await tied.db.close();
    }
  });

  it('long runs of one timestamp inside one sorted range page exactly (a range is cut after a page)', async () => {
    // One account, meter and model: each block is one time-sorted range, and three distinct
    // timestamps make runs of equal times far longer than a page, across page boundaries.
    // Ids in an order unrelated to the order of ingest (7919 is prime to 600: a permutation).
    const events = generateEvents(9, 600, 1, 'r')
      .filter((e) => e.kind === 'Usage')
      .map((e, i) => ({
        ...e,
        event_id: `r-${String((i * 7919) % 600).padStart(4, '0')}`,
        account_id: 'acct-a',
        product_id: PRODUCTS[0],
        meter_id: METERS[0],
        model_id: MODELS[1],
        timestamp_ms: MAY + (i % 3) * 1000,
      }));
    const runs = await openFixture(events, { blockRows: 64 });
    try {
      const p = { account_id: 'acct-a', from: MAY, to: JUNE, meter_id: METERS[0], model_id: MODELS[1] };
      const want = expected(events, p).map((e) => e.event_id);
      expect(want.length).toBeGreaterThan(100);
      for (const limit of [1, 3, 10, 45]) {
        const got = await allPages(runs.db, { ...p, limit });
        expect(got.events.map((e) => e.event_id)).toEqual(want);
      }
    } finally {
      await runs.db.close();
    }
  });

  it('a small first page stops early instead of opening every segment of the account', async () => {
    const { page, stats } = await createQueryEngine().listEventsWithStats(readSnapshot(fx.db), {
      account_id: 'acct-a',
      from: MAY,
      to: JUNE,
      limit: 5,
    });
    expect(page.events).toHaveLength(5);
    const all = await createQueryEngine().listEventsWithStats(readSnapshot(fx.db), {
      account_id: 'acct-a',
      from: MAY,
      to: JUNE,
      limit: 10_000,
    });
    expect(stats.segmentsOpened).toBeLessThan(all.stats.segmentsOpened);
  });

  it('limit: default 1,000, at most 10,000; bad limits, cursors and parameters are rejected', async () => {
    const snap = readSnapshot(fx.db);
    const base = { account_id: 'acct-a', from: MAY, to: JUNE };
    const bad = async (extra: Record<string, unknown>, message: string) => {
      await expect(listEvents(snap, { ...base, ...extra } as EventsParams)).rejects.toMatchObject({
        code: 'USAGEDB_ERR_INVALID_QUERY',
        message: expect.stringContaining(message),
      });
    };
    await bad({ limit: 0 }, 'events.limit must be an integer from 1 to 10000');
    await bad({ limit: 10_001 }, 'events.limit must be an integer from 1 to 10000');
    await bad({ limit: 2.5 }, 'events.limit');
    await bad({ cursor: 'not a cursor!' }, 'events.cursor is malformed');
    await bad({ cursor: Buffer.from('{"x":1}').toString('base64url') }, 'events.cursor is malformed');
    await bad({ account_id: '' }, 'events.account_id must be 1-256 bytes');
    await bad({ account_id: undefined }, 'events.account_id is required');
    await bad({ from: JUNE, to: MAY }, 'must be before to');
    await bad({ from: 'yesterday' }, 'is not an RFC 3339 time');
    await bad({ meter: 'x' }, 'unknown parameter "meter"');
    const many = generateEvents(99, 1200, 1).map((e, i) => ({
      ...e,
      event_id: `lim${i}`,
      account_id: 'acct-lim',
      kind: 'Usage' as const,
      correction_ref: null,
      quantity: 1n,
    }));
    await fx.db.ingest(many.map(toWire));
    const page = await listEvents(readSnapshot(fx.db), { account_id: 'acct-lim', from: MAY, to: JUNE });
    expect(page.events).toHaveLength(1000);
    expect(page.next_cursor).not.toBeNull();
    const strLimit = await listEvents(readSnapshot(fx.db), {
      account_id: 'acct-lim',
      from: String(MAY),
      to: String(JUNE),
      limit: '7',
    } as unknown as EventsParams);
    expect(strLimit.events).toHaveLength(7);
  });
});

describe('cursor paging while ingest and flushes go on', () => {
  it(`every event present at the start comes back exactly once, in order (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 40 }),
        async (seed, limit) => {
          const initial = generateEvents(seed, 600, 5).map((e) => ({ ...e, account_id: 'acct-a' }));
          const fx = await openFixture(initial, { batches: 3 });
          try {
            const later = generateEvents(seed + 1, 400, 5, 'late')
              .filter((e) => e.kind === 'Usage')
              .map((e) => ({ ...e, account_id: 'acct-a' }));
            let next = 0;
            const got = await allPages(
              fx.db,
              { account_id: 'acct-a', from: MAY, to: JUNE, limit },
              async (page) => {
                // New events land before and after the cursor; every other page the memtable is flushed.
                const batch = later.slice(next, next + 25);
                next += 25;
                if (batch.length > 0)
                  expect((await fx.db.ingest(batch.map(toWire))).accepted).toBe(batch.length);
                if (page % 2 === 0) await fx.db.flush();
              },
            );
            const ids = got.events.map((e) => e.event_id);
            expect(new Set(ids).size).toBe(ids.length);
            for (const e of initial) expect(ids).toContain(e.event_id);
            for (let i = 1; i < got.events.length; i++) {
              const a = got.events[i - 1];
              const b = got.events[i];
              expect(
                a.timestamp_ms < b.timestamp_ms ||
                  (a.timestamp_ms === b.timestamp_ms && a.event_id < b.event_id),
              ).toBe(true);
            }
          } finally {
            await fx.db.close();
          }
        },
      ),
      { seed: SEED + 3, numRuns: 12 },
    );
  });
});
