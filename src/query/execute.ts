/**
 * runQuery: plans (scan.ts), aggregates (aggregate.ts), orders and limits (order.ts) one
 * validated query over a read snapshot, and reports what it touched.
 *
 * Invariants:
 * - every committed segment and every memtable row of the snapshot is either pruned by a
 *   necessary condition or filtered row by row: the answer equals a brute-force evaluation;
 * - the snapshot holds no event twice (db.readSnapshot), so nothing is counted twice;
 * - `source` rollup/auto run the raw path for now (rollups must give identical answers).
 */
import type { ColumnBatch } from '../model/columns.ts';
import { quantityToString } from '../model/quantity.ts';
import { Aggregator } from './aggregate.ts';
import type { ChunkCache } from './chunk-cache.ts';
import { orderAndLimit, type ResultGroup } from './order.ts';
import { bucketsOf, candidateEntries, emptyStats, type ScanTarget, scanSegments } from './scan.ts';
import type { BlockMetaView, Metric, Query, QueryResult, QueryRow, QuerySnapshot } from './types.ts';
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

export async function executeQuery(
  ctx: EngineContext,
  snapshot: QuerySnapshot,
  query: Query,
): Promise<QueryResult> {
  const needed = new Set<Metric>(query.metrics);
  for (const o of query.orderBy) if (METRIC_NAMES.includes(o.key)) needed.add(o.key as Metric);
  if (ctx.ids.size > VALUE_IDS_MAX) ctx.ids = new ValueIds();
  const agg = new Aggregator(query, needed, ctx);
  const stats = emptyStats(snapshot.segments.length);
  const target = scanTargetOf(query);
  const accounts = target.accountIds === null ? null : new Set(target.accountIds);
  // Set by columnsFor, used by the visit of the same block right after.
  let timeFilter = true;
  let accountFilter = true;
  const entries = candidateEntries(snapshot, bucketsOf(target, snapshot.bucketCount));
  stats.segmentsPruned += snapshot.segments.length - entries.length;
  await scanSegments(snapshot, entries, target, ctx.cache, stats, {
    columnsFor(block: BlockMetaView) {
      timeFilter = !(block.minTimestampMs >= query.fromMs && block.maxTimestampMs < query.toMs);
      accountFilter = !(
        accounts !== null &&
        block.minAccountId === block.maxAccountId &&
        accounts.has(block.minAccountId)
      );
      return agg.columnsFor(timeFilter, accountFilter);
    },
    visit(batch: ColumnBatch, block: BlockMetaView) {
      agg.visit(batch, { rowCount: block.rowCount, timeFilter, accountFilter });
    },
  });
  for (const m of snapshot.memtables) {
    stats.memtableRows += m.rowCount;
    stats.rowsScanned += m.rowCount;
    agg.visit(m, { rowCount: m.rowCount, timeFilter: true, accountFilter: true });
  }
  const groups: ResultGroup[] = agg.results();
  // No group keys: exactly one row of totals, zeros when nothing matched.
  if (query.groupBy.length === 0 && groups.length === 0)
    groups.push({ values: [], count: 0, sum: 0, min: null, max: null });
  const ordered = orderAndLimit(groups, query.orderBy, query.groupBy, query.limit);
  return { rows: ordered.map((g) => toRow(g, query)), stats };
}

function toRow(g: ResultGroup, query: Query): QueryRow {
  const row: QueryRow = {};
  for (let i = 0; i < query.groupBy.length; i++) row[query.groupBy[i]] = g.values[i];
  for (const m of query.metrics) {
    if (m === 'count') row.count = g.count;
    else if (m === 'sum') row.sum = quantityToString(g.sum);
    else {
      const q = m === 'min' ? g.min : g.max;
      row[m] = q === null ? null : quantityToString(q);
    }
  }
  return row;
}
