/**
 * explain: an account's lines over a range, with where every number came from — the raw
 * segment files read raw, the rollup segments read (for the raw files they cover), the
 * memtable rows counted — and the Corrections and Retractions that moved each line.
 *
 * Invariant: provenance names exactly what the line query read (raw files it took blocks
 * from, rollup segments it read), in the same pinned snapshot as the lines.
 */
import type { QueryEngine } from '../query/index.ts';
import { parseRange } from '../query/time.ts';
import type { ReadSnapshot } from '../storage/snapshot.ts';
import { type PeriodLine, sumLines } from './lines.ts';
import { checkAccountId, collectEvents, countCorrections, readLines } from './read.ts';

export interface ExplainParams {
  account_id: string;
  from: string | number;
  to: string | number;
}

export interface ExplainCorrection {
  event_id: string;
  kind: 'Correction' | 'Retraction';
  original_event_id: string;
  reason: string;
  timestamp_ms: number;
  /** Signed delta, decimal string. */
  quantity: string;
  /** The line it moved. */
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
}

export interface Explanation {
  account_id: string;
  from_ms: number;
  to_ms: number;
  lines: PeriodLine[];
  provenance: {
    raw_segment_ids: number[];
    rollup_segment_ids: number[];
    /** Memtable rows counted in the lines (events not yet flushed). */
    memtable_rows: number;
  };
  corrections: ExplainCorrection[];
}

export async function explain(
  engine: QueryEngine,
  snapshot: ReadSnapshot,
  params: ExplainParams,
): Promise<Explanation> {
  const accountId = checkAccountId(params?.account_id);
  const { fromMs, toMs } = parseRange(params.from, params.to, 'explain');
  // Segments and memtable apart: provenance counts each part on its own.
  const fromSegments = await readLines(engine, { ...snapshot, memtables: [] }, accountId, fromMs, toMs);
  const fromMemtable = await readLines(engine, { ...snapshot, segments: [] }, accountId, fromMs, toMs);
  const corrections: ExplainCorrection[] =
    (await countCorrections(engine, snapshot, accountId, fromMs, toMs)) === 0
      ? []
      : await collectEvents(engine, snapshot, accountId, fromMs, toMs, (e) =>
          e.kind === 'Usage' || e.correction_ref === null
            ? null
            : {
                event_id: e.event_id,
                kind: e.kind,
                original_event_id: e.correction_ref.original_event_id,
                reason: e.correction_ref.reason,
                timestamp_ms: e.timestamp_ms,
                quantity: e.quantity,
                product_id: e.product_id,
                meter_id: e.meter_id,
                model_id: e.model_id,
                unit: e.unit,
              },
        );
  return {
    account_id: accountId,
    from_ms: fromMs,
    to_ms: toMs,
    lines: sumLines(fromSegments.lines, fromMemtable.lines),
    provenance: {
      raw_segment_ids: fromSegments.rawSegmentIds,
      rollup_segment_ids: fromSegments.rollupSegmentIds,
      memtable_rows: fromMemtable.lines.reduce((n, l) => n + l.event_count, 0),
    },
    corrections,
  };
}
