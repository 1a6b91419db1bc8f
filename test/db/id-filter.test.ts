/**
 * The database id filter through the public API: it never misses a stored id (across flushes,
 * compactions, restarts and crashes at any file-system call), and a new event costs a bounded
 * number of filter probes whatever the number of segment files.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { SimulatedCrashError } from '../../src/storage/fs/sim-file-system.ts';
import { abandonForCrashTest, dedupeState } from '../../src/testing.ts';
import { DAY_MS, simDb, T0, usage, type WireInput } from '../support/events.ts';

function event(i: number): WireInput {
  return usage(i, { timestamp_ms: T0 + (i % 5) * DAY_MS + i });
}

async function expectAllKnown(db: UsageDb, acked: Map<string, WireInput>, label: string): Promise<void> {
  await db.flush();
  const state = dedupeState(db);
  for (const id of acked.keys()) expect(state.mayBeStored(id), `${label}: filter misses ${id}`).toBe(true);
}

async function expectAllDuplicates(db: UsageDb, acked: Map<string, WireInput>, label: string): Promise<void> {
  const all = [...acked.values()];
  for (let i = 0; i < all.length; i += 500) {
    const r = await db.ingest(all.slice(i, i + 500));
    expect(r.duplicates, `${label}: retries not all duplicates`).toBe(Math.min(500, all.length - i));
  }
}

type Op =
  | { kind: 'ingest'; count: number }
  | { kind: 'retry'; count: number }
  | { kind: 'flush' }
  | { kind: 'compact' }
  | { kind: 'reopen' }
  | { kind: 'crash' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('ingest' as const), count: fc.integer({ min: 1, max: 120 }) }),
  fc.record({ kind: fc.constant('retry' as const), count: fc.integer({ min: 1, max: 40 }) }),
  fc.constant({ kind: 'flush' as const }),
  fc.constant({ kind: 'compact' as const }),
  fc.constant({ kind: 'reopen' as const }),
  fc.constant({ kind: 'crash' as const }),
);

describe('database id filter', () => {
  it('never misses a stored id across flushes, compactions, reopens and crashes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 3, maxLength: 14 }), fc.nat(), async (ops, seed) => {
        const sim = simDb(seed, { durability: 'strict' });
        let db = await sim.open();
        const acked = new Map<string, WireInput>();
        let next = 0;
        for (const [step, op] of ops.entries()) {
          const label = `step ${step} ${op.kind}`;
          if (op.kind === 'ingest') {
            const batch = Array.from({ length: op.count }, () => event(next++));
            const r = await db.ingest(batch);
            expect(r.accepted, label).toBe(batch.length);
            for (const e of batch) acked.set(e.event_id as string, e);
          } else if (op.kind === 'retry') {
            const all = [...acked.values()];
            const batch = Array.from(
              { length: Math.min(op.count, all.length) },
              (_, k) => all[(k * 7919) % all.length],
            );
            const r = await db.ingest(batch);
            expect(r.duplicates, label).toBe(batch.length);
          } else if (op.kind === 'flush') {
            await expectAllKnown(db, acked, label);
          } else if (op.kind === 'compact') {
            await db.compact();
            await expectAllKnown(db, acked, label);
          } else if (op.kind === 'reopen') {
            await db.close();
            db = await sim.open();
            await expectAllKnown(db, acked, label);
          } else {
            abandonForCrashTest(db);
            sim.fs.crash();
            sim.fs.restart();
            db = await sim.open();
            await expectAllKnown(db, acked, label);
          }
        }
        await expectAllDuplicates(db, acked, 'end');
        await db.close();
      }),
      { numRuns: 25 },
    );
  });

  it('a new event costs one probe of the database filter, whatever the number of segment files', async () => {
    const perEvent: { segments: number; filterProbes: number; segmentFilterProbes: number }[] = [];
    for (const flushes of [3, 40]) {
      const sim = simDb(7);
      const db = await sim.open();
      let i = 0;
      for (let f = 0; f < flushes; f++) {
        await db.ingest(Array.from({ length: 40 }, () => event(i++)));
        await db.flush();
      }
      expect(db.stats().segments).toBe(flushes);
      const before = dedupeState(db);
      const fresh = Array.from({ length: 2000 }, () => event(i++));
      for (let k = 0; k < fresh.length; k += 200) {
        expect((await db.ingest(fresh.slice(k, k + 200))).accepted).toBe(200);
      }
      const after = dedupeState(db);
      perEvent.push({
        segments: flushes,
        filterProbes: (after.filter.probes - before.filter.probes) / fresh.length,
        segmentFilterProbes:
          (after.counters.segmentFilterProbes - before.counters.segmentFilterProbes) / fresh.length,
      });
      await db.close();
    }
    for (const p of perEvent) {
      // One probe, a second only after a false positive; segment filters only after one too.
      expect(p.filterProbes, `${p.segments} segments`).toBeGreaterThanOrEqual(1);
      expect(p.filterProbes, `${p.segments} segments`).toBeLessThan(1.02);
      expect(p.segmentFilterProbes * p.segments, `${p.segments} segments`).toBeLessThan(0.02 * p.segments);
    }
  });

  it('cold lookups over more segment filters than their cache holds read only the filters it does not keep', async () => {
    const sim = simDb(11);
    let db = await sim.open();
    const stored: WireInput[] = [];
    for (let f = 0; f < 8; f++) {
      const batch = Array.from({ length: 200 }, () => event(stored.length + 1000 * f));
      await db.ingest(batch);
      stored.push(...batch);
      await db.flush();
    }
    await db.close();
    // The bytes of all eight filters, as one cold lookup loads them into an unbounded cache.
    db = await sim.open();
    expect((await db.ingest([stored[0]])).duplicates).toBe(1);
    const allBytes = dedupeState(db).cacheBytes.segmentFilters;
    await db.close();

    db = await sim.open();
    dedupeState(db).limitSegmentFilterCache(Math.floor((allBytes * 3.5) / 8));
    const before = dedupeState(db).counters;
    const retries = 20;
    for (let k = 0; k < retries; k++) {
      expect((await db.ingest([stored[(k * 397) % stored.length]])).duplicates).toBe(1);
    }
    const after = dedupeState(db).counters;
    expect(after.coldLookups - before.coldLookups).toBe(retries);
    expect(after.segmentFilterProbes - before.segmentFilterProbes).toBe(8 * retries);
    // Three filters fit: the first lookup loads all eight, each later one the five not kept
    // (evicting the least recently used instead, every lookup loaded all eight).
    expect(after.segmentFilterLoads - before.segmentFilterLoads).toBe(8 + (retries - 1) * 5);
    expect(dedupeState(db).cacheBytes.segmentFilters).toBeLessThanOrEqual((allBytes * 3.5) / 8);
    await db.close();
  });

  it('a crash at every file-system call of flushes, a compaction and close never loses an id from the filter', async () => {
    const events = Array.from({ length: 60 }, (_, i) => event(i));
    const prepare = async (db: UsageDb, acked: Map<string, WireInput>) => {
      for (let b = 0; b < 3; b++) {
        const batch = events.slice(b * 12, b * 12 + 12);
        await db.ingest(batch);
        for (const e of batch) acked.set(e.event_id as string, e);
        await db.flush();
      }
    };
    const work = async (db: UsageDb, acked: Map<string, WireInput>) => {
      const batch = events.slice(36);
      await db.ingest(batch);
      for (const e of batch) acked.set(e.event_id as string, e);
      await db.flush();
      await db.compact();
      await db.close();
    };
    const clean = simDb(5, { bucketCount: 2, durability: 'strict' });
    const cleanDb = await clean.open();
    await prepare(cleanDb, new Map());
    const start = clean.fs.callCount;
    await work(cleanDb, new Map());
    const calls = clean.fs.callCount - start;
    expect(calls).toBeGreaterThan(20);

    for (let n = 1; n <= calls; n++) {
      const sim = simDb(5, { bucketCount: 2, durability: 'strict' });
      const acked = new Map<string, WireInput>();
      const db = await sim.open();
      await prepare(db, acked);
      sim.fs.crashAt(sim.fs.callCount + n, { tornWrites: n % 2 === 0 });
      try {
        await work(db, acked);
      } catch (err) {
        if (!(err instanceof SimulatedCrashError) && !sim.fs.halted) throw err;
      }
      abandonForCrashTest(db);
      if (sim.fs.halted) sim.fs.restart();
      const reopened = await sim.open();
      // Acknowledged before the crash point: the prepared events; the rest may or may not be.
      await expectAllKnown(reopened, acked, `crash at call ${n}`);
      await expectAllDuplicates(reopened, acked, `crash at call ${n}`);
      await reopened.close();
    }
  });
});
