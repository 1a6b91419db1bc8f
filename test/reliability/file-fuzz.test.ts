/**
 * File-level fuzz: the bytes of a segment, its retraction side file, a rollup file, a WAL
 * file, a manifest generation or CURRENT are damaged (bits flipped, a range overwritten or zeroed, cut short,
 * garbage appended, the whole file replaced, one file copied over another). Opening and
 * reading the database afterwards must either fail with a clear UsageDbError (never another
 * exception, never an internal-invariant error) or answer exactly as before the damage:
 * the same events once each, the same sums, retries still duplicates. The one allowed
 * difference is a damaged end of the newest WAL file, which is indistinguishable from a torn
 * write: it is dropped, reported in `stats().recovery`, and only events no segment holds may
 * be missing then (never invented, never changed).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageDb } from '../../src/db.ts';
import { UsageDbError } from '../../src/errors.ts';
import { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';
import { ManualClock } from '../../src/storage/clock.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { DAY_MS, NOW, T0, usage, type WireInput } from '../support/events.ts';

const ACCOUNTS = Array.from({ length: 7 }, (_, i) => `acct_${i}`);
const RANGE = { from: T0 - DAY_MS, to: T0 + 40 * DAY_MS };
const RUNS = Number(process.env.USAGEDB_FILE_FUZZ_RUNS ?? 400);

type Files = Map<string, Uint8Array>;

interface Answers {
  /** event_id -> [kind, quantity, timestamp] */
  events: Map<string, string>;
  sums: unknown[];
}

function open(fs: SimFileSystem): Promise<UsageDb> {
  return UsageDb.open({ dir: '/db', fs, clock: new ManualClock(NOW), bucketCount: 4, logger: silentLogger });
}

async function load(files: Files): Promise<SimFileSystem> {
  const fs = new SimFileSystem({ seed: 1 });
  for (const [path, bytes] of files) {
    await fs.mkdirp(path.slice(0, path.lastIndexOf('/')));
    await fs.writeFile(path, bytes);
  }
  fs.markAllDurable();
  return fs;
}

async function answers(db: UsageDb): Promise<Answers> {
  const events = new Map<string, string>();
  for (const account of ACCOUNTS) {
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<UsageDb['events']>> = await db.events({
        account_id: account,
        ...RANGE,
        limit: 50,
        ...(cursor === null ? {} : { cursor }),
      });
      for (const e of page.events) {
        expect(events.has(e.event_id), `${e.event_id} stored twice`).toBe(false);
        events.set(e.event_id, JSON.stringify([e.kind, e.quantity, e.timestamp_ms, e.account_id]));
      }
      cursor = page.next_cursor;
    } while (cursor !== null);
  }
  const q = await db.query({ ...RANGE, group_by: ['account_id', 'kind'], metrics: ['sum', 'count'] });
  // The rollup path too (whole days, so rollups can serve it): it must give the same numbers.
  const days = { from: T0, to: T0 + 30 * DAY_MS };
  const raw = await db.query({ ...days, source: 'raw', group_by: ['account_id', 'meter_id'] });
  const rolled = await db.query({ ...days, source: 'rollup', group_by: ['account_id', 'meter_id'] });
  expect(rolled.rows, 'rollup path = raw path').toEqual(raw.rows);
  return { events, sums: [q.rows, raw.rows] };
}

/** The workload: segments (one with Retractions), then events only in the WAL. */
async function buildBaseline(): Promise<{
  files: Files;
  sent: WireInput[];
  answers: Answers;
  inSegments: Set<string>;
}> {
  const fs = new SimFileSystem({ seed: 1 });
  let db = await open(fs);
  const sent: WireInput[] = [];
  const ingest = async (batch: WireInput[]) => {
    sent.push(...batch);
    expect((await db.ingest(batch)).rejected).toBe(0);
  };
  const at = (i: number) => usage(i, { timestamp_ms: T0 + (i % 9) * DAY_MS + i });
  await ingest(Array.from({ length: 30 }, (_, i) => at(i)));
  await db.flush();
  const ref = (id: unknown) => ({ original_event_id: id, reason: 'fuzz' });
  await ingest([
    { ...at(1), event_id: 'ret_1', kind: 'Retraction', quantity: undefined, correction_ref: ref('evt_1') },
    { ...at(2), event_id: 'cor_2', kind: 'Correction', quantity: -3, correction_ref: ref('evt_2') },
    ...Array.from({ length: 20 }, (_, i) => at(30 + i)),
  ]);
  await db.flush();
  await db.rollup();
  const inSegments = new Set(sent.map((e) => e.event_id as string));
  for (let b = 0; b < 4; b++) await ingest(Array.from({ length: 5 }, (_, i) => at(50 + b * 5 + i)));
  await db.close({ flushMemtable: false });
  db = await open(fs);
  const baseline = await answers(db);
  await db.close({ flushMemtable: false });
  const files: Files = new Map();
  for (const path of fs.listAll())
    if (!path.endsWith('/') && !path.endsWith('/LOCK')) files.set(path, fs.readRaw(path));
  expect(baseline.events.size).toBe(sent.length);
  return { files, sent, answers: baseline, inSegments };
}

const damage = fc.record({
  pick: fc.nat(),
  kind: fc.constantFrom('segment', 'rtx', 'rollup', 'wal', 'manifest', 'current'),
  how: fc.oneof(
    fc.record({
      t: fc.constant('flip' as const),
      at: fc.array(fc.tuple(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.nat(7)), {
        minLength: 1,
        maxLength: 4,
      }),
    }),
    fc.record({
      t: fc.constant('overwrite' as const),
      at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    }),
    fc.record({
      t: fc.constant('zero' as const),
      at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      length: fc.integer({ min: 1, max: 4096 }),
    }),
    fc.record({
      t: fc.constant('truncate' as const),
      at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    }),
    fc.record({ t: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 200 }) }),
    fc.record({ t: fc.constant('replace' as const), bytes: fc.uint8Array({ maxLength: 2000 }) }),
    fc.record({ t: fc.constant('swap' as const), other: fc.nat() }),
  ),
});
type Damage = typeof damage extends fc.Arbitrary<infer D> ? D : never;

const PATTERNS: Record<Damage['kind'], RegExp> = {
  segment: /\/raw\/\d+\.useg$/,
  rtx: /\/raw\/\d+\.rtx$/,
  rollup: /\/rollup\/\d+\.rseg$/,
  wal: /\/wal\/wal-\d+\.log$/,
  manifest: /\/manifest\/manifest-\d+\.json$/,
  current: /\/manifest\/CURRENT$/,
};

function apply(files: Files, d: Damage): { files: Files; path: string } | null {
  const candidates = [...files.keys()].filter((p) => PATTERNS[d.kind].test(p)).sort();
  if (candidates.length === 0) return null;
  const path = candidates[d.pick % candidates.length];
  const out = new Map(files);
  const bytes = (out.get(path) as Uint8Array).slice();
  const pos = (f: number) => Math.floor(f * bytes.length);
  let next: Uint8Array = bytes;
  switch (d.how.t) {
    case 'flip':
      if (bytes.length === 0) return null;
      for (const [f, bit] of d.how.at) bytes[pos(f)] ^= 1 << bit;
      break;
    case 'overwrite': {
      if (bytes.length === 0) return null;
      const at = pos(d.how.at);
      bytes.set(d.how.bytes.subarray(0, bytes.length - at), at);
      break;
    }
    case 'zero':
      bytes.fill(0, pos(d.how.at), pos(d.how.at) + d.how.length);
      break;
    case 'truncate':
      next = bytes.subarray(0, pos(d.how.at));
      break;
    case 'append':
      next = new Uint8Array([...bytes, ...d.how.bytes]);
      break;
    case 'replace':
      next = d.how.bytes;
      break;
    case 'swap': {
      const others = candidates.filter((p) => p !== path);
      if (others.length === 0) return null;
      next = (out.get(others[d.how.other % others.length]) as Uint8Array).slice();
      break;
    }
  }
  if (next.length === bytes.length && next.every((b, i) => b === (files.get(path) as Uint8Array)[i]))
    return null;
  out.set(path, next);
  return { files: out, path };
}

describe('file-level fuzz of segment, side-file, rollup, WAL and manifest bytes', () => {
  it(`${RUNS} damaged databases: a clear error or the exact answers, never a crash or a wrong number`, async () => {
    const base = await buildBaseline();
    const outcomes = { error: 0, exact: 0, tornTail: 0, unchanged: 0, reportedByCheck: 0 };
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(damage, async (d) => {
        const damaged = apply(base.files, d);
        if (damaged === null) {
          outcomes.unchanged++;
          return;
        }
        const fs = await load(damaged.files);
        let db: UsageDb | null = null;
        try {
          db = await open(fs);
          const got = await answers(db);
          const torn = db.stats().recovery.walTornTail.records > 0;
          if (!torn) {
            expect(got.events, `${d.kind} ${damaged.path}`).toEqual(base.answers.events);
            expect(got.sums).toEqual(base.answers.sums);
          } else {
            // A damaged WAL end counts as a torn write: only events no segment holds may go.
            expect(damaged.path).toMatch(PATTERNS.wal);
            for (const [id, value] of got.events) expect(value, id).toBe(base.answers.events.get(id));
            for (const id of base.inSegments) expect(got.events.has(id), `${id} is in a segment`).toBe(true);
            outcomes.tornTail++;
          }
          // Retries are still recognised: nothing can be stored twice.
          const r = await db.ingest(base.sent.filter((e) => got.events.has(e.event_id as string)));
          expect(r.accepted).toBe(0);
          // Damage the reads did not touch is found by the deep check (a report, not an answer).
          const check = await db.check({ deep: true });
          if (!check.ok) {
            expect(check.problems.length).toBeGreaterThan(0);
            outcomes.reportedByCheck++;
          }
          if (!torn) outcomes.exact++;
        } catch (err) {
          if (!(err instanceof UsageDbError) || err.code === 'USAGEDB_ERR_INTERNAL') {
            throw new Error(`${d.kind} ${damaged.path} (${d.how.t}): not a clear error: ${String(err)}`, {
              cause: err,
            });
          }
          outcomes.error++;
          codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
        } finally {
          if (db !== null) await db.close({ flushMemtable: false }).catch(() => undefined);
        }
      }),
      { numRuns: RUNS, seed: Number(process.env.USAGEDB_FILE_FUZZ_SEED ?? 4711) },
    );
    console.log(
      `file-fuzz: ${RUNS} cases: ${outcomes.error} clear errors ${JSON.stringify(Object.fromEntries(codes))}, ` +
        `${outcomes.exact} exact answers (${outcomes.reportedByCheck} of them with the damage reported by check --deep), ` +
        `${outcomes.tornTail} torn WAL tails, ${outcomes.unchanged} no-op damages`,
    );
    expect(outcomes.error).toBeGreaterThan(0);
    expect(outcomes.exact).toBeGreaterThan(0);
  }, 300_000);
});
