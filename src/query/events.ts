/**
 * The raw audit listing (`db.events`, GET /v1/accounts/{id}/usage/events): the events of one
 * account in [from, to), optionally of one product/meter/model, ordered by
 * (timestamp_ms, event_id), one page at a time with an opaque keyset cursor.
 *
 * Invariants:
 * - a page holds the `limit` smallest (timestamp_ms, event_id) after the cursor, in order;
 * - the cursor is the last returned (timestamp_ms, event_id), not an offset: a flush moves
 *   events from memtable to segments without changing their key, and events are never
 *   deleted, so every event present when paging starts is returned exactly once; events
 *   ingested meanwhile appear once if their key sorts after the cursor, else not at all;
 * - segments are visited by ascending min timestamp and the scan stops once no later segment
 *   can hold a key below the page's last one, so a page costs about one page of segments.
 */
import { UsageDbError } from '../errors.ts';
import {
  COLUMN_NAMES,
  type ColumnBatch,
  type ColumnName,
  type DictColumn,
  type DictColumnName,
  type EventColumns,
  KIND_NAMES,
  NULL_CODE,
  quantityAt,
} from '../model/columns.ts';
import type { WireEvent } from '../model/event.ts';
import { quantityToString } from '../model/quantity.ts';
import type { EngineContext } from './execute.ts';
import { ID_BYTES_MAX } from './parse-json.ts';
import {
  bucketsOf,
  candidateEntries,
  emptyStats,
  type ScanTarget,
  scanSegments,
  segmentMayMatch,
} from './scan.ts';
import { parseRange } from './time.ts';
import type {
  BlockMetaView,
  EventsPage,
  EventsParams,
  QuerySnapshot,
  QueryStats,
  SegmentEntryView,
  SegmentReaderView,
  SegmentSource,
} from './types.ts';
import { lowerBound } from '../util/lower-bound.ts';
import type { DimensionsCache } from './value-ids.ts';

export const EVENTS_LIMIT_DEFAULT = 1_000;
export const EVENTS_LIMIT_MAX = 10_000;

const PARAMS = ['account_id', 'from', 'to', 'meter_id', 'product_id', 'model_id', 'limit', 'cursor'];

function invalid(message: string): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_INVALID_QUERY', message);
}

interface ParsedParams {
  accountId: string;
  fromMs: number;
  toMs: number;
  productId: string | undefined;
  meterId: string | undefined;
  modelId: string | null | undefined;
  limit: number;
  after: { ts: number; id: string } | null;
}

function checkId(value: unknown, what: string, nullable = false): string | null | undefined {
  if (value === undefined) return undefined;
  if (value === null && nullable) return null;
  if (typeof value !== 'string') throw invalid(`events.${what} must be a string`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes < 1 || bytes > ID_BYTES_MAX)
    throw invalid(`events.${what} must be 1-${ID_BYTES_MAX} bytes, got ${bytes}`);
  return value;
}

function parseLimit(value: unknown): number {
  if (value === undefined || value === null) return EVENTS_LIMIT_DEFAULT;
  const n = typeof value === 'string' && /^\d{1,9}$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > EVENTS_LIMIT_MAX) {
    throw invalid(`events.limit must be an integer from 1 to ${EVENTS_LIMIT_MAX}, got ${String(value)}`);
  }
  return n;
}

export function encodeCursor(ts: number, eventId: string): string {
  return Buffer.from(JSON.stringify([ts, eventId]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): { ts: number; id: string } {
  let parsed: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error('not base64url');
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid('events.cursor is malformed: pass next_cursor of the previous page unchanged');
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 2 ||
    !Number.isSafeInteger(parsed[0]) ||
    typeof parsed[1] !== 'string'
  ) {
    throw invalid('events.cursor is malformed: pass next_cursor of the previous page unchanged');
  }
  return { ts: parsed[0] as number, id: parsed[1] };
}

export function parseEventsParams(input: unknown): ParsedParams {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalid('events parameters must be an object');
  const p = input as Record<string, unknown>;
  for (const key of Object.keys(p)) {
    if (!PARAMS.includes(key))
      throw invalid(`events: unknown parameter "${key}"; parameters are ${PARAMS.join(', ')}`);
  }
  const accountId = checkId(p.account_id, 'account_id');
  if (typeof accountId !== 'string') throw invalid('events.account_id is required');
  const { fromMs, toMs } = parseRange(p.from, p.to, 'events');
  const cursor = p.cursor;
  if (cursor !== undefined && cursor !== null && typeof cursor !== 'string')
    throw invalid('events.cursor must be a string');
  return {
    accountId,
    fromMs,
    toMs,
    productId: checkId(p.product_id, 'product_id') ?? undefined,
    meterId: checkId(p.meter_id, 'meter_id') ?? undefined,
    modelId: checkId(p.model_id, 'model_id', true),
    limit: parseLimit(p.limit),
    after: typeof cursor === 'string' && cursor !== '' ? decodeCursor(cursor) : null,
  };
}

/** A block of a segment that rows of the page come from. */
interface BlockSource {
  entry: SegmentEntryView;
  block: number;
  rowCount: number;
  reader: SegmentReaderView;
  /** Every column but event_id, read once the block has a row on the page. */
  full: WireColumns | null;
}

/** Where a candidate's whole event is read from: a memtable, or one block of a segment. */
type CandidateSource = { columns: EventColumns } | BlockSource;

/** A matching row: its key and where to read the whole event from. */
interface Candidate {
  ts: number;
  /** Known for memtable rows; for segment rows decoded only when an order or the page needs it. */
  id: string | null;
  row: number;
  source: CandidateSource;
}

/** Code of `value` in a dictionary (NULL_CODE for null, -1 when absent). */
function codeOf(dict: readonly string[], value: string | null): number {
  return value === null ? NULL_CODE : dict.indexOf(value);
}

/** Code of `value` in a segment dictionary (sorted, so a binary search). */
function sortedCodeOf(dict: readonly string[], value: string | null): number {
  if (value === null) return NULL_CODE;
  const i = lowerBound(dict, value);
  return i < dict.length && dict[i] === value ? i : -1;
}

/** Rows of a memtable matching the account, product/meter/model, time range and cursor. */
function matchMemtableRows(
  columns: EventColumns,
  p: ParsedParams,
  lowMs: number,
  push: (ts: number, id: string, row: number) => void,
): void {
  const tests: { codes: Uint32Array; code: number }[] = [];
  const wanted: [DictColumnName, string | null | undefined][] = [
    ['account_id', p.accountId],
    ['product_id', p.productId],
    ['meter_id', p.meterId],
    ['model_id', p.modelId],
  ];
  for (const [name, value] of wanted) {
    if (value === undefined) continue;
    const col = columns[name];
    const code = codeOf(col.dict, value);
    if (code < 0) return;
    tests.push({ codes: col.codes, code });
  }
  const ts = columns.timestamp_ms;
  const after = p.after;
  rows: for (let row = 0; row < columns.rowCount; row++) {
    const t = ts[row];
    if (t < lowMs || t >= p.toMs) continue;
    for (const test of tests) if (test.codes[row] !== test.code) continue rows;
    const id = columns.event_id[row];
    if (after !== null && t === after.ts && id <= after.id) continue;
    push(t, id, row);
  }
}

/** Sort key of a stored code: null (NULL_CODE) first, then codes in dictionary order. */
function keyOf(code: number): number {
  return (code + 1) >>> 0;
}

/** First index in [lo, hi) whose key is >= k (keys ascending there). */
function lowerKey(codes: Uint32Array, lo: number, hi: number, k: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyOf(codes[mid]) < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lowerTime(ts: Float64Array, lo: number, hi: number, t: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ts[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** One level of the block's sort order: its codes, and the wanted key (-1 = any value). */
interface SortLevel {
  codes: Uint32Array;
  key: number;
}

/** The sort-order columns an audit filter needs: account, then through its last filtered level. */
const SORT_LEVELS: readonly DictColumnName[] = ['account_id', 'product_id', 'meter_id', 'model_id'];

/**
 * Rows of a segment block in [lowMs, toMs) matching the filters, appended to `out`. A block's
 * rows are sorted by (account, product, meter, model, timestamp) (docs/segment-format.md §2),
 * so the matching rows are a few contiguous ranges found by binary search, not a row scan:
 * each filtered level narrows the range, an unfiltered level in between is walked run by run,
 * and the timestamp is searched too when the levels reach the model.
 */
function matchSortedRows(
  batch: ColumnBatch,
  rowCount: number,
  levels: readonly (string | null | undefined)[],
  lowMs: number,
  toMs: number,
  keep: number,
  countFromMs: number,
  out: number[],
  timestamps: () => Float64Array = () => batch.timestamp_ms as Float64Array,
): void {
  const sort: SortLevel[] = [];
  for (let i = 0; i < levels.length; i++) {
    const col = batch[SORT_LEVELS[i]] as DictColumn | undefined;
    if (col === undefined) continue;
    const value = levels[i];
    let key = -1;
    if (value !== undefined) {
      const code = sortedCodeOf(col.dict, value);
      if (code < 0) return;
      key = keyOf(code);
    }
    sort.push({ codes: col.codes, key });
  }
  // A leaf range has one value per level (filtered, or walked run by run): its timestamps are
  // sorted when the levels reach model_id (account_id may be absent: a one-account block).
  const tsSorted = levels.length === SORT_LEVELS.length;
  // Decoded on first need: a block whose levels hold no wanted row never decodes its times.
  let known: Float64Array | null = null;
  const collect = (depth: number, lo: number, hi: number): void => {
    if (lo >= hi) return;
    if (depth === sort.length) {
      const ts = (known ??= timestamps());
      if (tsSorted) {
        const from = lowerTime(ts, lo, hi, lowMs);
        let to = lowerTime(ts, from, hi, toMs);
        // A page keeps `keep` rows: past the first `keep` of a time-sorted range from
        // countFromMs (rows at the cursor's own time may all be dropped as already returned),
        // only rows tied on time with the last of them can still be among them (ties go by id).
        const base = lowerTime(ts, from, to, countFromMs);
        if (to - base > keep) {
          const end = to;
          to = base + keep;
          while (to < end && ts[to] === ts[to - 1]) to++;
        }
        for (let r = from; r < to; r++) out.push(r);
      } else {
        for (let r = lo; r < hi; r++) if (ts[r] >= lowMs && ts[r] < toMs) out.push(r);
      }
      return;
    }
    const { codes, key } = sort[depth];
    if (key >= 0) {
      const from = lowerKey(codes, lo, hi, key);
      collect(depth + 1, from, lowerKey(codes, from, hi, key + 1));
      return;
    }
    // Any value here, a filter further down: each value's run is sorted by the next levels.
    for (let from = lo; from < hi;) {
      const to = lowerKey(codes, from, hi, keyOf(codes[from]) + 1);
      collect(depth + 1, from, to);
      from = to;
    }
  };
  collect(0, 0, rowCount);
}

/** Fills in the missing ids of `candidates`, one decode per block. */
function resolveIds(store: SegmentSource, candidates: readonly Candidate[]): void {
  const byBlock = new Map<BlockSource, Candidate[]>();
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    if (c.id !== null) continue;
    const source = c.source as BlockSource;
    const list = byBlock.get(source);
    if (list === undefined) byBlock.set(source, [c]);
    else list.push(c);
  }
  byBlock.forEach((list, source) => {
    const ids = store.decodeEventIds(
      source.entry,
      source.reader,
      source.block,
      list.map((c) => c.row),
    );
    for (let i = 0; i < list.length; i++) list[i].id = ids[i];
  });
}

const byId = (a: Candidate, b: Candidate): number => {
  const x = a.id as string;
  const y = b.id as string;
  return x < y ? -1 : x > y ? 1 : 0;
};

/** Candidates (sorted by time) that share their timestamp with another: ordered by id. */
function tiesOf(candidates: readonly Candidate[]): Candidate[] {
  const ties: Candidate[] = [];
  for (let i = 0; i < candidates.length;) {
    let j = i + 1;
    while (j < candidates.length && candidates[j].ts === candidates[i].ts) j++;
    if (j - i > 1) for (let k = i; k < j; k++) ties.push(candidates[k]);
    i = j;
  }
  return ties;
}

/** Reads the chunks `names` of the segment blocks behind `candidates` (memtable rows need none). */
async function prefetchCandidates(
  store: SegmentSource,
  candidates: readonly Candidate[],
  names: readonly ColumnName[],
): Promise<void> {
  if (store.prefetch === undefined) return;
  const byReader = new Map<SegmentReaderView, { entry: SegmentEntryView; blocks: Set<number> }>();
  for (const c of candidates) {
    if ('columns' in c.source) continue;
    const { entry, reader, block } = c.source;
    let group = byReader.get(reader);
    if (group === undefined) byReader.set(reader, (group = { entry, blocks: new Set() }));
    group.blocks.add(block);
  }
  await store.prefetch(
    [...byReader].map(([reader, { entry, blocks }]) => ({ entry, reader, names, blocks: [...blocks] })),
  );
}

/**
 * Orders candidates (already sorted by time) by (timestamp_ms, event_id): ids are decoded only
 * for candidates that share a timestamp with another, and those runs are ordered by id.
 */
function orderCandidates(store: SegmentSource, candidates: Candidate[]): void {
  const ties = tiesOf(candidates);
  if (ties.length === 0) return;
  resolveIds(store, ties);
  for (let i = 0; i < candidates.length;) {
    let j = i + 1;
    while (j < candidates.length && candidates[j].ts === candidates[i].ts) j++;
    if (j - i > 1) {
      const run = candidates.slice(i, j).sort(byId);
      for (let k = i; k < j; k++) candidates[k] = run[k - i];
    }
    i = j;
  }
}

/** One page of the audit listing, with what it touched. */
export async function executeEvents(
  ctx: EngineContext,
  snapshot: QuerySnapshot,
  params: EventsParams,
): Promise<{ page: EventsPage; stats: QueryStats }> {
  const p = parseEventsParams(params);
  const stats = emptyStats(snapshot.segments.length);
  const lowMs = p.after === null ? p.fromMs : Math.max(p.fromMs, p.after.ts);
  if (lowMs >= p.toMs) return { page: { events: [], next_cursor: null }, stats };
  const store = snapshot.store;
  const candidates: Candidate[] = [];
  for (const columns of snapshot.memtables) {
    stats.memtableRows += columns.rowCount;
    stats.rowsScanned += columns.rowCount;
    matchMemtableRows(columns, p, lowMs, (ts, id, row) =>
      candidates.push({ ts, id, row, source: { columns } }),
    );
  }
  const target: ScanTarget = {
    accountIds: [p.accountId],
    fromMs: lowMs,
    toMs: p.toMs,
    productIds: p.productId === undefined ? null : new Set([p.productId]),
    meterIds: p.meterId === undefined ? null : new Set([p.meterId]),
    modelIds: p.modelId === undefined ? null : new Set([p.modelId]),
  };
  // Manifest pruning first, so only this account's segments are sorted by time.
  const buckets = bucketsOf(target, snapshot.bucketCount);
  const segments = candidateEntries(snapshot, buckets)
    .filter((e) => segmentMayMatch(e, target, buckets))
    .sort((a, b) => a.min_ts - b.min_ts);
  stats.segmentsPruned += snapshot.segments.length - segments.length;
  const keep = p.limit + 1;
  // Rows at the cursor's time are returned only past its id: count a range's rows after it.
  const countFromMs = p.after === null ? lowMs : p.after.ts + 1;
  let ordered = 0;
  const stopBefore = async (entry: SegmentEntryView): Promise<boolean> => {
    if (candidates.length < keep) return false;
    if (ordered !== candidates.length) {
      candidates.sort((a, b) => a.ts - b.ts);
      await prefetchCandidates(store, tiesOf(candidates), ['event_id']);
      orderCandidates(store, candidates);
      candidates.length = keep;
      ordered = keep;
    }
    return entry.min_ts > candidates[keep - 1].ts;
  };
  // The sort levels through the last filtered one (account always), and their filter values.
  const levels: (string | null | undefined)[] = [p.accountId, p.productId, p.meterId, p.modelId];
  while (levels[levels.length - 1] === undefined) levels.pop();
  // With a filtered level below the account, a block's times are decoded only when its levels
  // hold wanted rows (most blocks of a heavy account's day hold other meters and models).
  const lazyTimes = levels.length > 1;
  const sortColumns: ColumnName[] = [
    ...(lazyTimes ? [] : ['timestamp_ms' as const]),
    ...SORT_LEVELS.slice(1, levels.length),
  ];
  const withAccount: ColumnName[] = [...sortColumns, 'account_id'];
  const extraColumns: ColumnName[] = [
    ...(lazyTimes ? ['timestamp_ms' as const] : []),
    ...(p.after === null ? [] : ['event_id' as const]),
  ];
  const after = p.after;
  const rows: number[] = [];
  await scanSegments(
    snapshot,
    segments,
    target,
    ctx.cache,
    stats,
    {
      columnsFor(block: BlockMetaView) {
        const single = block.minAccountId === p.accountId && block.maxAccountId === p.accountId;
        return single ? sortColumns : withAccount;
      },
      // Rows at the cursor's timestamp are told apart by id, decoded during the visit; times
      // may be decoded there too (lazyTimes).
      ...(extraColumns.length === 0 ? {} : { extraColumns }),
      visit(
        batch: ColumnBatch,
        block: BlockMetaView,
        entry: SegmentEntryView,
        blockIndex: number,
        reader: SegmentReaderView,
      ) {
        rows.length = 0;
        let times = batch.timestamp_ms;
        const timestamps = (): Float64Array => {
          if (times === undefined) {
            const seg = ctx.cache.segment(store, entry);
            const got = ctx.cache.block(seg, store, entry, reader, blockIndex, block.rowCount, TIMES, stats);
            times = got.timestamp_ms as Float64Array;
          }
          return times;
        };
        matchSortedRows(batch, block.rowCount, levels, lowMs, p.toMs, keep, countFromMs, rows, timestamps);
        if (rows.length === 0) return;
        const source: BlockSource = {
          entry,
          block: blockIndex,
          rowCount: block.rowCount,
          reader,
          full: null,
        };
        const ts = timestamps();
        const found: Candidate[] = rows.map((row) => ({ ts: ts[row], id: null, row, source }));
        if (after !== null) {
          // Rows at the cursor's timestamp are kept only past its id.
          const atCursor = found.filter((c) => c.ts === after.ts);
          if (atCursor.length > 0) {
            resolveIds(store, atCursor);
            for (let i = 0; i < found.length; i++) {
              const c = found[i];
              if (c.ts !== after.ts || (c.id as string) > after.id) candidates.push(c);
            }
            return;
          }
        }
        for (let i = 0; i < found.length; i++) candidates.push(found[i]);
      },
    },
    stopBefore,
  );
  candidates.sort((a, b) => a.ts - b.ts);
  await prefetchCandidates(store, tiesOf(candidates), ['event_id']);
  orderCandidates(store, candidates);
  const page = candidates.slice(0, p.limit);
  await prefetchCandidates(store, page, COLUMN_NAMES);
  resolveIds(store, page);
  const events = page.map((c) => materialize(ctx, snapshot, c, stats));
  const last = page[page.length - 1];
  const next_cursor = candidates.length > p.limit ? encodeCursor(last.ts, last.id as string) : null;
  return { page: { events, next_cursor }, stats };
}

const TIMES: readonly ColumnName[] = ['timestamp_ms'];

/** Columns a returned event is built from (its id comes separately). */
const WIRE_COLUMNS: readonly ColumnName[] = COLUMN_NAMES.filter((name) => name !== 'event_id');
type WireColumns = Omit<EventColumns, 'event_id'>;

function materialize(
  ctx: EngineContext,
  snapshot: QuerySnapshot,
  c: Candidate,
  stats: QueryStats,
): WireEvent {
  const source = c.source;
  if ('columns' in source) return wireEventAt(source.columns, c.row, ctx.dims, c.id as string);
  if (source.full === null) {
    // Every column but the ids, once per block of the page, kept apart from the chunks (one-off
    // wide reads; see ChunkCache.wideBlock) so the next page, usually in the same block, reuses it.
    const seg = ctx.cache.segment(snapshot.store, source.entry);
    source.full = ctx.cache.wideBlock(
      seg,
      snapshot.store,
      source.entry,
      source.reader,
      source.block,
      source.rowCount,
      WIRE_COLUMNS,
      stats,
    ) as WireColumns;
  }
  return wireEventAt(source.full, c.row, ctx.dims, c.id as string);
}

/** A required dictionary value (the writer never stores null there). */
function required(col: DictColumn, row: number): string {
  const code = col.codes[row];
  if (code === NULL_CODE) throw new Error('required column holds a null');
  return col.dict[code];
}

function nullable(col: DictColumn, row: number): string | null {
  const code = col.codes[row];
  return code === NULL_CODE ? null : col.dict[code];
}

/**
 * The wire form of a stored row: the same object as toWireEvent(eventOfRow(...)) (a test
 * holds them equal), built in one step and with parsed dimension sets cached.
 */
export function wireEventOf(c: EventColumns, row: number, dims: DimensionsCache): WireEvent {
  return wireEventAt(c, row, dims, c.event_id[row]);
}

function wireEventAt(c: WireColumns, row: number, dims: DimensionsCache, eventId: string): WireEvent {
  const originalId = c.correction_original_event_id[row];
  const v = c.quantity.values[row];
  return {
    event_id: eventId,
    kind: KIND_NAMES[c.kind[row]],
    correction_ref:
      originalId === null ? null : { original_event_id: originalId, reason: c.correction_reason[row] ?? '' },
    account_id: required(c.account_id, row),
    subscription_id: nullable(c.subscription_id, row),
    product_id: required(c.product_id, row),
    meter_id: required(c.meter_id, row),
    model_id: nullable(c.model_id, row),
    unit: required(c.unit, row),
    source: required(c.source, row),
    timestamp_ms: c.timestamp_ms[row],
    quantity: Number.isNaN(v) ? quantityToString(quantityAt(c.quantity, row)) : String(v),
    // A copy: the parsed set is shared by the cache, the caller may mutate the event.
    dimensions: { ...dims.of(c.dimensions.dict)[c.dimensions.codes[row]] },
    ingested_at_ms: c.ingested_at_ms[row],
  };
}
