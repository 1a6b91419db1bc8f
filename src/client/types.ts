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

/** A billing line of a period: per (product_id, meter_id, model_id, unit), all kinds. */
export interface PeriodLine {
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  /** Decimal string: exact. */
  quantity: string;
  event_count: number;
}

export interface OpenPeriod {
  account_id: string;
  period: string;
  status: 'open';
  lines: PeriodLine[];
  /** Late corrections of earlier closed periods, carried into this one. */
  carried_adjustments: (PeriodLine & { period: string })[];
}

export interface ClosedPeriod {
  account_id: string;
  period: string;
  status: 'closed';
  lines: PeriodLine[];
  snapshot: {
    lines: PeriodLine[];
    watermark_ms: number;
    segment_ids: number[];
    closed_at_ms: number;
    evidence_digest: string;
  };
  adjustments: StoredUsageEvent[];
  adjustment_lines: PeriodLine[];
  net_lines: PeriodLine[];
}

export type Period = OpenPeriod | ClosedPeriod;

export interface RangeParams {
  from: TimeInput;
  to: TimeInput;
}

export interface Explanation {
  account_id: string;
  from_ms: number;
  to_ms: number;
  lines: PeriodLine[];
  provenance: { raw_segment_ids: number[]; rollup_segment_ids: number[]; memtable_rows: number };
  corrections: {
    event_id: string;
    kind: 'Correction' | 'Retraction';
    original_event_id: string;
    reason: string;
    timestamp_ms: number;
    quantity: string;
    product_id: string;
    meter_id: string;
    model_id: string | null;
    unit: string;
  }[];
}

export interface VerifyLineTotals {
  quantity: string;
  event_count: number;
  min: string | null;
  max: string | null;
}

export interface VerifyResult {
  ok: boolean;
  drift: {
    account_id: string;
    product_id: string;
    meter_id: string;
    model_id: string | null;
    unit: string;
    raw: VerifyLineTotals | null;
    rollup: VerifyLineTotals | null;
  }[];
  lines_compared: number;
  rollup_segments_read: number;
}

export interface Rejection {
  received_at_ms: number;
  index: number;
  event_id: string | null;
  status: 'rejected' | 'conflict';
  reason: string;
  /** The event as sent (cut when large: see `event_truncated`). */
  event: unknown;
  event_truncated?: boolean;
  account_id?: string | null;
}

export interface EventLookup {
  event_id: string;
  status: 'stored' | 'retracted' | 'rejected' | 'conflict' | 'unknown';
  location?: 'segment' | 'memtable';
  segment_id?: number | null;
  period?: string;
  period_closed?: boolean;
  line?: { product_id: string; meter_id: string; model_id: string | null; unit: string };
  event?: StoredUsageEvent;
  retracted_by?: { event_id: string; timestamp_ms: number; reason: string } | null;
  received_at_ms?: number;
  reason?: string;
  rejections: Rejection[];
}

export interface RejectionsParams {
  from?: TimeInput;
  to?: TimeInput;
  limit?: number;
  cursor?: string;
}

export interface RejectionsPage {
  rejections: Rejection[];
  next_cursor: string | null;
}
