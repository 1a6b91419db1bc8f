/**
 * Test helpers: plain row objects <-> EventColumns, the segment sort order, and a seeded
 * generator of realistic AI-usage rows (for size measurements and round-trip tests).
 */

import {
  type DictColumn,
  dictValue,
  type EventColumns,
  type EventKind,
  KIND_NAMES,
  NULL_CODE,
  quantityAt,
} from '../../../src/model/columns.ts';

export interface Row {
  event_id: string;
  kind: EventKind;
  correction_original_event_id: string | null;
  correction_reason: string | null;
  account_id: string;
  subscription_id: string | null;
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  source: string;
  /** Canonical JSON of the key-sorted map ('{}' when empty). */
  dimensions: string;
  timestamp_ms: number;
  quantity: number | bigint;
  ingested_at_ms: number;
}

/** Canonical dimensions JSON: keys sorted. */
export function canonicalDimensions(dims: Record<string, string>): string {
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(dims).sort()) sorted[key] = dims[key];
  return JSON.stringify(sorted);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareNullable(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return compareStrings(a, b);
}

/** The segment order: account, product, meter, model (null first), timestamp. */
export function compareRows(a: Row, b: Row): number {
  return (
    compareStrings(a.account_id, b.account_id) ||
    compareStrings(a.product_id, b.product_id) ||
    compareStrings(a.meter_id, b.meter_id) ||
    compareNullable(a.model_id, b.model_id) ||
    a.timestamp_ms - b.timestamp_ms
  );
}

export function sortRows(rows: Row[]): Row[] {
  return [...rows].sort(compareRows);
}

/** A dictionary builder in first-seen order, with `junk` unused entries first (like a memtable-wide dict). */
function dictColumn(values: (string | null)[], junk: string[] = []): DictColumn {
  const dict = [...junk];
  const index = new Map<string, number>();
  for (let i = 0; i < dict.length; i++) index.set(dict[i], i);
  const codes = new Uint32Array(values.length);
  values.forEach((v, i) => {
    if (v === null) {
      codes[i] = NULL_CODE;
      return;
    }
    let code = index.get(v);
    if (code === undefined) {
      code = dict.length;
      dict.push(v);
      index.set(v, code);
    }
    codes[i] = code;
  });
  return { dict, codes };
}

function isSafe(q: number | bigint): q is number {
  return (
    typeof q === 'number' || (q >= BigInt(Number.MIN_SAFE_INTEGER) && q <= BigInt(Number.MAX_SAFE_INTEGER))
  );
}

export function rowsToColumns(rows: Row[], options: { junkDictEntries?: boolean } = {}): EventColumns {
  const junk = options.junkDictEntries ? ['zz-unused', 'aa-unused'] : [];
  const values = new Float64Array(rows.length);
  let big: Map<number, bigint> | null = null;
  rows.forEach((r, i) => {
    if (isSafe(r.quantity)) {
      values[i] = Number(r.quantity);
    } else {
      values[i] = Number.NaN;
      big ??= new Map();
      big.set(i, r.quantity as bigint);
    }
  });
  return {
    rowCount: rows.length,
    event_id: rows.map((r) => r.event_id),
    kind: Uint8Array.from(rows.map((r) => KIND_NAMES.indexOf(r.kind))),
    correction_original_event_id: rows.map((r) => r.correction_original_event_id),
    correction_reason: rows.map((r) => r.correction_reason),
    account_id: dictColumn(
      rows.map((r) => r.account_id),
      junk,
    ),
    subscription_id: dictColumn(
      rows.map((r) => r.subscription_id),
      junk,
    ),
    product_id: dictColumn(
      rows.map((r) => r.product_id),
      junk,
    ),
    meter_id: dictColumn(
      rows.map((r) => r.meter_id),
      junk,
    ),
    model_id: dictColumn(
      rows.map((r) => r.model_id),
      junk,
    ),
    unit: dictColumn(
      rows.map((r) => r.unit),
      junk,
    ),
    source: dictColumn(
      rows.map((r) => r.source),
      junk,
    ),
    dimensions: dictColumn(
      rows.map((r) => r.dimensions),
      junk,
    ),
    timestamp_ms: Float64Array.from(rows.map((r) => r.timestamp_ms)),
    quantity: { values, big },
    ingested_at_ms: Float64Array.from(rows.map((r) => r.ingested_at_ms)),
  };
}

function requireDict(col: DictColumn, row: number): string {
  const v = dictValue(col, row);
  if (v === null) throw new Error(`row ${row}: unexpected null`);
  return v;
}

/** Quantities normalised: a number when safe, else a bigint (so rows compare with toEqual). */
export function normaliseQuantity(q: number | bigint): number | bigint {
  return isSafe(q) ? Number(q) : q;
}

export function columnsToRows(cols: EventColumns): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < cols.rowCount; i++) {
    rows.push({
      event_id: cols.event_id[i],
      kind: KIND_NAMES[cols.kind[i]],
      correction_original_event_id: cols.correction_original_event_id[i],
      correction_reason: cols.correction_reason[i],
      account_id: requireDict(cols.account_id, i),
      subscription_id: dictValue(cols.subscription_id, i),
      product_id: requireDict(cols.product_id, i),
      meter_id: requireDict(cols.meter_id, i),
      model_id: dictValue(cols.model_id, i),
      unit: requireDict(cols.unit, i),
      source: requireDict(cols.source, i),
      dimensions: requireDict(cols.dimensions, i),
      timestamp_ms: cols.timestamp_ms[i],
      quantity: normaliseQuantity(quantityAt(cols.quantity, i)),
      ingested_at_ms: cols.ingested_at_ms[i],
    });
  }
  return rows;
}

// ---- realistic generator -------------------------------------------------------------

/** mulberry32: small seeded PRNG, so every generated segment replays from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

export function randomId(rand: () => number, prefix: string, length: number): string {
  let s = prefix;
  for (let i = 0; i < length; i++) s += BASE62[Math.floor(rand() * 62)];
  return s;
}

/** Index in [0, n) with Zipf-like weights 1/(i+1)^s. */
function zipfIndex(rand: () => number, n: number, s = 1.1): number {
  let total = 0;
  for (let i = 0; i < n; i++) total += 1 / (i + 1) ** s;
  let x = rand() * total;
  for (let i = 0; i < n; i++) {
    x -= 1 / (i + 1) ** s;
    if (x <= 0) return i;
  }
  return n - 1;
}

const PRODUCTS: { product: string; meters: { meter: string; unit: string; hasModel: boolean }[] }[] = [
  {
    product: 'llm-api',
    meters: [
      { meter: 'input_tokens', unit: 'tokens', hasModel: true },
      { meter: 'output_tokens', unit: 'tokens', hasModel: true },
      { meter: 'cached_input_tokens', unit: 'tokens', hasModel: true },
      { meter: 'reasoning_tokens', unit: 'tokens', hasModel: true },
      { meter: 'requests', unit: 'requests', hasModel: true },
    ],
  },
  {
    product: 'embeddings',
    meters: [
      { meter: 'embedding_tokens', unit: 'tokens', hasModel: true },
      { meter: 'requests', unit: 'requests', hasModel: true },
    ],
  },
  {
    product: 'agents',
    meters: [
      { meter: 'image_credits', unit: 'credits', hasModel: true },
      { meter: 'tool_calls', unit: 'calls', hasModel: false },
      { meter: 'agent_runtime_ms', unit: 'ms', hasModel: false },
      { meter: 'web_searches', unit: 'calls', hasModel: false },
    ],
  },
];

const MODEL_FAMILIES = [
  'gpt-4o',
  'gpt-4.1',
  'o3',
  'claude-sonnet',
  'claude-haiku',
  'gemini-pro',
  'llama-3.1',
  'mistral-large',
  'qwen-2.5',
  'deepseek-v3',
];
const MODEL_VARIANTS = ['', '-mini', '-nano', '-instruct', '-preview'];
const MODEL_DATES = ['2024-05-13', '2024-08-06', '2024-11-20', '2025-02-19', '2025-06-01'];

function modelNames(): string[] {
  const names: string[] = [];
  for (const f of MODEL_FAMILIES) {
    for (let i = 0; i < 10; i++)
      names.push(`${f}${MODEL_VARIANTS[i % 5]}-${MODEL_DATES[Math.floor(i / 2) % 5]}`);
  }
  return [...new Set(names)].slice(0, 100);
}

const DIMENSION_VOCAB: Record<string, string[]> = {
  region: ['us-east-1', 'eu-west-1', 'ap-south-1'],
  tier: ['standard', 'batch', 'priority'],
  feature: ['chat', 'search', 'summarize', 'code'],
  env: ['prod', 'staging'],
};

export interface RealisticOptions {
  rows: number;
  seed: number;
  accounts?: number;
  /** UTC day start (ms); timestamps spread uniformly over it. */
  dayStartMs?: number;
}

/**
 * Rows shaped like one day x bucket partition of an AI product: 15 accounts each using a few
 * products, meters and a handful of the 100 models (Zipf), 0-3 dimensions from a small vocabulary,
 * Zipf-ish quantities (requests are 1), ingest batches at a few dozen instants, rare corrections.
 * Returned sorted in segment order.
 */
export function realisticRows(options: RealisticOptions): Row[] {
  const rand = seededRandom(options.seed);
  const dayStartMs = options.dayStartMs ?? Date.UTC(2026, 4, 14);
  const models = modelNames();
  const accountCount = options.accounts ?? 15;
  const accounts = Array.from({ length: accountCount }, (_, i) => ({
    id: randomId(rand, 'acct_', 10),
    subscription: i % 3 === 2 ? null : randomId(rand, 'sub_', 12),
    source: ['api', 'gateway', 'batch-import'][zipfIndex(rand, 3)],
    models: Array.from(
      { length: 2 + Math.floor(rand() * 8) },
      () => models[zipfIndex(rand, models.length, 0.8)],
    ),
    products: PRODUCTS.filter((_, p) => p === 0 || rand() < 0.5),
    dimsProfile: Object.keys(DIMENSION_VOCAB).filter(() => rand() < 0.5),
  }));
  const ingestInstants = Array.from(
    { length: 36 },
    (_, i) => dayStartMs + i * 2_400_000 + Math.floor(rand() * 60_000),
  );
  const rows: Row[] = [];
  for (let i = 0; i < options.rows; i++) {
    const acct = accounts[zipfIndex(rand, accounts.length, 0.7)];
    const product = acct.products[Math.floor(rand() * acct.products.length)];
    const meter = product.meters[zipfIndex(rand, product.meters.length, 0.9)];
    const timestampMs = dayStartMs + Math.floor(rand() * 86_400_000);
    const dims: Record<string, string> = {};
    for (const key of acct.dimsProfile) {
      if (rand() < 0.8) dims[key] = DIMENSION_VOCAB[key][zipfIndex(rand, DIMENSION_VOCAB[key].length)];
    }
    let quantity = meter.unit === 'requests' ? 1 : Math.min(100_000, Math.floor(1 / (1 - rand()) ** 1.3));
    if (meter.unit === 'ms') quantity *= 10;
    const roll = rand();
    const kind: EventKind = roll < 0.997 ? 'Usage' : roll < 0.999 ? 'Correction' : 'Retraction';
    const isCorrection = kind !== 'Usage' && rows.length > 0;
    rows.push({
      event_id: randomId(rand, 'evt_', 20),
      kind: isCorrection ? kind : 'Usage',
      correction_original_event_id: isCorrection ? rows[Math.floor(rand() * rows.length)].event_id : null,
      correction_reason: isCorrection ? 'duplicate upstream charge' : null,
      account_id: acct.id,
      subscription_id: acct.subscription,
      product_id: product.product,
      meter_id: meter.meter,
      model_id: meter.hasModel ? acct.models[zipfIndex(rand, acct.models.length)] : null,
      unit: meter.unit,
      source: rand() < 0.95 ? acct.source : 'backfill',
      dimensions: canonicalDimensions(dims),
      timestamp_ms: timestampMs,
      quantity: isCorrection && kind === 'Retraction' ? -quantity : quantity,
      ingested_at_ms: ingestInstants.find((t) => t > timestampMs) ?? dayStartMs + 86_400_000 + 5_000,
    });
  }
  return sortRows(rows);
}
