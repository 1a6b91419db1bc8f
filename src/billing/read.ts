/**
 * What billing reads, always through the query engine over one pinned snapshot: the lines of
 * an account's range (with the segment files they came from), and the events behind them.
 *
 * Invariant: every function here reads only the snapshot it is given, so the lines and the
 * events of one call describe the same instant.
 */
import { UsageDbError } from '../errors.ts';
import type { WireEvent } from '../model/event.ts';
import { EVENTS_LIMIT_MAX, parseJsonQuery, type QueryEngine, type QuerySnapshot } from '../query/index.ts';
import { type LineSums, type PeriodLine, sumLines } from './lines.ts';

export const LINE_GROUP_BY = ['product_id', 'meter_id', 'model_id', 'unit'] as const;

export interface LinesRead {
  lines: PeriodLine[];
  /** Raw segment files the query took blocks from. */
  rawSegmentIds: number[];
  /** Rollup segments the query read (none on the raw path). */
  rollupSegmentIds: number[];
}

/**
 * A range's lines through the aggregate path, and what it read. `source`: `auto` reads
 * rollups where they cover the raw files (as `db.query` does); `raw` reads only raw events.
 */
export async function readLines(
  engine: QueryEngine,
  snapshot: QuerySnapshot,
  accountId: string,
  fromMs: number,
  toMs: number,
  source: 'auto' | 'raw' = 'auto',
): Promise<LinesRead> {
  const query = parseJsonQuery({
    source,
    account_id: accountId,
    from: fromMs,
    to: toMs,
    group_by: [...LINE_GROUP_BY],
    metrics: ['sum', 'count'],
  });
  const { result, rawSegmentIds, rollupSegmentIds } = await engine.runQueryTraced(snapshot, query);
  const lines = result.rows.map((row) => ({
    product_id: row.product_id as string,
    meter_id: row.meter_id as string,
    model_id: row.model_id as string | null,
    unit: row.unit as string,
    quantity: row.sum as string,
    event_count: row.count as number,
  }));
  return { lines: sumLines(lines), rawSegmentIds, rollupSegmentIds };
}

/** How many Correction and Retraction events the range holds (a cheap aggregate). */
export async function countCorrections(
  engine: QueryEngine,
  snapshot: QuerySnapshot,
  accountId: string,
  fromMs: number,
  toMs: number,
): Promise<number> {
  const query = parseJsonQuery({
    account_id: accountId,
    from: fromMs,
    to: toMs,
    filters: { kind: ['Correction', 'Retraction'] },
    metrics: ['count'],
  });
  const result = await engine.runQuery(snapshot, query);
  return result.rows[0].count as number;
}

/**
 * Visits every event of the range, page by page through the audit listing (ordered by
 * timestamp then id), keeping only what `keep` returns.
 */
export async function collectEvents<T>(
  engine: QueryEngine,
  snapshot: QuerySnapshot,
  accountId: string,
  fromMs: number,
  toMs: number,
  keep: (e: WireEvent) => T | null,
): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  do {
    const page = await engine.listEvents(snapshot, {
      account_id: accountId,
      from: fromMs,
      to: toMs,
      limit: EVENTS_LIMIT_MAX,
      cursor,
    });
    for (const e of page.events) {
      const kept = keep(e);
      if (kept !== null) out.push(kept);
    }
    cursor = page.next_cursor;
  } while (cursor !== null);
  return out;
}

/** Adds an event to line sums. */
export function addEvent(sums: LineSums, e: WireEvent): void {
  sums.add(e, e.quantity, 1);
}

export function checkAccountId(accountId: unknown): string {
  if (typeof accountId !== 'string' || accountId.length === 0 || Buffer.byteLength(accountId, 'utf8') > 256) {
    throw new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', 'account_id must be a string of 1-256 bytes');
  }
  return accountId;
}
