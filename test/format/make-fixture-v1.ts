/**
 * Writes the committed fixture database `test/fixtures/db-format-v1/` and its recorded answers
 * `test/fixtures/db-format-v1.expected.json`, with the code of the day it is run. The
 * committed fixture was written by usagedb 0.1.0 (segment format 1, manifest format 1, WAL
 * version 1, WAL batch format 2), before manifest format 2 existed.
 *
 *   node test/format/make-fixture-v1.ts test/fixtures/db-format-v1
 *
 * Never rerun it to make fixture-v1.test.ts pass: the committed bytes are the point (a later
 * version must open what an earlier one wrote). Rerunning writes today's formats (and a new
 * database id), so it is only for making a new fixture next to this one: a copy of this script
 * writing db-format-v2 records what a later version must open.
 *
 * What it holds: ~2,000 events over three UTC days (2026-05-01..03) and five accounts (two
 * with non-ASCII ids), in two segment files (two flushes) plus a WAL tail of events that were
 * acknowledged (strict durability) but never flushed; Corrections and Retractions in each of
 * the three places; non-ASCII and 256-byte event ids; dimension sets; quantities beyond 2^53.
 * The process then stops as a crash would (no close: no final flush, no checkpoint).
 *
 * The LOCK file is deleted afterwards. A LOCK names a pid and a host name; a later open takes
 * over only a LOCK of a dead process on the same host, so a committed LOCK would make the
 * fixture unopenable on every other machine (CI), and on this one whenever its pid happens to
 * be alive. The crash-recovery part that matters here (replaying the WAL tail) needs no LOCK.
 *
 * Before writing the answers it checks them against the brute-force reference of the query
 * tests (test/query/fixtures.ts), so the file records right answers, not just today's.
 */
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { ManualClock, UsageDb } from '../../src/index.ts';
import { abandonForCrashTest } from '../../src/testing.ts';
import type { JsonQuery } from '../../src/query/types.ts';
import { type PlainEvent, referenceQuery } from '../query/fixtures.ts';
import { rng } from '../support/events.ts';

const FIXTURE_NOW = Date.UTC(2026, 4, 4); // the clock when writing starts
const T0 = Date.UTC(2026, 4, 1);
const DAY = 86_400_000;
const FIXTURE_FROM = '2026-05-01T00:00:00Z';
const FIXTURE_TO = '2026-05-04T00:00:00Z';
const WALKED_ACCOUNT = 'org/7f3a-é';

type Wire = Record<string, unknown>;

const LINES: [product: string, meter: string, unit: string, model: string | null][] = [
  ['llm-api', 'tokens.input', 'tokens', 'gpt-x'],
  ['llm-api', 'tokens.output', 'tokens', 'gpt-x'],
  ['llm-api', 'tokens.input', 'tokens', 'claude-y'],
  ['llm-api', 'tokens.output', 'tokens', 'claude-y'],
  ['llm-api', 'requests', 'requests', null],
  ['embeddings', 'tokens.input', 'tokens', 'embed-z'],
  ['agents', 'tool.calls', 'calls', null],
  ['agents', 'runtime.ms', 'ms', null],
];
const ACCOUNTS: [account: string, weight: number, subscription: string | null][] = [
  ['acct_0001', 0.35, 'sub_1'],
  ['acct_0002', 0.3, null],
  ['acct_0003', 0.2, 'sub_3'],
  ['ünïcødé-客户', 0.1, 'sub_ü'],
  [WALKED_ACCOUNT, 0.05, null],
];
/** Quantities beyond 2^53 (decimal strings), on events of the walked account. */
const BIG: Record<number, string> = {
  7: '123456789012345678901234567890',
  1507: '9007199254740993',
  1807: '99999999999999999999999999999999999999',
};

/** The i-th Usage event (i in 0..1999): deterministic. */
function usageEvent(i: number): Wire {
  const r = rng(0x5eed0000 + i);
  const u = r();
  let acc = 0;
  let account = ACCOUNTS[ACCOUNTS.length - 1];
  for (const a of ACCOUNTS) {
    acc += a[1];
    if (u < acc) {
      account = a;
      break;
    }
  }
  const forced = i in BIG || i === 77 || i === 500;
  if (forced) account = ACCOUNTS[4];
  const [product, meter, unit, model] = LINES[Math.floor(r() * LINES.length)];
  const dims: Record<string, string> = {};
  if (r() < 0.6) dims.region = r() < 0.5 ? 'eu' : 'us';
  if (r() < 0.4) dims.tier = r() < 0.3 ? 'pro' : 'free';
  if (i % 13 === 0) dims['zöne'] = 'été';
  let id = `fx1_${i}`;
  if (i % 10 === 3) id = `évt-事件-${i}`;
  if (i === 77) id = `🚀-${i}`;
  if (i === 500) id = `fx1_500_${'z'.repeat(248)}`; // 256 bytes
  const q = Math.floor(r() * 100_000);
  return {
    event_id: id,
    account_id: account[0],
    ...(account[2] === null ? {} : { subscription_id: account[2] }),
    product_id: product,
    meter_id: meter,
    unit,
    ...(model === null ? {} : { model_id: model }),
    source: r() < 0.8 ? 'gateway' : 'batch',
    timestamp_ms: T0 + Math.floor(r() * 3 * DAY),
    quantity: BIG[i] ?? (i % 2 === 0 ? q : String(q)),
    ...(Object.keys(dims).length === 0 ? {} : { dimensions: dims }),
  };
}

/** A Correction or Retraction of `original` (wire form), `hours` after it. */
function correctionOf(
  original: Wire,
  id: string,
  kind: 'Correction' | 'Retraction',
  quantity: number | string | undefined,
  hours: number,
): Wire {
  const { event_id, timestamp_ms, quantity: _q, ...same } = original;
  return {
    ...same,
    event_id: id,
    kind,
    correction_ref: {
      original_event_id: event_id,
      reason: kind === 'Retraction' ? 'duplicate row' : 'recount',
    },
    timestamp_ms: Math.min((timestamp_ms as number) + hours * 3_600_000, T0 + 3 * DAY - 1),
    ...(quantity === undefined ? {} : { quantity }),
  };
}

const walked = (from: number, to: number): Wire[] => {
  const out: Wire[] = [];
  for (let i = from; i < to; i++) if (usageEvent(i).account_id === WALKED_ACCOUNT) out.push(usageEvent(i));
  return out;
};

/** The three phases: [segment 1, segment 2, WAL tail], each a list of ingest batches. */
function fixturePhases(): Wire[][][] {
  const batches = (events: Wire[]) => {
    const out: Wire[][] = [];
    for (let k = 0; k < events.length; k += 100) out.push(events.slice(k, k + 100));
    return out;
  };
  const range = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, k) => usageEvent(from + k));
  const w1 = walked(0, 1400);
  const w2 = walked(1400, 1800);
  const w3 = walked(1800, 2000);
  const acct1 = range(0, 1400).find((e) => e.account_id === 'acct_0001')!;
  const phase2Corrections = [
    correctionOf(w1[0], 'fx1-corr-1', 'Correction', -7, 2),
    correctionOf(w1[1], 'fx1-corr-2', 'Correction', '1000', 30),
    correctionOf(w1[2], 'fx1-retr-1', 'Retraction', undefined, 1),
    correctionOf(acct1, 'fx1-corr-3', 'Correction', 12, 0),
  ];
  const big7 = usageEvent(7);
  const phase3Corrections = [
    correctionOf(w2[0], 'fx1-corr-4', 'Correction', -1, 5),
    correctionOf(big7, 'fx1-retr-2', 'Retraction', '-123456789012345678901234567890', 3),
    correctionOf(w3[0], 'évt-retr-3', 'Retraction', undefined, 1),
  ];
  return [
    batches(range(0, 1400)),
    [...batches(range(1400, 1800)), phase2Corrections],
    [...batches(range(1800, 2000)), phase3Corrections],
  ];
}

/** The queries whose answers are recorded (JSON form), and one SQL text. */
function fixtureQueries(): JsonQuery[] {
  const base = { from: FIXTURE_FROM, to: FIXTURE_TO };
  const all: ('sum' | 'count' | 'min' | 'max')[] = ['sum', 'count', 'min', 'max'];
  return [
    { ...base, metrics: all },
    { ...base, group_by: ['product_id', 'meter_id', 'model_id', 'unit'], metrics: all },
    { ...base, group_by: ['account_id'], metrics: all },
    { ...base, group_by: ['day'] },
    { ...base, group_by: ['account_id', 'day', 'kind'] },
    { ...base, group_by: ['dimensions.region', 'dimensions.tier'] },
    { ...base, group_by: ['dimensions.zöne', 'subscription_id'] },
    { ...base, filters: { dimensions: { region: 'eu' } }, group_by: ['meter_id'] },
    { ...base, account_id: 'ünïcødé-客户', group_by: ['product_id', 'meter_id', 'model_id', 'unit'] },
    { ...base, account_id: WALKED_ACCOUNT, group_by: ['kind', 'source'], metrics: all },
    { ...base, filters: { model_id: null }, group_by: ['unit'] },
    { from: '2026-05-02T00:00:00Z', to: '2026-05-02T12:00:00Z', group_by: ['hour'], metrics: ['sum'] },
    { ...base, group_by: ['account_id', 'meter_id'], order_by: [{ key: 'sum', dir: 'desc' }], limit: 5 },
  ];
}

const FIXTURE_SQL =
  "SELECT account_id, unit, SUM(quantity) AS total, COUNT(*) FROM usage_events WHERE timestamp_ms >= '2026-05-01T00:00:00Z' AND timestamp_ms < '2026-05-04T00:00:00Z' GROUP BY account_id, unit ORDER BY total DESC";

/** What the recorded retries are, and the status each must get. */
function fixtureRetries(): { event: Wire; expect: 'duplicate' | 'conflict' | 'already_retracted' }[] {
  const [, p2, p3] = fixturePhases();
  const corr = (phase: Wire[][], id: string) => phase.flat().find((e) => e.event_id === id)!;
  const e0 = usageEvent(0);
  const reordered = (e: Wire) => {
    const dims = e.dimensions as Record<string, string> | undefined;
    return dims === undefined ? e : { ...e, dimensions: Object.fromEntries(Object.entries(dims).reverse()) };
  };
  const two = usageEvent(2); // quantity sent as a number: resent as text it is the same
  return [
    { event: e0, expect: 'duplicate' },
    { event: usageEvent(3), expect: 'duplicate' },
    { event: usageEvent(77), expect: 'duplicate' },
    { event: usageEvent(500), expect: 'duplicate' },
    { event: usageEvent(7), expect: 'duplicate' },
    { event: usageEvent(1507), expect: 'duplicate' },
    { event: usageEvent(1807), expect: 'duplicate' },
    { event: usageEvent(1650), expect: 'duplicate' },
    { event: usageEvent(1999), expect: 'duplicate' },
    { event: { ...two, quantity: String(two.quantity) }, expect: 'duplicate' },
    { event: reordered(usageEvent(26)), expect: 'duplicate' },
    { event: corr(p2, 'fx1-corr-1'), expect: 'duplicate' },
    { event: corr(p2, 'fx1-retr-1'), expect: 'duplicate' },
    { event: corr(p3, 'fx1-retr-2'), expect: 'duplicate' },
    { event: corr(p3, 'évt-retr-3'), expect: 'duplicate' },
    { event: { ...usageEvent(1), quantity: '1' }, expect: 'conflict' },
    {
      event: { ...usageEvent(13), timestamp_ms: (usageEvent(13).timestamp_ms as number) + DAY },
      expect: 'conflict',
    },
    { event: { ...usageEvent(44), account_id: 'acct_9999' }, expect: 'conflict' },
    { event: { ...usageEvent(1550), dimensions: { region: 'ap' } }, expect: 'conflict' },
    { event: { ...usageEvent(1900), source: 'replay' }, expect: 'conflict' },
    { event: { ...corr(p2, 'fx1-corr-3'), quantity: 13 }, expect: 'conflict' },
    {
      event: { ...corr(p2, 'fx1-retr-1'), event_id: 'fx1-retr-again-1', quantity: undefined },
      expect: 'already_retracted',
    },
    {
      event: { ...corr(p3, 'fx1-retr-2'), event_id: 'fx1-retr-again-2' },
      expect: 'already_retracted',
    },
    {
      event: { ...corr(p3, 'évt-retr-3'), event_id: 'évt-retr-again-3' },
      expect: 'already_retracted',
    },
  ].map((r) => ({ ...r, event: JSON.parse(JSON.stringify(r.event)) as Wire })) as {
    event: Wire;
    expect: 'duplicate' | 'conflict' | 'already_retracted';
  }[];
}

/** The plain events the reference evaluates (Retractions carry their original's negation). */
function plainEvents(): PlainEvent[] {
  const byId = new Map<string, PlainEvent>();
  for (const w of fixturePhases().flat(2)) {
    const ref = (w.correction_ref as PlainEvent['correction_ref'] | undefined) ?? null;
    const quantity =
      w.quantity === undefined ? -byId.get(ref!.original_event_id)!.quantity : BigInt(w.quantity as string);
    byId.set(w.event_id as string, {
      event_id: w.event_id as string,
      kind: (w.kind as PlainEvent['kind'] | undefined) ?? 'Usage',
      correction_ref: ref,
      account_id: w.account_id as string,
      subscription_id: (w.subscription_id as string | undefined) ?? null,
      product_id: w.product_id as string,
      meter_id: w.meter_id as string,
      model_id: (w.model_id as string | undefined) ?? null,
      unit: w.unit as string,
      source: w.source as string,
      timestamp_ms: w.timestamp_ms as number,
      quantity,
      dimensions: (w.dimensions as Record<string, string> | undefined) ?? {},
    });
  }
  return [...byId.values()];
}

/** Every page of one account's audit, `limit` events per page. */
async function walkEvents(db: UsageDb, account: string, limit: number): Promise<unknown[]> {
  const out: unknown[] = [];
  let cursor: string | null = null;
  do {
    const page = await db.events({
      account_id: account,
      from: FIXTURE_FROM,
      to: FIXTURE_TO,
      limit,
      ...(cursor === null ? {} : { cursor }),
    });
    out.push(...page.events);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return out;
}

/** JSON with one line per array item (a row, an event, a retry), so the file reads and diffs well. */
function lines(value: unknown, indent = ''): string {
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => inner + JSON.stringify(v)).join(',\n')}\n${indent}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${lines(v, inner)}`);
    return `{\n${entries.join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`fixture check failed: ${what}`);
}

async function main(out: string): Promise<void> {
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`${out} exists and is not empty`);
  const clock = new ManualClock(FIXTURE_NOW);
  const db = await UsageDb.open({
    dir: out,
    durability: 'strict',
    bucketCount: 8,
    clock,
    limits: { memtableBytesMax: 1 << 30, blockRows: 256 },
  });
  const phases = fixturePhases();
  for (let p = 0; p < phases.length; p++) {
    for (const batch of phases[p]) {
      clock.advance(1000);
      const r = await db.ingest(batch);
      check(r.accepted === batch.length, `phase ${p}: ${JSON.stringify(r.errors)}`);
    }
    clock.advance(60_000);
    if (p < 2) await db.flush();
  }
  check(db.stats().segments === 2, 'two segment files');
  abandonForCrashTest(db);
  rmSync(join(out, 'LOCK'));

  // Record the answers from a copy (opening writes to the directory).
  const copy = mkdtempSync(join(tmpdir(), 'usagedb-fixture-'));
  cpSync(out, copy, { recursive: true });
  rmSync(join(out, 'tmp'), { recursive: true, force: true }); // empty: git would not keep it anyway
  const reader = await UsageDb.open({ dir: copy, clock: new ManualClock(FIXTURE_NOW + DAY) });
  const reference = plainEvents();
  const queries = [];
  for (const q of fixtureQueries()) {
    const rows = (await reader.query(q)).rows;
    check(isDeepStrictEqual(rows, referenceQuery(reference, q)), `query ${JSON.stringify(q)}`);
    queries.push({ query: q, rows });
  }
  const sql = await reader.sql(FIXTURE_SQL);
  const events = await walkEvents(reader, WALKED_ACCOUNT, 7);
  const expectedIds = reference
    .filter((e) => e.account_id === WALKED_ACCOUNT)
    .sort((a, b) => a.timestamp_ms - b.timestamp_ms || (a.event_id < b.event_id ? -1 : 1))
    .map((e) => [e.event_id, e.quantity.toString()]);
  check(
    isDeepStrictEqual(
      events.map((e) => [(e as { event_id: string }).event_id, (e as { quantity: string }).quantity]),
      expectedIds,
    ),
    'events walk',
  );
  const retries = fixtureRetries();
  const result = await reader.ingest(retries.map((r) => r.event));
  const statuses = retries.map((_, index) => {
    const error = result.errors.find((e) => e.index === index);
    return error === undefined ? 'duplicate' : error.reason;
  });
  check(result.accepted === 0, 'no retry is accepted');
  check(
    isDeepStrictEqual(
      statuses,
      retries.map((r) => r.expect),
    ),
    `retry statuses ${JSON.stringify(statuses)}`,
  );
  await reader.close();
  rmSync(copy, { recursive: true, force: true });

  const expected = {
    about:
      'Answers of the fixture database test/fixtures/db-format-v1, written by usagedb 0.1.0 ' +
      '(test/format/make-fixture-v1.ts). Every later version must give exactly these.',
    event_count: reference.length,
    queries,
    sql: { text: FIXTURE_SQL, columns: sql.columns, rows: sql.rows },
    events: { account_id: WALKED_ACCOUNT, page_limit: 7, events },
    retries: retries.map((r, index) => ({ event: r.event, status: statuses[index] })),
    retry_result: {
      accepted: result.accepted,
      duplicates: result.duplicates,
      conflicts: result.conflicts,
      rejected: result.rejected,
    },
  };
  writeFileSync(`${out.replace(/\/+$/, '')}.expected.json`, `${lines(expected)}\n`);
}

const outDir = process.argv[2];
if (outDir === undefined) {
  process.stderr.write('usage: node test/format/make-fixture-v1.ts OUTDIR\n');
  process.exit(2);
}
await main(outDir);
// The abandoned instance may still hold a flush worker and file handles: stop here, as a crash would.
process.exit(0);
