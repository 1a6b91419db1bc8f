/**
 * Hostile input through a real listening server, at volume: more than 10,000 hostile events in
 * batches (wrong types, floats, overflowing quantities, huge strings and ids, more than 16
 * dimensions, control characters, lone surrogates, `__proto__` and duplicate keys, absurd
 * timestamps, deep nesting), hostile bodies (malformed JSON, empty and oversized batches,
 * wrong content types), truncated bodies and bodies sent too slowly. Every answer is a 2xx or
 * a 4xx in the error shape (never a 5xx: the disk is fine here), every batch answer accounts
 * for each event with a reason, the server stays up, and what is stored is exactly what was
 * acknowledged (no partial batch, no pollution).
 */
import { request } from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_FIELDS } from '../../src/model/validate.ts';
import { NOW, T0 } from '../support/events.ts';
import { type Running, startServer, tempDir } from '../api/harness.ts';

let server: Running;
let dir: ReturnType<typeof tempDir>;
const SNAKE = /^[a-z][a-z0-9_]*$/;

beforeAll(async () => {
  dir = tempDir('usagedb-http-hostile-');
  server = await startServer({
    dir: dir.dir,
    config: { bodyBytesMax: 1024 * 1024, batchEventsMax: 500, requestTimeoutMs: 1500 },
  });
});

afterAll(async () => {
  await server.stop();
  dir.remove();
});

interface Answer {
  status: number;
  text: string;
}

/**
 * Sends raw bytes. `truncate`: announce more bytes than sent, then drop the connection.
 * `slowMs`: send the body in pieces spread over that long.
 */
function send(
  method: string,
  path: string,
  body: string | null,
  contentType: string | null,
  options: { truncate?: boolean; slowMs?: number } = {},
): Promise<Answer> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (contentType !== null) headers['content-type'] = contentType;
    if (body !== null)
      headers['content-length'] = String(Buffer.byteLength(body) + (options.truncate === true ? 10 : 0));
    const req = request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error('client timeout')));
    // A connection the server closed (truncated or too slow) is not an answer: status 0.
    req.on('error', (err) =>
      options.truncate === true || options.slowMs !== undefined
        ? resolve({ status: 0, text: String(err) })
        : reject(err),
    );
    if (body === null) {
      req.end();
    } else if (options.slowMs !== undefined) {
      const bytes = Buffer.from(body);
      const pieces = 10;
      let k = 0;
      const tick = setInterval(() => {
        const from = Math.floor((k * bytes.length) / pieces);
        const to = Math.floor(((k + 1) * bytes.length) / pieces);
        if (!req.destroyed) req.write(bytes.subarray(from, to));
        k++;
        if (k === pieces) {
          clearInterval(tick);
          req.end();
        }
      }, options.slowMs / pieces);
    } else {
      req.write(body);
      if (options.truncate === true) setTimeout(() => req.destroy(), 30);
      else req.end();
    }
  });
}

function valid(i: number): Record<string, unknown> {
  return {
    event_id: `hh-${i}`,
    account_id: `acct_${i % 4}`,
    product_id: 'llm-api',
    meter_id: 'tokens.output',
    unit: 'tokens',
    source: 'gateway',
    model_id: 'm',
    timestamp_ms: T0 + i,
    quantity: i % 1000,
  };
}

/** Values as JSON text, so that lone surrogates, 1e400 and the like reach the server's parser. */
const hostileValueText = fc.oneof(
  fc.constantFrom(
    'null',
    'true',
    '""',
    '" "',
    '"\\u0000"',
    '"a\\u0007b"',
    '"\\ud800"',
    '"x\\udfff"',
    '"\\u202e"',
    '"💸"',
    '1.5',
    '-1',
    '0',
    '-0',
    '1e400',
    '-1e400',
    '1e38',
    '9007199254740993',
    '"99999999999999999999999999999999999999"',
    '"100000000000000000000000000000000000000"',
    '"-99999999999999999999999999999999999999"',
    '"1e3"',
    '"0x10"',
    '" 5"',
    '[]',
    '[1,2]',
    '{}',
    '{"__proto__":{"polluted":1}}',
    '{"constructor":{"prototype":{"polluted":1}}}',
    '8640000000000001',
    '-8640000000000000',
    '1e300',
    '"2026-05-01T00:00:00Z"',
  ),
  fc.integer().map(String),
  fc.double().map((d) => (Number.isFinite(d) ? String(d) : 'null')),
  fc.string({ maxLength: 30 }).map((s) => JSON.stringify(s)),
  fc.string({ unit: 'binary', maxLength: 20 }).map((s) => JSON.stringify(s)),
  fc.nat(300_000).map((n) => JSON.stringify('x'.repeat(n))),
  fc
    .integer({ min: 15, max: 40 })
    .map((n) => JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, k) => [`k${k}`, 'v'])))),
  fc.nat(3_000).map((d) => `${'{"a":'.repeat(d)}1${'}'.repeat(d)}`),
  fc.nat(3_000).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
);
// (the dictionary and nesting arbitraries above are small in number: most values are scalars)

/** One hostile event as JSON text: a valid event with one field replaced, removed, doubled or polluted. */
const hostileEventText = fc
  .tuple(fc.nat(2_000_000), fc.constantFrom(...EVENT_FIELDS), hostileValueText, fc.nat(99))
  .map(([i, field, value, how]) => {
    const e = valid(i);
    const entries = Object.entries(e).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    if (how < 15) return `{${entries.filter((x) => !x.startsWith(`"${field}":`)).join(',')}}`;
    if (how < 30) return `{${[...entries, `"${field}":${value}`].join(',')}}`; // duplicate key, last wins
    // Rare: a `__proto__` key refuses the whole body (400), so most batches reach the events.
    if (how < 31) return `{"__proto__":{"${field}":${value}},${entries.join(',')}}`;
    if (how < 45) return `{${[`"${field}":${value}`, ...entries].join(',')}}`; // first loses to the valid one
    if (how < 55) return JSON.stringify(e);
    return `{${[...entries.filter((x) => !x.startsWith(`"${field}":`)), `"${field}":${value}`].join(',')}}`;
  });

const hostileBatchText = fc.oneof(
  { weight: 8, arbitrary: fc.array(hostileEventText, { minLength: 30, maxLength: 60 }) },
  {
    weight: 2,
    arbitrary: fc.array(
      fc.oneof(
        hostileEventText,
        fc.nat(2_000_000).map((i) => JSON.stringify(valid(i))),
        hostileValueText,
      ),
      { minLength: 30, maxLength: 60 },
    ),
  },
);

/** Whole bodies that are wrong as a whole: a clear 4xx, nothing stored. */
const hostileBody = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '{',
    '{"events":',
    '{"events":[',
    'null',
    '[]',
    '"events"',
    '{"events":null}',
    '{"events":{}}',
    '{"events":"x"}',
    '{"events":[],"events":[1]}',
    '{"__proto__":{"events":[]}}',
    '\u0000',
    '\ufeff{"events":[]}',
    '{"events":[]}garbage',
  ),
  fc.string({ maxLength: 200 }),
  fc.nat(5_000).map((d) => `{"events":${'['.repeat(d)}${']'.repeat(d)}}`),
  // Over the batch limit (500 here) and over the body limit (1 MiB here).
  fc.constant(JSON.stringify({ events: Array.from({ length: 501 }, (_, i) => valid(10_000_000 + i)) })),
  fc.constant(JSON.stringify({ events: [{ ...valid(1), event_id: 'y'.repeat(1_100_000) }] })),
);

function expectAnswerShape(a: Answer, what: string): void {
  expect(a.status, `${what}: ${a.text.slice(0, 300)}`).toBeGreaterThanOrEqual(200);
  expect(a.status, `${what}: ${a.text.slice(0, 300)}`).toBeLessThan(500);
  if (a.status >= 400) {
    const parsed = JSON.parse(a.text) as { error: { code: string; message: string } };
    expect(parsed.error.code, what).toMatch(/^USAGEDB_ERR_[A-Z_]+$/);
    expect(typeof parsed.error.message, what).toBe('string');
  }
}

describe('hostile input to the HTTP API at volume', () => {
  it('>= 10,000 hostile events and hostile bodies: a 2xx or a clear 4xx, a reason per event, exact storage', async () => {
    const acknowledged = new Set<string>();
    let events = 0;
    let requests = 0;
    const statuses = new Map<number, number>();
    const note = (a: Answer) => statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);

    await fc.assert(
      fc.asyncProperty(hostileBatchText, async (items) => {
        const body = `{"events":[${items.join(',')}]}`;
        const a = await send('POST', '/v1/usage/batch', body, 'application/json');
        requests++;
        events += items.length;
        note(a);
        expectAnswerShape(a, 'batch');
        if (a.status !== 200) return; // refused whole (e.g. too large): nothing of it stored
        const r = JSON.parse(a.text) as {
          accepted: number;
          duplicates: number;
          conflicts: number;
          rejected: number;
          errors: { index: number; event_id: unknown; status: string; reason: string }[];
        };
        expect(r.accepted + r.duplicates + r.conflicts + r.rejected).toBe(items.length);
        expect(r.errors.length).toBe(r.conflicts + r.rejected);
        const failed = new Set<number>();
        for (const err of r.errors) {
          expect(err.index).toBeGreaterThanOrEqual(0);
          expect(err.index).toBeLessThan(items.length);
          expect(['rejected', 'conflict']).toContain(err.status);
          expect(err.reason).toMatch(SNAKE);
          failed.add(err.index);
        }
        items.forEach((text, i) => {
          if (failed.has(i)) return;
          const parsed = JSON.parse(text) as { event_id: string };
          acknowledged.add(parsed.event_id);
        });
      }),
      { numRuns: 260, seed: 20261206 },
    );

    await fc.assert(
      fc.asyncProperty(
        hostileBody,
        fc.constantFrom(
          'application/json',
          'application/json; charset=utf-8',
          'text/plain',
          'application/xml',
          null,
        ),
        fc.constantFrom('/v1/usage/batch', '/v1/query/json', '/v1/query/sql'),
        async (body, contentType, path) => {
          const a = await send('POST', path, body, contentType);
          requests++;
          note(a);
          expectAnswerShape(a, `${path} ${contentType}`);
          if (path === '/v1/usage/batch' && a.status === 200) {
            // Only an empty batch can be a 200 here.
            expect(JSON.parse(a.text)).toMatchObject({ accepted: 0 });
          }
        },
      ),
      { numRuns: 300, seed: 77 },
    );

    // Truncated bodies: the connection is dropped mid-body; nothing of them is stored.
    for (let k = 0; k < 20; k++) {
      const body = JSON.stringify({ events: [valid(50_000_000 + k)] });
      const a = await send('POST', '/v1/usage/batch', body, 'application/json', { truncate: true });
      requests++;
      if (a.status !== 0) expectAnswerShape(a, 'truncated body');
    }
    expect(events).toBeGreaterThanOrEqual(10_000);
    const health = await send('GET', '/health', null, null);
    expect(health.status).toBe(200);
    // Exactly what was acknowledged is stored: counted by the query engine, over all time.
    const total = await server.db.query({ from: 1, to: NOW + 2 * 86_400_000, metrics: ['count'] });
    expect(total.rows[0].count).toBe(acknowledged.size);
    const page = await server.db.events({ account_id: 'acct_0', from: 1, to: NOW, limit: 10_000 });
    expect(page.events.some((e) => e.event_id === 'hh-50000000')).toBe(false);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    console.log(
      `http-hostile: ${requests} requests, ${events} hostile events, ${acknowledged.size} acknowledged and stored; ` +
        `statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
  }, 240_000);

  // Regression: Node checks request timeouts only every 30 s unless told otherwise, so a body
  // trickling in for 4 s was accepted although request_timeout_ms is 1.5 s.
  it('a body sent slower than request_timeout_ms is refused (408 or dropped) and not stored', async () => {
    const before = Number((await server.db.query({ from: 1, to: NOW, metrics: ['count'] })).rows[0].count);
    const [tooSlow, inTime] = await Promise.all([
      send('POST', '/v1/usage/batch', JSON.stringify({ events: [valid(60_000_000)] }), 'application/json', {
        slowMs: 4_000,
      }),
      send('POST', '/v1/usage/batch', JSON.stringify({ events: [valid(60_000_001)] }), 'application/json', {
        slowMs: 300,
      }),
    ]);
    expect([0, 408], tooSlow.text).toContain(tooSlow.status);
    expect(inTime.status, inTime.text).toBe(200);
    expect((await send('GET', '/health', null, null)).status).toBe(200);
    const after = Number((await server.db.query({ from: 1, to: NOW, metrics: ['count'] })).rows[0].count);
    expect(after).toBe(before + 1);
  }, 30_000);
});
