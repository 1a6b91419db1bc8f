/**
 * DuckDB baseline through @duckdb/node-api: the same stored events, bulk loaded with the
 * appender, queried with prepared statements, and exported with DuckDB's own
 * `COPY ... TO 'x.parquet' (FORMAT parquet, COMPRESSION zstd)`.
 *
 * DuckDB is not given the ingest workload's retries and conflicts: it has no cheap per-row
 * idempotency check, so only the events the generator labels new are appended. Its load is
 * therefore reported for size and context, not as an ingest competitor.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  type DuckDBConnection,
  DuckDBDecimalValue,
  DuckDBInstance,
  type DuckDBPreparedStatement,
  type DuckDBValue,
  version,
} from '@duckdb/node-api';
import {
  auditRow,
  type Counts,
  type DuckdbOrder,
  type DuckdbQuantity,
  dayLabel,
  dirBytes,
  driveWorkload,
  type ExportResult,
  type IngestResult,
  maxRssBytes,
  now,
  type PendingAnswer,
  row,
  sortedRows,
} from './common.ts';
import { Q3_LIMIT, Q3_METER, type QueryRunner } from './queries.ts';
import {
  canonicalDimensions,
  EXPECT_DUPLICATE,
  EXPECT_NEW,
  MONTH_FROM,
  MONTH_TO,
  Workload,
} from './workload.ts';

const DB_FILE = 'usage.duckdb';

const QUANTITY_TYPES: Record<DuckdbQuantity, string> = {
  hugeint: 'HUGEINT',
  bigint: 'BIGINT',
  decimal38: 'DECIMAL(38, 0)',
};

const columns = (quantityType: string): string => `
  event_id VARCHAR NOT NULL,
  kind VARCHAR NOT NULL,
  correction_original_event_id VARCHAR,
  correction_reason VARCHAR,
  account_id VARCHAR NOT NULL,
  subscription_id VARCHAR,
  product_id VARCHAR NOT NULL,
  meter_id VARCHAR NOT NULL,
  model_id VARCHAR,
  unit VARCHAR NOT NULL,
  source VARCHAR NOT NULL,
  timestamp_ms BIGINT NOT NULL,
  quantity ${quantityType} NOT NULL,
  dimensions VARCHAR NOT NULL,
  ingested_at_ms BIGINT NOT NULL`;

async function open(dir: string): Promise<{ instance: DuckDBInstance; conn: DuckDBConnection }> {
  const instance = await DuckDBInstance.create(join(dir, DB_FILE));
  const conn = await instance.connect();
  return { instance, conn };
}

function close(h: { instance: DuckDBInstance; conn: DuckDBConnection }): void {
  h.conn.closeSync();
  h.instance.closeSync();
}

export async function loadDuckdb(
  dir: string,
  events: number,
  seed: number,
  order: DuckdbOrder,
  quantity: DuckdbQuantity,
): Promise<IngestResult> {
  mkdirSync(dir, { recursive: true });
  const h = await open(dir);
  const { conn } = h;
  // Staged in a temp table so the sorted copy leaves no dead blocks behind in the database file.
  await conn.run(`CREATE TEMP TABLE staging (${columns(QUANTITY_TYPES[quantity])})`);
  const appender = await conn.createAppender('staging', 'main', 'temp');

  const counts: Counts = { accepted: 0, duplicates: 0, conflicts: 0, rejected: 0 };
  const workload = new Workload({ events, seed });
  const { ingestMs, generateMs } = await driveWorkload(workload, (batches) => {
    const ingestedAt = BigInt(Date.now());
    for (const { events: batch, expect } of batches) {
      for (let i = 0; i < batch.length; i++) {
        if (expect[i] !== EXPECT_NEW) {
          // Skipped by label, not detected by DuckDB: counted so the totals line up.
          if (expect[i] === EXPECT_DUPLICATE) counts.duplicates++;
          else counts.conflicts++;
          continue;
        }
        const e = batch[i];
        appender.appendVarchar(e.event_id);
        appender.appendVarchar(e.kind ?? 'Usage');
        appender.appendNull();
        appender.appendNull();
        appender.appendVarchar(e.account_id);
        if (e.subscription_id === null) appender.appendNull();
        else appender.appendVarchar(e.subscription_id);
        appender.appendVarchar(e.product_id);
        appender.appendVarchar(e.meter_id);
        if (e.model_id === null) appender.appendNull();
        else appender.appendVarchar(e.model_id);
        appender.appendVarchar(e.unit);
        appender.appendVarchar(e.source);
        appender.appendBigInt(BigInt(e.timestamp_ms));
        if (quantity === 'bigint') appender.appendBigInt(BigInt(e.quantity));
        else if (quantity === 'hugeint') appender.appendHugeInt(BigInt(e.quantity));
        else appender.appendDecimal(new DuckDBDecimalValue(BigInt(e.quantity), 38, 0));
        appender.appendVarchar(canonicalDimensions(e.dimensions));
        appender.appendBigInt(ingestedAt);
        appender.endRow();
        counts.accepted++;
      }
    }
  });
  const f0 = now();
  appender.closeSync();
  const orderBy = order === 'account' ? 'ORDER BY account_id, timestamp_ms, event_id' : '';
  await conn.run(`CREATE TABLE usage_events AS SELECT * FROM staging ${orderBy}`);
  await conn.run('DROP TABLE staging');
  await conn.run('CHECKPOINT');
  const flushMs = now() - f0;
  const rss = maxRssBytes();

  const reader = await conn.runAndReadAll(
    'SELECT count(*) AS n, sum(quantity)::VARCHAR AS s, count(DISTINCT event_id) AS d FROM usage_events',
  );
  const [n, s, d] = reader.getRows()[0];
  close(h);
  const notes = [
    `bulk appender load of the generator's new events (no idempotency check), order=${order}, quantity=${quantity}`,
  ];
  if (Number(d) !== Number(n)) notes.push(`duplicate event_ids stored: ${Number(n) - Number(d)}`);
  return {
    engine: 'duckdb',
    label: 'duckdb (appender)',
    events,
    ingestSeconds: ingestMs / 1000,
    flushSeconds: flushMs / 1000,
    generateSeconds: generateMs / 1000,
    counts,
    expected: workload.totals,
    stored: { count: Number(n), quantitySum: String(s) },
    bytesOnDisk: dirBytes(dir),
    maxRssBytes: rss,
    notes,
  };
}

const str = (v: DuckDBValue): string => String(v);
const strOrNull = (v: DuckDBValue): string | null => (v === null ? null : String(v));

export async function duckdbQueryRunner(dir: string): Promise<QueryRunner & { close(): void }> {
  const h = await open(dir);
  const { conn } = h;
  const from = BigInt(MONTH_FROM);
  const to = BigInt(MONTH_TO);
  const q1 = await conn.prepare(
    `SELECT product_id, meter_id, model_id, unit, sum(quantity) AS sum, count(*) AS count
     FROM usage_events WHERE account_id = $1 AND timestamp_ms >= $2 AND timestamp_ms < $3
     GROUP BY product_id, meter_id, model_id, unit`,
  );
  const q2 = await conn.prepare(
    `SELECT timestamp_ms // 86400000 AS day, meter_id, unit, sum(quantity) AS sum, count(*) AS count
     FROM usage_events WHERE account_id = $1 AND timestamp_ms >= $2 AND timestamp_ms < $3
     GROUP BY day, meter_id, unit`,
  );
  const q3 = await conn.prepare(
    `SELECT account_id, sum(quantity) AS sum, count(*) AS count
     FROM usage_events WHERE meter_id = $1 AND timestamp_ms >= $2 AND timestamp_ms < $3
     GROUP BY account_id ORDER BY sum DESC, account_id ASC LIMIT ${Q3_LIMIT}`,
  );
  const q4 = await conn.prepare(
    `SELECT * FROM usage_events
     WHERE account_id = $1 AND meter_id = $2 AND model_id = $3 AND timestamp_ms >= $4 AND timestamp_ms < $5
     ORDER BY timestamp_ms, event_id`,
  );
  // Explicit BIGINT/VARCHAR binds: a JS number would bind as DOUBLE and defeat zone-map pruning.
  const rows = async (stmt: DuckDBPreparedStatement, strings: string[]): Promise<DuckDBValue[][]> => {
    for (let i = 0; i < strings.length; i++) stmt.bindVarchar(i + 1, strings[i]);
    stmt.bindBigInt(strings.length + 1, from);
    stmt.bindBigInt(strings.length + 2, to);
    const reader = await stmt.runAndReadAll();
    return reader.getRows();
  };

  return {
    async q1(a): Promise<PendingAnswer> {
      const r = await rows(q1, [a.account_id]);
      return () =>
        sortedRows(
          r.map(([p, m, mo, u, s, c]) => row(str(p), str(m), strOrNull(mo), str(u), str(s), Number(c))),
        );
    },
    async q2(a): Promise<PendingAnswer> {
      const r = await rows(q2, [a.account_id]);
      return () =>
        sortedRows(r.map(([d, m, u, s, c]) => row(dayLabel(Number(d)), str(m), str(u), str(s), Number(c))));
    },
    async q3(): Promise<PendingAnswer> {
      const r = await rows(q3, [Q3_METER]);
      return () => r.map(([acct, s, c]) => row(str(acct), str(s), Number(c)));
    },
    async q4(a): Promise<PendingAnswer> {
      const r = await rows(q4, [a.account_id, a.meter_id, a.model_id]);
      return () =>
        r.map((v) =>
          auditRow({
            event_id: str(v[0]),
            kind: str(v[1]),
            account_id: str(v[4]),
            subscription_id: strOrNull(v[5]),
            product_id: str(v[6]),
            meter_id: str(v[7]),
            model_id: strOrNull(v[8]),
            unit: str(v[9]),
            source: str(v[10]),
            timestamp_ms: Number(v[11]),
            quantity: str(v[12]),
            dimensions: str(v[13]),
          }),
        );
    },
    close(): void {
      close(h);
    },
  };
}

/**
 * The export's flat schema (docs/export.md), column for column, so both Parquet files hold the same thing
 * (the cast keeps Decimal128(38,0) when the table was loaded with `--duckdb-quantity bigint`).
 */
const EXPORT_SELECT = `SELECT event_id, kind, correction_original_event_id, correction_reason, account_id,
  subscription_id, product_id, meter_id, model_id, timestamp_ms, quantity::DECIMAL(38, 0) AS quantity, unit, source,
  dimensions AS dimensions_canonical, ingested_at_ms FROM usage_events`;

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/** DuckDB's own COPY to Parquet, then (untimed) reads every listed Parquet file back. */
export async function exportDuckdb(dir: string, out: string, verify: string[]): Promise<ExportResult> {
  const h = await open(dir);
  const t0 = now();
  await h.conn.run(`COPY (${EXPORT_SELECT}) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd)`);
  const seconds = (now() - t0) / 1000;
  const rss = maxRssBytes();
  const verified: ExportResult['verified'] = [];
  for (const file of verify) {
    const reader = await h.conn.runAndReadAll(
      `SELECT count(*), sum(quantity)::VARCHAR, count(DISTINCT event_id) FROM read_parquet(${sqlString(file)})`,
    );
    const [n, s, d] = reader.getRows()[0];
    verified.push({ file, rows: Number(n), quantitySum: String(s), distinctIds: Number(d) });
  }
  close(h);
  return {
    engine: 'duckdb',
    partition: 'none',
    seconds,
    outBytes: statSync(out).size,
    maxRssBytes: rss,
    verified,
  };
}

export const duckdbVersion = (): string => version();
