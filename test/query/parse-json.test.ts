/** Validation of the JSON query: every wrong input is a clear USAGEDB_ERR_INVALID_QUERY. */
import { describe, expect, it } from 'vitest';
import { parseJsonQuery } from '../../src/query/index.ts';
import { parseRfc3339, parseTimeInput } from '../../src/query/time.ts';

const FROM = '2026-05-01T00:00:00Z';
const TO = '2026-06-01T00:00:00Z';

describe('parseJsonQuery', () => {
  it('normalises a full query', () => {
    const q = parseJsonQuery({
      source: 'raw',
      account_id: 'acct-1',
      from: FROM,
      to: Date.UTC(2026, 5, 1),
      group_by: ['product_id', 'dimensions.region', 'day'],
      filters: {
        meter_id: 'tokens.output',
        model_id: [null, 'gpt'],
        kind: ['Usage'],
        dimensions: { env: 'prod' },
      },
      metrics: ['max', 'count'],
      order_by: [{ key: 'max', dir: 'desc' }, { key: 'day' }],
      limit: 10,
    });
    expect(q).toEqual({
      source: 'raw',
      accountIds: ['acct-1'],
      fromMs: Date.UTC(2026, 4, 1),
      toMs: Date.UTC(2026, 5, 1),
      groupBy: ['product_id', 'dimensions.region', 'day'],
      filters: { meter_id: ['tokens.output'], model_id: [null, 'gpt'], kind: ['Usage'] },
      dimensions: [['env', 'prod']],
      metrics: ['max', 'count'],
      orderBy: [
        { key: 'max', dir: 'desc' },
        { key: 'day', dir: 'asc' },
      ],
      limit: 10,
    });
  });

  it('defaults: source auto, no grouping, sum and count, no order or limit', () => {
    expect(parseJsonQuery({ from: FROM, to: TO })).toMatchObject({
      source: 'auto',
      accountIds: null,
      groupBy: [],
      metrics: ['sum', 'count'],
      orderBy: [],
      limit: null,
    });
  });

  const bad: [string, unknown, string][] = [
    ['not an object', [], 'a query must be a JSON object'],
    ['unknown field', { from: FROM, to: TO, groupBy: [] }, 'query: unknown field "groupBy"'],
    ['missing from', { to: TO }, 'query.from: is required'],
    [
      'bad time',
      { from: '2026-13-01T00:00:00Z', to: TO },
      'query.from: "2026-13-01T00:00:00Z" is not a valid calendar time',
    ],
    ['time text', { from: 'May 1st', to: TO }, 'query.from: "May 1st" is not an RFC 3339 time'],
    ['negative ms', { from: -1, to: TO }, 'query.from: -1 is not a non-negative integer'],
    ['fractional ms', { from: 1.5, to: TO }, 'query.from: 1.5 is not a non-negative integer'],
    ['from >= to', { from: TO, to: FROM }, 'from (2026-06-01T00:00:00.000Z) must be before to'],
    ['from == to', { from: FROM, to: FROM }, 'must be before to'],
    ['bad source', { from: FROM, to: TO, source: 'cache' }, 'query.source must be auto, rollup or raw'],
    ['empty account', { from: FROM, to: TO, account_id: '' }, 'query.account_id must be 1-256 bytes'],
    ['account not string', { from: FROM, to: TO, account_id: 7 }, 'query.account_id must be a string'],
    [
      'unknown group key',
      { from: FROM, to: TO, group_by: ['product'] },
      'query.group_by[0]: unknown group key "product"',
    ],
    [
      'empty dimension key',
      { from: FROM, to: TO, group_by: ['dimensions.'] },
      'query.group_by[0] (dimension key) must be 1-256 bytes',
    ],
    ['duplicate key', { from: FROM, to: TO, group_by: ['day', 'day'] }, 'key "day" appears twice'],
    ['group_by not array', { from: FROM, to: TO, group_by: 'day' }, 'query.group_by must be an array'],
    ['bad metric', { from: FROM, to: TO, metrics: ['avg'] }, 'query.metrics[0]: unknown metric "avg"'],
    [
      'duplicate metric',
      { from: FROM, to: TO, metrics: ['sum', 'sum'] },
      'query.metrics: "sum" appears twice',
    ],
    [
      'unknown filter',
      { from: FROM, to: TO, filters: { region: 'eu' } },
      'query.filters: unknown filter "region"',
    ],
    [
      'account as filter',
      { from: FROM, to: TO, filters: { account_id: 'a' } },
      'account_id is a top-level field',
    ],
    [
      'empty filter list',
      { from: FROM, to: TO, filters: { meter_id: [] } },
      'query.filters.meter_id is an empty list',
    ],
    ['null non-nullable', { from: FROM, to: TO, filters: { meter_id: null } }, 'meter_id is never null'],
    [
      'bad kind',
      { from: FROM, to: TO, filters: { kind: 'Refund' } },
      'query.filters.kind: unknown kind "Refund"',
    ],
    [
      'number value',
      { from: FROM, to: TO, filters: { product_id: [1] } },
      'query.filters.product_id[0] must be a string',
    ],
    [
      'dimensions not object',
      { from: FROM, to: TO, filters: { dimensions: ['a'] } },
      'query.filters.dimensions must be an object',
    ],
    [
      'dimension value',
      { from: FROM, to: TO, filters: { dimensions: { env: 1 } } },
      'query.filters.dimensions.env must be a string',
    ],
    [
      'order by unknown',
      { from: FROM, to: TO, order_by: [{ key: 'product_id', dir: 'asc' }] },
      'query.order_by[0]: key "product_id" is neither a metric',
    ],
    [
      'order dir',
      { from: FROM, to: TO, order_by: [{ key: 'sum', dir: 'down' }] },
      'query.order_by[0]: dir must be "asc" or "desc"',
    ],
    [
      'order extra field',
      { from: FROM, to: TO, order_by: [{ key: 'sum', direction: 'asc' }] },
      'query.order_by[0]: unknown field "direction"',
    ],
    ['negative limit', { from: FROM, to: TO, limit: -1 }, 'query.limit must be a non-negative integer'],
    ['limit text', { from: FROM, to: TO, limit: '10' }, 'query.limit must be a non-negative integer'],
  ];
  for (const [name, input, message] of bad) {
    it(`rejects: ${name}`, () => {
      expect(() => parseJsonQuery(input)).toThrow(
        expect.objectContaining({
          code: 'USAGEDB_ERR_INVALID_QUERY',
          message: expect.stringContaining(message),
        }),
      );
    });
  }
});

describe('time parsing', () => {
  it('RFC 3339 with offsets, fractions (sub-ms rounds up: ranges stay half-open) and bare dates', () => {
    expect(parseRfc3339('2026-05-01T02:00:00+02:00', 't')).toBe(Date.UTC(2026, 4, 1));
    expect(parseRfc3339('2026-05-01T00:00:00-00:30', 't')).toBe(Date.UTC(2026, 4, 1, 0, 30));
    expect(parseRfc3339('2026-05-01t00:00:00.5z', 't')).toBe(Date.UTC(2026, 4, 1) + 500);
    expect(parseRfc3339('2026-05-01T00:00:00.0011Z', 't')).toBe(Date.UTC(2026, 4, 1) + 2);
    expect(parseRfc3339('2026-05-01T00:00:00.001000Z', 't')).toBe(Date.UTC(2026, 4, 1) + 1);
    expect(parseRfc3339('2026-05-01', 't')).toBe(Date.UTC(2026, 4, 1));
    expect(parseTimeInput('1777593600000', 't')).toBe(1777593600000);
    expect(() => parseRfc3339('2026-02-29T00:00:00Z', 't')).toThrow('not a valid calendar time');
    expect(() => parseRfc3339('2026-05-01T24:00:00Z', 't')).toThrow('not a valid calendar time');
  });
});
