/**
 * Hostile input against the HTTP API, through a real listening server: malformed and deeply
 * nested JSON, wrong types, duplicate keys, `__proto__`, wrong content types, empty and
 * oversized batches, truncated bodies, odd paths and query strings. Every request gets a 2xx
 * or a 4xx with the error shape (never a 5xx), the server stays up, and nothing partial is
 * stored: the count afterwards equals the events the server acknowledged.
 */
import { request } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NOW, T0 } from '../support/events.ts';
import { type Running, startServer, tempDir } from '../api/harness.ts';

let server: Running;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  dir = tempDir('usagedb-http-fuzz-');
  server = await startServer({ dir: dir.dir, config: { bodyBytesMax: 256 * 1024, batchEventsMax: 500 } });
});

afterAll(async () => {
  await server.stop();
  dir.remove();
});

/** Sends raw bytes (so malformed and truncated bodies reach the server as they are). */
function send(
  method: string,
  path: string,
  body: string | null,
  contentType: string | null,
  truncate = false,
): Promise<{ status: number; text: string }> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (contentType !== null) headers['content-type'] = contentType;
    if (body !== null) headers['content-length'] = String(Buffer.byteLength(body) + (truncate ? 10 : 0));
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
    req.on('error', (err) => (truncate ? resolve({ status: 0, text: String(err) }) : reject(err)));
    if (body !== null) req.write(body);
    if (truncate) setTimeout(() => req.destroy(), 50);
    else req.end();
  });
}

function event(i: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_id: `h-${i}`,
    account_id: `acct_${i % 3}`,
    product_id: 'llm-api',
    meter_id: 'tokens.output',
    unit: 'tokens',
    source: 'gateway',
    timestamp_ms: T0 + i,
    quantity: i,
    ...extra,
  };
}

const hostileBody = fc.oneof(
  fc.string(),
  fc.json(),
  fc.anything().map((v) => {
    try {
      return JSON.stringify({ events: v }) ?? 'null';
    } catch {
      return '{}';
    }
  }),
  fc.nat(5_000).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
  fc.nat(5_000).map((d) => `{"events":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}`),
  fc.constantFrom(
    '',
    '{',
    '{"events":',
    '{"events":[{"event_id":"a","event_id":"b"}]}',
    '{"__proto__":{"polluted":1},"events":[]}',
    '{"events":[{"__proto__":{"quantity":5}}]}',
    '{"events":null}',
    '{"events":{}}',
    '{"events":[]}',
    'null',
    '[]',
    '"x"',
    '{"events":[1e400]}',
  ),
  fc
    .array(
      fc.oneof(
        fc.nat(1_000_000).map((i) => event(i)),
        fc.nat(1_000_000).map((i) => event(i, { quantity: 1.5 })),
        fc.nat(1_000_000).map((i) => event(i, { quantity: '1'.repeat(60) })),
        fc.nat(1_000_000).map((i) => event(i, { timestamp_ms: 9e15 })),
        fc.nat(1_000_000).map((i) =>
          event(i, {
            dimensions: Object.fromEntries(Array.from({ length: 20 }, (_, k) => [`k${k}`, 'v'])),
          }),
        ),
        fc.nat(1_000_000).map((i) => event(i, { event_id: 'x'.repeat(5_000) })),
        fc.nat(1_000_000).map((i) => event(i, { account_id: 'a\u0000b' })),
      ),
      { maxLength: 40 },
    )
    .map((events) => JSON.stringify({ events })),
);

const hostileRequest = fc.record({
  method: fc.constantFrom('POST', 'POST', 'POST', 'GET', 'PUT', 'DELETE'),
  path: fc.constantFrom(
    '/v1/usage/batch',
    '/v1/usage/batch',
    '/v1/query/json',
    '/v1/query/sql',
    '/v1/accounts/acct_1/usage?from=x&to=y',
    '/v1/accounts/acct_1/usage?from=2026-05-01&to=2026-04-01',
    '/v1/accounts/%00/usage/events?from=0&to=1&limit=-5',
    '/v1/accounts/acct_1/usage/events?cursor=!!!&from=0&to=1',
    '/nope',
    '/v1/%2e%2e/usage/batch',
  ),
  body: hostileBody,
  contentType: fc.constantFrom(
    'application/json',
    'application/json',
    'text/plain',
    'application/x-www-form-urlencoded',
    null,
  ),
  truncate: fc.nat(9).map((n) => n === 0),
});

describe('hostile input to the HTTP API', () => {
  it('never a 5xx, always the error shape on 4xx, the server stays up, nothing partial stored', async () => {
    const acknowledged = new Set<string>();
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(hostileRequest, async (r) => {
        const body = r.method === 'GET' ? null : r.body;
        const answer = await send(r.method, r.path, body, r.contentType, r.truncate);
        sent++;
        if (answer.status === 0) return; // a body we cut short: the connection is gone, fine
        expect(answer.status, `${r.method} ${r.path}: ${answer.text.slice(0, 200)}`).toBeLessThan(500);
        if (answer.status >= 400) {
          const parsed = JSON.parse(answer.text) as { error: { code: string; message: string } };
          expect(parsed.error.code).toMatch(/^USAGEDB_ERR_[A-Z_]+$/);
        }
        if (r.path === '/v1/usage/batch' && answer.status === 200 && body !== null) {
          const result = JSON.parse(answer.text) as { accepted: number; errors: { index: number }[] };
          const events = (JSON.parse(body) as { events: { event_id?: unknown }[] }).events;
          const failed = new Set(result.errors.map((e) => e.index));
          events.forEach((e, i) => {
            if (!failed.has(i) && typeof e.event_id === 'string') acknowledged.add(e.event_id);
          });
        }
      }),
      { numRuns: 400, seed: 7 },
    );
    expect(sent).toBe(400);
    const health = await send('GET', '/health', null, null);
    expect(health.status).toBe(200);
    const total = await server.db.query({ from: 1, to: NOW + 86_400_000, metrics: ['count'] });
    expect(total.rows[0].count).toBe(acknowledged.size);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  }, 120_000);
});
