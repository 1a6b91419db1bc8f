/**
 * runQuery: plans (scan.ts), aggregates (aggregate.ts), orders and limits (order.ts) one
 * validated query over a read snapshot, and reports what it touched.
 *
 * Invariants:
 * - every committed segment and every memtable row of the snapshot is either pruned by a
 *   necessary condition or filtered row by row: the answer equals a brute-force evaluation;
 * - the snapshot holds no event twice (db.readSnapshot), so nothing is counted twice;
 * - `auto` and `rollup` read rollups for the raw files they cover and raw events for the rest
 *   (planSources): the answer equals the raw path's, which `verify` checks.
 */
import type { ColumnBatch, ColumnName } from '../model/columns.ts';
import { quantityToString } from '../model/quantity.ts';
import { Aggregator, codeIndex, type RowWeights } from './aggregate.ts';
import type { ChunkCache, SegmentChunks } from './chunk-cache.ts';
import { type BlockSummary, concatSummaries, oneDay, type SummaryShape, summarize } from './summary.ts';
import { digitOrder, orderAndLimit, type ResultGroup } from './order.ts';
import { METER_GRAIN_COLUMNS, meterLevelOf, splitRange } from '../rollup/levels.ts';
import { ROLLUP_DICT_COLUMNS, type RollupDictColumn } from '../rollup/rollup-rows.ts';
import { lowerBound } from '../util/lower-bound.ts';
import { assert } from '../errors.ts';
import { bucketsOf, candidateEntries, emptyStats, type ScanTarget, scanSegments } from './scan.ts';
import {
  type BlockMetaView,
  DIMENSION_KEY_PREFIX,
  type Metric,
  type Query,
  type QueryResult,
  type QueryRow,
  type QuerySnapshot,
  type QueryStats,
  type RollupBatch,
  type RollupEntryView,
  type SegmentEntryView,
} from './types.ts';
import type { DictColumn, QuantityColumn } from '../model/columns.ts';
import { type DimensionsCache, VALUE_IDS_MAX, ValueIds } from './value-ids.ts';

export interface EngineContext {
  cache: ChunkCache;
  dims: DimensionsCache;
  /** Replaced (between queries) when it has grown past VALUE_IDS_MAX. */
  ids: ValueIds;
}

function valueSet(values: readonly (string | null)[] | undefined): ReadonlySet<string | null> | null {
  return values === undefined ? null : new Set(values);
}

export function scanTargetOf(query: Query): ScanTarget {
  return {
    accountIds: query.accountIds === null ? null : [...new Set(query.accountIds)].sort(),
    fromMs: query.fromMs,
    toMs: query.toMs,
    productIds: valueSet(query.filters.product_id),
    meterIds: valueSet(query.filters.meter_id),
    modelIds: valueSet(query.filters.model_id),
  };
}

const METRIC_NAMES: readonly string[] = ['sum', 'count', 'min', 'max'];

/** What a query read: raw segment files it took a block from, rollup segments it read. */
export interface Provenance {
  raw: Set<number>;
  rollup: Set<number>;
}

/** `provenance`, when given, receives what was read (explain and period snapshots). */
export async function executeQuery(
  ctx: EngineContext,
  snapshot: QuerySnapshot,
  query: Query,
  provenance?: Provenance,
): Promise<QueryResult> {
  const needed = new Set<Metric>(query.metrics);
  for (const o of query.orderBy) if (METRIC_NAMES.includes(o.key)) needed.add(o.key as Metric);
  if (ctx.ids.size > VALUE_IDS_MAX) ctx.ids = new ValueIds();
  const agg = new Aggregator(query, needed, ctx);
  const stats = emptyStats(snapshot.segments.length);
  const target = scanTargetOf(query);
  const entries = candidateEntries(snapshot, bucketsOf(target, snapshot.bucketCount));
  stats.segmentsPruned += snapshot.segments.length - entries.length;
  const plan = planSources(snapshot, query, entries);
  stats.fallback = plan.fallback;
  for (const piece of plan.rollupPieces) await visitRollups(snapshot, piece, target, agg, stats, provenance);
  for (const piece of plan.rawPieces) {
    if (plan.rollupPieces.length > 0) stats.rawTail = true;
    await scanRaw(ctx, snapshot, piece, target, agg, stats, provenance);
  }
  agg.setRange(query.fromMs, query.toMs);
  for (const m of snapshot.memtables) {
    stats.memtableRows += m.rowCount;
    stats.rowsScanned += m.rowCount;
    agg.visit(m, { rowCount: m.rowCount, timeFilter: true, accountFilter: true });
  }
  agg.finish();
  return { rows: orderedRows(agg, query), stats };
}

/**
 * The result rows in query order. Ordered by the group keys alone (the usual case), the groups
 * are put in key order from their digits; an order by metric compares groups. Either way the
 * rows are made from the aggregator's groups, in that order.
 */
function orderedRows(agg: Aggregator, query: Query): QueryRow[] {
  if (query.orderBy.length === 0 && query.groupBy.length > 0) {
    const keyed = agg.keyDigits();
    if (keyed !== null) {
      const order = digitOrder(keyed.digits, keyed.cards, agg.groupCount);
      return toRows(
        agg,
        order,
        query.limit === null ? order.length : Math.min(query.limit, order.length),
        query,
      );
    }
  }
  // No group keys: exactly one row of totals, zeros when nothing matched.
  if (query.groupBy.length === 0 && agg.groupCount === 0)
    return query.limit === 0 ? [] : [totalsOfNothing(query)];
  const groups: ResultGroup[] = agg.results();
  const ordered = orderAndLimit(groups, query.orderBy, query.groupBy, query.limit, (g) => agg.rank(g));
  const order = Int32Array.from(ordered, (r) => r.group);
  return toRows(agg, order, order.length, query);
}

/** The one row of a query without group keys that matched nothing. */
function totalsOfNothing(query: Query): QueryRow {
  const row: QueryRow = {};
  for (const m of query.metrics) row[m] = m === 'count' ? 0 : m === 'sum' ? quantityToString(0) : null;
  return row;
}

/** Rows of the groups `order[0..n-1]`, as the query names them. */
function toRows(agg: Aggregator, order: Int32Array, n: number, query: Query): QueryRow[] {
  const rows = new Array<QueryRow>(n);
  const keys = query.groupBy;
  const metrics = query.metrics;
  for (let i = 0; i < n; i++) {
    const g = order[i];
    const row: QueryRow = {};
    // One store site per key position (each sees one name per query shape), not one site
    // for every name: about 4x faster.
    if (keys.length > 0) row[keys[0]] = agg.keyValue(g, 0);
    if (keys.length > 1) row[keys[1]] = agg.keyValue(g, 1);
    if (keys.length > 2) row[keys[2]] = agg.keyValue(g, 2);
    if (keys.length > 3) row[keys[3]] = agg.keyValue(g, 3);
    for (let k = 4; k < keys.length; k++) row[keys[k]] = agg.keyValue(g, k);
    for (const m of metrics) {
      if (m === 'count') row.count = agg.count(g);
      else if (m === 'sum') row.sum = quantityToString(agg.sum(g));
      else {
        const q = m === 'min' ? agg.min(g) : agg.max(g);
        row[m] = q === null ? null : quantityToString(q);
      }
    }
    rows[i] = row;
  }
  return rows;
}

/** Raw entries to scan over a part of the query's range. */
interface RawPiece {
  entries: readonly SegmentEntryView[];
  fromMs: number;
  toMs: number;
}

interface RollupPiece {
  entries: readonly RollupEntryView[];
  fromMs: number;
  toMs: number;
}

export interface SourcePlan {
  rawPieces: RawPiece[];
  rollupPieces: RollupPiece[];
  /** Why rollups could not serve the query, or null. */
  fallback: string | null;
}

/**
 * Which parts of the range come from rollups and which from raw events: per piece of the
 * range (levels.ts), rollups of a level serve the raw files they cover; raw files no rollup of
 * that level covers, and edges finer than an hour, are scanned raw. Every raw file is read
 * once per piece, through its rollup or itself, never both: nothing is counted twice.
 */
export function planSources(
  snapshot: QuerySnapshot,
  query: Query,
  entries: readonly SegmentEntryView[],
): SourcePlan {
  const whole: SourcePlan = {
    rawPieces: [{ entries, fromMs: query.fromMs, toMs: query.toMs }],
    rollupPieces: [],
    fallback: null,
  };
  if (query.source === 'raw') return whole;
  const rollups = snapshot.rollups;
  if (rollups === undefined || rollups.entries.length === 0) return whole;
  const fallback = rollupFallback(query);
  if (fallback !== null) return { ...whole, fallback };
  const coarsest = query.groupBy.includes('hour') ? 'hour' : query.groupBy.includes('day') ? 'day' : 'month';
  const coverage = coverageOf(rollups.entries);
  const plan: SourcePlan = { rawPieces: [], rollupPieces: [], fallback: null };
  const meterGrain = servedByMeterGrain(query);
  for (const piece of splitRange(query.fromMs, query.toMs, coarsest)) {
    const inPiece = entries.filter((e) => e.max_ts >= piece.fromMs && e.min_ts < piece.toMs);
    if (inPiece.length === 0) continue;
    if (piece.source === 'raw') {
      plan.rawPieces.push({ entries: inPiece, fromMs: piece.fromMs, toMs: piece.toMs });
      continue;
    }
    // The meter grain's smaller files when the query needs nothing else and they cover as much.
    const meter = meterGrain ? meterLevelOf(piece.source) : null;
    let { used, uncovered } = assign(inPiece, coverage.get(piece.source));
    if (meter !== null) {
      const narrow = assign(inPiece, coverage.get(meter));
      if (narrow.uncovered.length <= uncovered.length) ({ used, uncovered } = narrow);
    }
    if (used.size > 0) plan.rollupPieces.push({ entries: [...used], fromMs: piece.fromMs, toMs: piece.toMs });
    if (uncovered.length > 0)
      plan.rawPieces.push({ entries: uncovered, fromMs: piece.fromMs, toMs: piece.toMs });
  }
  return plan;
}

const coverages = new WeakMap<readonly RollupEntryView[], Map<string, Map<number, RollupEntryView>>>();

/** Per level, the rollup file covering each raw file: made once per version's rollup list. */
function coverageOf(entries: readonly RollupEntryView[]): Map<string, Map<number, RollupEntryView>> {
  let coverage = coverages.get(entries);
  if (coverage !== undefined) return coverage;
  coverage = new Map();
  for (const r of entries) {
    let byRaw = coverage.get(r.level);
    if (byRaw === undefined) coverage.set(r.level, (byRaw = new Map()));
    for (const id of r.covers) byRaw.set(id, r);
  }
  coverages.set(entries, coverage);
  return coverage;
}

/** The rollups of one level a piece's raw files read through, and the raw files it leaves. */
function assign(
  inPiece: readonly SegmentEntryView[],
  byRaw: Map<number, RollupEntryView> | undefined,
): { used: Set<RollupEntryView>; uncovered: SegmentEntryView[] } {
  const used = new Set<RollupEntryView>();
  const uncovered: SegmentEntryView[] = [];
  for (const e of inPiece) {
    const r = byRaw?.get(e.segment_id ?? e.id);
    if (r === undefined) uncovered.push(e);
    else used.add(r);
  }
  return { used, uncovered };
}

const METER_GRAIN_KEYS: ReadonlySet<string> = new Set([...METER_GRAIN_COLUMNS, 'kind', 'day']);
const METER_GRAIN_FILTERS: ReadonlySet<string> = new Set(['meter_id', 'unit', 'kind']);

/** Whether the meter-grain levels hold every column the query groups or filters by. */
function servedByMeterGrain(query: Query): boolean {
  if (!query.groupBy.every((k) => METER_GRAIN_KEYS.has(k))) return false;
  for (const [column, values] of Object.entries(query.filters))
    if (values !== undefined && !METER_GRAIN_FILTERS.has(column)) return false;
  return query.dimensions.length === 0;
}

/** Rollups hold no dimensions: a query that groups or filters by one reads raw events. */
function rollupFallback(query: Query): string | null {
  if (query.dimensions.length > 0) return 'dimension filter (dimensions are not in the rollup grain)';
  if (query.groupBy.some((k) => k.startsWith(DIMENSION_KEY_PREFIX)))
    return 'dimension group key (dimensions are not in the rollup grain)';
  return null;
}

async function visitRollups(
  snapshot: QuerySnapshot,
  piece: RollupPiece,
  target: ScanTarget,
  agg: Aggregator,
  stats: QueryStats,
  provenance: Provenance | undefined,
): Promise<void> {
  const rollups = snapshot.rollups;
  assert(rollups !== undefined, 'a rollup piece without rollups');
  agg.setRange(piece.fromMs, piece.toMs);
  const accounts = target.accountIds === null ? null : new Set(target.accountIds);
  const single = target.accountIds !== null && target.accountIds.length === 1 ? target.accountIds[0] : null;
  for (const entry of piece.entries) {
    const batches = await rollups.store.read(entry, {
      accountIds: target.accountIds,
      fromMs: piece.fromMs,
      toMs: piece.toMs,
    });
    stats.path = 'rollup';
    stats.rollupSegmentsRead++;
    // Pieces lie on bucket bounds: a file whose events all lie in the piece has all its
    // buckets there too, and its bucket column need not even be decoded.
    const timeFilter = !(entry.min_ts >= piece.fromMs && entry.max_ts < piece.toMs);
    for (const whole of batches) {
      let lo = 0;
      let hi = whole.rowCount;
      if (single !== null) {
        // One account: only its rows (a block is sorted by account, codes in text order).
        const code = codeIndex(whole.account_id.dict).get(single);
        if (code === undefined) continue;
        lo = lowerBound(whole.account_id.codes, code);
        hi = lowerBound(whole.account_id.codes, code + 1);
      }
      if (lo === hi) continue;
      provenance?.rollup.add(entry.id);
      stats.rollupRows += hi - lo;
      const accountCodes = whole.account_id.codes;
      const accountFilter = !(
        accounts !== null &&
        accountCodes[lo] === accountCodes[hi - 1] &&
        accounts.has(whole.account_id.dict[accountCodes[lo]])
      );
      const { batch, weights } = rollupRows(
        whole,
        lo,
        hi,
        agg.columnsFor(timeFilter, accountFilter),
        agg.needMinMax,
      );
      agg.visit(batch, { rowCount: hi - lo, timeFilter, accountFilter, weights });
    }
  }
}

const NO_EXTREMES: QuantityColumn = { values: new Float64Array(0), big: null };

/**
 * Rows lo..hi of a rollup block as a plain batch of the columns a query reads, and their
 * weights. A block's columns are getters that decode on first access: taken once here, so the
 * aggregator's loops read plain properties, and only the needed columns are decoded.
 */
function rollupRows(
  b: RollupBatch,
  lo: number,
  hi: number,
  columns: readonly ColumnName[],
  minMax: boolean,
): { batch: ColumnBatch; weights: RowWeights } {
  const whole = lo === 0 && hi === b.rowCount;
  const quantity = (c: QuantityColumn): QuantityColumn => {
    if (whole || c.big === null) return whole ? c : { values: c.values.subarray(lo, hi), big: null };
    const big = new Map<number, bigint>();
    for (const [row, v] of c.big) if (row >= lo && row < hi) big.set(row - lo, v);
    return { values: c.values.subarray(lo, hi), big: big.size > 0 ? big : null };
  };
  const batch: Record<string, unknown> = { rowCount: hi - lo };
  for (const name of columns) {
    if (name === 'quantity') batch.quantity = quantity(b.quantity);
    else if (name === 'kind' || name === 'timestamp_ms')
      batch[name] = whole ? b[name] : b[name].subarray(lo, hi);
    else {
      assert(isRollupDictColumn(name), `rollups have no column ${name}`);
      const col = b[name];
      batch[name] = whole ? col : { dict: col.dict, codes: col.codes.subarray(lo, hi) };
    }
  }
  const weights: RowWeights = {
    count: whole ? b.count : b.count.subarray(lo, hi),
    min: minMax ? quantity(b.min) : NO_EXTREMES,
    max: minMax ? quantity(b.max) : NO_EXTREMES,
  };
  return { batch: batch as ColumnBatch, weights };
}

const ROLLUP_DICT_NAMES: ReadonlySet<string> = new Set(ROLLUP_DICT_COLUMNS);

function isRollupDictColumn(name: string): name is RollupDictColumn {
  return ROLLUP_DICT_NAMES.has(name);
}

async function scanRaw(
  ctx: EngineContext,
  snapshot: QuerySnapshot,
  piece: RawPiece,
  target: ScanTarget,
  agg: Aggregator,
  stats: QueryStats,
  provenance: Provenance | undefined,
): Promise<void> {
  agg.setRange(piece.fromMs, piece.toMs);
  const accounts = target.accountIds === null ? null : new Set(target.accountIds);
  const needsTime = (block: BlockMetaView): boolean =>
    !(block.minTimestampMs >= piece.fromMs && block.maxTimestampMs < piece.toMs);
  const needsAccount = (block: BlockMetaView): boolean =>
    !(accounts !== null && block.minAccountId === block.maxAccountId && accounts.has(block.minAccountId));
  const summaryServes = (block: BlockMetaView): boolean =>
    agg.summaryServes(needsTime(block), oneDay(block.minTimestampMs, block.maxTimestampMs));
  // Set by columnsFor, used by the visit of the same block right after.
  let timeFilter = true;
  let accountFilter = true;
  let summarise = false;
  const cache = ctx.cache;
  const shape = agg.shape;
  /** Summaries taken from the cache, by the dictionaries they share (one file's). */
  const taken = new Map<readonly string[], { parts: BlockSummary[]; accountFilter: boolean }>();
  const pieceTarget = { ...target, fromMs: piece.fromMs, toMs: piece.toMs };
  await scanSegments(snapshot, piece.entries, pieceTarget, cache, stats, {
    takeCached(seg: SegmentChunks, segment: SegmentEntryView, block: BlockMetaView, blockIndex: number) {
      if (!summaryServes(block)) return false;
      const summary = cache.summary(seg, blockIndex, shape as SummaryShape);
      if (summary === undefined) return false;
      provenance?.raw.add(segment.segment_id ?? segment.id);
      stats.cacheHits++;
      // Held until the scan ends, then visited joined per file (see concatSummaries).
      const dict = (summary.batch.account_id as DictColumn).dict;
      let group = taken.get(dict);
      if (group === undefined) taken.set(dict, (group = { parts: [], accountFilter: false }));
      group.parts.push(summary);
      group.accountFilter ||= needsAccount(block);
      return true;
    },
    columnsFor(block: BlockMetaView) {
      timeFilter = needsTime(block);
      accountFilter = needsAccount(block);
      summarise = summaryServes(block);
      return summarise ? agg.summaryColumns() : agg.columnsFor(timeFilter, accountFilter);
    },
    // Chunks read to build a summary are not read again while the summary is kept.
    coldInsert: () => summarise,
    visit(batch: ColumnBatch, block: BlockMetaView, segment: SegmentEntryView, blockIndex: number) {
      provenance?.raw.add(segment.segment_id ?? segment.id);
      if (summarise) {
        const summary = summarize(shape as SummaryShape, batch, block.rowCount, block.minTimestampMs);
        cache.keepSummary(cache.segment(snapshot.store, segment), blockIndex, shape as SummaryShape, summary);
        agg.visitSummary(summary, accountFilter);
        return;
      }
      agg.visit(batch, { rowCount: block.rowCount, timeFilter, accountFilter });
    },
  });
  for (const { parts, accountFilter } of taken.values())
    agg.visitSummary(concatSummaries(shape as SummaryShape, parts), accountFilter);
}
