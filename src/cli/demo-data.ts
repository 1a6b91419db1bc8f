/**
 * A month of AI-product usage for the demo: LLM tokens (input, output, cached) and requests,
 * embeddings, agent tool calls and runtime, for a few accounts of different sizes. Seeded, so
 * the same options always give the same events.
 */

export interface DemoOptions {
  /** Approximate number of events (whole requests are generated). */
  events: number;
  accounts: number;
  monthStartMs: number;
  monthEndMs: number;
  seed: number;
}

export type DemoEvent = Record<string, unknown> & { event_id: string; account_id: string; quantity: number };

const ACCOUNT_NAMES = [
  'acme-corp',
  'globex',
  'initech',
  'umbrella',
  'hooli',
  'stark-ind',
  'wayne-ent',
  'tyrell',
  'cyberdyne',
  'soylent',
];
const LLM_MODELS = ['gpt-4.1', 'claude-sonnet-4', 'llama-3.1-70b'];
const EMBEDDING_MODEL = 'text-embedding-3-large';
const REGIONS = ['us-east-1', 'eu-west-1'];

/** mulberry32: a tiny seeded PRNG (deterministic demo data). */
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

export function demoAccounts(n: number): string[] {
  return Array.from(
    { length: n },
    (_, i) => ACCOUNT_NAMES[i % ACCOUNT_NAMES.length] + (i >= ACCOUNT_NAMES.length ? `-${i}` : ''),
  );
}

/** The previous full calendar month (UTC) before `nowMs`: every timestamp is in the past. */
export function previousMonth(nowMs: number): { startMs: number; endMs: number; label: string } {
  const now = new Date(nowMs);
  const startMs = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1);
  const endMs = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
  return { startMs, endMs, label: new Date(startMs).toISOString().slice(0, 7) };
}

/** Events of one request (2–4 events sharing a request id). */
function requestEvents(rand: () => number, account: string, seq: number, timestampMs: number): DemoEvent[] {
  const base = {
    account_id: account,
    source: 'gateway',
    timestamp_ms: timestampMs,
    dimensions: {
      region: REGIONS[Math.floor(rand() * REGIONS.length)],
      api_key: `key-${Math.floor(rand() * 4)}`,
    },
  };
  const id = (meter: string) => `gw:${account}:${seq}:${meter}`;
  const kind = rand();
  if (kind < 0.6) {
    const model = LLM_MODELS[Math.floor(rand() * LLM_MODELS.length)];
    const input = 200 + Math.floor(rand() * 8000);
    const llm = { ...base, product_id: 'llm-api', model_id: model };
    return [
      { ...llm, event_id: id('tokens.input'), meter_id: 'tokens.input', unit: 'tokens', quantity: input },
      {
        ...llm,
        event_id: id('tokens.output'),
        meter_id: 'tokens.output',
        unit: 'tokens',
        quantity: 50 + Math.floor(rand() * 2000),
      },
      {
        ...llm,
        event_id: id('tokens.cached'),
        meter_id: 'tokens.cached',
        unit: 'tokens',
        quantity: Math.floor(rand() * (input / 2)),
      },
      { ...llm, event_id: id('requests'), meter_id: 'requests', unit: 'requests', quantity: 1 },
    ];
  }
  if (kind < 0.85) {
    const emb = { ...base, product_id: 'embeddings', model_id: EMBEDDING_MODEL };
    return [
      {
        ...emb,
        event_id: id('tokens.embedding'),
        meter_id: 'tokens.embedding',
        unit: 'tokens',
        quantity: 100 + Math.floor(rand() * 20_000),
      },
      { ...emb, event_id: id('requests'), meter_id: 'requests', unit: 'requests', quantity: 1 },
    ];
  }
  const agent = {
    ...base,
    product_id: 'agents',
    model_id: LLM_MODELS[Math.floor(rand() * LLM_MODELS.length)],
  };
  return [
    {
      ...agent,
      event_id: id('tool_calls'),
      meter_id: 'tool_calls',
      unit: 'calls',
      quantity: 1 + Math.floor(rand() * 8),
    },
    {
      ...agent,
      event_id: id('agent_runtime'),
      meter_id: 'agent_runtime',
      unit: 'seconds',
      quantity: 1 + Math.floor(rand() * 300),
    },
  ];
}

/**
 * The month's events in time order, in batches of `batchEvents`. Bigger accounts send more:
 * account i gets weight 1 / (i + 1).
 */
export function* demoBatches(options: DemoOptions, batchEvents: number): Generator<DemoEvent[]> {
  const rand = seededRandom(options.seed);
  const accounts = demoAccounts(options.accounts);
  const weights = accounts.map((_, i) => 1 / (i + 1));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const pickAccount = () => {
    let r = rand() * totalWeight;
    for (let i = 0; i < accounts.length; i++) {
      r -= weights[i];
      if (r <= 0) return accounts[i];
    }
    return accounts[accounts.length - 1];
  };
  // ~3 events per request on average.
  const requests = Math.max(1, Math.round(options.events / 3));
  const spanMs = options.monthEndMs - options.monthStartMs;
  let batch: DemoEvent[] = [];
  for (let seq = 0; seq < requests; seq++) {
    const timestampMs = options.monthStartMs + Math.floor(((seq + rand()) * spanMs) / requests);
    for (const e of requestEvents(rand, pickAccount(), seq, Math.min(timestampMs, options.monthEndMs - 1))) {
      batch.push(e);
      if (batch.length >= batchEvents) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
}
