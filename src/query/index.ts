/**
 * The query engine's public surface: `db.query`, `db.sql` and `db.events`
 * call these with `db.readSnapshot()`.
 */
import { defaultQueryEngine } from './engine.ts';
import type { EventsPage, EventsParams, Query, QueryResult, QuerySnapshot, SqlResult } from './types.ts';

export { QUERY_GROUPS_MAX } from './aggregate.ts';
export { DEFAULT_QUERY_CACHE_BYTES } from './chunk-cache.ts';
export type { QueryEngineOptions } from './engine.ts';
export { createQueryEngine, defaultQueryEngine, QueryEngine } from './engine.ts';
export { EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX } from './events.ts';
export { parseJsonQuery } from './parse-json.ts';
export { translateSql } from './sql.ts';
export type * from './types.ts';
export { BASE_GROUP_KEYS, FILTER_COLUMNS, METRICS } from './types.ts';

/** Runs a validated query on the default engine. */
export function runQuery(snapshot: QuerySnapshot, query: Query): Promise<QueryResult> {
  return defaultQueryEngine.runQuery(snapshot, query);
}

/** Runs the strict SQL subset on the default engine. */
export function runSql(snapshot: QuerySnapshot, sql: string): Promise<SqlResult> {
  return defaultQueryEngine.runSql(snapshot, sql);
}

/** One page of the raw audit listing on the default engine. */
export function listEvents(snapshot: QuerySnapshot, params: EventsParams): Promise<EventsPage> {
  return defaultQueryEngine.listEvents(snapshot, params);
}
