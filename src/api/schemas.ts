/**
 * Request and response schemas of the HTTP API, declared once with TypeBox. Fastify compiles
 * them (TypeBox validators for requests, fast-json-stringify for responses) and
 * `openapi.ts` publishes the same objects, so the document cannot drift from what is checked.
 *
 * Event payloads are deliberately loose here: the library validates every event on its own
 * and rejects bad ones one by one with a reason, which a schema failure of the whole body
 * would not do.
 */
import { type Static, Type } from 'typebox';

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({
        description: 'stable error code from the catalogue, e.g. USAGEDB_ERR_INVALID_QUERY',
      }),
      message: Type.String(),
    }),
  },
  { title: 'Error' },
);

const Name = Type.String({ minLength: 1, maxLength: 1024 });
const Time = Type.String({
  minLength: 1,
  description: 'RFC 3339 (2026-05-01T00:00:00Z; a bare date is 00:00 UTC) or milliseconds since the epoch',
});
/** Quantities leave the server as decimal strings (exact at any size). */
const Decimal = Type.String({ pattern: '^-?[0-9]+$' });

/** The wire form of a usage event (documentation: ingest checks each event itself). */
export const UsageEvent = Type.Object(
  {
    event_id: Type.String(),
    kind: Type.Optional(
      Type.Union([Type.Literal('Usage'), Type.Literal('Correction'), Type.Literal('Retraction')]),
    ),
    correction_ref: Type.Optional(
      Type.Union([Type.Object({ original_event_id: Type.String(), reason: Type.String() }), Type.Null()]),
    ),
    account_id: Type.String(),
    subscription_id: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    product_id: Type.String(),
    meter_id: Type.String(),
    model_id: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    unit: Type.String(),
    source: Type.String(),
    timestamp_ms: Type.Integer(),
    quantity: Type.Union([Type.Integer(), Decimal]),
    dimensions: Type.Optional(Type.Union([Type.Record(Type.String(), Type.String()), Type.Null()])),
    ingested_at_ms: Type.Optional(Type.Integer({ description: 'stamped by the server; ignored on input' })),
  },
  { title: 'UsageEvent', additionalProperties: true },
);

// ---------------------------------------------------------------- POST /v1/usage/batch

export const BatchRequest = Type.Object(
  {
    events: Type.Array(
      Type.Unknown({
        description: 'a UsageEvent; each is validated on its own, a bad one is rejected with a reason',
      }),
    ),
  },
  { title: 'BatchRequest' },
);
export type BatchRequest = Static<typeof BatchRequest>;

export const BatchResponse = Type.Object(
  {
    accepted: Type.Integer(),
    duplicates: Type.Integer(),
    conflicts: Type.Integer(),
    rejected: Type.Integer(),
    errors: Type.Array(
      Type.Object({
        index: Type.Integer({ description: 'position of the event in the batch' }),
        event_id: Type.Union([Type.String(), Type.Null()]),
        status: Type.Union([Type.Literal('rejected'), Type.Literal('conflict')]),
        reason: Type.String({
          description: 'stable snake_case code, e.g. missing_field, invalid_quantity, conflict',
        }),
        message: Type.String(),
      }),
    ),
  },
  { title: 'BatchResponse' },
);

// ---------------------------------------------------------------- GET /v1/accounts/{id}/usage

export const AccountParams = Type.Object({ id: Name });
export type AccountParams = Static<typeof AccountParams>;

const QuerySource = Type.Union([Type.Literal('auto'), Type.Literal('rollup'), Type.Literal('raw')]);

export const UsageQuery = Type.Object({
  from: Time,
  to: Time,
  group_by: Type.Optional(
    Type.String({ description: 'comma-separated group keys; default product_id,meter_id,model_id,unit' }),
  ),
  product_id: Type.Optional(Name),
  meter_id: Type.Optional(Name),
  model_id: Type.Optional(Name),
  event_source: Type.Optional(Type.String({ minLength: 1, description: "filters the events' source field" })),
  source: Type.Optional(QuerySource),
});
export type UsageQuery = Static<typeof UsageQuery>;

const RowValue = Type.Union([Type.String(), Type.Number(), Type.Null()]);

export const UsageResponse = Type.Object(
  {
    account_id: Type.String(),
    from: Type.String(),
    to: Type.String(),
    source: QuerySource,
    lines: Type.Array(
      Type.Record(Type.String(), RowValue, {
        description: 'the group keys, then quantity (decimal string) and event_count (integer)',
      }),
    ),
  },
  { title: 'UsageResponse' },
);

// ---------------------------------------------------------------- GET /v1/accounts/{id}/usage/events

export const EventsQuery = Type.Object({
  from: Time,
  to: Time,
  meter_id: Type.Optional(Name),
  product_id: Type.Optional(Name),
  model_id: Type.Optional(Name),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'default 1,000' })),
  cursor: Type.Optional(Type.String({ minLength: 1 })),
});
export type EventsQuery = Static<typeof EventsQuery>;

export const EventsResponse = Type.Object(
  {
    events: Type.Array(UsageEvent),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
  },
  { title: 'EventsPage' },
);

// ---------------------------------------------------------------- POST /v1/query/json

const OneOrMany = Type.Union([
  Type.String(),
  Type.Null(),
  Type.Array(Type.Union([Type.String(), Type.Null()])),
]);

export const JsonQuery = Type.Object(
  {
    source: Type.Optional(QuerySource),
    account_id: Type.Optional(Type.String()),
    from: Type.Union([Type.String(), Type.Integer()]),
    to: Type.Union([Type.String(), Type.Integer()]),
    group_by: Type.Optional(Type.Array(Type.String())),
    filters: Type.Optional(
      Type.Object(
        {
          product_id: Type.Optional(OneOrMany),
          meter_id: Type.Optional(OneOrMany),
          model_id: Type.Optional(OneOrMany),
          source: Type.Optional(OneOrMany),
          unit: Type.Optional(OneOrMany),
          kind: Type.Optional(OneOrMany),
          subscription_id: Type.Optional(OneOrMany),
          dimensions: Type.Optional(Type.Record(Type.String(), Type.String())),
        },
        // Unknown filters reach the library, which names them in its error.
        { additionalProperties: true },
      ),
    ),
    metrics: Type.Optional(Type.Array(Type.String())),
    order_by: Type.Optional(
      Type.Array(
        Type.Object(
          { key: Type.String(), dir: Type.Optional(Type.String()) },
          { additionalProperties: true },
        ),
      ),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { title: 'JsonQuery', additionalProperties: true },
);
export type JsonQuery = Static<typeof JsonQuery>;

const QueryStats = Type.Record(
  Type.String(),
  Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]),
  {
    description: 'what the query touched (path, rollups, segments, blocks, rows, cache)',
  },
);

export const JsonQueryResponse = Type.Object(
  {
    rows: Type.Array(
      Type.Record(Type.String(), RowValue, {
        description: 'group keys, then sum/min/max (decimal strings) and count (integer)',
      }),
    ),
    stats: QueryStats,
  },
  { title: 'JsonQueryResult' },
);

// ---------------------------------------------------------------- POST /v1/query/sql

export const SqlRequest = Type.Object({ query: Type.String({ minLength: 1 }) }, { title: 'SqlRequest' });
export type SqlRequest = Static<typeof SqlRequest>;

export const SqlResponse = Type.Object(
  {
    columns: Type.Array(Type.String()),
    rows: Type.Array(Type.Array(RowValue)),
    stats: QueryStats,
  },
  { title: 'SqlResult' },
);

// ---------------------------------------------------------------- operations

export const HealthResponse = Type.Object(
  {
    status: Type.Literal('ok'),
    durability: Type.String(),
    uptime_s: Type.Number(),
    flush_error: Type.Union([Type.String(), Type.Null()], {
      description: 'the last flush error while flushes keep failing (ingest then fails too), else null',
    }),
  },
  { title: 'Health' },
);

export const MetricsResponse = Type.String({ description: 'Prometheus text exposition format' });
export const OpenApiResponse = Type.Object({}, { additionalProperties: true, description: 'this document' });

export const RangeQuery = Type.Object({ from: Time, to: Time });
export type RangeQuery = Static<typeof RangeQuery>;

const LineTotals = Type.Union([
  Type.Object({
    quantity: Type.String(),
    event_count: Type.Integer(),
    min: Type.Union([Type.String(), Type.Null()]),
    max: Type.Union([Type.String(), Type.Null()]),
  }),
  Type.Null(),
]);

export const VerifyResponse = Type.Object(
  {
    ok: Type.Boolean(),
    drift: Type.Array(
      Type.Object({
        grain: Type.Union([Type.Literal('line'), Type.Literal('meter')]),
        account_id: Type.String(),
        product_id: Type.String(),
        meter_id: Type.String(),
        model_id: Type.Union([Type.String(), Type.Null()]),
        unit: Type.String(),
        raw: LineTotals,
        rollup: LineTotals,
      }),
    ),
    lines_compared: Type.Integer(),
    rollup_segments_read: Type.Integer(),
  },
  { description: 'raw scan vs rollup path per billing line; ok only with no drift' },
);

// ---------------------------------------------------------------- billing periods

const BillingLineFields = {
  product_id: Type.String(),
  meter_id: Type.String(),
  model_id: Type.Union([Type.String(), Type.Null()]),
  unit: Type.String(),
  quantity: Decimal,
  event_count: Type.Integer({ description: 'events of every kind behind the line' }),
};
const BillingLine = Type.Object(BillingLineFields, { title: 'BillingLine' });

export const PeriodParams = Type.Object({
  id: Name,
  period: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}$', description: 'UTC calendar month, YYYY-MM' }),
});
export type PeriodParams = Static<typeof PeriodParams>;

export const PeriodResponse = Type.Object(
  {
    account_id: Type.String(),
    period: Type.String(),
    status: Type.Union([Type.Literal('open'), Type.Literal('closed')]),
    lines: Type.Array(BillingLine, { description: 'open: live lines; closed: the snapshot lines' }),
    carried_adjustments: Type.Optional(
      Type.Array(
        Type.Object({
          period: Type.String({ description: 'the closed period adjusted' }),
          ...BillingLineFields,
        }),
        { description: 'open only: late corrections of the closed periods right before this one' },
      ),
    ),
    snapshot: Type.Optional(
      Type.Object({
        lines: Type.Array(BillingLine),
        watermark_ms: Type.Integer(),
        segment_ids: Type.Array(Type.Integer(), { description: 'raw segments the close read' }),
        closed_at_ms: Type.Integer(),
        evidence_digest: Type.String({
          description: 'SHA-256 hex over the canonical text of the events (docs/billing.md)',
        }),
      }),
    ),
    adjustments: Type.Optional(
      Type.Array(UsageEvent, { description: 'corrections that arrived after the close' }),
    ),
    adjustment_lines: Type.Optional(Type.Array(BillingLine)),
    net_lines: Type.Optional(Type.Array(BillingLine, { description: 'snapshot + adjustments' })),
  },
  { title: 'Period' },
);

// ---------------------------------------------------------------- explain

export const ExplainResponse = Type.Object(
  {
    account_id: Type.String(),
    from_ms: Type.Integer(),
    to_ms: Type.Integer(),
    lines: Type.Array(BillingLine),
    provenance: Type.Object({
      raw_segment_ids: Type.Array(Type.Integer()),
      rollup_segment_ids: Type.Array(Type.Integer()),
      memtable_rows: Type.Integer(),
    }),
    corrections: Type.Array(
      Type.Object({
        event_id: Type.String(),
        kind: Type.Union([Type.Literal('Correction'), Type.Literal('Retraction')]),
        original_event_id: Type.String(),
        reason: Type.String(),
        timestamp_ms: Type.Integer(),
        quantity: Decimal,
        product_id: Type.String(),
        meter_id: Type.String(),
        model_id: Type.Union([Type.String(), Type.Null()]),
        unit: Type.String(),
      }),
    ),
  },
  { title: 'Explanation' },
);

// ---------------------------------------------------------------- event lookup and rejections

export const EventParams = Type.Object({ event_id: Type.String({ minLength: 1, maxLength: 1024 }) });
export type EventParams = Static<typeof EventParams>;

const Sent = Type.Unknown({ description: 'the event as sent (truncated when large: see event_truncated)' });
const RejectionStatus = Type.Union([Type.Literal('rejected'), Type.Literal('conflict')]);

export const LookupResponse = Type.Object(
  {
    event_id: Type.String(),
    status: Type.Union([
      Type.Literal('stored'),
      Type.Literal('retracted'),
      Type.Literal('rejected'),
      Type.Literal('conflict'),
      Type.Literal('unknown'),
    ]),
    location: Type.Optional(Type.Union([Type.Literal('segment'), Type.Literal('memtable')])),
    segment_id: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    period: Type.Optional(Type.String()),
    period_closed: Type.Optional(Type.Boolean()),
    line: Type.Optional(
      Type.Object({
        product_id: Type.String(),
        meter_id: Type.String(),
        model_id: Type.Union([Type.String(), Type.Null()]),
        unit: Type.String(),
      }),
    ),
    event: Type.Optional(UsageEvent),
    retracted_by: Type.Optional(
      Type.Union([
        Type.Object({ event_id: Type.String(), timestamp_ms: Type.Integer(), reason: Type.String() }),
        Type.Null(),
      ]),
    ),
    received_at_ms: Type.Optional(Type.Integer()),
    reason: Type.Optional(Type.String()),
    rejections: Type.Array(
      Type.Object({
        received_at_ms: Type.Integer(),
        index: Type.Integer(),
        status: RejectionStatus,
        reason: Type.String(),
        event: Sent,
        event_truncated: Type.Boolean(),
      }),
    ),
  },
  { title: 'EventLookup' },
);

export const RejectionsQuery = Type.Object({
  from: Type.Optional(Time),
  to: Type.Optional(Time),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'default 100' })),
  cursor: Type.Optional(Type.String({ minLength: 1 })),
});
export type RejectionsQuery = Static<typeof RejectionsQuery>;

export const RejectionsResponse = Type.Object(
  {
    rejections: Type.Array(
      Type.Object({
        received_at_ms: Type.Integer(),
        index: Type.Integer({ description: 'position of the event in its batch' }),
        event_id: Type.Union([Type.String(), Type.Null()]),
        status: RejectionStatus,
        reason: Type.String(),
        account_id: Type.Union([Type.String(), Type.Null()]),
        event: Sent,
        event_truncated: Type.Boolean(),
      }),
    ),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'null on the last page' }),
  },
  { title: 'RejectionsPage' },
);
