/**
 * Query shapes: the JSON query of docs/query.md (wire form), its validated form, results, stats,
 * the audit page, and the narrow views of the storage layer that the engine reads through.
 *
 * Invariants:
 * - a `Query` only comes out of `parseJsonQuery` or the SQL translator: validated, from < to,
 *   group keys unique; value lists are non-empty from JSON, and empty only when SQL
 *   conditions contradict each other (a = 'x' AND a = 'y'): an empty list matches nothing;
 * - in result rows, `sum`/`min`/`max` are decimal strings and `count` is an exact integer;
 * - the storage views are structural subsets of `ReadSnapshot` (src/db.ts), so a snapshot of
 *   the real database is accepted as is, and tests may hand-build one.
 */
import type {
  ColumnBatch,
  ColumnName,
  DictColumn,
  EventColumns,
  EventKind,
  QuantityColumn,
} from '../model/columns.ts';
import type { WireEvent } from '../model/event.ts';

// ---------------------------------------------------------------- wire (JSON) form

export type QuerySource = 'auto' | 'rollup' | 'raw';
export const QUERY_SOURCES: readonly QuerySource[] = ['auto', 'rollup', 'raw'];

export const METRICS = ['sum', 'count', 'min', 'max'] as const;
export type Metric = (typeof METRICS)[number];

export const BASE_GROUP_KEYS = [
  'account_id',
  'subscription_id',
  'product_id',
  'meter_id',
  'model_id',
  'unit',
  'source',
  'kind',
  'day',
  'hour',
] as const;
export type BaseGroupKey = (typeof BASE_GROUP_KEYS)[number];
export const DIMENSION_KEY_PREFIX = 'dimensions.';
export type DimensionGroupKey = `dimensions.${string}`;
export type GroupKey = BaseGroupKey | DimensionGroupKey;

/** Columns that `filters` may constrain by value (a value or a list of values). */
export const FILTER_COLUMNS = [
  'product_id',
  'meter_id',
  'model_id',
  'source',
  'unit',
  'kind',
  'subscription_id',
] as const;
export type FilterColumn = (typeof FILTER_COLUMNS)[number];
/** Filter columns that may hold null (a filter value of null matches those events). */
export const NULLABLE_FILTER_COLUMNS: readonly FilterColumn[] = ['model_id', 'subscription_id'];

/** A time bound: RFC 3339 text or milliseconds since the epoch (UTC). */
export type TimeInput = string | number;

export type OrderDir = 'asc' | 'desc';
export interface OrderBy {
  /** A metric (`sum`, `count`, `min`, `max`) or one of the query's group keys. */
  key: string;
  dir?: OrderDir;
}

export interface JsonQueryFilters {
  product_id?: string | string[];
  meter_id?: string | string[];
  model_id?: string | null | (string | null)[];
  source?: string | string[];
  unit?: string | string[];
  kind?: EventKind | EventKind[];
  subscription_id?: string | null | (string | null)[];
  /** Every listed dimension must be present with exactly this value. */
  dimensions?: Record<string, string>;
}

/** POST /v1/query/json and `db.query()` (docs/query.md). */
export interface JsonQuery {
  source?: QuerySource;
  account_id?: string;
  from: TimeInput;
  to: TimeInput;
  group_by?: string[];
  filters?: JsonQueryFilters;
  metrics?: Metric[];
  order_by?: OrderBy[];
  limit?: number;
}

// ---------------------------------------------------------------- validated form

export interface QueryOrder {
  key: Metric | GroupKey;
  dir: OrderDir;
}

export interface Query {
  source: QuerySource;
  /** null = every account; otherwise the allowed accounts (the SQL `IN` form may give several). */
  accountIds: readonly string[] | null;
  /** Half-open [fromMs, toMs). */
  fromMs: number;
  toMs: number;
  groupBy: readonly GroupKey[];
  /** Allowed values per filtered column (null allowed only in nullable columns). */
  filters: Readonly<Partial<Record<FilterColumn, readonly (string | null)[]>>>;
  /** AND of dimension key = value. */
  dimensions: readonly (readonly [string, string])[];
  metrics: readonly Metric[];
  orderBy: readonly QueryOrder[];
  limit: number | null;
}

// ---------------------------------------------------------------- results

export type RowValue = string | number | null;
/** Group keys (flat, `dimensions.<key>` for dimension keys) and the requested metrics. */
export type QueryRow = Record<string, RowValue>;

/** What a query touched: pruning is visible (and tested) through these counts. */
export interface QueryStats {
  /** 'rollup' when rollup rows answered part of the range, else 'raw'. */
  path: 'raw' | 'rollup';
  /** Why rollups could not serve this query (it then ran on raw events), or null. */
  fallback: string | null;
  /** A rollup-path query also scanned raw events (uncovered segments or range edges). */
  rawTail: boolean;
  rollupSegmentsRead: number;
  rollupRows: number;
  /** Segments in the snapshot. */
  segmentsConsidered: number;
  /** Segments left out by the manifest (bucket, time range, account range) without opening. */
  segmentsPruned: number;
  /** Segments whose reader was opened (and then maybe left out by their value sets). */
  segmentsOpened: number;
  /** Opened segments from which at least one block was read. */
  segmentsScanned: number;
  blocksRead: number;
  /** Blocks of opened segments that were not read (block metadata or value sets ruled them out). */
  blocksSkipped: number;
  /** Rows examined: every row of every block read, plus memtable rows. */
  rowsScanned: number;
  memtableRows: number;
  /** Decoded column chunks served from / added to the chunk cache by this query. */
  cacheHits: number;
  cacheMisses: number;
}

export interface QueryResult {
  rows: QueryRow[];
  stats: QueryStats;
}

export interface SqlResult {
  /** The alias, else the lower-cased expression such as `sum(quantity)`. */
  columns: string[];
  rows: RowValue[][];
  stats: QueryStats;
}

// ---------------------------------------------------------------- raw audit

/** `db.events()` and GET /v1/accounts/{id}/usage/events. */
export interface EventsParams {
  account_id: string;
  from: TimeInput;
  to: TimeInput;
  meter_id?: string;
  product_id?: string;
  /** null = events without a model. */
  model_id?: string | null;
  /** Default 1,000; at most 10,000 (more is rejected). */
  limit?: number;
  /** `next_cursor` of the previous page. */
  cursor?: string | null;
}

export interface EventsPage {
  events: WireEvent[];
  /** null on the last page. */
  next_cursor: string | null;
}

// ---------------------------------------------------------------- storage views

export interface BlockMetaView {
  firstRow: number;
  rowCount: number;
  minTimestampMs: number;
  maxTimestampMs: number;
  minAccountId: string;
  maxAccountId: string;
}

export interface SegmentMetaView {
  rowCount: number;
  accountIds: readonly string[];
  productIds: readonly string[];
  meterIds: readonly string[];
  modelIds: readonly (string | null)[];
  blocks: readonly BlockMetaView[];
}

/**
 * What the engine needs of a snapshot entry: a segment file, or one (day, bucket) partition
 * slice of one. The partition fields, when present, let the planner prune without opening.
 */
export interface SegmentEntryView {
  /** Unique among the entries of a store, for as long as the entry exists. */
  id: number;
  rows: number;
  min_ts: number;
  max_ts: number;
  size_bytes: number;
  /** CRC32C of the file's bytes: identifies them for caches. */
  crc32c: number;
  bucket?: number;
  min_account?: string;
  max_account?: string;
  /** The file an entry lies in, when several entries share one (partition slices). */
  segment_id?: number;
}

/** One entry's chunks to read before its blocks are decoded. */
export interface PrefetchRequest {
  entry: SegmentEntryView;
  reader: SegmentReaderView;
  names: readonly ColumnName[];
  blocks: readonly number[];
}

export interface SegmentReaderView {
  readonly meta: SegmentMetaView;
  selectBlocks(filter: { accountId?: string; fromMs?: number; toMs?: number }): number[];
}

export interface SegmentSource {
  reader(entry: SegmentEntryView): Promise<SegmentReaderView>;
  /** Decodes columns of the given blocks (rows concatenated in block order). */
  decode(
    entry: SegmentEntryView,
    reader: SegmentReaderView,
    names: readonly ColumnName[],
    blocks?: readonly number[],
  ): ColumnBatch;
  /**
   * Reads from disk the chunks of each request's `names` × `blocks` that its reader does not
   * hold yet, so that `decode` and `decodeEventIds` of them need no I/O; requests on one file
   * are read together (runs of nearby blocks in one read). Optional: a source whose readers
   * hold every chunk (a whole file in memory, a test's hand-built source) leaves it out.
   */
  prefetch?(requests: readonly PrefetchRequest[]): Promise<void>;
  /** The event ids of the given rows of one block (what an audit page returns of it). */
  decodeEventIds(
    entry: SegmentEntryView,
    reader: SegmentReaderView,
    block: number,
    rows: ArrayLike<number>,
  ): string[];
}

/** Rollup rows read as an event batch (bucket start as time, sum as quantity) with weights. */
export interface RollupBatch {
  rowCount: number;
  account_id: DictColumn;
  subscription_id: DictColumn;
  product_id: DictColumn;
  meter_id: DictColumn;
  model_id: DictColumn;
  unit: DictColumn;
  source: DictColumn;
  kind: Uint8Array;
  timestamp_ms: Float64Array;
  quantity: QuantityColumn;
  count: Float64Array;
  min: QuantityColumn;
  max: QuantityColumn;
  first_ts: Float64Array;
  last_ts: Float64Array;
}

export interface RollupEntryView {
  id: number;
  level: 'hour' | 'day' | 'month' | 'meter_day' | 'meter_month';
  /** Raw segment files it summarises. */
  covers: readonly number[];
  rows: number;
  min_ts: number;
  max_ts: number;
  size_bytes: number;
  crc32c: number;
}

export interface RollupBlockFilter {
  /** Sorted, or null for all accounts. */
  accountIds: readonly string[] | null;
  /** Bucket starts in [fromMs, toMs). */
  fromMs: number;
  toMs: number;
}

export interface RollupSource {
  read(entry: RollupEntryView, filter: RollupBlockFilter): Promise<RollupBatch[]>;
}

/** A consistent point-in-time view: committed segments + acknowledged memtable rows. */
export interface QuerySnapshot {
  bucketCount: number;
  segments: readonly SegmentEntryView[];
  store: SegmentSource;
  memtables: readonly EventColumns[];
  /** Rollup segments of the same version (absent: none, every query reads raw events). */
  rollups?: { entries: readonly RollupEntryView[]; store: RollupSource };
}
