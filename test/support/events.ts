/** Deterministic event generators and a small db factory for tests. */
import { UsageDb, type UsageDbOptions } from '../../src/db.ts';
import { ManualClock } from '../../src/storage/clock.ts';
import { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';
import { silentLogger } from '../../src/util/logger.ts';

export const T0 = Date.UTC(2026, 4, 1); // 2026-05-01
export const NOW = Date.UTC(2026, 5, 1);
export const DAY_MS = 86_400_000;

export type WireInput = Record<string, unknown>;

/** mulberry32: small seeded PRNG so every randomized test replays from its seed. */
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

export function usage(i: number, overrides: WireInput = {}): WireInput {
  return {
    event_id: `evt_${i}`,
    account_id: `acct_${i % 7}`,
    product_id: ['llm-api', 'embeddings', 'agents'][i % 3],
    meter_id: ['tokens.input', 'tokens.output', 'requests'][i % 3],
    unit: ['tokens', 'tokens', 'requests'][i % 3],
    model_id: i % 5 === 0 ? null : `model-${i % 4}`,
    source: 'gateway',
    timestamp_ms: T0 + ((i * 7919) % ((30 * DAY_MS) / 1000)) * 1000,
    quantity: (i * 37) % 1000,
    dimensions: i % 2 === 0 ? { region: i % 4 === 0 ? 'us' : 'eu' } : undefined,
    ...overrides,
  };
}

export function usageBatch(from: number, count: number, overrides: WireInput = {}): WireInput[] {
  return Array.from({ length: count }, (_, k) => usage(from + k, overrides));
}

export interface SimDb {
  fs: SimFileSystem;
  clock: ManualClock;
  open(extra?: Partial<UsageDbOptions>): Promise<UsageDb>;
}

export function simDb(seed = 1, base: Partial<UsageDbOptions> = {}): SimDb {
  const fs = new SimFileSystem({ seed });
  const clock = new ManualClock(NOW);
  return {
    fs,
    clock,
    open: (extra = {}) =>
      UsageDb.open({ dir: '/db', fs, clock, bucketCount: 8, logger: silentLogger, ...base, ...extra }),
  };
}
