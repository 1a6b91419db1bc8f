/**
 * The strict SQL subset: accepted forms give the same rows as the equivalent JSON query, and
 * every construct outside the subset is rejected with USAGEDB_ERR_UNSUPPORTED_SQL naming it.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseJsonQuery, runQuery, runSql } from '../../src/query/index.ts';
import type { JsonQuery, QueryRow } from '../../src/query/types.ts';
import {
  DAY,
  type Fixture,
  generateEvents,
  JUNE,
  jsonQueryArb,
  MAY,
  openFixture,
  referenceQuery,
} from './fixtures.ts';
import { readSnapshot } from '../../src/testing.ts';

const SEED = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);
const RANGE = `timestamp_ms >= '2026-05-01T00:00:00Z' AND timestamp_ms < '2026-06-01T00:00:00Z'`;

function quote(v: string): string {
  return `'${v.replace(/'/g, "''")}'`;
}

function keySql(key: string): string {
  return key.startsWith('dimensions.') ? `dimensions[${quote(key.slice('dimensions.'.length))}]` : key;
}

const METRIC_SQL: Record<string, string> = {
  sum: 'SUM(quantity)',
  count: 'COUNT(*)',
  min: 'MIN(quantity)',
  max: 'MAX(quantity)',
};

/** The SQL text equivalent to a JSON query (without null filter values). */
function toSql(q: JsonQuery): { sql: string; names: string[] } {
  const keys = q.group_by ?? [];
  const metrics = q.metrics ?? ['sum', 'count'];
  const select = [
    ...keys.map(keySql),
    ...metrics.map((m, i) => (i % 2 === 0 ? `${METRIC_SQL[m]} AS m_${m}` : METRIC_SQL[m])),
  ];
  const names = [...keys, ...metrics];
  const from = typeof q.from === 'number' ? String(q.from) : quote(q.from);
  const to = typeof q.to === 'number' ? String(q.to) : quote(q.to);
  const where = [`timestamp_ms >= ${from}`, `timestamp_ms < ${to}`];
  if (q.account_id !== undefined) where.push(`account_id = ${quote(q.account_id)}`);
  for (const [col, v] of Object.entries(q.filters ?? {})) {
    if (col === 'dimensions') {
      for (const [k, val] of Object.entries(v as Record<string, string>))
        where.push(`dimensions[${quote(k)}] = ${quote(val)}`);
    } else if (Array.isArray(v)) {
      where.push(`${col} IN (${(v as string[]).map(quote).join(', ')})`);
    } else {
      where.push(`${col} = ${quote(v as string)}`);
    }
  }
  let sql = `SELECT ${select.join(', ')} FROM usage_events WHERE ${where.join(' AND ')}`;
  if (keys.length > 0) sql += ` GROUP BY ${keys.map(keySql).join(', ')}`;
  const order = (q.order_by ?? []).map((o) => {
    const expr = o.key in METRIC_SQL ? METRIC_SQL[o.key] : keySql(o.key);
    return `${expr} ${o.dir === 'desc' ? 'DESC' : 'ASC'}`;
  });
  if (order.length > 0) sql += ` ORDER BY ${order.join(', ')}`;
  if (q.limit !== undefined) sql += ` LIMIT ${q.limit}`;
  return { sql, names };
}

describe('SQL over the same engine', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await openFixture(generateEvents(31, 1200, 6));
  });
  afterAll(async () => {
    await fx.db.close();
  });

  it(`SQL and JSON give the same rows for equivalent queries (seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(jsonQueryArb({ sqlOnly: true }), async (q) => {
        const { sql, names } = toSql(q);
        const s = await runSql(readSnapshot(fx.db), sql);
        const j = await runQuery(readSnapshot(fx.db), parseJsonQuery(q));
        const asObjects = s.rows.map((r) => Object.fromEntries(names.map((n, i) => [n, r[i]])) as QueryRow);
        expect(asObjects).toEqual(j.rows);
        expect(j.rows).toEqual(referenceQuery(fx.events, q));
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('column names are the alias, else the lower-cased expression', async () => {
    const r = await runSql(
      readSnapshot(fx.db),
      `SELECT Product_Id, dimensions['region'], Sum( Quantity ), count(*) AS n, MIN(quantity), max(quantity) AS "Top" FROM usage_events WHERE ${RANGE} GROUP BY product_id, dimensions['region'] ORDER BY n DESC LIMIT 2`,
    );
    expect(r.columns).toEqual([
      'product_id',
      "dimensions['region']",
      'sum(quantity)',
      'n',
      'min(quantity)',
      'Top',
    ]);
    expect(r.rows).toHaveLength(2);
    expect(typeof r.rows[0][3]).toBe('number');
    expect(r.stats.segmentsConsidered).toBeGreaterThan(0);
  });

  it('time bounds: ms or RFC 3339, >, <=, BETWEEN (inclusive), = and several bounds tighten', async () => {
    const snap = readSnapshot(fx.db);
    const count = async (where: string) =>
      (await runSql(snap, `SELECT COUNT(*) FROM usage_events WHERE ${where}`)).rows[0][0];
    const ref = (from: number, to: number) =>
      referenceQuery(fx.events, { from, to, metrics: ['count'] })[0].count;
    const t1 = MAY + DAY + 12_345;
    const t2 = MAY + 3 * DAY;
    expect(await count(`timestamp_ms >= ${t1} AND timestamp_ms < ${t2}`)).toBe(ref(t1, t2));
    expect(await count(`timestamp_ms > ${t1} AND timestamp_ms <= ${t2}`)).toBe(ref(t1 + 1, t2 + 1));
    expect(await count(`timestamp_ms BETWEEN ${t1} AND ${t2}`)).toBe(ref(t1, t2 + 1));
    expect(await count(`timestamp_ms BETWEEN '2026-05-02' AND '2026-05-03T00:00:00.000+00:00'`)).toBe(
      ref(MAY + DAY, MAY + 2 * DAY + 1),
    );
    expect(
      await count(
        `timestamp_ms >= 0 AND timestamp_ms < ${JUNE} AND timestamp_ms >= ${t1} AND timestamp_ms < ${t2}`,
      ),
    ).toBe(ref(t1, t2));
    const one = fx.events[0].timestamp_ms;
    expect(await count(`timestamp_ms = ${one}`)).toBe(ref(one, one + 1));
  });

  it('contradicting conditions match nothing; IN lists intersect', async () => {
    const snap = readSnapshot(fx.db);
    const r = await runSql(
      snap,
      `SELECT COUNT(*), SUM(quantity) FROM usage_events WHERE ${RANGE} AND meter_id = 'requests' AND meter_id = 'tool.calls'`,
    );
    expect(r.rows).toEqual([[0, '0']]);
    const d = await runSql(
      snap,
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND dimensions['region'] = 'eu' AND dimensions['region'] = 'us'`,
    );
    expect(d.rows).toEqual([[0]]);
    const i = await runSql(
      snap,
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND meter_id IN ('requests', 'tool.calls') AND meter_id IN ('tool.calls', 'tokens.input')`,
    );
    expect(i.rows[0][0]).toBe(
      referenceQuery(fx.events, {
        from: MAY,
        to: JUNE,
        filters: { meter_id: 'tool.calls' },
        metrics: ['count'],
      })[0].count,
    );
  });

  it('a table alias, quoted identifiers, GROUP BY alias and keyword case are accepted', async () => {
    const snap = readSnapshot(fx.db);
    const r = await runSql(
      snap,
      `select e.meter_id as m, count(*) from usage_events as e where e.${RANGE} group by m order by m`,
    );
    const j = await runQuery(
      snap,
      parseJsonQuery({ from: MAY, to: JUNE, group_by: ['meter_id'], metrics: ['count'] }),
    );
    expect(r.rows).toEqual(j.rows.map((row) => [row.meter_id, row.count]));
    const q = await runSql(
      snap,
      `SELECT "meter_id", COUNT(*) FROM "usage_events" WHERE ${RANGE} GROUP BY "meter_id"`,
    );
    expect(q.rows).toEqual(r.rows);
  });
});

describe('SQL outside the subset is rejected, naming the construct', () => {
  const cases: [string, string][] = [
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND (meter_id = 'a' OR meter_id = 'b')`,
      'unsupported SQL: OR in WHERE',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND NOT meter_id = 'a'`,
      'unsupported SQL: NOT in WHERE',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND meter_id NOT IN ('a')`,
      'unsupported SQL: operator NOT IN in WHERE',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND meter_id <> 'a'`,
      'unsupported SQL: operator <> in WHERE',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND meter_id LIKE 'a%'`,
      'unsupported SQL: operator LIKE in WHERE',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND model_id IS NULL`,
      'unsupported SQL: operator IS in WHERE',
    ],
    [
      `SELECT COUNT(*) FROM usage_events u JOIN accounts a ON u.account_id = a.id WHERE ${RANGE}`,
      'unsupported SQL: JOIN',
    ],
    [
      `SELECT COUNT(*) FROM usage_events, accounts WHERE ${RANGE}`,
      'unsupported SQL: several tables in FROM (a join)',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND account_id IN (SELECT id FROM accounts)`,
      'unsupported SQL: subquery in IN on account_id',
    ],
    [`SELECT COUNT(*) FROM (SELECT * FROM usage_events) t`, 'unsupported SQL: subquery in FROM'],
    [`SELECT (SELECT 1) FROM usage_events WHERE ${RANGE}`, 'unsupported SQL: subquery in SELECT'],
    [
      `SELECT account_id, COUNT(*) FROM usage_events WHERE ${RANGE} GROUP BY account_id HAVING COUNT(*) > 1`,
      'unsupported SQL: HAVING',
    ],
    [`SELECT * FROM usage_events WHERE ${RANGE}`, 'unsupported SQL: SELECT *'],
    [`SELECT DISTINCT account_id FROM usage_events WHERE ${RANGE}`, 'unsupported SQL: SELECT DISTINCT'],
    [`SELECT AVG(quantity) FROM usage_events WHERE ${RANGE}`, 'unsupported SQL: aggregate AVG()'],
    [
      `SELECT COALESCE(model_id, 'none') FROM usage_events WHERE ${RANGE}`,
      'unsupported SQL: function COALESCE() in SELECT',
    ],
    [
      `SELECT COUNT(DISTINCT account_id) FROM usage_events WHERE ${RANGE}`,
      'unsupported SQL: COUNT(DISTINCT ...)',
    ],
    [`SELECT COUNT(quantity) FROM usage_events WHERE ${RANGE}`, 'unsupported SQL: COUNT of an expression'],
    [
      `SELECT SUM(timestamp_ms) FROM usage_events WHERE ${RANGE}`,
      'unsupported SQL: SUM of something other than quantity',
    ],
    [
      `SELECT SUM(quantity) OVER () FROM usage_events WHERE ${RANGE}`,
      'unsupported SQL: window function SUM() OVER',
    ],
    [`SELECT COUNT(*) FROM accounts WHERE ${RANGE}`, 'unsupported SQL: table "accounts"'],
    [`SELECT COUNT(*) FROM public.usage_events WHERE ${RANGE}`, 'unsupported SQL: schema-qualified table'],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} UNION SELECT COUNT(*) FROM usage_events WHERE ${RANGE}`,
      'unsupported SQL: UNION of queries',
    ],
    [
      `WITH x AS (SELECT 1) SELECT COUNT(*) FROM usage_events WHERE ${RANGE}`,
      'unsupported SQL: WITH (common table expressions)',
    ],
    [`SELECT COUNT(*) FROM usage_events WHERE ${RANGE} LIMIT 5 OFFSET 10`, 'unsupported SQL: OFFSET'],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND quantity > 5`,
      'unsupported SQL: range comparison > on quantity',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND meter_id > 'a'`,
      'unsupported SQL: range comparison > on meter_id',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND quantity = 5`,
      'unsupported SQL: number compared with quantity',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND day = '2026-05-01'`,
      'unsupported SQL: filter on day',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND meter_id = product_id`,
      'unsupported SQL: comparison of meter_id with a column',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND 'a' = meter_id`,
      'unsupported SQL: literal on the left of =',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND meter_id = $1`,
      'unsupported SQL: parameter placeholder as a value for meter_id',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND timestamp_ms IN (1, 2)`,
      'unsupported SQL: IN on timestamp_ms',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND timestamp_ms < 1.5`,
      'unsupported SQL: timestamp_ms bound 1.5',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND timestamp_ms < 'next week'`,
      "unsupported SQL: timestamp_ms bound 'next week'",
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND dimensions['r'] IN ('a')`,
      "unsupported SQL: operator IN on dimensions['r']",
    ],
    [
      `SELECT dimensions['a']['b'] FROM usage_events WHERE ${RANGE} GROUP BY 1`,
      'unsupported SQL: subscript on dimensions',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND kind = 'Refund'`,
      "unsupported SQL: kind value 'Refund'",
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND colour = 'red'`,
      'unsupported SQL: unknown column "colour"',
    ],
    [
      `SELECT meter_id, COUNT(*) FROM usage_events WHERE ${RANGE}`,
      'unsupported SQL: meter_id selected but not in GROUP BY',
    ],
    [
      `SELECT event_id FROM usage_events WHERE ${RANGE} GROUP BY event_id`,
      'unsupported SQL: column event_id in SELECT',
    ],
    [`SELECT quantity FROM usage_events WHERE ${RANGE}`, 'unsupported SQL: bare column quantity in SELECT'],
    [
      `SELECT meter_id, COUNT(*) FROM usage_events WHERE ${RANGE} GROUP BY 1`,
      'unsupported SQL: GROUP BY position 1',
    ],
    [
      `SELECT meter_id, COUNT(*) FROM usage_events WHERE ${RANGE} GROUP BY ROLLUP(meter_id)`,
      'unsupported SQL: function ROLLUP() in GROUP BY',
    ],
    [
      `SELECT meter_id, COUNT(*) FROM usage_events WHERE ${RANGE} GROUP BY meter_id ORDER BY unit`,
      'unsupported SQL: ORDER BY unit which is not in GROUP BY',
    ],
    [
      `SELECT meter_id, COUNT(*) FROM usage_events WHERE ${RANGE} GROUP BY meter_id ORDER BY 2`,
      'unsupported SQL: ORDER BY position 2',
    ],
    [
      `SELECT meter_id, COUNT(*) FROM usage_events WHERE ${RANGE} GROUP BY meter_id ORDER BY meter_id NULLS LAST`,
      'unsupported SQL: ORDER BY ... NULLS LAST',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND CASE WHEN meter_id = 'a' THEN true END`,
      'unsupported SQL: CASE in WHERE',
    ],
    [
      `SELECT COUNT(*) FROM usage_events WHERE ${RANGE} AND meter_id::text = 'a'`,
      'unsupported SQL: CAST on the left of =',
    ],
    [`SELECT COUNT(*) FROM usage_events`, 'unsupported SQL: a query without a time range'],
    [
      `SELECT COUNT(*) FROM usage_events WHERE timestamp_ms >= 5`,
      'unsupported SQL: a query without a time range',
    ],
    ['SELECT 1', 'unsupported SQL: SELECT without FROM'],
    ['DELETE FROM usage_events', 'unsupported SQL: DELETE statement'],
    [`SELECT COUNT(*) FROM usage_events WHERE ${RANGE}; SELECT 1`, 'unsupported SQL: several statements'],
  ];

  for (const [sql, message] of cases) {
    it(message, async () => {
      const snapshot = {
        bucketCount: 1,
        segments: [],
        store: {
          reader: () => Promise.reject(new Error('unused')),
          decode: () => ({ rowCount: 0 }),
          decodeEventIds: () => [],
        },
        memtables: [],
      };
      await expect(runSql(snapshot, sql)).rejects.toMatchObject({
        code: 'USAGEDB_ERR_UNSUPPORTED_SQL',
        message: expect.stringContaining(message),
      });
    });
  }

  it('syntax errors and bad input are invalid queries', async () => {
    const snapshot = {
      bucketCount: 1,
      segments: [],
      store: {
        reader: () => Promise.reject(new Error('unused')),
        decode: () => ({ rowCount: 0 }),
        decodeEventIds: () => [],
      },
      memtables: [],
    };
    await expect(runSql(snapshot, 'SELEC COUNT(*)')).rejects.toMatchObject({
      code: 'USAGEDB_ERR_INVALID_QUERY',
      message: expect.stringContaining('SQL syntax error'),
    });
    await expect(runSql(snapshot, '')).rejects.toMatchObject({ code: 'USAGEDB_ERR_INVALID_QUERY' });
    await expect(
      runSql(snapshot, `SELECT COUNT(*) FROM usage_events WHERE timestamp_ms >= 10 AND timestamp_ms < 5`),
    ).rejects.toMatchObject({
      code: 'USAGEDB_ERR_INVALID_QUERY',
      message: expect.stringContaining('select nothing'),
    });
  });
});
