/**
 * Crash-point enumeration: fixed workloads are crashed at every file-system call in turn (torn
 * writes on every other point), then reopened and checked:
 * - every acknowledged event is stored exactly once (counted per id), with its payload;
 *   in fast mode, every event acknowledged before a flush that resolved;
 * - nothing is invented; the query engine's sums and counts equal the stored events';
 * - every retry of a stored event is a duplicate; every file the manifest names verifies.
 * Workloads: ingest with corrections and retractions + flushes + close (each durability mode);
 * background merges by `tick()`; and a second crash inside the recovery of the first.
 */
import { describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { SimulatedCrashError } from '../../src/storage/fs/sim-file-system.ts';
import { abandonForCrashTest } from '../../src/testing.ts';
import { DAY_MS, simDb, T0, usage, type SimDb, type WireInput } from '../support/events.ts';

const ACCOUNTS = Array.from({ length: 7 }, (_, i) => `acct_${i}`);
const RANGE = { from: T0 - DAY_MS, to: T0 + 10 * DAY_MS };
const totals = { points: 0 };

function at(i: number): WireInput {
  return usage(i, { timestamp_ms: T0 + (i % 3) * DAY_MS + i });
}
const ref = (id: string) => ({ original_event_id: id, reason: 'crash-test' });

/** What a workload reports: every event sent, and the ids that must survive any crash. */
interface Tracker {
  sent: Map<string, WireInput>;
  mustSurvive: Set<string>;
  /** The instance a workload opened (abandoned at the crash, as its process would be). */
  opened: UsageDb | null;
}

async function stored(db: UsageDb): Promise<Map<string, { count: number; quantity: string; kind: string }>> {
  const out = new Map<string, { count: number; quantity: string; kind: string }>();
  for (const account of ACCOUNTS) {
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<UsageDb['events']>> = await db.events({
        account_id: account,
        ...RANGE,
        limit: 1000,
        ...(cursor === null ? {} : { cursor }),
      });
      for (const e of page.events)
        out.set(e.event_id, {
          count: (out.get(e.event_id)?.count ?? 0) + 1,
          quantity: e.quantity,
          kind: e.kind,
        });
      cursor = page.next_cursor;
    } while (cursor !== null);
  }
  return out;
}

async function verify(db: UsageDb, t: Tracker, where: string): Promise<void> {
  const got = await stored(db);
  let sum = 0n;
  for (const [id, s] of got) {
    expect(s.count, `${where}: ${id} stored ${s.count} times`).toBe(1);
    const e = t.sent.get(id);
    expect(e, `${where}: invented ${id}`).toBeDefined();
    expect(s.kind, `${where}: kind of ${id}`).toBe((e as WireInput).kind ?? 'Usage');
    if ((e as WireInput).quantity !== undefined)
      expect(s.quantity, `${where}: ${id}`).toBe(String((e as WireInput).quantity));
    sum += BigInt(s.quantity);
  }
  for (const id of t.mustSurvive) expect(got.has(id), `${where}: acknowledged ${id} lost`).toBe(true);
  // The query engine, which bills, agrees with the audit trail.
  const q = await db.query({ ...RANGE, metrics: ['sum', 'count'] });
  expect(q.rows, `${where}: totals`).toEqual([{ sum: sum.toString(), count: got.size }]);
  // Retries of what is stored are duplicates, whichever side of a commit the crash fell on.
  const retry = [...got.keys()].map((id) => t.sent.get(id) as WireInput);
  const r = await db.ingest(retry);
  expect({ accepted: r.accepted, duplicates: r.duplicates }, `${where}: retries`).toEqual({
    accepted: 0,
    duplicates: retry.length,
  });
  const report = await db.check({ deep: true });
  expect(report.ok, `${where}: ${report.problems.join('; ')}`).toBe(true);
}

type Workload = (sim: SimDb, db: UsageDb | null, t: Tracker) => Promise<void>;

/**
 * Runs `workload` once cleanly to count its calls, then once per call number with a crash
 * there, and verifies each restart.
 */
async function sweep(
  name: string,
  options: {
    durability: 'strict' | 'balanced' | 'fast';
    setup?: (sim: SimDb, t: Tracker) => Promise<UsageDb | null>;
  },
  workload: Workload,
): Promise<number> {
  const fresh = () => simDb(13, { durability: options.durability, bucketCount: 2, limits: { blockRows: 8 } });
  const clean = fresh();
  const cleanTracker: Tracker = { sent: new Map(), mustSurvive: new Set(), opened: null };
  const cleanDb = options.setup ? await options.setup(clean, cleanTracker) : null;
  const start = clean.fs.callCount;
  await workload(clean, cleanDb, cleanTracker);
  const calls = clean.fs.callCount - start;
  expect(calls, name).toBeGreaterThan(10);
  for (let n = 1; n <= calls; n++) {
    const where = `${name}: crash at call ${n} of ${calls}`;
    const sim = fresh();
    const t: Tracker = { sent: new Map(), mustSurvive: new Set(), opened: null };
    const db = options.setup ? await options.setup(sim, t) : null;
    sim.fs.crashAt(sim.fs.callCount + n, { tornWrites: n % 2 === 0 });
    try {
      await workload(sim, db, t);
    } catch (err) {
      if (!(err instanceof SimulatedCrashError) && !sim.fs.halted)
        throw new Error(`${where}: ${String(err)}`, { cause: err });
    }
    if (db !== null) abandonForCrashTest(db);
    if (t.opened !== null && t.opened !== db) abandonForCrashTest(t.opened);
    if (sim.fs.halted) sim.fs.restart();
    else sim.fs.clearFaults();
    const reopened = await sim.open();
    await verify(reopened, t, where);
    await reopened.close();
    totals.points++;
  }
  return calls;
}

/** Ingests `batch`; on resolution its accepted events must survive (fast mode: after a flush). */
function ingester(sim: SimDb, t: Tracker, durability: string) {
  const pendingFast: string[] = [];
  return {
    async ingest(db: UsageDb, batch: WireInput[], rejected: string[] = []): Promise<void> {
      for (const e of batch)
        if (!rejected.includes(e.event_id as string)) t.sent.set(e.event_id as string, e);
      const r = await db.ingest(batch);
      if (sim.fs.halted) return; // answered after the machine went off: not observable
      expect(r.errors.map((e) => e.event_id)).toEqual(rejected);
      for (const e of batch) {
        const id = e.event_id as string;
        if (rejected.includes(id)) continue;
        if (durability === 'fast') pendingFast.push(id);
        else t.mustSurvive.add(id);
      }
    },
    async flush(db: UsageDb): Promise<void> {
      const before = [...pendingFast];
      await db.flush();
      if (sim.fs.halted) return;
      for (const id of before) t.mustSurvive.add(id);
    },
    async close(db: UsageDb): Promise<void> {
      const before = [...pendingFast];
      await db.close();
      if (sim.fs.halted) return;
      for (const id of before) t.mustSurvive.add(id);
    },
  };
}

describe('crash at every file-system call', () => {
  for (const durability of ['strict', 'balanced', 'fast'] as const) {
    it(`${durability}: ingest with corrections and retractions, flushes, close`, async () => {
      const calls = await sweep('ingest+flush', { durability }, async (sim, _db, t) => {
        const io = ingester(sim, t, durability);
        const db = (t.opened = await sim.open());
        await io.ingest(
          db,
          Array.from({ length: 8 }, (_, i) => at(i)),
        );
        await Promise.all([
          io.ingest(
            db,
            Array.from({ length: 6 }, (_, i) => at(10 + i)),
          ),
          io.ingest(db, [
            {
              ...at(0),
              event_id: 'ret_0',
              kind: 'Retraction',
              quantity: undefined,
              correction_ref: ref('evt_0'),
            },
            ...Array.from({ length: 4 }, (_, i) => at(20 + i)),
          ]),
        ]);
        t.sent.set('ret_0', {
          ...(t.sent.get('ret_0') as WireInput),
          quantity: String(-Number(at(0).quantity)),
        });
        await io.flush(db);
        await io.ingest(
          db,
          [
            { ...at(1), event_id: 'cor_1', kind: 'Correction', quantity: -2, correction_ref: ref('evt_1') },
            {
              ...at(0),
              event_id: 'ret_0b',
              kind: 'Retraction',
              quantity: undefined,
              correction_ref: ref('evt_0'),
            },
            ...Array.from({ length: 4 }, (_, i) => at(30 + i)),
          ],
          ['ret_0b'],
        );
        await io.flush(db);
        await io.ingest(
          db,
          Array.from({ length: 5 }, (_, i) => at(40 + i)),
        );
        await io.close(db);
      });
      expect(calls).toBeGreaterThan(50);
    }, 300_000);
  }

  it('balanced: background merges by tick(), with ingest in between', async () => {
    let io: ReturnType<typeof ingester> | null = null;
    const calls = await sweep(
      'tick merges',
      {
        durability: 'balanced',
        async setup(sim, t) {
          io = ingester(sim, t, 'balanced');
          const db = await sim.open();
          for (let s = 0; s < 4; s++) {
            await io.ingest(
              db,
              Array.from({ length: 6 }, (_, i) => at(s * 6 + i)),
            );
            await io.flush(db);
          }
          return db;
        },
      },
      async (sim, db, _t) => {
        const live = db as UsageDb;
        sim.clock.advance(60 * 60 * 1000);
        await live.tick();
        await (io as ReturnType<typeof ingester>).ingest(
          live,
          Array.from({ length: 5 }, (_, i) => at(100 + i)),
        );
        expect(sim.fs.halted || live.stats().compaction.merges > 0).toBe(true);
        await live.tick();
        await (io as ReturnType<typeof ingester>).close(live);
      },
    );
    expect(calls).toBeGreaterThan(20);
  }, 300_000);

  it('strict: a second crash inside the recovery of the first (WAL replay, torn tail)', async () => {
    const calls = await sweep(
      'recovery',
      {
        durability: 'strict',
        async setup(sim, t) {
          const io = ingester(sim, t, 'strict');
          const db = await sim.open();
          await io.ingest(
            db,
            Array.from({ length: 8 }, (_, i) => at(i)),
          );
          await io.flush(db);
          for (let b = 0; b < 3; b++)
            await io.ingest(
              db,
              Array.from({ length: 4 }, (_, i) => at(10 + b * 4 + i)),
            );
          // The first crash: the WAL holds three acknowledged records; no clean close.
          abandonForCrashTest(db);
          sim.fs.crash({ tornWrites: true });
          return null;
        },
      },
      async (sim, _db, t) => {
        const io = ingester(sim, t, 'strict');
        const db = (t.opened = await sim.open());
        await io.ingest(
          db,
          Array.from({ length: 3 }, (_, i) => at(50 + i)),
        );
        await io.close(db);
      },
    );
    expect(calls).toBeGreaterThan(10);
    console.log(`crash-points: ${totals.points} crash points verified in this file`);
  }, 300_000);
});
