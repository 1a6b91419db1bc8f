/**
 * The route table: every HTTP route is one entry naming its schemas and a handler that calls
 * one `UsageDb` method. The server registers the table, the OpenAPI document is generated from
 * it, and no ingest or query logic lives here: a later library method becomes a route by
 * adding one entry.
 */
import type { Static, TSchema } from 'typebox';
import type { IngestResult, UsageDb } from '../db.ts';
import { UsageDbError } from '../errors.ts';
import { ValidatedBatch } from '../model/batch-scan.ts';
import type { ServerConfig } from './config.ts';
import type { ServerMetrics } from './metrics.ts';
import {
  AccountParams,
  BatchRequest,
  BatchResponse,
  EventParams,
  EventsQuery,
  EventsResponse,
  ExplainResponse,
  LookupResponse,
  PeriodParams,
  PeriodResponse,
  RejectionsQuery,
  RejectionsResponse,
  HealthResponse,
  JsonQuery,
  JsonQueryResponse,
  MetricsResponse,
  OpenApiResponse,
  SqlRequest,
  SqlResponse,
  RangeQuery,
  UsageQuery,
  UsageResponse,
  VerifyResponse,
} from './schemas.ts';

export interface RouteContext {
  db: UsageDb;
  config: ServerConfig;
  metrics: ServerMetrics;
  startedAtMs: number;
  /** The OpenAPI document of this table (built once at start). */
  openApi: Record<string, unknown>;
}

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
}

export type HttpMethod = 'GET' | 'POST';

/** One route. `url` uses Fastify's `:param` form; the OpenAPI document shows `{param}`. */
export interface Route {
  method: HttpMethod;
  url: string;
  summary: string;
  /** Query routes are timed in the query latency histogram under their url. */
  timed?: 'query';
  /** A non-JSON answer (text/plain) serialised by the handler itself. */
  produces?: 'text/plain';
  /** Answers 409 when the resource is already in the requested state. */
  stateConflict?: true;
  /**
   * The body is read with a bare JSON.parse (no scan for "__proto__"/"constructor" keys): only
   * for a route whose library call checks every field it reads as untrusted input.
   */
  plainJson?: true;
  params?: TSchema;
  querystring?: TSchema;
  body?: TSchema;
  response: TSchema;
  handler(input: RouteInput<unknown, unknown, unknown>, ctx: RouteContext): Promise<unknown>;
}

type StaticOr<T extends TSchema | undefined> = T extends TSchema ? Static<T> : undefined;

/** Types the handler's input from the route's schemas (checked before the handler runs). */
export function defineRoute<
  P extends TSchema | undefined = undefined,
  Q extends TSchema | undefined = undefined,
  B extends TSchema | undefined = undefined,
>(route: {
  method: HttpMethod;
  url: string;
  summary: string;
  timed?: 'query';
  produces?: 'text/plain';
  stateConflict?: true;
  plainJson?: true;
  params?: P;
  querystring?: Q;
  body?: B;
  response: TSchema;
  handler(input: RouteInput<StaticOr<P>, StaticOr<Q>, StaticOr<B>>, ctx: RouteContext): Promise<unknown>;
}): Route {
  return route as Route;
}

/** The billing lines of one account, in the default grouping of an invoice. */
export const DEFAULT_USAGE_GROUP_BY = ['product_id', 'meter_id', 'model_id', 'unit'];

function splitList(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** The ingest route's url: its body is the one the server's parser may scan (model/batch-scan.ts). */
export const INGEST_URL = '/v1/usage/batch';

function ingestRoute() {
  return defineRoute({
    method: 'POST',
    url: INGEST_URL,
    summary: 'Ingest a batch of usage events (idempotent per event_id)',
    // db.ingest validates each event as untrusted input (own "__proto__" keys included).
    plainJson: true,
    body: BatchRequest,
    response: BatchResponse,
    async handler({ body }, { db, config, metrics }): Promise<IngestResult> {
      // Checked here too: the server's limit may be lower than the library's.
      if (body.events.length > config.batchEventsMax) {
        throw new UsageDbError(
          'USAGEDB_ERR_BATCH_TOO_LARGE',
          `batch of ${body.events.length} events exceeds the limit of ${config.batchEventsMax}`,
        );
      }
      // A body the parser already validated (model/batch-scan.ts) goes in whole.
      return metrics.timeIngest(() => db.ingest(body instanceof ValidatedBatch ? body : body.events));
    },
  });
}

export const ROUTES: readonly Route[] = [
  ingestRoute(),
  defineRoute({
    method: 'GET',
    url: '/v1/accounts/:id/usage',
    summary: "An account's usage per billing line (default group_by product_id,meter_id,model_id,unit)",
    timed: 'query',
    params: AccountParams,
    querystring: UsageQuery,
    response: UsageResponse,
    async handler({ params, query }, { db }) {
      const groupBy = splitList(query.group_by) ?? DEFAULT_USAGE_GROUP_BY;
      const filters: Record<string, string> = {};
      if (query.product_id !== undefined) filters.product_id = query.product_id;
      if (query.meter_id !== undefined) filters.meter_id = query.meter_id;
      if (query.model_id !== undefined) filters.model_id = query.model_id;
      if (query.event_source !== undefined) filters.source = query.event_source;
      const source = query.source ?? 'auto';
      const result = await db.query({
        source,
        account_id: params.id,
        from: query.from,
        to: query.to,
        group_by: groupBy,
        filters,
        metrics: ['sum', 'count'],
      });
      const lines = result.rows.map((row) => {
        const line: Record<string, string | number | null> = {};
        for (const key of groupBy) line[key] = row[key] ?? null;
        line.quantity = row.sum;
        line.event_count = row.count;
        return line;
      });
      return { account_id: params.id, from: query.from, to: query.to, source, lines };
    },
  }),
  defineRoute({
    method: 'GET',
    url: '/v1/accounts/:id/usage/events',
    summary: "One page of an account's raw events, ordered by (timestamp_ms, event_id)",
    timed: 'query',
    params: AccountParams,
    querystring: EventsQuery,
    response: EventsResponse,
    handler: ({ params, query }, { db }) => db.events({ ...query, account_id: params.id }),
  }),
  defineRoute({
    method: 'POST',
    url: '/v1/query/json',
    summary: 'JSON query: group, filter and aggregate events',
    timed: 'query',
    body: JsonQuery,
    response: JsonQueryResponse,
    handler: ({ body }, { db }) => db.query(body),
  }),
  defineRoute({
    method: 'POST',
    url: '/v1/query/sql',
    summary: 'Strict SQL subset over the table usage_events',
    timed: 'query',
    body: SqlRequest,
    response: SqlResponse,
    handler: ({ body }, { db }) => db.sql(body.query),
  }),
  ...billingRoutes(),
  defineRoute({
    method: 'GET',
    url: '/v1/accounts/:id/verify',
    summary: "Compare an account's raw scan and rollup path per billing line: {ok, drift}",
    timed: 'query',
    params: AccountParams,
    querystring: RangeQuery,
    response: VerifyResponse,
    handler: ({ params, query }, { db }) =>
      db.verify({ account_id: params.id, from: query.from, to: query.to }),
  }),
  defineRoute({
    method: 'GET',
    url: '/health',
    summary: 'Liveness',
    response: HealthResponse,
    handler: async (_input, { db, startedAtMs }) => ({
      status: 'ok',
      durability: db.durability,
      uptime_s: (Date.now() - startedAtMs) / 1000,
      flush_error: db.stats().flushError,
    }),
  }),
  defineRoute({
    method: 'GET',
    url: '/metrics',
    summary: 'Prometheus metrics',
    produces: 'text/plain',
    response: MetricsResponse,
    handler: (_input, { metrics }) => metrics.render(),
  }),
  defineRoute({
    method: 'GET',
    url: '/openapi.json',
    summary: 'The OpenAPI document of these routes',
    response: OpenApiResponse,
    handler: async (_input, { openApi }) => openApi,
  }),
];

/** Periods, explain, event lookup, rejection log: one library call each. */
function billingRoutes(): Route[] {
  return [
    defineRoute({
      method: 'GET',
      url: '/v1/accounts/:id/periods/:period',
      summary: "An account's billing period (UTC month): live lines, or the closed snapshot with adjustments",
      timed: 'query',
      params: PeriodParams,
      response: PeriodResponse,
      handler: ({ params }, { db }) => db.periods.get(params.id, params.period),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/accounts/:id/periods/:period/close',
      summary: 'Close a period: freeze its lines; later Usage events into it are rejected (409 if closed)',
      stateConflict: true,
      params: PeriodParams,
      response: PeriodResponse,
      handler: ({ params }, { db }) => db.periods.close(params.id, params.period),
    }),
    defineRoute({
      method: 'POST',
      url: '/v1/accounts/:id/periods/:period/reopen',
      summary: 'Reopen a closed period: its snapshot is discarded (409 if open)',
      stateConflict: true,
      params: PeriodParams,
      response: PeriodResponse,
      handler: ({ params }, { db }) => db.periods.reopen(params.id, params.period),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/accounts/:id/explain',
      summary: "An account's lines over [from, to) with provenance and the corrections that moved them",
      timed: 'query',
      params: AccountParams,
      querystring: RangeQuery,
      response: ExplainResponse,
      handler: ({ params, query }, { db }) =>
        db.explain({ account_id: params.id, from: query.from, to: query.to }),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/events/:event_id',
      summary: 'Where an event is stored, or why it was not (rejected, conflict, unknown)',
      params: EventParams,
      response: LookupResponse,
      handler: ({ params }, { db }) => db.lookupEvent(params.event_id),
    }),
    defineRoute({
      method: 'GET',
      url: '/v1/accounts/:id/rejections',
      summary: "The account's rejected events and conflicting copies, oldest first (bounded log)",
      params: AccountParams,
      querystring: RejectionsQuery,
      response: RejectionsResponse,
      handler: ({ params, query }, { db }) => db.rejections({ ...query, account_id: params.id }),
    }),
  ];
}
