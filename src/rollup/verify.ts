/**
 * verify: the raw path and the rollup path over one snapshot, compared per billing line (and
 * account when none is given). Any difference is drift; 0 drift is the only healthy answer.
 */
import { UsageDbError } from '../errors.ts';
import type { QueryEngine } from '../query/engine.ts';
import type { QueryRow, QuerySnapshot } from '../query/types.ts';

export interface VerifyParams {
  account_id?: string;
  from: string | number;
  to: string | number;
}

export interface LineTotals {
  quantity: string;
  event_count: number;
  min: string | null;
  max: string | null;
}

export interface VerifyDrift {
  account_id: string;
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  /** null: the line is missing from that path. */
  raw: LineTotals | null;
  rollup: LineTotals | null;
}

export interface VerifyResult {
  ok: boolean;
  drift: VerifyDrift[];
  /** Lines compared, and how many rollup segments the rollup path read (0: nothing to compare against). */
  lines_compared: number;
  rollup_segments_read: number;
}

const LINE_KEYS = ['account_id', 'product_id', 'meter_id', 'model_id', 'unit'] as const;

export async function verifyRollups(
  engine: QueryEngine,
  snapshot: QuerySnapshot,
  params: VerifyParams,
): Promise<VerifyResult> {
  if (typeof params !== 'object' || params === null)
    throw new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', 'verify expects { account_id?, from, to }');
  const base = {
    ...(params.account_id === undefined ? {} : { account_id: params.account_id }),
    from: params.from,
    to: params.to,
    group_by: [...LINE_KEYS],
    metrics: ['sum', 'count', 'min', 'max'],
  };
  const raw = await engine.queryJson(snapshot, { ...base, source: 'raw' });
  const rollup = await engine.queryJson(snapshot, { ...base, source: 'rollup' });
  const key = (r: QueryRow) => JSON.stringify(LINE_KEYS.map((k) => r[k]));
  const totals = (r: QueryRow | undefined): LineTotals | null =>
    r === undefined
      ? null
      : {
          quantity: String(r.sum),
          event_count: Number(r.count),
          min: r.min === null ? null : String(r.min),
          max: r.max === null ? null : String(r.max),
        };
  const byKey = new Map<string, { raw?: QueryRow; rollup?: QueryRow }>();
  for (const r of raw.rows) byKey.set(key(r), { raw: r });
  for (const r of rollup.rows) {
    const k = key(r);
    byKey.set(k, { ...byKey.get(k), rollup: r });
  }
  const drift: VerifyDrift[] = [];
  for (const pair of byKey.values()) {
    const a = totals(pair.raw);
    const b = totals(pair.rollup);
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    const row = (pair.raw ?? pair.rollup) as QueryRow;
    drift.push({
      account_id: String(row.account_id),
      product_id: String(row.product_id),
      meter_id: String(row.meter_id),
      model_id: row.model_id === null ? null : String(row.model_id),
      unit: String(row.unit),
      raw: a,
      rollup: b,
    });
  }
  return {
    ok: drift.length === 0,
    drift,
    lines_compared: byKey.size,
    rollup_segments_read: rollup.stats.rollupSegmentsRead,
  };
}
