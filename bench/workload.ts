/**
 * Seeded, deterministic generator of AI-usage events for the benchmark.
 *
 * Every engine phase runs in its own child process and regenerates the stream from the seed,
 * so all engines see byte-for-byte the same events in the same order without a staged file.
 * Memory stays bounded at any size: events are made on the fly and only a fixed-size pool of
 * earlier events (as JSON bytes) is kept to draw retries and conflicts from.
 */

/** A usage event in the wire shape of the data model (only the fields this workload uses). */
export interface UsageEvent {
  event_id: string;
  kind?: 'Usage';
  account_id: string;
  subscription_id: string | null;
  product_id: string;
  meter_id: string;
  unit: string;
  source: string;
  model_id: string | null;
  timestamp_ms: number;
  quantity: number;
  dimensions?: Record<string, string>;
}

/** What each event of a batch must be classified as by a correct engine. */
export const EXPECT_NEW = 0;
export const EXPECT_DUPLICATE = 1;
export const EXPECT_CONFLICT = 2;

export interface Batch {
  events: UsageEvent[];
  /** EXPECT_* per event, parallel to `events` (kept off the wire objects). */
  expect: Uint8Array;
}

export interface WorkloadTotals {
  sent: number;
  unique: number;
  duplicates: number;
  conflicts: number;
  /** Sum of the quantities of the unique (stored) events: every engine must hold exactly this. */
  quantitySum: number;
  /**
   * What the conflicting copies add over their originals. Senders running side by side may
   * deliver a copy before its original (first writer wins, the original is then the conflict):
   * their stored sum lies in quantitySum + [0, this].
   */
  conflictQuantityDelta: number;
  /**
   * Copies whose answer (duplicate or conflict) depends on the order concurrent senders deliver
   * them in: every other copy of an event whose conflicting copy was sent within RACE_BATCHES
   * of it. If that copy lands first it is stored, and a later retry of the original is then a
   * conflict; the duplicates and conflicts counted may shift by up to this many, never their sum.
   */
  orderSensitive: number;
}

export interface WorkloadOptions {
  events: number;
  seed: number;
  batchSize?: number;
}

/** May 2026, UTC, half-open: every generated timestamp lies inside. */
export const MONTH_FROM = Date.UTC(2026, 4, 1);
export const MONTH_TO = Date.UTC(2026, 5, 1);
export const MONTH_LABEL = '2026-05';

export const ACCOUNT_COUNT = 1000;
const ACCOUNT_ZIPF_S = 1.0;
const RETRY_RATE = 0.02;
const CONFLICT_RATE = 0.001;
/** Size of each of the two pools retries/conflicts are drawn from (recent ring + uniform reservoir). */
const POOL_SIZE = 8192;
/** Batches within which concurrent senders may deliver a copy before its original (4 in flight, with margin). */
export const RACE_BATCHES = 8;
/** Bytes per pooled event's JSON (the longest event of this workload is ~450 bytes). */
const POOL_SLOT_BYTES = 1024;

/**
 * A pool of earlier events kept as JSON bytes in one buffer, as a client keeps what it may
 * resend. Holding the event objects themselves (~300 bytes each, every event passing through
 * the recent ring) made each one survive the engine's young-generation GCs and get copied into
 * the old generation: ~290 MB per 1M events of GC work charged to whichever engine shares the
 * process. A retry is parsed back into fresh objects, as a server gets a resent request.
 */
class EventPool {
  private readonly bytes = new Uint8Array(POOL_SIZE * POOL_SLOT_BYTES);
  private readonly lengths = new Uint16Array(POOL_SIZE);
  /** The batch each slot's event was first sent in. */
  private readonly batches = new Uint32Array(POOL_SIZE);
  private readonly encoder = new TextEncoder();
  private readonly decoder = new TextDecoder();
  length = 0;

  /** Puts `event` at `index` (at most `length`: the pool grows by one then). */
  set(index: number, event: UsageEvent, batch: number): void {
    if (index > this.length || index >= POOL_SIZE) throw new RangeError(`event pool index ${index}`);
    const slot = this.bytes.subarray(index * POOL_SLOT_BYTES, (index + 1) * POOL_SLOT_BYTES);
    const json = JSON.stringify(event);
    const { read, written } = this.encoder.encodeInto(json, slot);
    if (read !== json.length) throw new Error(`event of ${json.length} chars does not fit a pool slot`);
    this.lengths[index] = written;
    this.batches[index] = batch;
    if (index === this.length) this.length++;
  }

  batchOf(index: number): number {
    return this.batches[index];
  }

  get(index: number): UsageEvent {
    const start = index * POOL_SLOT_BYTES;
    return JSON.parse(
      this.decoder.decode(this.bytes.subarray(start, start + this.lengths[index])),
    ) as UsageEvent;
  }
}

// ---------------------------------------------------------------------------------------------
// PRNG: sfc32 seeded through splitmix32. Chosen over mulberry32 for its 128-bit state: 10M
// events draw ~2·10^8 numbers, a sizeable part of mulberry32's 2^32 period.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = split();
    this.b = split();
    this.c = split();
    this.d = split();
    // Discard the first outputs: sfc32 mixes poorly right after seeding.
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  int(n: number): number {
    return Math.floor(this.float() * n);
  }
}

// ---------------------------------------------------------------------------------------------
// Discrete distributions

/** Zipf(s) over ranks 0..n-1 as a cumulative table, sampled by binary search. */
export class Zipf {
  readonly cdf: Float64Array;

  constructor(n: number, s: number) {
    this.cdf = new Float64Array(n);
    let total = 0;
    for (let k = 0; k < n; k++) {
      total += 1 / (k + 1) ** s;
      this.cdf[k] = total;
    }
    for (let k = 0; k < n; k++) this.cdf[k] /= total;
  }

  sample(rng: Rng): number {
    return searchCdf(this.cdf, rng.float());
  }

  weight(k: number): number {
    return k === 0 ? this.cdf[0] : this.cdf[k] - this.cdf[k - 1];
  }
}

function searchCdf(cdf: Float64Array, u: number): number {
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cdf[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** A weighted choice among a fixed list of values. */
class Choice<T> {
  private readonly values: readonly T[];
  private readonly cdf: Float64Array;

  constructor(entries: readonly (readonly [T, number])[]) {
    this.values = entries.map((e) => e[0]);
    this.cdf = new Float64Array(entries.length);
    let total = 0;
    entries.forEach(([, w], i) => {
      total += w;
      this.cdf[i] = total;
    });
    for (let i = 0; i < this.cdf.length; i++) this.cdf[i] /= total;
  }

  pick(rng: Rng): T {
    return this.values[searchCdf(this.cdf, rng.float())];
  }
}

// ---------------------------------------------------------------------------------------------
// The product catalogue: 3 products, 10 meters with fixed units, 100 models.

type ModelFamily = 'llm' | 'embed' | 'agent' | 'none';

interface MeterSpec {
  meter: string;
  unit: string;
  family: ModelFamily;
  /** Quantities are in [min, max], skewed towards min. */
  min: number;
  max: number;
}

const METERS: Record<string, MeterSpec> = {
  'tokens.input': { meter: 'tokens.input', unit: 'tokens', family: 'llm', min: 1, max: 100_000 },
  'tokens.output': { meter: 'tokens.output', unit: 'tokens', family: 'llm', min: 1, max: 20_000 },
  'tokens.cached': { meter: 'tokens.cached', unit: 'tokens', family: 'llm', min: 1, max: 100_000 },
  'tokens.reasoning': { meter: 'tokens.reasoning', unit: 'tokens', family: 'llm', min: 1, max: 50_000 },
  'embedding.tokens': { meter: 'embedding.tokens', unit: 'tokens', family: 'embed', min: 1, max: 50_000 },
  requests: { meter: 'requests', unit: 'requests', family: 'llm', min: 1, max: 100 },
  'image.credits': { meter: 'image.credits', unit: 'credits', family: 'llm', min: 1, max: 50 },
  'tool.calls': { meter: 'tool.calls', unit: 'calls', family: 'none', min: 1, max: 20 },
  'agent.runtime_ms': { meter: 'agent.runtime_ms', unit: 'ms', family: 'agent', min: 10, max: 100_000 },
  'web.searches': { meter: 'web.searches', unit: 'searches', family: 'none', min: 1, max: 10 },
};

export const METER_IDS: readonly string[] = Object.keys(METERS);

interface ProductSpec {
  product: string;
  meters: Choice<MeterSpec>;
  /** Which model family `requests` draws from in this product. */
  requestFamily: ModelFamily;
  sources: Choice<string>;
}

const PRODUCTS = new Choice<ProductSpec>([
  [
    {
      product: 'llm-api',
      meters: new Choice<MeterSpec>([
        [METERS['tokens.input'], 28],
        [METERS['tokens.output'], 28],
        [METERS['tokens.cached'], 12],
        [METERS['tokens.reasoning'], 8],
        [METERS.requests, 20],
        [METERS['image.credits'], 4],
      ]),
      requestFamily: 'llm',
      sources: new Choice([
        ['api-gateway', 75],
        ['batch-worker', 25],
      ]),
    },
    60,
  ],
  [
    {
      product: 'embeddings',
      meters: new Choice<MeterSpec>([
        [METERS['embedding.tokens'], 70],
        [METERS.requests, 30],
      ]),
      requestFamily: 'embed',
      sources: new Choice([
        ['api-gateway', 60],
        ['batch-worker', 40],
      ]),
    },
    20,
  ],
  [
    {
      product: 'agents',
      meters: new Choice<MeterSpec>([
        [METERS['agent.runtime_ms'], 35],
        [METERS['tool.calls'], 30],
        [METERS['web.searches'], 15],
        [METERS['tokens.input'], 10],
        [METERS['tokens.output'], 10],
      ]),
      requestFamily: 'agent',
      sources: new Choice([['agent-runtime', 1]]),
    },
    20,
  ],
]);

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** 100 models: 70 LLMs, 15 embedding models, 15 agent models. */
const MODELS: Record<Exclude<ModelFamily, 'none'>, string[]> = {
  llm: Array.from({ length: 70 }, (_, i) => `llm-${pad(i + 1, 2)}`),
  embed: Array.from({ length: 15 }, (_, i) => `embed-${pad(i + 1, 2)}`),
  agent: Array.from({ length: 15 }, (_, i) => `agent-${pad(i + 1, 2)}`),
};
const MODEL_ZIPF = { llm: new Zipf(70, 1.1), embed: new Zipf(15, 1.1), agent: new Zipf(15, 1.1) };
/** Share of an account's events that use its home model of the family (customers stick to one). */
const HOME_MODEL_SHARE = 0.7;

const DIMENSIONS: readonly (readonly [string, readonly string[]])[] = [
  ['region', ['us-east-1', 'us-west-2', 'eu-west-1', 'ap-southeast-1']],
  ['tier', ['free', 'pro', 'enterprise']],
  ['feature', ['chat', 'completion', 'batch', 'search', 'code']],
  ['environment', ['production', 'staging']],
];
const DIMENSION_COUNT = new Choice<number>([
  [0, 25],
  [1, 35],
  [2, 25],
  [3, 15],
]);

export const accountId = (rank: number): string => `acct_${pad(rank + 1, 4)}`;

interface AccountProfile {
  id: string;
  subscription: string | null;
  home: Record<Exclude<ModelFamily, 'none'>, string>;
}

/** Per-account attributes, from their own PRNG stream so they do not depend on the event count. */
function accountProfiles(seed: number): AccountProfile[] {
  const rng = new Rng(seed ^ 0x5bd1e995);
  const profiles: AccountProfile[] = [];
  for (let i = 0; i < ACCOUNT_COUNT; i++) {
    profiles.push({
      id: accountId(i),
      subscription: rng.float() < 0.8 ? `sub_${pad(i + 1, 4)}_${rng.int(10)}` : null,
      home: {
        llm: MODELS.llm[MODEL_ZIPF.llm.sample(rng)],
        embed: MODELS.embed[MODEL_ZIPF.embed.sample(rng)],
        agent: MODELS.agent[MODEL_ZIPF.agent.sample(rng)],
      },
    });
  }
  return profiles;
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** `evt_` + 20 base62 chars; each 32-bit draw yields 5 chars (62^5 < 2^32), ~119 bits in all. */
function eventId(rng: Rng): string {
  let id = 'evt_';
  for (let w = 0; w < 4; w++) {
    let r = rng.u32();
    for (let c = 0; c < 5; c++) {
      id += BASE62[r % 62];
      r = Math.floor(r / 62);
    }
  }
  return id;
}

/** Heavy-tailed integer in [min, max]: log-uniform with extra weight on small values. */
function quantity(rng: Rng, spec: MeterSpec): number {
  if (spec.meter === 'requests' && rng.float() < 0.9) return 1;
  const span = Math.log(spec.max - spec.min + 1);
  return Math.min(spec.max, spec.min + Math.floor(Math.exp(span * rng.float() ** 1.5)) - 1);
}

function dimensions(rng: Rng): Record<string, string> | undefined {
  const n = DIMENSION_COUNT.pick(rng);
  if (n === 0) return undefined;
  // Partial Fisher-Yates over the key list; keys are emitted unsorted on purpose, so engines
  // must canonicalise.
  const order = [0, 1, 2, 3];
  const dims: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const j = i + rng.int(order.length - i);
    [order[i], order[j]] = [order[j], order[i]];
    const [key, values] = DIMENSIONS[order[i]];
    dims[key] = values[rng.int(values.length)];
  }
  return dims;
}

// ---------------------------------------------------------------------------------------------

/** Emits `opts.events` events (retries and conflicts included) in batches; `totals` fills as it runs. */
export class Workload {
  readonly totals: WorkloadTotals = {
    sent: 0,
    unique: 0,
    duplicates: 0,
    conflicts: 0,
    quantitySum: 0,
    conflictQuantityDelta: 0,
    orderSensitive: 0,
  };
  private readonly opts: Required<WorkloadOptions>;

  constructor(opts: WorkloadOptions) {
    this.opts = { batchSize: 1000, ...opts };
  }

  *batches(): Generator<Batch> {
    const { events: total, seed, batchSize } = this.opts;
    const rng = new Rng(seed);
    const profiles = accountProfiles(seed);
    const accounts = new Zipf(ACCOUNT_COUNT, ACCOUNT_ZIPF_S);
    // Two pools of earlier unique events: the most recent ones (a client retrying a timed-out
    // request) and a uniform reservoir over all history (a replay long after, past any hot cache).
    const recent = new EventPool();
    const reservoir = new EventPool();
    let uniqueSeen = 0;
    const span = MONTH_TO - MONTH_FROM;
    const jitter = 2 * 3_600_000;
    // For orderSensitive: copies of events first sent in the last RACE_BATCHES batches (id ->
    // copies so far, the original's batch), and the events whose conflicting copy raced them.
    const youngCopies = new Map<string, { copies: number; batch: number }>();
    const raced = new Set<string>();

    for (let start = 0, batch = 0; start < total; start += batchSize, batch++) {
      const n = Math.min(batchSize, total - start);
      for (const [id, y] of youngCopies) if (batch - y.batch > RACE_BATCHES) youngCopies.delete(id);
      const events: UsageEvent[] = new Array(n);
      const expect = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const u = rng.float();
        if (uniqueSeen > 0 && u < RETRY_RATE + CONFLICT_RATE) {
          const pool = rng.float() < 0.5 || reservoir.length === 0 ? recent : reservoir;
          const slot = rng.int(pool.length);
          const resent = pool.get(slot); // a fresh copy of the original
          const id = resent.event_id;
          const originalBatch = pool.batchOf(slot);
          if (raced.has(id)) this.totals.orderSensitive++;
          else if (batch - originalBatch <= RACE_BATCHES) {
            const young = youngCopies.get(id) ?? { copies: 0, batch: originalBatch };
            if (u >= RETRY_RATE) {
              raced.add(id);
              this.totals.orderSensitive += young.copies;
            } else youngCopies.set(id, { copies: young.copies + 1, batch: originalBatch });
          }
          if (u < RETRY_RATE) {
            expect[i] = EXPECT_DUPLICATE;
            this.totals.duplicates++;
          } else {
            const delta = 1 + rng.int(10);
            resent.quantity += delta;
            this.totals.conflictQuantityDelta += delta;
            expect[i] = EXPECT_CONFLICT;
            this.totals.conflicts++;
          }
          events[i] = resent;
          continue;
        }

        const profile = profiles[accounts.sample(rng)];
        const product = PRODUCTS.pick(rng);
        const meter = product.meters.pick(rng);
        const family = meter.meter === 'requests' ? product.requestFamily : meter.family;
        let model: string | null = null;
        if (family !== 'none') {
          model =
            rng.float() < HOME_MODEL_SHARE
              ? profile.home[family]
              : MODELS[family][MODEL_ZIPF[family].sample(rng)];
        }
        // Roughly arrival order in time, with late and early stragglers, always inside May.
        const base = MONTH_FROM + ((start + i + 0.5) / total) * span;
        const ts = Math.floor(base + (rng.float() * 2 - 1) * jitter);
        const event: UsageEvent = {
          event_id: eventId(rng),
          account_id: profile.id,
          subscription_id: profile.subscription,
          product_id: product.product,
          meter_id: meter.meter,
          unit: meter.unit,
          source: product.sources.pick(rng),
          model_id: model,
          timestamp_ms: Math.min(MONTH_TO - 1, Math.max(MONTH_FROM, ts)),
          quantity: quantity(rng, meter),
        };
        const dims = dimensions(rng);
        if (dims) event.dimensions = dims;
        events[i] = event;
        expect[i] = EXPECT_NEW;
        this.totals.unique++;
        this.totals.quantitySum += event.quantity;

        recent.set(recent.length < POOL_SIZE ? recent.length : uniqueSeen % POOL_SIZE, event, batch);
        // Algorithm R: every unique event so far has equal odds of sitting in the reservoir.
        if (reservoir.length < POOL_SIZE) reservoir.set(reservoir.length, event, batch);
        else {
          const j = rng.int(uniqueSeen + 1);
          if (j < POOL_SIZE) reservoir.set(j, event, batch);
        }
        uniqueSeen++;
      }
      this.totals.sent += n;
      yield { events, expect };
    }
  }
}

/** One audit target per account: its home LLM model on `tokens.input` (the busiest line). */
export interface QueryAccount {
  account_id: string;
  meter_id: string;
  model_id: string;
}

/**
 * `n` distinct accounts drawn without replacement with probability proportional to their
 * activity, so heavy and light accounts appear as often as billing would query them.
 */
export function querySample(seed: number, n: number): QueryAccount[] {
  const rng = new Rng(seed ^ 0x27d4eb2f);
  const profiles = accountProfiles(seed);
  const zipf = new Zipf(ACCOUNT_COUNT, ACCOUNT_ZIPF_S);
  const weights = Array.from({ length: ACCOUNT_COUNT }, (_, k) => zipf.weight(k));
  // Efraimidis–Spirakis: keep the n largest u^(1/w).
  const keyed = weights.map((w, k) => ({ k, key: rng.float() ** (1 / w) }));
  keyed.sort((a, b) => b.key - a.key);
  return keyed.slice(0, Math.min(n, ACCOUNT_COUNT)).map(({ k }) => ({
    account_id: profiles[k].id,
    meter_id: 'tokens.input',
    model_id: profiles[k].home.llm,
  }));
}

/** Canonical JSON of a dimension map: keys sorted, `{}` when absent (the canonical form). */
export function canonicalDimensions(dims: Record<string, string> | null | undefined): string {
  if (!dims) return '{}';
  const keys = Object.keys(dims);
  if (keys.length === 0) return '{}';
  keys.sort();
  const sorted: Record<string, string> = {};
  for (const k of keys) sorted[k] = dims[k];
  return JSON.stringify(sorted);
}
