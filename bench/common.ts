/**
 * Types and helpers shared by the orchestrator (run.ts), the child entry point (worker.ts)
 * and the per-engine modules.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { HttpFloorResult, HttpIngestResult } from './http.ts';
import type { Batch, QueryAccount, Workload, WorkloadTotals } from './workload.ts';

export type Engine = 'usagedb' | 'sqlite' | 'duckdb';
export type Durability = 'strict' | 'balanced' | 'fast';
export type QueryKind = 'q1' | 'q2' | 'q3' | 'q4';
/** DuckDB storage order: `account` sorts by (account_id, timestamp_ms) so zone maps prune. */
export type DuckdbOrder = 'account' | 'arrival';
/**
 * DuckDB quantity column: `hugeint` is DuckDB's own 128-bit integer, the like-for-like type for
 * the contract (|q| < 10^38); `bigint` is what a DuckDB user would usually pick (overflows past
 * 2^63); `decimal38` is DECIMAL(38,0).
 */
export type DuckdbQuantity = 'decimal38' | 'bigint' | 'hugeint';
export const QUERY_KINDS: readonly QueryKind[] = ['q1', 'q2', 'q3', 'q4'];

/** What the orchestrator asks a child to do; passed as JSON in argv. */
export type Task =
  | {
      phase: 'ingest';
      engine: Engine;
      dir: string;
      events: number;
      seed: number;
      /** usagedb only. */
      durability?: Durability;
      /** usagedb only: batches kept in flight at once (group commit shares their fsyncs). */
      concurrency?: number;
      /** usagedb only: close without flushing the memtable, leaving the events in the WAL. */
      noFlush?: boolean;
      /** duckdb only. */
      order?: DuckdbOrder;
      quantityType?: DuckdbQuantity;
    }
  | { phase: 'reopen'; engine: 'usagedb'; dir: string; expected: WorkloadTotals }
  /** usagedb: rollups built (timed), then a compaction, as background work would leave it. */
  | { phase: 'rollup-build'; engine: 'usagedb'; dir: string }
  | {
      phase: 'query';
      engine: Engine;
      dir: string;
      accounts: QueryAccount[];
      warmup: QueryAccount[];
      q3Runs: number;
      pageSize: number;
      answersFile: string;
      /** usagedb: the query path (default auto). */
      source?: 'raw' | 'auto';
      /** A label for the result beside the engine name (e.g. the DuckDB quantity type). */
      variant?: string;
    }
  | {
      phase: 'export';
      engine: Engine;
      dir: string;
      out: string;
      verify: string[];
      /** usagedb only: 'day' writes Hive-style date=YYYY-MM-DD/ partitions under `out`. */
      partition?: 'none' | 'day';
    }
  | { phase: 'encode-floor'; engine: 'usagedb'; file: string }
  | {
      phase: 'http-ingest';
      engine: 'usagedb';
      dir: string;
      bodiesFile: string;
      events: number;
      seed: number;
      clients: number;
    }
  | { phase: 'http-floor'; engine: 'floor'; dir: string; bodiesFile: string };

export interface Counts {
  accepted: number;
  duplicates: number;
  conflicts: number;
  rejected: number;
}

export interface IngestResult {
  engine: Engine;
  label: string;
  events: number;
  /** Wall time spent in the engine's ingest calls (generator time excluded). */
  ingestSeconds: number;
  /** Final flush / checkpoint after the last acknowledged batch. */
  flushSeconds: number;
  /** Time to make the events, excluded from `ingestSeconds`; reported for context. */
  generateSeconds: number;
  counts: Counts;
  expected: WorkloadTotals;
  /** Stored row count and quantity sum read back from the engine (null when it cannot say yet). */
  stored: { count: number; quantitySum: string } | null;
  storedError?: string;
  bytesOnDisk: number;
  maxRssBytes: number;
  notes: string[];
}

export interface ReopenResult {
  openSeconds: number;
  walBytes: number;
  dirBytes: number;
  stored: { count: number; quantitySum: string } | null;
  storedError?: string;
  maxRssBytes: number;
}

export interface QueryTiming {
  kind: QueryKind;
  /** account_id for q1/q2/q4, the run number for q3. */
  key: string;
  ms: number;
  rows: number;
  digest: string;
}

export interface QueryResult {
  engine: Engine;
  /** e.g. `raw`/`auto` for usagedb, the quantity type for DuckDB. */
  variant?: string;
  /** usagedb auto: the rollup build of its store, in the process before the queries'. */
  rollupBuild?: RollupBuildResult;
  timings: QueryTiming[];
  maxRssBytes: number;
  notes: string[];
}

export interface ExportResult {
  engine: Engine;
  partition: 'none' | 'day';
  seconds: number;
  outBytes: number;
  /** Peak RSS measured right after the export, before any verification reads. */
  maxRssBytes: number;
  /** Filled by the DuckDB child, which reads every listed Parquet file back. */
  verified: { file: string; rows: number; quantitySum: string; distinctIds: number }[];
}

/**
 * parquet-wasm's encoding alone, on the rows of usagedb's export already in WebAssembly
 * memory, with the export's writer settings: no reading, no Arrow building, no I/O. No
 * export through this writer can be faster.
 */
export interface EncodeFloorResult {
  engine: 'usagedb';
  rows: number;
  seconds: number;
}

export interface RollupBuildResult {
  /** Events newly rolled up. */
  rows: number;
  seconds: number;
}

export type TaskResult =
  | IngestResult
  | RollupBuildResult
  | ReopenResult
  | QueryResult
  | ExportResult
  | EncodeFloorResult
  | HttpIngestResult
  | HttpFloorResult;

/** The whole of what `--json FILE` writes. */
export interface BenchReport {
  machine: Record<string, string | number>;
  seed: number;
  events: number;
  ingest: IngestResult[];
  http: { ingest: HttpIngestResult | null; floor: HttpFloorResult | null } | null;
  reopen: ReopenResult | null;
  query: QueryResult[];
  export: ExportResult[];
  failures: string[];
  mismatches: string[];
}

// ---------------------------------------------------------------------------------------------

export const now = (): number => performance.now();

/**
 * A module of the built package (`dist/`, what `npm run bench` builds first): the engine runs
 * as its users run it, compiled JavaScript in the main thread and its worker threads (from
 * `src/`, every worker would strip types from each module as it starts: ~0.3 s of CPU per
 * thread, counted in the 1M figures). Typed as the source module it is built from.
 */
export async function builtModule<T>(path: string): Promise<T> {
  const url = new URL(`../dist/${path}`, import.meta.url);
  if (!existsSync(url)) throw new Error(`${url.pathname} is missing: run \`npm run build\` first`);
  return (await import(url.href)) as T;
}

export const maxRssBytes = (): number => process.resourceUsage().maxRSS * 1024;

/** Every file under `dir`, recursively: what the engine really keeps on disk. */
export function dirBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += dirBytes(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

/** Nearest-rank percentile of an unsorted sample. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function digest(rows: readonly string[]): string {
  const h = createHash('sha256');
  for (const r of rows) h.update(r).update('\n');
  return h.digest('hex').slice(0, 16);
}

export const dayLabel = (epochDay: number): string =>
  new Date(epochDay * 86_400_000).toISOString().slice(0, 10);

/**
 * Answers are normalised to one JSON array per row, with quantities as decimal strings and
 * counts as integers, so every engine's answer compares as plain strings.
 */
export const row = (...cells: (string | number | null)[]): string => JSON.stringify(cells);

/** q1/q2 rows have no defined order: compare as sorted sets. q3/q4 order is part of the answer. */
export const sortedRows = (rows: string[]): string[] => rows.sort();

const text = (v: unknown): string => String(v);
const textOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** The q1 answer from rows keyed product_id, meter_id, model_id, unit, sum, count (SQLite and usagedb rows). */
export function q1AnswerOfRecords(rows: readonly Record<string, unknown>[]): string[] {
  return sortedRows(
    rows.map((r) =>
      row(
        text(r.product_id),
        text(r.meter_id),
        textOrNull(r.model_id),
        text(r.unit),
        text(r.sum),
        Number(r.count),
      ),
    ),
  );
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0];
  return String(e);
}

/** Runs a query runner's specs; each `run` resolves to a thunk that normalises outside the timing. */
export type PendingAnswer = () => string[];

/** The fields of one audit (q4) row that every engine must return identically. */
export interface AuditFields {
  event_id: string;
  kind: string;
  timestamp_ms: number;
  quantity: string;
  account_id: string;
  subscription_id: string | null;
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  source: string;
  /** Canonical JSON of the sorted dimension map. */
  dimensions: string;
}

export const auditRow = (f: AuditFields): string =>
  row(
    f.event_id,
    f.timestamp_ms,
    f.quantity,
    f.kind,
    f.account_id,
    f.subscription_id,
    f.product_id,
    f.meter_id,
    f.model_id,
    f.unit,
    f.source,
    f.dimensions,
  );

/**
 * Feeds a workload to `body` in chunks of pre-generated batches, timing only `body`: event
 * generation never counts as engine time, and an engine with several batches in flight drains
 * them inside the timed region at each chunk end (a chunk is 50 batches, ~20 MB of objects).
 * Engines that take one batch at a time get chunks of one (`batchesPerChunk` 1): each batch is
 * generated just before it is ingested, as a server hands each request's events on, rather
 * than waiting in the heap behind 49 others.
 */
export async function driveWorkload(
  workload: Workload,
  body: (batches: Batch[]) => Promise<void> | void,
  batchesPerChunk = 50,
): Promise<{ ingestMs: number; generateMs: number }> {
  const gen = workload.batches();
  let ingestMs = 0;
  let generateMs = 0;
  for (;;) {
    const g0 = now();
    const chunk: Batch[] = [];
    for (let i = 0; i < batchesPerChunk; i++) {
      const next = gen.next();
      if (next.done) break;
      chunk.push(next.value);
    }
    generateMs += now() - g0;
    if (chunk.length === 0) break;
    const t0 = now();
    await body(chunk);
    ingestMs += now() - t0;
  }
  return { ingestMs, generateMs };
}
