/**
 * Wire shapes of the HTTP API as the client sees them (snake_case, as on the wire). Kept
 * free of imports so the client builds to files that run in browsers and edge runtimes.
 */

export type EventKind = 'Usage' | 'Correction' | 'Retraction';

/** A usage event as sent (quantity: a safe integer or a decimal string). */
export interface UsageEventInput {
  event_id: string;
  kind?: EventKind;
  correction_ref?: { original_event_id: string; reason: string } | null;
  account_id: string;
  subscription_id?: string | null;
  product_id: string;
  meter_id: string;
  model_id?: string | null;
  unit: string;
  source: string;
  timestamp_ms: number;
  quantity: number | string;
  dimensions?: Record<string, string> | null;
}

/** A stored event as returned by the audit (quantity as a decimal string). */
export interface StoredUsageEvent extends UsageEventInput {
  kind: EventKind;
  quantity: string;
  ingested_at_ms: number;
}

export interface BatchEventError {
  /** Position in the batch sent. */
  index: number;
  event_id: string | null;
  status: 'rejected' | 'conflict';
  reason: string;
  message: string;
}

export interface BatchResult {
  accepted: number;
  duplicates: number;
  conflicts: number;
  rejected: number;
  errors: BatchEventError[];
}

/** A time bound: RFC 3339 text or milliseconds since the epoch. */
export type TimeInput = string | number;

export type QuerySource = 'auto' | 'rollup' | 'raw';

export interface UsageParams {
  from: TimeInput;
  to: TimeInput;
  /** Default product_id, meter_id, model_id, unit. */
  group_by?: string[];
  product_id?: string;
  meter_id?: string;
  model_id?: string;
  /** Filters the events' `source` field. */
  event_source?: string;
  source?: QuerySource;
}

export type UsageLine = Record<string, string | number | null> & { quantity: string; event_count: number };

export interface UsageResult {
  account_id: string;
  from: string;
  to: string;
  source: QuerySource;
  lines: UsageLine[];
}

export interface EventsParams {
  from: TimeInput;
  to: TimeInput;
  meter_id?: string;
  product_id?: string;
  model_id?: string;
  limit?: number;
  cursor?: string;
}

export interface EventsPage {
  events: StoredUsageEvent[];
  next_cursor: string | null;
}

export interface JsonQuery {
  source?: QuerySource;
  account_id?: string;
  from: TimeInput;
  to: TimeInput;
  group_by?: string[];
  filters?: Record<string, unknown>;
  metrics?: ('sum' | 'count' | 'min' | 'max')[];
  order_by?: { key: string; dir?: 'asc' | 'desc' }[];
  limit?: number;
}

export type QueryValue = string | number | null;

export interface JsonQueryResult {
  rows: Record<string, QueryValue>[];
  stats: Record<string, string | number | boolean | null>;
}

export interface SqlResult {
  columns: string[];
  rows: QueryValue[][];
  stats: Record<string, string | number | boolean | null>;
}

export interface Health {
  status: 'ok';
  durability: string;
  uptime_s: number;
  /** The last flush error while flushes keep failing (ingest then fails too), else null. */
  flush_error: string | null;
}
