/**
 * verify: the raw path and the rollup path over one snapshot, compared per billing line (and
 * account when none is given) through the full-grain levels, and per (account, meter, unit)
 * through the meter-grain levels. Any difference is drift; 0 drift is the only healthy answer.
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
  /**
   * `line`: a billing line of the full-grain levels; `meter`: an (account, meter, unit) total of
   * the meter-grain levels, with product_id and model_id '*' (every one).
   */
  grain: 'line' | 'meter';
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
const METER_KEYS = ['account_id', 'meter_id', 'unit'] as const;

/** Compares both paths per billing line, then per (account, meter, unit) for the meter grain. */
export async function verifyRollups(
  engine: QueryEngine,
  snapshot: QuerySnapshot,
  params: VerifyParams,
): Promise<VerifyResult> {
  if (typeof params !== 'object' || params === null)
    throw new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', 'verify expects { account_id?, from, to }');
  const line = await compare(engine, snapshot, params, 'line');
  const meter = await compare(engine, snapshot, params, 'meter');
  const drift = [...line.drift, ...meter.drift];
  return {
    ok: drift.length === 0,
    drift,
    lines_compared: line.compared + meter.compared,
    rollup_segments_read: line.segmentsRead + meter.segmentsRead,
  };
}

async function compare(
  engine: QueryEngine,
  snapshot: QuerySnapshot,
  params: VerifyParams,
  grain: 'line' | 'meter',
): Promise<{ drift: VerifyDrift[]; compared: number; segmentsRead: number }> {
  const keys: readonly string[] = grain === 'line' ? LINE_KEYS : METER_KEYS;
  const base = {
    ...(params.account_id === undefined ? {} : { account_id: params.account_id }),
    from: params.from,
    to: params.to,
    group_by: [...keys],
    metrics: ['sum', 'count', 'min', 'max'],
  };
  const raw = await engine.queryJson(snapshot, { ...base, source: 'raw' });
  const rollup = await engine.queryJson(snapshot, { ...base, source: 'rollup' });
  const key = (r: QueryRow) => JSON.stringify(keys.map((k) => r[k]));
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
      grain,
      account_id: String(row.account_id),
      product_id: grain === 'line' ? String(row.product_id) : '*',
      meter_id: String(row.meter_id),
      model_id: grain === 'meter' ? '*' : row.model_id === null ? null : String(row.model_id),
      unit: String(row.unit),
      raw: a,
      rollup: b,
    });
  }
  return { drift, compared: byKey.size, segmentsRead: rollup.stats.rollupSegmentsRead };
}
