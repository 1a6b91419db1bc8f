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
} from './types.ts';
import type { DimensionsCache } from './value-ids.ts';

export const EVENTS_LIMIT_DEFAULT = 1_000;
export const EVENTS_LIMIT_MAX = 10_000;

const PARAMS = ['account_id', 'from', 'to', 'meter_id', 'product_id', 'model_id', 'limit', 'cursor'];
const encoder = new TextEncoder();

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
  const bytes = encoder.encode(value).length;
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

/** Where a candidate's whole event is read from: a memtable, or one block of a segment. */
type CandidateSource =
  | { columns: EventColumns }
  | {
      entry: SegmentEntryView;
      block: number;
      rowCount: number;
      reader: SegmentReaderView;
      full: EventColumns | null;
    };

/** A matching row: its key and where to read the whole event from. */
interface Candidate {
  ts: number;
  id: string;
  row: number;
  source: CandidateSource;
}

function compareCandidates(a: Candidate, b: Candidate): number {
  return a.ts - b.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Code of `value` in a dictionary (NULL_CODE for null, -1 when absent). */
function codeOf(dict: readonly string[], value: string | null): number {
  return value === null ? NULL_CODE : dict.indexOf(value);
}

/** Rows of a chunk matching the account, product/meter/model, time range and cursor. */
function matchRows(
  batch: ColumnBatch,
  rowCount: number,
  p: ParsedParams,
  lowMs: number,
  checkAccount: boolean,
  ids: () => readonly string[],
  push: (ts: number, id: string, row: number) => void,
): void {
  const tests: { codes: Uint32Array; code: number }[] = [];
  const wanted: [ColumnName, string | null | undefined][] = [
    ['account_id', checkAccount ? p.accountId : undefined],
    ['product_id', p.productId],
    ['meter_id', p.meterId],
    ['model_id', p.modelId],
  ];
  for (const [name, value] of wanted) {
    if (value === undefined) continue;
    const col = batch[name] as DictColumn;
    const code = codeOf(col.dict, value);
    if (code < 0) return;
    tests.push({ codes: col.codes, code });
  }
  const ts = batch.timestamp_ms as Float64Array;
  const after = p.after;
  let eventIds: readonly string[] | null = null;
  rows: for (let row = 0; row < rowCount; row++) {
    const t = ts[row];
    if (t < lowMs || t >= p.toMs) continue;
    for (const test of tests) if (test.codes[row] !== test.code) continue rows;
    eventIds ??= ids();
    const id = eventIds[row];
    if (after !== null && t === after.ts && id <= after.id) continue;
    push(t, id, row);
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
  const candidates: Candidate[] = [];
  for (const columns of snapshot.memtables) {
    stats.memtableRows += columns.rowCount;
    stats.rowsScanned += columns.rowCount;
    matchRows(
      columns,
      columns.rowCount,
      p,
      lowMs,
      true,
      () => columns.event_id,
      (ts, id, row) => candidates.push({ ts, id, row, source: { columns } }),
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
  let sorted = 0;
  const stopBefore = (entry: SegmentEntryView): boolean => {
    if (candidates.length < keep) return false;
    if (sorted !== candidates.length) {
      candidates.sort(compareCandidates);
      candidates.length = keep;
      sorted = keep;
    }
    return entry.min_ts > candidates[keep - 1].ts;
  };
  const filterColumns: ColumnName[] = ['timestamp_ms'];
  if (p.productId !== undefined) filterColumns.push('product_id');
  if (p.meterId !== undefined) filterColumns.push('meter_id');
  if (p.modelId !== undefined) filterColumns.push('model_id');
  const withAccount: ColumnName[] = [...filterColumns, 'account_id'];
  let checkAccount = true;
  await scanSegments(
    snapshot,
    segments,
    target,
    ctx.cache,
    stats,
    {
      columnsFor(block: BlockMetaView) {
        checkAccount = !(block.minAccountId === p.accountId && block.maxAccountId === p.accountId);
        return checkAccount ? withAccount : filterColumns;
      },
      visit(
        batch: ColumnBatch,
        block: BlockMetaView,
        entry: SegmentEntryView,
        blockIndex: number,
        reader: SegmentReaderView,
      ) {
        const source: CandidateSource = {
          entry,
          block: blockIndex,
          rowCount: block.rowCount,
          reader,
          full: null,
        };
        const ids = () => readBlock(ctx, snapshot, source, ['event_id'], stats).event_id as string[];
        matchRows(batch, block.rowCount, p, lowMs, checkAccount, ids, (ts, id, row) =>
          candidates.push({ ts, id, row, source }),
        );
      },
    },
    stopBefore,
  );
  candidates.sort(compareCandidates);
  const page = candidates.slice(0, p.limit);
  const events = page.map((c) => materialize(ctx, snapshot, c, stats));
  const last = page[page.length - 1];
  const next_cursor = candidates.length > p.limit ? encodeCursor(last.ts, last.id) : null;
  return { page: { events, next_cursor }, stats };
}

/** Columns of one block, cached at the cold end (one-off wide reads; see ChunkCache). */
function readBlock(
  ctx: EngineContext,
  snapshot: QuerySnapshot,
  source: { entry: SegmentEntryView; block: number; rowCount: number; reader: SegmentReaderView },
  names: readonly ColumnName[],
  stats: QueryStats,
): ColumnBatch {
  const { entry, block, rowCount, reader } = source;
  const seg = ctx.cache.segment(snapshot.store, entry);
  return ctx.cache.block(seg, snapshot.store, entry, reader, block, rowCount, names, stats, true);
}

function materialize(
  ctx: EngineContext,
  snapshot: QuerySnapshot,
  c: Candidate,
  stats: QueryStats,
): WireEvent {
  const source = c.source;
  if ('columns' in source) return wireEventOf(source.columns, c.row, ctx.dims);
  // Every column of the block, once per block of the page.
  source.full ??= readBlock(ctx, snapshot, source, COLUMN_NAMES, stats) as EventColumns;
  return wireEventOf(source.full, c.row, ctx.dims);
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
  const originalId = c.correction_original_event_id[row];
  const v = c.quantity.values[row];
  return {
    event_id: c.event_id[row],
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
