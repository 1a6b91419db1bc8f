/**
 * Property: over random workloads (late events into rolled-up hours, retries, conflicts,
 * corrections, retractions, flushes, rollups, compactions, restarts interleaved), every query
 * gives the same answer from `raw`, `rollup` and `auto`, equal to a reference model.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { readSnapshot } from '../../src/testing.ts';
import { DAY_MS, simDb, T0 } from '../support/events.ts';

const HOUR = 3_600_000;

type Op =
  | { kind: 'ingest'; events: EventSpec[] }
  | { kind: 'correct'; target: number; delta: number; retract: boolean }
  | { kind: 'flush' }
  | { kind: 'rollup' }
  | { kind: 'tick' }
  | { kind: 'compact' }
  | { kind: 'restart' };

interface EventSpec {
  id: number;
  variant: number;
  /** Minutes from T0 over the month before the clock: some land in hours already rolled up. */
  minute: number;
  account: number;
  line: number;
}

const eventArb = fc.record({
  id: fc.integer({ min: 0, max: 60 }),
  variant: fc.integer({ min: 0, max: 1 }),
  minute: fc.integer({ min: 0, max: 31 * 24 * 60 - 1 }),
  account: fc.integer({ min: 0, max: 2 }),
  line: fc.integer({ min: 0, max: 2 }),
});

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('ingest' as const),
      events: fc.array(eventArb, { minLength: 1, maxLength: 12 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('correct' as const),
      target: fc.integer({ min: 0, max: 60 }),
      delta: fc.integer({ min: -5, max: 5 }),
      retract: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ kind: 'flush' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'rollup' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'tick' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'compact' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

const LINES = [
  { product_id: 'llm', meter_id: 'tokens.input', unit: 'tokens', model_id: 'm1' },
  { product_id: 'llm', meter_id: 'tokens.output', unit: 'tokens', model_id: null },
  { product_id: 'tools', meter_id: 'calls', unit: 'requests', model_id: 'm2' },
];

function wire(e: EventSpec): Record<string, unknown> {
  return {
    event_id: `e-${e.id}`,
    account_id: `a${e.account}`,
    ...LINES[e.line],
    source: e.id % 2 === 0 ? 'gateway' : 'batch',
    timestamp_ms: T0 + e.minute * 60_000 + (e.id % 60) * 1000,
    quantity: 100 + e.variant * 7 + e.id,
    ...(e.id % 3 === 0 ? { dimensions: { region: e.id % 2 === 0 ? 'us' : 'eu' } } : {}),
  };
}

interface ModelEvent {
  wire: Record<string, unknown>;
  kind: string;
  quantity: bigint;
}

/** Sum and count per key of the model's events in [from, to). */
function modelTotals(
  model: Map<string, ModelEvent>,
  from: number,
  to: number,
  keyOf: (e: Record<string, unknown>, kind: string) => string,
): Map<string, { sum: bigint; count: number }> {
  const out = new Map<string, { sum: bigint; count: number }>();
  for (const e of model.values()) {
    const ts = e.wire.timestamp_ms as number;
    if (ts < from || ts >= to) continue;
    const k = keyOf(e.wire, e.kind);
    const t = out.get(k) ?? { sum: 0n, count: 0 };
    t.sum += e.quantity;
    t.count++;
    out.set(k, t);
  }
  return out;
}

const QUERIES = [
  // Billing lines of one account over a range with edges finer than an hour.
  {
    account_id: 'a1',
    from: T0 + 2 * DAY_MS + 17 * 60_000,
    to: T0 + 33 * DAY_MS + 5 * HOUR + 123,
    group_by: ['product_id', 'meter_id', 'model_id', 'unit'],
  },
  // Whole months, every account.
  { from: T0, to: Date.UTC(2026, 6, 1), group_by: ['account_id', 'kind', 'source'] },
  { from: T0 + 3 * HOUR, to: T0 + 9 * DAY_MS, group_by: ['day', 'meter_id'] },
  { from: T0 + 10 * DAY_MS - 30 * 60_000, to: T0 + 11 * DAY_MS, group_by: ['hour'] },
  {
    from: T0,
    to: T0 + 40 * DAY_MS,
    group_by: ['account_id'],
    filters: { meter_id: 'tokens.output' },
    order_by: [{ key: 'sum', dir: 'desc' }],
    limit: 2,
  },
  // The meter grain: whole months and days, with month and day edges.
  {
    from: T0 + 5 * HOUR,
    to: Date.UTC(2026, 6, 1) + 3 * DAY_MS + 7 * HOUR,
    group_by: ['account_id', 'meter_id', 'unit', 'kind'],
    filters: { kind: ['Usage', 'Correction'] },
  },
  { account_id: 'a2', from: T0, to: T0 + 40 * DAY_MS, group_by: ['day', 'unit'] },
  // Dimensions: auto falls back to raw.
  { from: T0, to: T0 + 40 * DAY_MS, group_by: ['dimensions.region'] },
];

/** Answers that came (at least partly) from rollups: the property must exercise them. */
let rollupAnswers = 0;

async function checkSources(db: UsageDb, model: Map<string, ModelEvent>, step: string): Promise<void> {
  for (const q of QUERIES) {
    const base = { ...q, metrics: ['sum', 'count', 'min', 'max'] };
    const raw = await db.query({ ...base, source: 'raw' });
    const rollup = await db.query({ ...base, source: 'rollup' });
    const auto = await db.query({ ...base, source: 'auto' });
    expect(rollup.rows, `${step}: rollup vs raw for ${JSON.stringify(q)}`).toEqual(raw.rows);
    expect(auto.rows, `${step}: auto vs raw for ${JSON.stringify(q)}`).toEqual(raw.rows);
    if (auto.stats.path === 'rollup') rollupAnswers++;
    if (q.group_by.includes('dimensions.region')) expect(auto.stats.path, step).toBe('raw');
  }
  // The raw path against the model (per account, kind, source for the whole span).
  const res = await db.query({
    source: 'auto',
    from: T0,
    to: T0 + 45 * DAY_MS,
    group_by: ['account_id', 'product_id', 'meter_id', 'kind'],
  });
  const expected = modelTotals(
    model,
    T0,
    T0 + 45 * DAY_MS,
    (e, kind) => `${String(e.account_id)}|${String(e.product_id)}|${String(e.meter_id)}|${kind}`,
  );
  const got = new Map(
    res.rows.map((r) => [
      `${String(r.account_id)}|${String(r.product_id)}|${String(r.meter_id)}|${String(r.kind)}`,
      { sum: BigInt(r.sum as string), count: r.count as number },
    ]),
  );
  expect(got, step).toEqual(expected);
  const v = await db.verify({ from: T0, to: T0 + 45 * DAY_MS });
  expect(v.drift, step).toEqual([]);
}

async function run(ops: Op[]): Promise<void> {
  const sim = simDb(11, { bucketCount: 4 });
  let db = await sim.open();
  const model = new Map<string, ModelEvent>();
  let corrections = 0;
  try {
    for (const [i, op] of ops.entries()) {
      const step = `step ${i} ${op.kind}`;
      if (op.kind === 'ingest') {
        const batch = [...new Map(op.events.map((e) => [e.id, e])).values()].map(wire);
        const r = await db.ingest(batch);
        const failed = new Set(r.errors.map((e) => e.index));
        batch.forEach((w, index) => {
          const id = w.event_id as string;
          const known = model.get(id);
          if (known !== undefined) {
            const same = JSON.stringify(known.wire) === JSON.stringify(w);
            expect(failed.has(index), `${step}: ${id} retry/conflict`).toBe(!same);
          } else {
            expect(failed.has(index), `${step}: ${id} new`).toBe(false);
            model.set(id, { wire: w, kind: 'Usage', quantity: BigInt(w.quantity as number) });
          }
        });
      } else if (op.kind === 'correct') {
        const original = model.get(`e-${op.target}`);
        if (original === undefined || original.kind !== 'Usage') continue;
        const w: Record<string, unknown> = {
          ...original.wire,
          event_id: `c-${corrections++}`,
          kind: op.retract ? 'Retraction' : 'Correction',
          correction_ref: { original_event_id: original.wire.event_id, reason: 'test' },
          quantity: op.retract ? String(-original.quantity) : op.delta === 0 ? 1 : op.delta,
        };
        const r = await db.ingest([w]);
        if (r.accepted === 1) {
          model.set(w.event_id as string, {
            wire: w,
            kind: w.kind as string,
            quantity: BigInt(w.quantity as number | string),
          });
        } else expect(r.errors[0]?.reason, step).toBe('already_retracted');
      } else if (op.kind === 'flush') await db.flush();
      else if (op.kind === 'rollup') await db.rollup();
      else if (op.kind === 'tick') await db.tick();
      else if (op.kind === 'compact') await db.compact();
      else {
        await db.close();
        db = await sim.open();
      }
      if (i % 3 === 2 || i === ops.length - 1) await checkSources(db, model, step);
    }
  } finally {
    await db.close();
  }
}

describe('rollup property', () => {
  it('raw, rollup and auto agree with each other and with the model', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 18 }), (ops) => run(ops)),
      { numRuns: 60 },
    );
    expect(rollupAnswers).toBeGreaterThan(20);
  }, 240_000);

  it('a late event into an hour already rolled up is counted once', async () => {
    await run([
      { kind: 'ingest', events: [{ id: 1, variant: 0, minute: 600, account: 1, line: 0 }] },
      { kind: 'flush' },
      { kind: 'rollup' },
      { kind: 'ingest', events: [{ id: 2, variant: 0, minute: 601, account: 1, line: 0 }] },
      { kind: 'flush' },
      { kind: 'rollup' },
      { kind: 'compact' },
      { kind: 'restart' },
    ]);
  });
});

describe('meter grain', () => {
  it('serves a query by account, meter, unit and day from far fewer rollup rows than the full grain', async () => {
    const sim = simDb(23, { bucketCount: 2 });
    const db = await sim.open();
    await db.ingest(
      Array.from({ length: 200 }, (_, k) =>
        wire({ id: k, variant: 0, minute: (k % 20) * 61, account: (k >> 2) % 2, line: k % 3 }),
      ),
    );
    await db.flush();
    await db.rollup();
    const month = { from: T0, to: Date.UTC(2026, 5, 1) };
    const byMeter = await db.query({ ...month, group_by: ['account_id', 'meter_id'], source: 'rollup' });
    const byLine = await db.query({
      ...month,
      group_by: ['account_id', 'meter_id', 'product_id', 'model_id'],
      source: 'rollup',
    });
    expect(byMeter.stats.path).toBe('rollup');
    expect(byLine.stats.path).toBe('rollup');
    expect(byMeter.stats.rollupRows).toBe(byMeter.rows.length);
    expect(byMeter.stats.rollupRows).toBeLessThan(byLine.stats.rollupRows);
    const raw = await db.query({ ...month, group_by: ['account_id', 'meter_id'], source: 'raw' });
    expect(byMeter.rows).toEqual(raw.rows);
    await db.close();
  });
});

describe('rollup merges and compaction', () => {
  it('merged files cover their segments once; a compaction keeps a rollup covering all its inputs', async () => {
    const sim = simDb(21, { bucketCount: 2 });
    const db = await sim.open();
    for (let b = 0; b < 4; b++) {
      await db.ingest(
        Array.from({ length: 20 }, (_, k) =>
          wire({ id: b * 20 + k, variant: 0, minute: (b * 20 + k) * 97, account: k % 3, line: k % 3 }),
        ),
      );
      await db.flush();
    }
    const q = { from: T0, to: Date.UTC(2026, 5, 1), group_by: ['account_id', 'meter_id'] };
    const raw = await db.query({ ...q, source: 'raw' });
    await db.rollup();
    const auto = await db.query({ ...q, source: 'auto' });
    expect(auto.rows).toEqual(raw.rows);
    // One month file covers all four raw segments.
    expect(auto.stats.rollupSegmentsRead).toBe(1);
    const before = readSnapshot(db);
    const month = before.rollups.entries.find((r) => r.level === 'month');
    before.release();
    expect(month?.covers).toHaveLength(4);
    await db.compact();
    const after = readSnapshot(db);
    const monthAfter = after.rollups.entries.filter((r) => r.level === 'month');
    const rawIds = after.segments.map((e) => e.segment_id ?? e.id);
    after.release();
    // The same file now covers the merge's output (no row was dropped by the merge).
    expect(monthAfter.map((r) => r.id)).toEqual([month?.id]);
    expect(monthAfter[0].covers).toEqual([...new Set(rawIds)]);
    expect((await db.query({ ...q, source: 'auto' })).rows).toEqual(raw.rows);
    expect((await db.verify({ from: T0, to: Date.UTC(2026, 5, 1) })).drift).toEqual([]);
    expect((await db.check({ deep: true })).ok).toBe(true);
    await db.close();
  });
});
