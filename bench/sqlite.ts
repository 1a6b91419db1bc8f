/**
 * SQLite baseline through Node's built-in `node:sqlite` (DatabaseSync). This is the same SQLite
 * C library that better-sqlite3 wraps (both embed the amalgamation and call it synchronously);
 * better-sqlite3 cannot be installed here because its install step downloads a prebuilt binary.
 *
 * Configured as a careful user would for billing: WAL journal, synchronous=FULL (every commit
 * fsynced), PRIMARY KEY on event_id with conflict detection, one transaction per batch.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type SQLOutputValue, type StatementSync } from 'node:sqlite';
import {
  auditRow,
  type Counts,
  dayLabel,
  dirBytes,
  driveWorkload,
  type IngestResult,
  maxRssBytes,
  now,
  type PendingAnswer,
  row,
  q1AnswerOfRecords,
  sortedRows,
} from './common.ts';
import { Q3_LIMIT, Q3_METER, type QueryRunner } from './queries.ts';
import { canonicalDimensions, MONTH_FROM, MONTH_TO, type UsageEvent, Workload } from './workload.ts';

const DB_FILE = 'usage.sqlite';

/** 64 MiB page cache, in both phases: the 2 MiB default would make the id index thrash. */
const PRAGMAS = ['PRAGMA journal_mode = WAL', 'PRAGMA synchronous = FULL', 'PRAGMA cache_size = -65536'];

const SCHEMA = `
CREATE TABLE usage_events (
  event_id TEXT NOT NULL PRIMARY KEY,
  kind TEXT NOT NULL,
  correction_original_event_id TEXT,
  correction_reason TEXT,
  account_id TEXT NOT NULL,
  subscription_id TEXT,
  product_id TEXT NOT NULL,
  meter_id TEXT NOT NULL,
  model_id TEXT,
  unit TEXT NOT NULL,
  source TEXT NOT NULL,
  timestamp_ms INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  dimensions TEXT NOT NULL,
  ingested_at_ms INTEGER NOT NULL
);
CREATE INDEX usage_events_account_time ON usage_events (account_id, timestamp_ms);
`;

function open(dir: string): DatabaseSync {
  const db = new DatabaseSync(join(dir, DB_FILE));
  for (const p of PRAGMAS) db.exec(p);
  return db;
}

/** The cheap structural checks any ingest path must make; this workload never fails them. */
function valid(e: UsageEvent): boolean {
  return (
    typeof e.event_id === 'string' &&
    e.event_id.length > 0 &&
    typeof e.account_id === 'string' &&
    typeof e.product_id === 'string' &&
    typeof e.meter_id === 'string' &&
    typeof e.unit === 'string' &&
    typeof e.source === 'string' &&
    Number.isSafeInteger(e.timestamp_ms) &&
    e.timestamp_ms > 0 &&
    Number.isSafeInteger(e.quantity) &&
    e.quantity >= 0
  );
}

/** Canonical payload equality (the data model) between an incoming event and the stored row. */
function samePayload(e: UsageEvent, dims: string, stored: Record<string, SQLOutputValue>): boolean {
  return (
    stored.kind === (e.kind ?? 'Usage') &&
    stored.correction_original_event_id === null &&
    stored.correction_reason === null &&
    stored.account_id === e.account_id &&
    stored.subscription_id === (e.subscription_id ?? null) &&
    stored.product_id === e.product_id &&
    stored.meter_id === e.meter_id &&
    stored.model_id === (e.model_id ?? null) &&
    stored.unit === e.unit &&
    stored.source === e.source &&
    stored.timestamp_ms === e.timestamp_ms &&
    stored.quantity === e.quantity &&
    stored.dimensions === dims
  );
}

export async function ingestSqlite(dir: string, events: number, seed: number): Promise<IngestResult> {
  mkdirSync(dir, { recursive: true });
  const db = open(dir);
  db.exec(SCHEMA);
  const insert = db.prepare(
    `INSERT INTO usage_events (event_id, kind, correction_original_event_id, correction_reason, account_id,
       subscription_id, product_id, meter_id, model_id, unit, source, timestamp_ms, quantity, dimensions, ingested_at_ms)
     VALUES (?, ?, NULL, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (event_id) DO NOTHING`,
  );
  const lookup = db.prepare('SELECT * FROM usage_events WHERE event_id = ?');
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');

  const counts: Counts = { accepted: 0, duplicates: 0, conflicts: 0, rejected: 0 };
  const workload = new Workload({ events, seed });
  const { ingestMs, generateMs } = await driveWorkload(
    workload,
    (batches) => {
      for (const batch of batches) {
        const ingestedAt = Date.now();
        begin.run();
        for (const e of batch.events) {
          if (!valid(e)) {
            counts.rejected++;
            continue;
          }
          const dims = canonicalDimensions(e.dimensions);
          const r = insert.run(
            e.event_id,
            e.kind ?? 'Usage',
            e.account_id,
            e.subscription_id ?? null,
            e.product_id,
            e.meter_id,
            e.model_id ?? null,
            e.unit,
            e.source,
            e.timestamp_ms,
            e.quantity,
            dims,
            ingestedAt,
          );
          if (r.changes !== 0) counts.accepted++;
          else {
            // The id exists: a retry with the same canonical payload is a duplicate, anything else a conflict.
            const stored = lookup.get(e.event_id);
            if (stored && samePayload(e, dims, stored)) counts.duplicates++;
            else counts.conflicts++;
          }
        }
        commit.run();
      }
    },
    1,
  );

  // A checkpoint folds the WAL into the main file (usagedb's flush is the analogue).
  const f0 = now();
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  const flushMs = now() - f0;
  const rss = maxRssBytes();

  const totals = db.prepare('SELECT count(*) AS n, sum(quantity) AS s FROM usage_events').get();
  db.close();
  return {
    engine: 'sqlite',
    label: 'sqlite (WAL, sync=FULL)',
    events,
    ingestSeconds: ingestMs / 1000,
    flushSeconds: flushMs / 1000,
    generateSeconds: generateMs / 1000,
    counts,
    expected: workload.totals,
    stored: totals ? { count: Number(totals.n), quantitySum: String(totals.s) } : null,
    bytesOnDisk: dirBytes(dir),
    maxRssBytes: rss,
    notes: [],
  };
}

const str = (v: SQLOutputValue): string => String(v);
const strOrNull = (v: SQLOutputValue): string | null => (v === null ? null : String(v));

export function sqliteQueryRunner(dir: string): QueryRunner & { close(): void } {
  const db = open(dir);
  const range = [MONTH_FROM, MONTH_TO] as const;
  const q1 = db.prepare(
    `SELECT product_id, meter_id, model_id, unit, sum(quantity) AS sum, count(*) AS count
     FROM usage_events WHERE account_id = ? AND timestamp_ms >= ? AND timestamp_ms < ?
     GROUP BY product_id, meter_id, model_id, unit`,
  );
  const q2 = db.prepare(
    `SELECT timestamp_ms / 86400000 AS day, meter_id, unit, sum(quantity) AS sum, count(*) AS count
     FROM usage_events WHERE account_id = ? AND timestamp_ms >= ? AND timestamp_ms < ?
     GROUP BY day, meter_id, unit`,
  );
  // NOT INDEXED: left alone, the planner walks the (account_id, timestamp_ms) index to avoid a
  // GROUP BY sort and pays a random row lookup per event, 7–11× slower than this plain scan.
  const q3 = db.prepare(
    `SELECT account_id, sum(quantity) AS sum, count(*) AS count
     FROM usage_events NOT INDEXED WHERE meter_id = ? AND timestamp_ms >= ? AND timestamp_ms < ?
     GROUP BY account_id ORDER BY sum DESC, account_id ASC LIMIT ${Q3_LIMIT}`,
  );
  const q4 = db.prepare(
    `SELECT * FROM usage_events
     WHERE account_id = ? AND meter_id = ? AND model_id = ? AND timestamp_ms >= ? AND timestamp_ms < ?
     ORDER BY timestamp_ms, event_id`,
  );
  const all = (stmt: StatementSync, ...params: (string | number)[]): Record<string, SQLOutputValue>[] =>
    stmt.all(...params);

  return {
    async q1(a): Promise<PendingAnswer> {
      const rows = all(q1, a.account_id, ...range);
      return () => q1AnswerOfRecords(rows);
    },
    async q2(a): Promise<PendingAnswer> {
      const rows = all(q2, a.account_id, ...range);
      return () =>
        sortedRows(
          rows.map((r) =>
            row(dayLabel(Number(r.day)), str(r.meter_id), str(r.unit), str(r.sum), Number(r.count)),
          ),
        );
    },
    async q3(): Promise<PendingAnswer> {
      const rows = all(q3, Q3_METER, ...range);
      return () => rows.map((r) => row(str(r.account_id), str(r.sum), Number(r.count)));
    },
    async q4(a): Promise<PendingAnswer> {
      const rows = all(q4, a.account_id, a.meter_id, a.model_id, ...range);
      return () =>
        rows.map((r) =>
          auditRow({
            event_id: str(r.event_id),
            kind: str(r.kind),
            timestamp_ms: Number(r.timestamp_ms),
            quantity: str(r.quantity),
            account_id: str(r.account_id),
            subscription_id: strOrNull(r.subscription_id),
            product_id: str(r.product_id),
            meter_id: str(r.meter_id),
            model_id: strOrNull(r.model_id),
            unit: str(r.unit),
            source: str(r.source),
            dimensions: str(r.dimensions),
          }),
        );
    },
    close(): void {
      db.close();
    },
  };
}

export function sqliteVersion(): string {
  const db = new DatabaseSync(':memory:');
  const v = db.prepare('SELECT sqlite_version() AS v').get();
  db.close();
  return v ? String(v.v) : 'unknown';
}
