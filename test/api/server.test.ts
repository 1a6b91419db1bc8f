/**
 * The HTTP API through a real listening server (127.0.0.1, port 0): every route, its answers
 * checked against the declared response schemas, each error status, and API keys.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { Compile } from 'typebox/compile';
import type { TSchema } from 'typebox';
import { describe, expect, it } from 'vitest';
import { openApiPath } from '../../src/api/openapi.ts';
import { ROUTES } from '../../src/api/routes.ts';
import { type Answer, call, suiteServer } from './harness.ts';
import { T0, usage, usageBatch } from '../support/events.ts';

const DAY_MS = 86_400_000;
const FROM = '2026-05-01T00:00:00Z';
const TO = '2026-06-01T00:00:00Z';

function routeOf(method: string, url: string) {
  const r = ROUTES.find((x) => x.method === method && x.url === url);
  if (r === undefined) throw new Error(`no route ${method} ${url}`);
  return r;
}

/** The answer is 200 and matches the route's declared response schema. */
function expectConforms(a: Answer, method: string, url: string): void {
  expect(a.status, a.text).toBe(200);
  const check = Compile(routeOf(method, url).response as TSchema);
  expect(check.Check(a.body), JSON.stringify([...check.Errors(a.body)].slice(0, 3))).toBe(true);
}

function expectError(a: Answer, status: number, code: string, message?: RegExp): void {
  expect(a.status, a.text).toBe(status);
  expect(a.body).toMatchObject({ error: { code } });
  expect(Object.keys(a.body as object)).toEqual(['error']);
  if (message) expect((a.body as { error: { message: string } }).error.message).toMatch(message);
}

describe('HTTP API without keys', () => {
  const s = suiteServer({ config: { bodyBytesMax: 64 * 1024, batchEventsMax: 100 } });

  it('POST /v1/usage/batch ingests, counts duplicates, reports conflicts and rejected events one by one', async () => {
    const events = usageBatch(0, 50);
    const first = await call(`${s.url}/v1/usage/batch`, { body: { events } });
    expectConforms(first, 'POST', '/v1/usage/batch');
    expect(first.body).toEqual({ accepted: 50, duplicates: 0, conflicts: 0, rejected: 0, errors: [] });
    expect(first.headers.get('x-request-id')).toMatch(/.+/);

    const mixed = [
      events[0], // duplicate
      { ...events[1], quantity: 999_999 }, // conflict
      { ...usage(100), quantity: -5 }, // rejected
      { event_id: 'x' }, // rejected
      usage(101), // accepted
    ];
    const second = await call(`${s.url}/v1/usage/batch`, { body: { events: mixed } });
    expectConforms(second, 'POST', '/v1/usage/batch');
    const b = second.body as {
      errors: { index: number; status: string; reason: string; event_id: string | null }[];
    };
    expect(second.body).toMatchObject({ accepted: 1, duplicates: 1, conflicts: 1, rejected: 2 });
    expect(b.errors.map((e) => [e.index, e.status])).toEqual([
      [1, 'conflict'],
      [2, 'rejected'],
      [3, 'rejected'],
    ]);
    expect(b.errors[0]).toMatchObject({ event_id: 'evt_1', reason: 'conflict' });
    expect(b.errors[1].event_id).toBe('evt_100');
  });

  it('GET /v1/accounts/{id}/usage: billing lines by default, group_by, filters, event_source, source', async () => {
    const expected = await s.db.query({
      account_id: 'acct_1',
      from: FROM,
      to: TO,
      group_by: ['product_id', 'meter_id', 'model_id', 'unit'],
    });
    const a = await call(`${s.url}/v1/accounts/acct_1/usage?from=${FROM}&to=${TO}`);
    expectConforms(a, 'GET', '/v1/accounts/:id/usage');
    const body = a.body as { lines: Record<string, unknown>[]; account_id: string; source: string };
    expect(body).toMatchObject({ account_id: 'acct_1', from: FROM, to: TO, source: 'auto' });
    expect(body.lines).toEqual(
      expected.rows.map((r) => ({
        product_id: r.product_id,
        meter_id: r.meter_id,
        model_id: r.model_id,
        unit: r.unit,
        quantity: r.sum,
        event_count: r.count,
      })),
    );
    expect(body.lines.length).toBeGreaterThan(0);

    const byDay = await call(
      `${s.url}/v1/accounts/acct_1/usage?from=${T0}&to=${T0 + 40 * DAY_MS}&group_by=day,meter_id&meter_id=requests&source=raw`,
    );
    expectConforms(byDay, 'GET', '/v1/accounts/:id/usage');
    const lines = (byDay.body as { lines: Record<string, unknown>[] }).lines;
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(Object.keys(l)).toEqual(['day', 'meter_id', 'quantity', 'event_count']);
    expect(new Set(lines.map((l) => l.meter_id))).toEqual(new Set(['requests']));

    const none = await call(`${s.url}/v1/accounts/acct_1/usage?from=${FROM}&to=${TO}&event_source=elsewhere`);
    expect((none.body as { lines: unknown[] }).lines).toEqual([]);
    const gateway = await call(
      `${s.url}/v1/accounts/acct_1/usage?from=${FROM}&to=${TO}&event_source=gateway`,
    );
    expect((gateway.body as { lines: unknown[] }).lines).toEqual(body.lines);

    expectError(
      await call(`${s.url}/v1/accounts/acct_1/usage?from=yesterday&to=${TO}`),
      400,
      'USAGEDB_ERR_INVALID_QUERY',
    );
    expectError(
      await call(`${s.url}/v1/accounts/acct_1/usage?to=${TO}`),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
      /from/,
    );
    expectError(
      await call(`${s.url}/v1/accounts/acct_1/usage?from=${FROM}&to=${TO}&source=cache`),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
    );
  });

  it('GET /v1/accounts/{id}/usage/events pages the raw audit with a cursor', async () => {
    const all: { event_id: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `from=${FROM}&to=${TO}&limit=3${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
      const a = await call(`${s.url}/v1/accounts/acct_2/usage/events?${q}`);
      expectConforms(a, 'GET', '/v1/accounts/:id/usage/events');
      const page = a.body as { events: { event_id: string }[]; next_cursor: string | null };
      all.push(...page.events);
      cursor = page.next_cursor;
      pages++;
    } while (cursor !== null);
    const direct = await s.db.events({ account_id: 'acct_2', from: FROM, to: TO, limit: 10_000 });
    expect(all.map((e) => e.event_id)).toEqual(direct.events.map((e) => e.event_id));
    expect(pages).toBe(Math.max(1, Math.ceil(all.length / 3)));

    const filtered = await call(
      `${s.url}/v1/accounts/acct_2/usage/events?from=${FROM}&to=${TO}&meter_id=requests`,
    );
    for (const e of (filtered.body as { events: { meter_id: string }[] }).events)
      expect(e.meter_id).toBe('requests');
    expectError(
      await call(`${s.url}/v1/accounts/acct_2/usage/events?from=${FROM}&to=${TO}&limit=0`),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
    );
    expectError(
      await call(`${s.url}/v1/accounts/acct_2/usage/events?from=${FROM}&to=${TO}&cursor=@@@`),
      400,
      'USAGEDB_ERR_INVALID_QUERY',
    );
  });

  it('POST /v1/query/json answers like db.query; a bad query is a 400 naming the field', async () => {
    const q = { from: FROM, to: TO, group_by: ['account_id'], metrics: ['sum', 'count', 'min', 'max'] };
    const a = await call(`${s.url}/v1/query/json`, { body: q });
    expectConforms(a, 'POST', '/v1/query/json');
    expect((a.body as { rows: unknown }).rows).toEqual((await s.db.query(q)).rows);
    expectError(
      await call(`${s.url}/v1/query/json`, { body: { from: FROM, to: TO, group_by: ['nope'] } }),
      400,
      'USAGEDB_ERR_INVALID_QUERY',
      /group_by/,
    );
  });

  it('POST /v1/query/sql answers {columns, rows}; unsupported SQL is a 400 naming the construct', async () => {
    const query = `SELECT meter_id, SUM(quantity) AS total, COUNT(*) FROM usage_events WHERE timestamp_ms >= '${FROM}' AND timestamp_ms < '${TO}' GROUP BY meter_id ORDER BY meter_id`;
    const a = await call(`${s.url}/v1/query/sql`, { body: { query } });
    expectConforms(a, 'POST', '/v1/query/sql');
    const direct = await s.db.sql(query);
    expect(a.body).toMatchObject({ columns: ['meter_id', 'total', 'count(*)'], rows: direct.rows });
    expectError(
      await call(`${s.url}/v1/query/sql`, {
        body: { query: `SELECT COUNT(*) FROM usage_events WHERE meter_id = 'a' OR meter_id = 'b'` },
      }),
      400,
      'USAGEDB_ERR_UNSUPPORTED_SQL',
      /OR/,
    );
    expectError(
      await call(`${s.url}/v1/query/sql`, { body: { sql: 'x' } }),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
    );
  });

  it('GET /health and GET /metrics', async () => {
    const h = await call(`${s.url}/health`);
    expectConforms(h, 'GET', '/health');
    expect(h.body).toMatchObject({ status: 'ok', durability: 'balanced', flush_error: null });
    const m = await call(`${s.url}/metrics`);
    expect(m.status).toBe(200);
    expect(m.headers.get('content-type')).toMatch(/text\/plain/);
    for (const name of [
      'usagedb_ingest_events_total{outcome="accepted"}',
      'usagedb_ingest_events_total{outcome="duplicate"}',
      'usagedb_ingest_batch_duration_seconds_bucket',
      'usagedb_query_duration_seconds_bucket{le="0.001",route="/v1/query/json"}',
      'usagedb_memtable_rows',
      'usagedb_memtable_bytes',
      'usagedb_wal_fsyncs_total',
      'usagedb_wal_fsync_seconds_total',
      'usagedb_wal_fsync_max_seconds',
      'usagedb_segments',
      'usagedb_http_requests_total',
      'usagedb_flush_failing 0',
      'usagedb_compaction_merges_total 0',
      'usagedb_quarantine_segments 0',
      'usagedb_process_cpu_user_seconds_total',
    ])
      expect(m.text).toContain(name);
    expect(m.text).toMatch(/usagedb_ingest_events_total\{outcome="accepted"\} 51\b/);
    expect(m.text).toMatch(/usagedb_memtable_rows 51\b/);
    // Ingest in balanced mode fsyncs the WAL: the count is positive.
    expect(m.text).toMatch(/usagedb_wal_fsyncs_total [1-9]/);
  });

  it('GET /v1/accounts/{id}/verify compares raw and rollups per line; a bad range is a 400', async () => {
    await s.db.flush();
    await s.db.rollup();
    const a = await call(`${s.url}/v1/accounts/acct_2/verify?from=${FROM}&to=${TO}`);
    expectConforms(a, 'GET', '/v1/accounts/:id/verify');
    const v = a.body as {
      ok: boolean;
      drift: unknown[];
      lines_compared: number;
      rollup_segments_read: number;
    };
    expect(v).toMatchObject({ ok: true, drift: [] });
    expect(v.lines_compared).toBeGreaterThan(0);
    expect(v.rollup_segments_read).toBeGreaterThan(0);
    expectError(
      await call(`${s.url}/v1/accounts/acct_2/verify?from=${TO}&to=${FROM}`),
      400,
      'USAGEDB_ERR_INVALID_QUERY',
    );
  });

  it('GET /openapi.json is a valid OpenAPI 3.1 document listing every route with its schemas', async () => {
    const a = await call(`${s.url}/openapi.json`);
    expect(a.status).toBe(200);
    const doc = a.body as {
      openapi: string;
      paths: Record<
        string,
        Record<
          string,
          {
            parameters: { name: string; in: string }[];
            requestBody?: unknown;
            responses: Record<string, { content: Record<string, { schema: unknown }> }>;
          }
        >
      >;
    };
    expect(doc.openapi).toMatch(/^3\./);
    const result = await new Validator().validate(doc as Parameters<Validator['validate']>[0]);
    expect(result.valid, JSON.stringify(result.errors)).toBe(true);
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    expect(documented.sort()).toEqual(ROUTES.map((r) => `${r.method} ${openApiPath(r.url)}`).sort());
    const plain = (x: unknown) => JSON.parse(JSON.stringify(x)) as unknown;
    for (const r of ROUTES) {
      const op = doc.paths[openApiPath(r.url)][r.method.toLowerCase()];
      const type = r.produces ?? 'application/json';
      expect(op.responses['200'].content[type].schema).toEqual(plain(r.response));
      if (r.body)
        expect(op.requestBody).toMatchObject({ content: { 'application/json': { schema: plain(r.body) } } });
      const names = (s: unknown) => Object.keys((s as { properties?: object } | undefined)?.properties ?? {});
      expect(op.parameters.filter((p) => p.in === 'query').map((p) => p.name)).toEqual(names(r.querystring));
      expect(op.parameters.filter((p) => p.in === 'path').map((p) => p.name)).toEqual(names(r.params));
    }
  });

  it('answers 404, 415, 413 (body and batch) and 400 (malformed JSON, bad body) with the error shape', async () => {
    expectError(await call(`${s.url}/v1/nope`), 404, 'USAGEDB_ERR_NOT_FOUND', /no route GET \/v1\/nope/);
    expectError(await call(`${s.url}/v1/usage/batch`), 404, 'USAGEDB_ERR_NOT_FOUND');
    expectError(
      await call(`${s.url}/v1/usage/batch`, { raw: 'events', headers: { 'content-type': 'text/plain' } }),
      415,
      'USAGEDB_ERR_UNSUPPORTED_MEDIA_TYPE',
    );
    expectError(
      await call(`${s.url}/v1/query/sql`, {
        raw: 'query=1',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      415,
      'USAGEDB_ERR_UNSUPPORTED_MEDIA_TYPE',
    );
    const big = { events: usageBatch(1000, 90), pad: 'x'.repeat(64 * 1024) };
    expectError(
      await call(`${s.url}/v1/usage/batch`, { body: big }),
      413,
      'USAGEDB_ERR_BODY_TOO_LARGE',
      /65536 bytes/,
    );
    expectError(
      await call(`${s.url}/v1/usage/batch`, { body: { events: usageBatch(2000, 101) } }),
      413,
      'USAGEDB_ERR_BATCH_TOO_LARGE',
      /101 events/,
    );
    expectError(
      await call(`${s.url}/v1/usage/batch`, {
        raw: '{"events": [',
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
    );
    expectError(
      await call(`${s.url}/v1/usage/batch`, { body: { events: 'all' } }),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
    );
    expectError(
      await call(`${s.url}/v1/usage/batch`, { body: [usage(1)] }),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
    );
    // An empty JSON body is a 400 too.
    expectError(
      await call(`${s.url}/v1/usage/batch`, { raw: '', headers: { 'content-type': 'application/json' } }),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
    );
    // Nothing of the refused requests was stored.
    expect((await s.db.query({ from: 0, to: Date.now() })).rows[0].count).toBe(51);
  });

  it('a batch read with a bare JSON.parse: "__proto__" keys are refused per event; other bodies keep the safe parser', async () => {
    const ok = JSON.stringify(usage(5000));
    const inEvent = `${JSON.stringify(usage(5001)).slice(0, -1)},"__proto__":{"kind":"Retraction"}}`;
    const e2 = usage(5002);
    const inDimensions = `${JSON.stringify({ ...e2, dimensions: undefined }).slice(0, -1)},"dimensions":{"__proto__":"x"}}`;
    const r = await call(`${s.url}/v1/usage/batch`, {
      raw: `{"events":[${ok},${inEvent},${inDimensions}]}`,
      headers: { 'content-type': 'application/json' },
    });
    expectConforms(r, 'POST', '/v1/usage/batch');
    expect(r.body).toMatchObject({ accepted: 1, rejected: 2 });
    const errors = (r.body as { errors: { index: number; reason: string }[] }).errors;
    expect(errors.map((e) => [e.index, e.reason])).toEqual([
      [1, 'unknown_field'],
      [2, 'invalid_dimensions'],
    ]);
    // The envelope itself may carry one: it is not read.
    const envelope = await call(`${s.url}/v1/usage/batch`, {
      raw: `{"__proto__":{"events":[]},"events":[${JSON.stringify(usage(5003))}]}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(envelope.body).toMatchObject({ accepted: 1 });
    // Other routes: Fastify's safe parser refuses the body whole.
    expectError(
      await call(`${s.url}/v1/query/json`, {
        raw: `{"from":"${FROM}","to":"${TO}","__proto__":{"limit":1}}`,
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'USAGEDB_ERR_INVALID_ARGUMENT',
    );
  });
});

describe('HTTP API with keys', () => {
  const KEY = 'k-0123456789abcdef';
  const s = suiteServer({ config: { apiKeys: ['other-key-0123456789', KEY] } });

  it('every /v1 route needs a configured bearer key; health, metrics and openapi do not', async () => {
    const batch = { events: [usage(1)] };
    expectError(await call(`${s.url}/v1/usage/batch`, { body: batch }), 401, 'USAGEDB_ERR_UNAUTHORIZED');
    expectError(
      await call(`${s.url}/v1/usage/batch`, { body: batch, key: 'k-0123456789abcdeX' }),
      401,
      'USAGEDB_ERR_UNAUTHORIZED',
    );
    expectError(
      await call(`${s.url}/v1/usage/batch`, { body: batch, headers: { authorization: KEY } }),
      401,
      'USAGEDB_ERR_UNAUTHORIZED',
    );
    expectError(
      await call(`${s.url}/v1/accounts/acct_1/usage?from=${FROM}&to=${TO}`),
      401,
      'USAGEDB_ERR_UNAUTHORIZED',
    );
    expectError(
      await call(`${s.url}/v1/query/sql`, { body: { query: 'x' } }),
      401,
      'USAGEDB_ERR_UNAUTHORIZED',
    );
    expectError(await call(`${s.url}/v1/unknown`), 401, 'USAGEDB_ERR_UNAUTHORIZED');
    expectError(await call(`${s.url}/%761/usage/batch`, { body: batch }), 401, 'USAGEDB_ERR_UNAUTHORIZED');
    expectError(await call(`${s.url}/v1/usage/batch/`, { body: batch }), 401, 'USAGEDB_ERR_UNAUTHORIZED');
    const ok = await call(`${s.url}/v1/usage/batch`, { body: batch, key: KEY });
    expect(ok.body).toMatchObject({ accepted: 1 });
    const usageOk = await call(`${s.url}/v1/accounts/acct_1/usage?from=${FROM}&to=${TO}`, { key: KEY });
    expect(usageOk.status).toBe(200);
    expect((await call(`${s.url}/health`)).status).toBe(200);
    expect((await call(`${s.url}/metrics`)).status).toBe(200);
    expect((await call(`${s.url}/openapi.json`)).status).toBe(200);
  });
});

describe('HTTP batch bodies: the byte scan and the full path', () => {
  const s = suiteServer();

  it('POST /v1/usage/batch takes a compact batch through the byte scan, and a spaced one the full path, alike', async () => {
    const scans: boolean[] = [];
    const scan = s.db.scanBatchBody.bind(s.db);
    s.db.scanBatchBody = (body) => {
      const batch = scan(body);
      scans.push(batch !== undefined);
      return batch;
    };
    try {
      const compact = await call(`${s.url}/v1/usage/batch`, {
        raw: JSON.stringify({ events: usageBatch(500, 5) }),
        headers: { 'content-type': 'application/json' },
      });
      const spaced = await call(`${s.url}/v1/usage/batch`, {
        raw: JSON.stringify({ events: usageBatch(505, 5) }, null, 2),
        headers: { 'content-type': 'application/json' },
      });
      expect(scans).toEqual([true, false]);
      expect(compact.body).toEqual(spaced.body);
      expect(compact.body).toMatchObject({ accepted: 5, rejected: 0 });
    } finally {
      s.db.scanBatchBody = scan;
    }
  });
});
