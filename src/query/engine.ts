/**
 * The query engine: one chunk cache and dimension cache shared by every query it runs, and
 * the four entry points (JSON query, SQL, audit listing) over a read snapshot.
 *
 * Invariants:
 * - the engine holds no database state: every call reads only the snapshot it is given, so a
 *   result is one consistent point in time whatever ingest and flushes do meanwhile;
 * - the caches are bounded: the chunk cache by bytes; dimension sets and value-id tables are
 *   keyed weakly by dictionaries (which live as long as their readers or memtables), and the
 *   value ids are replaced once past VALUE_IDS_MAX distinct values.
 */
import { ChunkCache, DEFAULT_QUERY_CACHE_BYTES } from './chunk-cache.ts';
import { executeEvents } from './events.ts';
import { type EngineContext, executeQuery } from './execute.ts';
import { parseJsonQuery } from './parse-json.ts';
import { translateSql } from './sql.ts';
import type {
  EventsPage,
  EventsParams,
  Query,
  QueryResult,
  QuerySnapshot,
  QueryStats,
  RowValue,
  SqlResult,
} from './types.ts';
import { DimensionsCache, ValueIds } from './value-ids.ts';

export interface QueryEngineOptions {
  /** Memory for decoded column chunks. Default 128 MiB; 0 disables the cache. */
  cacheBytes?: number;
}

export class QueryEngine {
  readonly cache: ChunkCache;
  private readonly ctx: EngineContext;

  constructor(options: QueryEngineOptions = {}) {
    this.cache = new ChunkCache(options.cacheBytes ?? DEFAULT_QUERY_CACHE_BYTES);
    this.ctx = { cache: this.cache, dims: new DimensionsCache(), ids: new ValueIds() };
  }

  /** Runs a validated query (see parseJsonQuery). */
  runQuery(snapshot: QuerySnapshot, query: Query): Promise<QueryResult> {
    return executeQuery(this.ctx, snapshot, query);
  }

  /**
   * Runs a validated query and names what it read: the raw segment files it took blocks from
   * and the rollup segments it read.
   */
  async runQueryTraced(
    snapshot: QuerySnapshot,
    query: Query,
  ): Promise<{ result: QueryResult; rawSegmentIds: number[]; rollupSegmentIds: number[] }> {
    const read = { raw: new Set<number>(), rollup: new Set<number>() };
    const result = await executeQuery(this.ctx, snapshot, query, read);
    const sorted = (ids: Set<number>) => [...ids].sort((a, b) => a - b);
    return { result, rawSegmentIds: sorted(read.raw), rollupSegmentIds: sorted(read.rollup) };
  }

  /** Validates and runs a JSON query (docs/query.md). */
  queryJson(snapshot: QuerySnapshot, input: unknown): Promise<QueryResult> {
    return this.runQuery(snapshot, parseJsonQuery(input));
  }

  /** Runs the strict SQL subset: the same plan and executor as the JSON query. */
  async runSql(snapshot: QuerySnapshot, sql: string): Promise<SqlResult> {
    const plan = translateSql(sql);
    const result = await this.runQuery(snapshot, plan.query);
    const rows = result.rows.map((row) =>
      plan.outputs.map((o): RowValue => (o.kind === 'key' ? row[o.key] : (row[o.metric] ?? null))),
    );
    return { columns: plan.columns, rows, stats: result.stats };
  }

  /** One page of the raw audit listing. */
  async listEvents(snapshot: QuerySnapshot, params: EventsParams): Promise<EventsPage> {
    return (await executeEvents(this.ctx, snapshot, params)).page;
  }

  /** The same page with what it touched (tests, explain). */
  listEventsWithStats(
    snapshot: QuerySnapshot,
    params: EventsParams,
  ): Promise<{ page: EventsPage; stats: QueryStats }> {
    return executeEvents(this.ctx, snapshot, params);
  }
}

export function createQueryEngine(options: QueryEngineOptions = {}): QueryEngine {
  return new QueryEngine(options);
}

/** The engine behind the module-level functions (default cache size). */
export const defaultQueryEngine = new QueryEngine();
