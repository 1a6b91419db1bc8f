/**
 * A database written by usagedb 0.1.0 (test/fixtures/db-format-v1, made by
 * make-fixture-v1.ts and committed) must open with today's code and give exactly the answers
 * recorded then (test/fixtures/db-format-v1.expected.json): same totals, same audit trail,
 * and every stored id still recognised (retries are duplicates, changed payloads conflicts).
 *
 * This test must pass for every later version. It uses only the public API and the directory
 * as a whole: no file names, no format internals, so a version that upgrades the manifest or
 * any other file at open is tested like any other. The committed directory is never opened in
 * place: each run works on a fresh copy.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, UsageDb } from '../../src/index.ts';

const FIXTURE = join(import.meta.dirname, '../fixtures/db-format-v1');
const EXPECTED_PATH = join(import.meta.dirname, '../fixtures/db-format-v1.expected.json');
const NOW = Date.UTC(2026, 4, 5); // the day after the fixture was written

interface Expected {
  event_count: number;
  queries: { query: Record<string, unknown>; rows: Record<string, unknown>[] }[];
  sql: { text: string; columns: string[]; rows: unknown[][] };
  events: { account_id: string; page_limit: number; events: Record<string, unknown>[] };
  retries: { event: Record<string, unknown>; status: string }[];
  retry_result: { accepted: number; duplicates: number; conflicts: number; rejected: number };
}

const expected = JSON.parse(readFileSync(EXPECTED_PATH, 'utf8')) as Expected;

/** Every file under `dir` with its size: the committed fixture must never change. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, prefix: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      const s = statSync(path);
      if (s.isDirectory()) walk(path, `${prefix}${name}/`);
      else out.push(`${prefix}${name} ${s.size}`);
    }
  };
  walk(dir, '');
  return out;
}

async function walk(db: UsageDb, account: string, limit: number): Promise<unknown[]> {
  const out: unknown[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await db.events({
      account_id: account,
      from: '2026-05-01T00:00:00Z',
      to: '2026-05-04T00:00:00Z',
      limit,
      ...(cursor === null ? {} : { cursor }),
    });
    expect(page.events.length).toBeLessThanOrEqual(limit);
    out.push(...page.events);
    cursor = page.next_cursor;
    expect(++pages).toBeLessThan(10_000);
  } while (cursor !== null);
  return out;
}

async function checkAnswers(db: UsageDb): Promise<void> {
  for (const { query, rows } of expected.queries) {
    expect((await db.query(query)).rows, JSON.stringify(query)).toEqual(rows);
  }
  const sql = await db.sql(expected.sql.text);
  expect(sql.columns).toEqual(expected.sql.columns);
  expect(sql.rows).toEqual(expected.sql.rows);
  const { account_id, page_limit, events } = expected.events;
  expect(await walk(db, account_id, page_limit)).toEqual(events);
  // The same walk in one page: paging changes nothing.
  expect(await walk(db, account_id, 10_000)).toEqual(events);
}

async function checkRetries(db: UsageDb): Promise<void> {
  const r = await db.ingest(expected.retries.map((x) => x.event));
  expect({
    accepted: r.accepted,
    duplicates: r.duplicates,
    conflicts: r.conflicts,
    rejected: r.rejected,
  }).toEqual(expected.retry_result);
  const statuses = expected.retries.map((_, index) => {
    const error = r.errors.find((e) => e.index === index);
    return error === undefined ? 'duplicate' : error.reason;
  });
  expect(statuses).toEqual(expected.retries.map((x) => x.status));
  // One at a time too: a batch must not decide what a lone retry gets.
  for (const { event, status } of expected.retries) {
    const one = await db.ingest([event]);
    expect(one.accepted, String(event.event_id)).toBe(0);
    expect(one.errors[0]?.reason ?? 'duplicate', String(event.event_id)).toBe(status);
  }
}

describe('a database written by usagedb 0.1.0 (db-format-v1)', () => {
  let dir: string;
  let before: string[];
  beforeAll(() => {
    before = listing(FIXTURE);
    dir = mkdtempSync(join(tmpdir(), 'usagedb-format-v1-'));
    cpSync(FIXTURE, dir, { recursive: true });
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('the recorded answers cover what they should', () => {
    const statuses = new Set(expected.retries.map((r) => r.status));
    expect(statuses).toEqual(new Set(['duplicate', 'conflict', 'already_retracted']));
    expect(expected.queries[0].rows[0].count).toBe(expected.event_count);
    expect(expected.events.events.length).toBeGreaterThan(expected.events.page_limit * 3);
  });

  it('opens (replaying the WAL tail left by the crash) and gives the recorded answers', async () => {
    const db = await UsageDb.open({ dir, clock: new ManualClock(NOW) });
    try {
      await checkAnswers(db);
    } finally {
      await db.close({ flushMemtable: false });
    }
  });

  it('recognises every retry, then still answers the same, also after a close and reopen', async () => {
    let db = await UsageDb.open({ dir, clock: new ManualClock(NOW) });
    await checkRetries(db);
    await checkAnswers(db);
    await db.close(); // this time with a flush: the WAL tail goes into a segment
    db = await UsageDb.open({ dir, clock: new ManualClock(NOW + 60_000) });
    try {
      await checkAnswers(db);
      await checkRetries(db);
    } finally {
      await db.close();
    }
  });

  it('left the committed fixture untouched', () => {
    expect(listing(FIXTURE)).toEqual(before);
  });
});
