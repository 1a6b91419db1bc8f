/**
 * usagedb through its library API (`src/db.ts`), imported from the sources so the benchmark
 * measures the working tree. The engine is loaded with a dynamic import: the SQLite and DuckDB
 * phases must keep running while it does not exist yet or fails to load.
 *
 * The interfaces below are what the benchmark relies on; `loadUsageDb` assigns the real class
 * to them, so `tsc` reports any drift between these shapes and the engine's.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  auditRow,
  builtModule,
  type Counts,
  type Durability,
  dirBytes,
  type EncodeFloorResult,
  driveWorkload,
  type ExportResult,
  errorMessage,
  type IngestResult,
  maxRssBytes,
  now,
  type PendingAnswer,
  type ReopenResult,
  row,
  q1AnswerOfRecords,
  sortedRows,
} from './common.ts';
import { Q3_LIMIT, Q3_METER, type QueryRunner } from './queries.ts';
import {
  canonicalDimensions,
  MONTH_FROM,
  MONTH_TO,
  type UsageEvent,
  Workload,
  type WorkloadTotals,
} from './workload.ts';

export interface UsageIngestResult {
  accepted: number;
  duplicates: number;
  conflicts: number;
  rejected: number;
  errors: { index: number; event_id: string | null; status: string; reason: string }[];
}

export interface JsonQuery {
  source?: 'raw' | 'rollup' | 'auto';
  account_id?: string;
  from: number | string;
  to: number | string;
  group_by?: string[];
  filters?: Record<string, string | string[] | Record<string, string>>;
  metrics?: ('sum' | 'count' | 'min' | 'max')[];
  order_by?: { key: string; dir: 'asc' | 'desc' }[];
  limit?: number;
}

/** A result row: group keys (string or null), `sum`/`min`/`max` decimal strings, `count` a number. */
export type QueryRow = Record<string, string | number | null>;

export interface EventsParams {
  account_id: string;
  from: number | string;
  to: number | string;
  meter_id?: string;
  model_id?: string;
  limit?: number;
  cursor?: string;
}

/** An event as the audit API returns it; quantity may come back as a decimal string. */
export interface StoredEvent {
  event_id: string;
  kind?: string;
  account_id: string;
  subscription_id?: string | null;
  product_id: string;
  meter_id: string;
  model_id?: string | null;
  unit: string;
  source: string;
  timestamp_ms: number;
  quantity: string | number | bigint;
  dimensions?: Record<string, string> | null;
}

/** What the benchmark calls of UsageDb; the optional methods are checked at run time before use. */
export interface BenchUsageDb {
  ingest(events: UsageEvent[]): Promise<UsageIngestResult>;
  flush(): Promise<unknown>;
  close(opts?: { flushMemtable?: boolean }): Promise<unknown>;
  query?(q: JsonQuery): Promise<{ rows: QueryRow[] }> | { rows: QueryRow[] };
  events?(p: EventsParams): Promise<{ events: StoredEvent[]; next_cursor: string | null }>;
  rollup?(): Promise<{ segments: number; rawRows: number }>;
  compact?(): Promise<unknown>;
  exportParquet?(
    outPath: string,
    opts: { from?: number; to?: number; account_id?: string; partition?: 'day' | 'none' },
  ): Promise<unknown>;
}

type Api = Required<BenchUsageDb>;

/** The method, bound, or a clear error naming what the engine does not have yet. */
function need<K extends 'query' | 'events' | 'exportParquet' | 'rollup' | 'compact'>(
  db: BenchUsageDb,
  name: K,
): Api[K] {
  const fn = db[name];
  if (typeof fn !== 'function') throw new Error(`UsageDb.${name} is not implemented yet`);
  return fn.bind(db) as Api[K];
}

export interface UsageDbStatic {
  open(opts: { dir: string; durability?: Durability }): Promise<BenchUsageDb>;
}

async function loadUsageDb(): Promise<UsageDbStatic> {
  const mod = await builtModule<typeof import('../src/index.ts')>('index.js');
  const UsageDb: UsageDbStatic = mod.UsageDb;
  return UsageDb;
}

/** Stored row count and quantity sum, through the query engine; null with a reason on failure. */
async function storedTotals(
  db: BenchUsageDb,
): Promise<{ stored: { count: number; quantitySum: string } | null; storedError?: string }> {
  try {
    const { rows } = await need(db, 'query')({ from: MONTH_FROM, to: MONTH_TO, metrics: ['sum', 'count'] });
    const r = rows[0];
    return { stored: { count: Number(r?.count ?? 0), quantitySum: String(r?.sum ?? '0') } };
  } catch (e) {
    return { stored: null, storedError: errorMessage(e) };
  }
}

export interface UsagedbIngestOptions {
  dir: string;
  events: number;
  seed: number;
  durability: Durability;
  concurrency: number;
  noFlush: boolean;
}

export async function ingestUsagedb(o: UsagedbIngestOptions): Promise<IngestResult> {
  const UsageDb = await loadUsageDb();
  mkdirSync(o.dir, { recursive: true });
  const db = await UsageDb.open({ dir: o.dir, durability: o.durability });
  const counts: Counts = { accepted: 0, duplicates: 0, conflicts: 0, rejected: 0 };
  const reasons = new Map<string, number>();
  const add = (r: UsageIngestResult): void => {
    counts.accepted += r.accepted;
    counts.duplicates += r.duplicates;
    counts.conflicts += r.conflicts;
    counts.rejected += r.rejected;
    for (const e of r.errors)
      if (e.status === 'rejected') reasons.set(e.reason, (reasons.get(e.reason) ?? 0) + 1);
  };

  const workload = new Workload({ events: o.events, seed: o.seed });
  const { ingestMs, generateMs } = await driveWorkload(
    workload,
    async (batches) => {
      if (o.concurrency <= 1) {
        for (const b of batches) add(await db.ingest(b.events));
        return;
      }
      // Keep `concurrency` batches in flight, started in order; group commit may share one fsync.
      const inflight = new Set<Promise<void>>();
      for (const b of batches) {
        const p: Promise<void> = db.ingest(b.events).then(add);
        inflight.add(p);
        p.then(
          () => inflight.delete(p),
          () => inflight.delete(p),
        );
        if (inflight.size >= o.concurrency) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    },
    o.concurrency <= 1 ? 1 : 50,
  );

  const notes: string[] = [];
  for (const [reason, n] of reasons) notes.push(`rejected ${n}× ${reason}`);
  let flushMs = 0;
  let totals: Awaited<ReturnType<typeof storedTotals>>;
  if (o.noFlush) {
    totals = await storedTotals(db);
    await db.close({ flushMemtable: false });
  } else {
    const f0 = now();
    await db.flush();
    flushMs = now() - f0;
    totals = await storedTotals(db);
    await db.close();
  }
  const mode = `${o.durability}${o.concurrency > 1 ? ` ×${o.concurrency} in flight` : ''}`;
  return {
    engine: 'usagedb',
    label: `usagedb ${mode}${o.noFlush ? ' (no flush)' : ''}`,
    events: o.events,
    ingestSeconds: ingestMs / 1000,
    flushSeconds: flushMs / 1000,
    generateSeconds: generateMs / 1000,
    counts,
    expected: workload.totals,
    ...totals,
    bytesOnDisk: dirBytes(o.dir),
    maxRssBytes: maxRssBytes(),
    notes,
  };
}

/** Times `UsageDb.open` on a directory whose events sit in the WAL (a fresh process). */
export async function reopenUsagedb(dir: string, expected: WorkloadTotals): Promise<ReopenResult> {
  const UsageDb = await loadUsageDb();
  const walDir = join(dir, 'wal');
  const walBytes = existsSync(walDir) && statSync(walDir).isDirectory() ? dirBytes(walDir) : 0;
  const dirSize = dirBytes(dir);
  const t0 = now();
  const db = await UsageDb.open({ dir, durability: 'balanced' });
  const openSeconds = (now() - t0) / 1000;
  const rss = maxRssBytes();
  const totals = await storedTotals(db);
  if (totals.stored && totals.stored.count !== expected.unique) {
    totals.storedError = `recovered ${totals.stored.count} events, expected ${expected.unique}`;
  }
  await db.close({ flushMemtable: false });
  return { openSeconds, walBytes, dirBytes: dirSize, ...totals, maxRssBytes: rss };
}

const str = (v: string | number | bigint | null | undefined): string => String(v);

export async function usagedbQueryRunner(
  dir: string,
  pageSize: number,
  source: 'raw' | 'auto',
): Promise<
  QueryRunner & {
    close(): Promise<void>;
    rollup(): Promise<{ rows: number; seconds: number }>;
    compact(): Promise<void>;
  }
> {
  const UsageDb = await loadUsageDb();
  const db = await UsageDb.open({ dir, durability: 'balanced' });
  const query = need(db, 'query');
  const events = need(db, 'events');
  const month = { from: MONTH_FROM, to: MONTH_TO, source };

  return {
    async compact() {
      await need(db, 'compact')();
    },
    async rollup() {
      const t0 = now();
      const r = await need(db, 'rollup')();
      return { rows: r.rawRows, seconds: (now() - t0) / 1000 };
    },
    async q1(a): Promise<PendingAnswer> {
      const { rows } = await query({
        account_id: a.account_id,
        ...month,
        group_by: ['product_id', 'meter_id', 'model_id', 'unit'],
        metrics: ['sum', 'count'],
      });
      return () => q1AnswerOfRecords(rows);
    },
    async q2(a): Promise<PendingAnswer> {
      const { rows } = await query({
        account_id: a.account_id,
        ...month,
        group_by: ['day', 'meter_id', 'unit'],
        metrics: ['sum', 'count'],
      });
      return () =>
        sortedRows(
          rows.map((r) => row(str(r.day), str(r.meter_id), str(r.unit), str(r.sum), Number(r.count))),
        );
    },
    async q3(): Promise<PendingAnswer> {
      const { rows } = await query({
        ...month,
        group_by: ['account_id'],
        filters: { meter_id: Q3_METER },
        metrics: ['sum', 'count'],
        order_by: [{ key: 'sum', dir: 'desc' }],
        limit: Q3_LIMIT,
      });
      return () => rows.map((r) => row(str(r.account_id), str(r.sum), Number(r.count)));
    },
    async q4(a): Promise<PendingAnswer> {
      // Page through the whole audit trail with the opaque cursor, as an invoice audit would.
      const audit: StoredEvent[] = [];
      let cursor: string | null = null;
      do {
        const page: { events: StoredEvent[]; next_cursor: string | null } = await events({
          account_id: a.account_id,
          from: month.from,
          to: month.to,
          meter_id: a.meter_id,
          model_id: a.model_id,
          limit: pageSize,
          ...(cursor === null ? {} : { cursor }),
        });
        for (const e of page.events) audit.push(e);
        cursor = page.next_cursor;
      } while (cursor !== null);
      return () =>
        audit.map((e) =>
          auditRow({
            event_id: e.event_id,
            kind: e.kind ?? 'Usage',
            timestamp_ms: Number(e.timestamp_ms),
            quantity: str(e.quantity),
            account_id: e.account_id,
            subscription_id: e.subscription_id ?? null,
            product_id: e.product_id,
            meter_id: e.meter_id,
            model_id: e.model_id ?? null,
            unit: e.unit,
            source: e.source,
            dimensions: canonicalDimensions(e.dimensions),
          }),
        );
    },
    async close(): Promise<void> {
      await db.close();
    },
  };
}

export async function exportUsagedb(
  dir: string,
  out: string,
  partition: 'none' | 'day',
): Promise<ExportResult> {
  const UsageDb = await loadUsageDb();
  const db = await UsageDb.open({ dir, durability: 'balanced' });
  const exportParquet = need(db, 'exportParquet');
  const t0 = now();
  await exportParquet(out, { partition });
  const seconds = (now() - t0) / 1000;
  const rss = maxRssBytes();
  await db.close();
  const outBytes = partition === 'day' ? dirBytes(out) : statSync(out).size;
  return { engine: 'usagedb', partition, seconds, outBytes, maxRssBytes: rss, verified: [] };
}

/**
 * Times parquet-wasm writing the rows of `file` (usagedb's export) from WebAssembly memory with
 * the export's own writer settings: the part of an export no pipeline around this writer can
 * remove. The rows are loaded before the clock starts; the output stays in memory.
 */
export async function encodeFloor(file: string): Promise<EncodeFloorResult> {
  const parquet = await import('parquet-wasm');
  const { writerProperties } = await import('../src/export/parquet-file-writer.ts');
  const { ROW_GROUP_ROWS_DEFAULT } = await import('../src/export/parquet.ts');
  const table = parquet.readParquet(readFileSync(file));
  let rows = 0;
  for (let b = 0; b < table.numBatches; b++) rows += table.recordBatch(b)?.numRows ?? 0;
  const properties = writerProperties({ rowGroupRows: ROW_GROUP_ROWS_DEFAULT, createdBy: 'usagedb' });
  const t0 = now();
  const out = parquet.writeParquet(table, properties);
  const seconds = (now() - t0) / 1000;
  if (out.length === 0) throw new Error('parquet-wasm wrote nothing');
  return { engine: 'usagedb', rows, seconds };
}
