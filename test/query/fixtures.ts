/**
 * Query test fixtures: generated AI-usage events (small value domains so filters hit, huge
 * quantities beyond 2^53, corrections and retractions), a real UsageDb on the simulated file
 * system holding them in several segments plus a non-empty memtable, and a brute-force
 * reference evaluator of JSON queries over the same plain events.
 */
import fc from 'fast-check';
import { UsageDb } from '../../src/db.ts';
import type { JsonQuery, QueryRow, RowValue } from '../../src/query/types.ts';
import { ManualClock } from '../../src/storage/clock.ts';
import { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';

export const MAY = Date.UTC(2026, 4, 1);
export const JUNE = Date.UTC(2026, 5, 1);
export const DAY = 86_400_000;
export const HOUR = 3_600_000;

export const ACCOUNTS = ['acct-a', 'acct-b', 'acct-c', 'acct-d', 'acct-e', 'acct-f', 'acct-g', 'acct-h'];
export const PRODUCTS = ['llm-api', 'embeddings', 'agents'];
export const METERS = ['tokens.input', 'tokens.output', 'requests', 'tool.calls'];
export const MODELS: (string | null)[] = [null, 'gpt-x', 'claude-y', 'embed-z'];
export const UNITS = ['tokens', 'requests'];
export const SOURCES = ['gateway', 'batch'];
export const SUBSCRIPTIONS: (string | null)[] = [null, 'sub-1', 'sub-2'];
export const DIM_KEYS = ['region', 'env', 'tier'];
export const DIM_VALUES = ['eu', 'us', 'prod', 'dev'];

/** A stored event as the reference sees it. */
export interface PlainEvent {
  event_id: string;
  kind: 'Usage' | 'Correction' | 'Retraction';
  correction_ref: { original_event_id: string; reason: string } | null;
  account_id: string;
  subscription_id: string | null;
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  source: string;
  timestamp_ms: number;
  quantity: bigint;
  dimensions: Record<string, string>;
}

/** mulberry32: seeded, so every dataset replays from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(r: () => number, list: readonly T[]): T {
  return list[Math.floor(r() * list.length)];
}

function quantity(r: () => number): bigint {
  const u = r();
  if (u < 0.05) return 10n ** 37n + BigInt(Math.floor(r() * 1e9)); // far beyond 2^53
  if (u < 0.1) return 2n ** 53n - 1n - BigInt(Math.floor(r() * 3)); // at the edge of safe
  if (u < 0.15) return 0n;
  return BigInt(Math.floor(r() * 100_000));
}

/** `count` events (Usage, plus Corrections/Retractions of earlier ones) over days [0, days) of May. */
export function generateEvents(seed: number, count: number, days = 6, idPrefix = 'e'): PlainEvent[] {
  const r = rng(seed);
  const out: PlainEvent[] = [];
  const retracted = new Set<string>();
  for (let i = 0; i < count; i++) {
    const ts = MAY + Math.floor(r() * days * DAY);
    const u = r();
    const usage = out.filter((e) => e.kind === 'Usage');
    if (u < 0.08 && usage.length > 0) {
      const orig = pick(r, usage);
      const retract = r() < 0.4 && !retracted.has(orig.event_id);
      if (retract) retracted.add(orig.event_id);
      out.push({
        ...orig,
        event_id: `${idPrefix}${seed}-${i}`,
        kind: retract ? 'Retraction' : 'Correction',
        correction_ref: { original_event_id: orig.event_id, reason: 'test' },
        timestamp_ms: ts,
        quantity: retract ? -orig.quantity : BigInt(Math.floor(r() * 2000) - 1000),
        source: pick(r, SOURCES),
        dimensions: { ...orig.dimensions },
      });
      continue;
    }
    const dims: Record<string, string> = {};
    for (const k of DIM_KEYS) if (r() < 0.4) dims[k] = pick(r, DIM_VALUES);
    out.push({
      event_id: `${idPrefix}${seed}-${i}`,
      kind: 'Usage',
      correction_ref: null,
      account_id: pick(r, ACCOUNTS),
      subscription_id: pick(r, SUBSCRIPTIONS),
      product_id: pick(r, PRODUCTS),
      meter_id: pick(r, METERS),
      model_id: pick(r, MODELS),
      unit: pick(r, UNITS),
      source: pick(r, SOURCES),
      timestamp_ms: ts,
      quantity: quantity(r),
      dimensions: dims,
    });
  }
  return out;
}

/** The wire form for db.ingest (quantities beyond 2^53 as decimal strings). */
export function toWire(e: PlainEvent): Record<string, unknown> {
  const q = e.quantity;
  const safe = q >= BigInt(Number.MIN_SAFE_INTEGER) && q <= BigInt(Number.MAX_SAFE_INTEGER);
  return {
    event_id: e.event_id,
    kind: e.kind,
    ...(e.correction_ref === null ? {} : { correction_ref: e.correction_ref }),
    account_id: e.account_id,
    subscription_id: e.subscription_id,
    product_id: e.product_id,
    meter_id: e.meter_id,
    model_id: e.model_id,
    unit: e.unit,
    source: e.source,
    timestamp_ms: e.timestamp_ms,
    // Safe values go both ways (5 and "5" are the same quantity); larger ones only as text.
    quantity: safe && !e.event_id.endsWith('7') ? Number(q) : q.toString(),
    dimensions: e.dimensions,
  };
}

export interface Fixture {
  db: UsageDb;
  events: PlainEvent[];
}

/**
 * A database holding `events` in several flushes (several segments per partition, blocks of
 * 64 rows) with the last batch left in the memtable.
 */
export async function openFixture(
  events: PlainEvent[],
  options: { batches?: number; bucketCount?: number; blockRows?: number } = {},
): Promise<Fixture> {
  const db = await UsageDb.open({
    dir: '/db',
    fs: new SimFileSystem({ seed: 1 }),
    clock: new ManualClock(JUNE),
    bucketCount: options.bucketCount ?? 4,
    limits: { blockRows: options.blockRows ?? 64 },
  });
  const batches = options.batches ?? 4;
  const size = Math.ceil(events.length / batches);
  for (let b = 0; b < batches; b++) {
    const batch = events.slice(b * size, (b + 1) * size);
    if (batch.length === 0) continue;
    const r = await db.ingest(batch.map(toWire));
    if (r.accepted !== batch.length)
      throw new Error(`fixture ingest rejected events: ${JSON.stringify(r.errors.slice(0, 3))}`);
    if (b < batches - 1) await db.flush();
  }
  return { db, events };
}

// ---------------------------------------------------------------- the reference

function parseTime(t: string | number): number {
  return typeof t === 'number' ? t : Date.parse(t);
}

function keyValue(e: PlainEvent, key: string): RowValue {
  if (key === 'day') return new Date(e.timestamp_ms).toISOString().slice(0, 10);
  if (key === 'hour') return `${new Date(e.timestamp_ms).toISOString().slice(0, 13)}:00:00Z`;
  if (key.startsWith('dimensions.')) return e.dimensions[key.slice('dimensions.'.length)] ?? null;
  return e[key as 'account_id'] as RowValue;
}

function asList<T>(v: T | T[] | undefined): T[] | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v : [v];
}

function cmpValue(a: RowValue, b: RowValue): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return a < b ? -1 : 1;
}

function cmpBig(a: bigint | null, b: bigint | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Brute force: every event checked against every condition, exact bigint sums. */
export function referenceQuery(events: readonly PlainEvent[], q: JsonQuery): QueryRow[] {
  const from = parseTime(q.from);
  const to = parseTime(q.to);
  const groupBy = q.group_by ?? [];
  const metrics = q.metrics ?? ['sum', 'count'];
  const f = q.filters ?? {};
  const groups = new Map<
    string,
    { values: RowValue[]; count: number; sum: bigint; min: bigint | null; max: bigint | null }
  >();
  for (const e of events) {
    if (e.timestamp_ms < from || e.timestamp_ms >= to) continue;
    if (q.account_id !== undefined && e.account_id !== q.account_id) continue;
    let ok = true;
    for (const col of [
      'product_id',
      'meter_id',
      'model_id',
      'source',
      'unit',
      'kind',
      'subscription_id',
    ] as const) {
      const allowed = asList(f[col] as RowValue | RowValue[] | undefined);
      if (allowed !== undefined && !allowed.includes(e[col])) ok = false;
    }
    for (const [k, v] of Object.entries(f.dimensions ?? {})) if (e.dimensions[k] !== v) ok = false;
    if (!ok) continue;
    const values = groupBy.map((k) => keyValue(e, k));
    const gk = JSON.stringify(values);
    let g = groups.get(gk);
    if (g === undefined) {
      g = { values, count: 0, sum: 0n, min: null, max: null };
      groups.set(gk, g);
    }
    g.count++;
    g.sum += e.quantity;
    if (g.min === null || e.quantity < g.min) g.min = e.quantity;
    if (g.max === null || e.quantity > g.max) g.max = e.quantity;
  }
  if (groupBy.length === 0 && groups.size === 0)
    groups.set('[]', { values: [], count: 0, sum: 0n, min: null, max: null });
  const list = [...groups.values()];
  list.sort((a, b) => {
    for (const o of q.order_by ?? []) {
      let c: number;
      if (o.key === 'count') c = a.count - b.count;
      else if (o.key === 'sum') c = cmpBig(a.sum, b.sum);
      else if (o.key === 'min') c = cmpBig(a.min, b.min);
      else if (o.key === 'max') c = cmpBig(a.max, b.max);
      else c = cmpValue(a.values[groupBy.indexOf(o.key)], b.values[groupBy.indexOf(o.key)]);
      if (c !== 0) return o.dir === 'desc' ? -c : c;
    }
    for (let i = 0; i < groupBy.length; i++) {
      const c = cmpValue(a.values[i], b.values[i]);
      if (c !== 0) return c;
    }
    return 0;
  });
  const limited = q.limit === undefined ? list : list.slice(0, q.limit);
  return limited.map((g) => {
    const row: QueryRow = {};
    groupBy.forEach((k, i) => {
      row[k] = g.values[i];
    });
    for (const m of metrics) {
      if (m === 'count') row.count = g.count;
      else if (m === 'sum') row.sum = g.sum.toString();
      else if (m === 'min') row.min = g.min === null ? null : g.min.toString();
      else row.max = g.max === null ? null : g.max.toString();
    }
    return row;
  });
}

// ---------------------------------------------------------------- query arbitraries

const GROUP_KEYS = [
  'account_id',
  'subscription_id',
  'product_id',
  'meter_id',
  'model_id',
  'unit',
  'source',
  'kind',
  'day',
  'hour',
  'dimensions.region',
  'dimensions.env',
  'dimensions.tier',
  'dimensions.absent',
];

function filterArb<T>(domain: readonly T[]): fc.Arbitrary<T | T[] | undefined> {
  return fc.oneof(
    { weight: 12, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom(...domain) },
    {
      weight: 1,
      arbitrary: fc.uniqueArray(fc.constantFrom(...domain), { minLength: 1, maxLength: domain.length }),
    },
  );
}

/** A time bound as ms or as RFC 3339 text. */
const timeArb = (lo: number, hi: number): fc.Arbitrary<number | string> =>
  fc
    .tuple(fc.integer({ min: lo, max: hi }), fc.boolean())
    .map(([t, asText]) => (asText ? new Date(t).toISOString() : t));

export interface QueryArbOptions {
  /** Only what SQL can express (no null filter values). */
  sqlOnly?: boolean;
}

export function jsonQueryArb(options: QueryArbOptions = {}): fc.Arbitrary<JsonQuery> {
  const nonNull = <T>(list: readonly (T | null)[]) => list.filter((v): v is T => v !== null);
  const models = options.sqlOnly ? nonNull(MODELS) : MODELS;
  const subs = options.sqlOnly ? nonNull(SUBSCRIPTIONS) : SUBSCRIPTIONS;
  return fc
    .record({
      account: fc.option(fc.constantFrom(...ACCOUNTS, 'acct-none'), { nil: undefined }),
      range: fc.tuple(timeArb(MAY - DAY, MAY + 6 * DAY), fc.integer({ min: 1, max: 8 * DAY })),
      groupBy: fc.uniqueArray(fc.constantFrom(...GROUP_KEYS), { maxLength: 4 }),
      product_id: filterArb([...PRODUCTS, 'no-such-product']),
      meter_id: filterArb(METERS),
      model_id: filterArb(models),
      source: filterArb(SOURCES),
      unit: filterArb(UNITS),
      kind: filterArb(['Usage', 'Correction', 'Retraction'] as const),
      subscription_id: filterArb(subs),
      dims: fc.option(
        fc.dictionary(fc.constantFrom(...DIM_KEYS), fc.constantFrom(...DIM_VALUES), { maxKeys: 2 }),
        { nil: undefined, freq: 4 },
      ),
      metrics: fc.option(
        fc.uniqueArray(fc.constantFrom('sum', 'count', 'min', 'max' as const), {
          minLength: options.sqlOnly ? 1 : 0,
          maxLength: 4,
        }),
        { nil: undefined },
      ),
      order: fc.array(fc.tuple(fc.nat(), fc.constantFrom('asc', 'desc' as const)), { maxLength: 2 }),
      limit: fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }),
    })
    .map((r) => {
      const from = r.range[0];
      const fromMs = parseTime(from);
      const toMs = fromMs + r.range[1];
      const filters: NonNullable<JsonQuery['filters']> = {};
      for (const col of [
        'product_id',
        'meter_id',
        'model_id',
        'source',
        'unit',
        'kind',
        'subscription_id',
      ] as const) {
        const v = r[col];
        if (v !== undefined) (filters as Record<string, unknown>)[col] = v;
      }
      if (r.dims !== undefined) filters.dimensions = r.dims;
      const orderKeys = [...r.groupBy, 'sum', 'count', 'min', 'max'];
      const orderBy = r.order.map(([i, dir]) => ({ key: orderKeys[i % orderKeys.length], dir }));
      const q: JsonQuery = {
        from,
        to: typeof from === 'string' ? new Date(toMs).toISOString() : toMs,
        group_by: r.groupBy,
        filters,
      };
      if (r.account !== undefined) q.account_id = r.account;
      if (r.metrics !== undefined) q.metrics = r.metrics;
      if (orderBy.length > 0) q.order_by = orderBy;
      if (r.limit !== undefined) q.limit = r.limit;
      return q;
    });
}
