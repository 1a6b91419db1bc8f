/** The billing routes through a real server: shapes, status codes, the OpenAPI document. */
import { beforeAll, describe, expect, it } from 'vitest';
import { call, suiteServer } from './harness.ts';
import { ev, HOUR, MAY, retraction } from '../billing/helpers.ts';

describe('billing routes', () => {
  const server = suiteServer();
  beforeAll(async () => {
    await server.db.ingest([ev('u1'), ev('u2', { quantity: 50 }), ev('bad', { quantity: -1 })]);
  });

  it('GET a period, close it (409 the second time), reopen it (409 when open)', async () => {
    const base = `${server.url}/v1/accounts/acme/periods/2026-05`;
    const open = await call(base);
    expect(open.status).toBe(200);
    expect(open.body).toEqual(await server.db.periods.get('acme', '2026-05'));
    expect(open.body).toMatchObject({
      status: 'open',
      lines: [{ quantity: '150', event_count: 2 }],
      carried_adjustments: [],
    });
    const closed = await call(`${base}/close`, { method: 'POST' });
    expect(closed.status).toBe(200);
    expect(closed.body).toEqual(await server.db.periods.get('acme', '2026-05'));
    expect(Object.keys(closed.body as object).sort()).toEqual(
      [
        'account_id',
        'adjustment_lines',
        'adjustments',
        'lines',
        'net_lines',
        'period',
        'snapshot',
        'status',
      ].sort(),
    );
    const again = await call(`${base}/close`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: { code: 'USAGEDB_ERR_STATE_CONFLICT' } });
    // A late retraction shows as an adjustment (the full event) in the closed period.
    await server.db.ingest([retraction('r1', 'u2', { timestamp_ms: MAY + 2 * HOUR })]);
    const adjusted = await call(base);
    expect(adjusted.body).toMatchObject({
      adjustments: [
        { event_id: 'r1', kind: 'Retraction', quantity: '-50', correction_ref: { original_event_id: 'u2' } },
      ],
      net_lines: [{ quantity: '100', event_count: 3 }],
    });
    expect((await call(`${base}/reopen`, { method: 'POST' })).status).toBe(200);
    const twice = await call(`${base}/reopen`, { method: 'POST' });
    expect(twice.status).toBe(409);
    expect((await call(`${server.url}/v1/accounts/acme/periods/2026-13`)).status).toBe(400);
  });

  it('explain, event lookup, rejections', async () => {
    const x = await call(
      `${server.url}/v1/accounts/acme/explain?from=2026-05-01T00:00:00Z&to=2026-06-01T00:00:00Z`,
    );
    expect(x.status).toBe(200);
    expect(x.body).toEqual(
      await server.db.explain({
        account_id: 'acme',
        from: '2026-05-01T00:00:00Z',
        to: '2026-06-01T00:00:00Z',
      }),
    );
    expect((await call(`${server.url}/v1/accounts/acme/explain?from=2026-06-01&to=2026-05-01`)).status).toBe(
      400,
    );
    const stored = await call(`${server.url}/v1/events/u1`);
    expect(stored.body).toEqual(await server.db.lookupEvent('u1'));
    expect(stored.body).toMatchObject({
      status: 'stored',
      period: '2026-05',
      event: { event_id: 'u1', quantity: '100' },
    });
    const rejected = await call(`${server.url}/v1/events/bad`);
    expect(rejected.body).toMatchObject({
      status: 'rejected',
      reason: 'negative_quantity',
      rejections: [{ event: { quantity: -1 } }],
    });
    expect((await call(`${server.url}/v1/events/${encodeURIComponent('no such/id')}`)).body).toEqual({
      event_id: 'no such/id',
      status: 'unknown',
      rejections: [],
    });
    const log = await call(`${server.url}/v1/accounts/acme/rejections?limit=10`);
    expect(log.status).toBe(200);
    expect(log.body).toEqual(await server.db.rejections({ account_id: 'acme', limit: 10 }));
    expect(log.body).toMatchObject({
      rejections: [{ event_id: 'bad', reason: 'negative_quantity', index: 2 }],
      next_cursor: null,
    });
    expect((await call(`${server.url}/v1/accounts/acme/rejections?limit=0`)).status).toBe(400);
  });

  it('the OpenAPI document lists the billing routes, with 409 on close and reopen', async () => {
    const doc = (await call(`${server.url}/openapi.json`)).body as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    for (const path of [
      '/v1/accounts/{id}/periods/{period}',
      '/v1/accounts/{id}/explain',
      '/v1/events/{event_id}',
      '/v1/accounts/{id}/rejections',
    ])
      expect(doc.paths[path]?.get).toBeDefined();
    expect(doc.paths['/v1/accounts/{id}/periods/{period}/close'].post.responses['409']).toBeDefined();
    expect(doc.paths['/v1/accounts/{id}/periods/{period}/reopen'].post.responses['409']).toBeDefined();
  });
});
