/**
 * Deterministic simulation: random sequences of ingests (new events, retries, conflicts, bad
 * events), flushes, ticks, clean restarts and crashes (with torn writes), checked against a
 * reference model after every step. Each run prints its seed; replay with SIM_SEED=<seed>.
 */
import { describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { canonicalDimensionsJson } from '../../src/model/event.ts';
import { SimulatedCrashError } from '../../src/storage/fs/sim-file-system.ts';
import { DAY_MS, rng, simDb, T0, type WireInput } from '../support/events.ts';
import { abandonForCrashTest } from '../../src/testing.ts';
import { scanAccount } from '../support/scan.ts';

const ACCOUNTS = ['a0', 'a1', 'a2', 'a3', 'a4'];

function payloadKey(e: WireInput): string {
  const dims = (e.dimensions as Record<string, string> | undefined) ?? {};
  return JSON.stringify([
    e.account_id,
    e.meter_id,
    e.timestamp_ms,
    String(e.quantity),
    canonicalDimensionsJson(dims),
  ]);
}

function storedKey(e: {
  account_id: string;
  meter_id: string;
  timestamp_ms: number;
  quantity: number | bigint | string;
  dimensions_json: string;
}): string {
  return JSON.stringify([e.account_id, e.meter_id, e.timestamp_ms, String(e.quantity), e.dimensions_json]);
}

async function storedEvents(db: UsageDb): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const a of ACCOUNTS) {
    for (const e of await scanAccount(db, a, 0, Number.MAX_SAFE_INTEGER)) {
      expect(out.has(e.event_id), `stored twice: ${e.event_id}`).toBe(false);
      out.set(e.event_id, storedKey({ ...e, dimensions_json: canonicalDimensionsJson(e.dimensions) }));
    }
  }
  return out;
}

async function runSimulation(seed: number, steps: number): Promise<void> {
  const random = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
  const durability = pick(['strict', 'balanced', 'fast'] as const);
  const sim = simDb(seed, {
    durability,
    limits: { memtableBytesMax: 4096 + Math.floor(random() * 20000), blockRows: 16 },
  });
  /** Acknowledged (durable per mode) events: id -> payload key. */
  const acked = new Map<string, string>();
  /** Events whose outcome is unknown (their call was interrupted, or fast mode before a crash). */
  const maybe = new Map<string, string>();
  let nextId = 0;
  let db = await sim.open();

  const makeEvent = (): WireInput => {
    const r = random();
    const known = [...acked.keys()];
    if (r < 0.15 && known.length > 0) {
      // An exact retry.
      const id = pick(known);
      return JSON.parse(JSON.stringify(originals.get(id))) as WireInput;
    }
    if (r < 0.2 && known.length > 0) {
      const id = pick(known);
      return { ...(originals.get(id) as WireInput), quantity: 1_000_000 + Math.floor(random() * 1000) };
    }
    if (r < 0.23) return { event_id: `bad_${nextId++}`, account_id: 'a0' };
    const e: WireInput = {
      event_id: `e${nextId++}`,
      account_id: pick(ACCOUNTS),
      product_id: 'llm-api',
      meter_id: pick(['tokens.input', 'tokens.output']),
      unit: 'tokens',
      source: 'sim',
      timestamp_ms: T0 + Math.floor(random() * 4 * DAY_MS),
      quantity: random() < 0.05 ? '123456789012345678901234567890' : Math.floor(random() * 5000),
      dimensions: random() < 0.5 ? { region: pick(['us', 'eu']) } : undefined,
    };
    originals.set(e.event_id as string, e);
    return e;
  };
  const originals = new Map<string, WireInput>();

  const verify = async (label: string) => {
    const stored = await storedEvents(db);
    for (const [id, key] of acked) expect(stored.get(id), `${label}: acked ${id} (seed ${seed})`).toBe(key);
    for (const [id, key] of stored) {
      const expected = acked.get(id) ?? maybe.get(id);
      expect(expected, `${label}: invented ${id} (seed ${seed})`).toBe(key);
      if (!acked.has(id)) {
        acked.set(id, key);
        maybe.delete(id);
      }
    }
    // Unknown outcomes that did not survive are gone for good: forget them.
    for (const id of maybe.keys()) if (!stored.has(id)) maybe.delete(id);
  };

  for (let step = 0; step < steps; step++) {
    const op = random();
    if (op < 0.6) {
      const batch = Array.from({ length: 1 + Math.floor(random() * 12) }, makeEvent);
      const fresh = batch.filter(
        (e) => typeof e.event_id === 'string' && !acked.has(e.event_id) && e.quantity !== undefined,
      );
      const r = await db.ingest(batch);
      expect(r.accepted + r.duplicates + r.conflicts + r.rejected, `seed ${seed}`).toBe(batch.length);
      const seen = new Set<string>();
      for (const e of fresh) {
        const id = e.event_id as string;
        if (seen.has(id) || maybe.has(id)) continue;
        seen.add(id);
        if (durability === 'fast') maybe.set(id, payloadKey(e));
        else acked.set(id, payloadKey(e));
      }
    } else if (op < 0.7) {
      await db.flush();
    } else if (op < 0.75) {
      sim.clock.advance(60 * 60 * 1000);
      await db.tick();
    } else if (op < 0.85) {
      await db.close();
      db = await sim.open();
      await verify(`restart at step ${step}`);
      if (durability === 'fast') for (const [id, key] of maybe) acked.set(id, key);
      if (durability === 'fast') maybe.clear();
    } else {
      // Crash somewhere inside the next operations.
      sim.fs.crashAt(sim.fs.callCount + 1 + Math.floor(random() * 40), { tornWrites: random() < 0.5 });
      try {
        for (let k = 0; k < 3; k++) {
          const batch = Array.from({ length: 1 + Math.floor(random() * 8) }, makeEvent);
          const fresh = batch.filter(
            (e) => typeof e.event_id === 'string' && !acked.has(e.event_id) && e.quantity !== undefined,
          );
          for (const e of fresh) maybe.set(e.event_id as string, payloadKey(e));
          const r = await db.ingest(batch);
          if (durability !== 'fast' && r.accepted >= 0) {
            for (const e of fresh) {
              acked.set(e.event_id as string, maybe.get(e.event_id as string) as string);
              maybe.delete(e.event_id as string);
            }
          }
          if (random() < 0.5) await db.flush();
        }
      } catch (err) {
        if (!(err instanceof SimulatedCrashError) && !sim.fs.halted) throw err;
      }
      abandonForCrashTest(db);
      if (sim.fs.halted) sim.fs.restart();
      else {
        sim.fs.clearFaults();
        sim.fs.crash({ tornWrites: true });
      }
      if (durability === 'fast') for (const [id, key] of acked) if (!maybe.has(id)) maybe.set(id, key);
      if (durability === 'fast') acked.clear();
      db = await sim.open();
      await verify(`crash at step ${step}`);
    }
  }
  await db.close();
  db = await sim.open();
  await verify('final');
  await db.close();
}

describe('deterministic simulation against a reference model', () => {
  const fixed = process.env.SIM_SEED
    ? [Number(process.env.SIM_SEED)]
    : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  for (const seed of fixed) {
    it(`seed ${seed}`, async () => {
      await runSimulation(seed, 60);
    });
  }
});
