/** A hand-built data set for the export tests and a DuckDB helper to read exports back. */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import type { UsageDb } from '../../src/db.ts';
import type { WireEvent } from '../../src/model/event.ts';

import { type EventColumns, NULL_CODE } from '../../src/model/columns.ts';
import { toQuantity } from '../../src/model/quantity.ts';
import { scanAccount } from '../support/scan.ts';

export const DAY_MS = 86_400_000;
/** 2026-04-01T00:00:00Z: far enough in the past to be accepted, whatever the test machine's clock. */
export const T0 = Date.UTC(2026, 3, 1);
export const MAX = '99999999999999999999999999999999999999';
export const ACCOUNTS = ['acct-a', 'acct-b', 'acct-ü', 'acct-c'] as const;

export type Wire = Record<string, unknown>;

export function usage(id: string, overrides: Wire = {}): Wire {
  return {
    event_id: id,
    account_id: 'acct-a',
    product_id: 'llm-api',
    meter_id: 'tokens.input',
    unit: 'tokens',
    source: 'gateway',
    timestamp_ms: T0 + 3_600_000,
    quantity: 1,
    ...overrides,
  };
}

/** Events covering every column shape: kinds, nulls, dimensions, extreme quantities, day edges. */
export function firstBatch(): Wire[] {
  const events: Wire[] = [
    usage('max', { quantity: MAX, model_id: 'gpt-x', subscription_id: 'sub-1' }),
    usage('beyond-2^63', {
      account_id: 'acct-b',
      quantity: '9223372036854775813',
      meter_id: 'tokens.output',
    }),
    usage('beyond-2^64', {
      account_id: 'acct-b',
      quantity: '18446744073709551621',
      meter_id: 'tokens.output',
    }),
    usage('2^53+1', { account_id: 'acct-c', quantity: '9007199254740993', product_id: 'embeddings' }),
    usage('dims', { dimensions: { region: 'eu', '10': 'ten', b: 'ü', a: '1' }, model_id: 'gpt-x' }),
    usage('empty-dims', { dimensions: {}, account_id: 'acct-ü' }),
    usage('null-dims', { dimensions: null, account_id: 'acct-ü', model_id: null, subscription_id: null }),
    usage('zero', { quantity: 0, account_id: 'acct-c' }),
    usage('midnight-1', { timestamp_ms: T0 + DAY_MS, account_id: 'acct-c' }),
    usage('before-midnight-1', { timestamp_ms: T0 + DAY_MS - 1, account_id: 'acct-c' }),
    usage('midnight-2', { timestamp_ms: T0 + 2 * DAY_MS, quantity: '123456789012345678901234567890' }),
    usage('ключ-€-🚀', { account_id: 'acct-ü', subscription_id: 'sub-ü' }),
    usage('to-retract', {
      account_id: 'acct-b',
      quantity: '18446744073709551999',
      meter_id: 'tokens.output',
    }),
  ];
  for (let i = 0; i < 400; i++) {
    events.push(
      usage(`bulk-${i}`, {
        account_id: ACCOUNTS[i % ACCOUNTS.length],
        product_id: ['llm-api', 'embeddings', 'agents'][i % 3],
        meter_id: ['tokens.input', 'tokens.output', 'tool_calls'][i % 3],
        unit: ['tokens', 'tokens', 'calls'][i % 3],
        model_id: i % 5 === 0 ? null : `model-${i % 4}`,
        subscription_id: i % 7 === 0 ? `sub-${i % 3}` : null,
        timestamp_ms: T0 + ((i * 7_919_000) % (3 * DAY_MS)),
        quantity: (i * 37) % 1000,
        dimensions: i % 2 === 0 ? { region: i % 4 === 0 ? 'us' : 'eu' } : undefined,
      }),
    );
  }
  return events;
}

/** Corrections and Retractions of events in the first batch (ingested after it). */
export function secondBatch(): Wire[] {
  return [
    usage('fix-max', {
      kind: 'Correction',
      correction_ref: { original_event_id: 'max', reason: 'overcounted' },
      quantity: `-${MAX}`,
      timestamp_ms: T0 + 3_600_001,
    }),
    usage('fix-big-negative', {
      kind: 'Correction',
      correction_ref: { original_event_id: 'beyond-2^63', reason: 'doppelt gezählt 🚀' },
      account_id: 'acct-b',
      meter_id: 'tokens.output',
      quantity: '-9223372036854775809',
    }),
    usage('retract', {
      kind: 'Retraction',
      correction_ref: { original_event_id: 'to-retract', reason: 'test traffic' },
      account_id: 'acct-b',
      meter_id: 'tokens.output',
      quantity: undefined,
    }),
  ];
}

/** Every stored event of the data set, in wire form, keyed by event_id. */
export async function storedEvents(db: UsageDb): Promise<Map<string, WireEvent>> {
  const out = new Map<string, WireEvent>();
  for (const account of ACCOUNTS) {
    for (const e of await scanAccount(db, account, 0, Number.MAX_SAFE_INTEGER)) out.set(e.event_id, e);
  }
  return out;
}

export type Row = Record<string, unknown>;

export class Duck {
  private readonly instance: DuckDBInstance;
  private readonly connection: DuckDBConnection;

  private constructor(instance: DuckDBInstance, connection: DuckDBConnection) {
    this.instance = instance;
    this.connection = connection;
  }

  static async create(): Promise<Duck> {
    const instance = await DuckDBInstance.create(':memory:');
    return new Duck(instance, await instance.connect());
  }

  async rows(sql: string): Promise<Row[]> {
    const reader = await this.connection.runAndReadAll(sql);
    return reader.getRowObjectsJson() as Row[];
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

/** SQL string literal. */
export function lit(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** The exported row of an event, as DuckDB's JSON rows show it. */
export function expectedRow(e: WireEvent): Row {
  const keys = Object.keys(e.dimensions).sort();
  const dims = `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(e.dimensions[k])}`).join(',')}}`;
  return {
    event_id: e.event_id,
    kind: e.kind,
    correction_original_event_id: e.correction_ref?.original_event_id ?? null,
    correction_reason: e.correction_ref?.reason ?? null,
    account_id: e.account_id,
    subscription_id: e.subscription_id,
    product_id: e.product_id,
    meter_id: e.meter_id,
    model_id: e.model_id,
    timestamp_ms: String(e.timestamp_ms),
    quantity: e.quantity,
    unit: e.unit,
    source: e.source,
    dimensions_canonical: dims,
    ingested_at_ms: String(e.ingested_at_ms),
  };
}

export function sumOf(events: Iterable<WireEvent>): string {
  let total = 0n;
  for (const e of events) total += BigInt(e.quantity);
  return total.toString();
}

/** Stored columns of `quantities` (ids e0, e1, ...), accounts cycling through `accounts`. */
export function columnsOf(quantities: readonly bigint[], accounts: string[]): EventColumns {
  const n = quantities.length;
  const values = new Float64Array(n);
  const big = new Map<number, bigint>();
  quantities.forEach((q, i) => {
    const v = toQuantity(q);
    if (typeof v === 'number') values[i] = v;
    else {
      values[i] = Number.NaN;
      big.set(i, v);
    }
  });
  const dict = (codes: number[], d: string[]) => ({ dict: d, codes: Uint32Array.from(codes) });
  const zeros = new Array<number>(n).fill(0);
  return {
    rowCount: n,
    event_id: quantities.map((_, i) => `e${i}`),
    kind: new Uint8Array(n),
    correction_original_event_id: new Array<string | null>(n).fill(null),
    correction_reason: new Array<string | null>(n).fill(null),
    account_id: dict(
      quantities.map((_, i) => i % accounts.length),
      accounts,
    ),
    subscription_id: dict(new Array<number>(n).fill(NULL_CODE), []),
    product_id: dict(zeros, ['p']),
    meter_id: dict(zeros, ['m']),
    model_id: dict(new Array<number>(n).fill(NULL_CODE), []),
    unit: dict(zeros, ['u']),
    source: dict(zeros, ['s']),
    dimensions: dict(zeros, ['{}']),
    timestamp_ms: new Float64Array(n).fill(1_700_000_000_000),
    quantity: { values, big: big.size > 0 ? big : null },
    ingested_at_ms: new Float64Array(n).fill(1_700_000_000_001),
  };
}
