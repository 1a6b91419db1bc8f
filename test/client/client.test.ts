/**
 * The client SDK against a real listening server: buffered tracking, per-event errors, every
 * route helper, retries (network errors, 408, 429, 503; never another 4xx), and a server restart in the
 * middle of a stream with every tracked event stored exactly once.
 */
import { describe, expect, it } from 'vitest';
import {
  type TrackError,
  UsageDbClient,
  UsageDbClientError,
  type UsageEventInput,
} from '../../src/client/index.ts';
import { UsageDb } from '../../src/db.ts';
import { startServer, suiteServer, tempDir } from '../api/harness.ts';
import { usage } from '../support/events.ts';

const FROM = '2026-05-01T00:00:00Z';
const TO = '2026-06-01T00:00:00Z';

function ev(i: number, prefix = 'c'): UsageEventInput {
  return { ...usage(i), event_id: `${prefix}_${i}` } as unknown as UsageEventInput;
}

async function storedIds(db: UsageDb): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let a = 0; a < 7; a++) {
    let cursor: string | undefined;
    do {
      const page = await db.events({
        account_id: `acct_${a}`,
        from: 0,
        to: 2_000_000_000_000,
        limit: 10_000,
        cursor,
      });
      for (const e of page.events) counts.set(e.event_id, (counts.get(e.event_id) ?? 0) + 1);
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
  }
  return counts;
}

describe('UsageDbClient against a real server', () => {
  const s = suiteServer({ prefix: 'usagedb-client-' });

  it('track() batches by size and time; flush() returns the results and per-event errors', async () => {
    const seen: TrackError[] = [];
    let requests = 0;
    const client = new UsageDbClient({
      url: s.url,
      batchSize: 400,
      flushIntervalMs: 50,
      fetch: (input, init) => {
        requests++;
        return fetch(input, init);
      },
      onError: (e) => seen.push(e),
    });
    for (let i = 0; i < 1000; i++) client.track(ev(i));
    client.track(ev(0)); // duplicate
    client.track({ ...ev(1), quantity: 123_456 }); // conflict
    client.track({ ...ev(5000), quantity: -1 }); // rejected
    expect(requests).toBe(2); // two full batches went at once; the rest waits for the timer
    await new Promise((r) => setTimeout(r, 150));
    expect(requests).toBe(3);
    const r = await client.flush();
    expect(r).toMatchObject({ accepted: 1000, duplicates: 1, conflicts: 1, rejected: 1, failed: [] });
    expect(r.errors.map((e) => [e.event_id, e.status, e.event.quantity])).toEqual([
      ['c_1', 'conflict', 123_456],
      ['c_5000', 'rejected', -1],
    ]);
    expect(seen.map((e) => e.kind)).toEqual(['event', 'event']);
    expect(await client.flush()).toMatchObject({ accepted: 0, errors: [] });
    await client.close();
    expect(() => client.track(ev(1))).toThrow(UsageDbClientError);
  });

  it('typed helpers for every route', async () => {
    const client = new UsageDbClient({ url: `${s.url}/` });
    const direct = await s.db.query({
      account_id: 'acct_3',
      from: FROM,
      to: TO,
      group_by: ['product_id', 'meter_id', 'model_id', 'unit'],
    });
    const u = await client.usage('acct_3', { from: FROM, to: TO });
    expect(u.lines.map((l) => l.quantity)).toEqual(direct.rows.map((r) => r.sum));
    const byMeter = await client.usage('acct_3', {
      from: FROM,
      to: TO,
      group_by: ['meter_id'],
      event_source: 'gateway',
    });
    expect(Object.keys(byMeter.lines[0])).toEqual(['meter_id', 'quantity', 'event_count']);
    let n = 0;
    for await (const page of client.allEvents('acct_3', { from: FROM, to: TO, limit: 50 }))
      n += page.events.length;
    expect(n).toBe(direct.rows.reduce((a, r) => a + Number(r.count), 0));
    const q = await client.queryJson({ from: FROM, to: TO, group_by: ['account_id'] });
    expect(q.rows.length).toBe(7);
    const sql = await client.querySql(
      `SELECT COUNT(*) AS n FROM usage_events WHERE timestamp_ms >= '${FROM}' AND timestamp_ms < '${TO}'`,
    );
    expect(sql).toMatchObject({ columns: ['n'], rows: [[1000]] });
    // Billing routes: a period closed and reopened, explain, verify, lookup, rejections.
    const open = await client.period('acct_3', '2026-05');
    expect(open).toMatchObject({ status: 'open', carried_adjustments: [] });
    const closed = await client.closePeriod('acct_3', '2026-05');
    expect(closed.status).toBe('closed');
    expect(closed.snapshot.lines).toEqual(open.lines);
    expect(closed.snapshot.evidence_digest).toMatch(/^[0-9a-f]{64}$/);
    const again = await client.closePeriod('acct_3', '2026-05').catch((e: unknown) => e);
    expect(again).toMatchObject({ status: 409, code: 'USAGEDB_ERR_STATE_CONFLICT' });
    expect((await client.reopenPeriod('acct_3', '2026-05')).status).toBe('open');
    const ex = await client.explain('acct_3', { from: FROM, to: TO });
    expect(ex.lines.map((l) => l.quantity)).toEqual(open.lines.map((l) => l.quantity));
    expect(await client.verify('acct_3', { from: FROM, to: TO })).toMatchObject({ ok: true, drift: [] });
    const first = (await client.events('acct_3', { from: FROM, to: TO, limit: 1 })).events[0];
    expect(await client.lookupEvent(first.event_id)).toMatchObject({ status: 'stored', period: '2026-05' });
    expect(await client.lookupEvent('never-sent')).toMatchObject({ status: 'unknown' });
    expect(await client.rejections('acct_3', { from: FROM, to: TO })).toMatchObject({ next_cursor: null });
    expect(await client.health()).toMatchObject({ status: 'ok' });
    expect(await client.metrics()).toContain('usagedb_ingest_events_total');
    expect(await client.openApi()).toMatchObject({ openapi: '3.1.0' });
    const bad = await client.querySql('SELECT nonsense').catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(UsageDbClientError);
    expect(bad).toMatchObject({ status: 400, code: 'USAGEDB_ERR_UNSUPPORTED_SQL' });
  });

  it('retries network errors, 408, 429 and 503 with backoff; never another 4xx; gives up after maxRetries', async () => {
    const script: (number | 'network')[] = ['network', 503, 408, 429, 502];
    let calls = 0;
    const flaky: typeof fetch = async (input, init) => {
      calls++;
      const next = script.shift();
      if (next === 'network') throw new TypeError('fetch failed');
      if (typeof next === 'number')
        return new Response(JSON.stringify({ error: { code: 'X', message: 'busy' } }), { status: next });
      return fetch(input, init);
    };
    const client = new UsageDbClient({ url: s.url, fetch: flaky, retryBaseMs: 1, retryMaxMs: 5 });
    expect(await client.ingest([ev(7000)])).toMatchObject({ accepted: 1 });
    expect(calls).toBe(6);

    // Retry-After (seconds) is honoured, capped at retryMaxMs.
    let answered = 0;
    const busyOnce: typeof fetch = async (input, init) => {
      if (answered++ === 0) return new Response('{}', { status: 429, headers: { 'retry-after': '1' } });
      return fetch(input, init);
    };
    const patient = new UsageDbClient({ url: s.url, fetch: busyOnce, retryBaseMs: 1, retryMaxMs: 300 });
    const t0 = performance.now();
    expect(await patient.health()).toMatchObject({ status: 'ok' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);

    calls = 0;
    const r = await client.ingest([{ ...ev(7000), quantity: 1 }]);
    expect(r.conflicts).toBe(1);
    await expect(client.querySql('DELETE FROM usage_events')).rejects.toMatchObject({ status: 400 });
    expect(calls).toBe(2);

    calls = 0;
    const down = new UsageDbClient({
      url: 'http://127.0.0.1:1',
      maxRetries: 3,
      retryBaseMs: 1,
      fetch: (input, init) => {
        calls++;
        return fetch(input, init);
      },
    });
    down.track(ev(8000));
    expect(down.pendingEvents).toBe(1);
    const failed = await down.flush();
    expect(down.pendingEvents).toBe(0);
    expect(calls).toBe(4);
    expect(failed.failed).toHaveLength(1);
    expect(failed.failed[0].events.map((e) => e.event_id)).toEqual(['c_8000']);
    expect(failed.failed[0].error).toMatchObject({ status: 0, code: 'USAGEDB_CLIENT_NETWORK' });
  });
});

describe('UsageDbClient across a server restart', () => {
  it('every tracked event is stored exactly once', async () => {
    const tmp = tempDir('usagedb-client-restart-');
    let s = await startServer({ dir: tmp.dir });
    const port = Number(new URL(s.url).port);
    const client = new UsageDbClient({
      url: s.url,
      batchSize: 250,
      flushIntervalMs: 20,
      concurrency: 3,
      maxRetries: 30,
      retryBaseMs: 20,
      retryMaxMs: 250,
    });
    const N = 20_000;
    let restarted: Promise<void> | null = null;
    for (let i = 0; i < N; i++) {
      client.track(ev(i, 'r'));
      if (i % 500 === 0) await new Promise((r) => setTimeout(r, 5));
      if (i === N / 2) {
        // Graceful stop with batches in flight, a pause with nothing listening, then a restart
        // on the same port and directory.
        restarted = (async () => {
          await s.stop();
          await new Promise((r) => setTimeout(r, 300));
          s = await startServer({ dir: tmp.dir, config: { port } });
        })();
      }
    }
    await restarted;
    const r = await client.close();
    expect(r.failed).toEqual([]);
    expect(r.errors).toEqual([]);
    expect(r.accepted + r.duplicates).toBe(N);
    const ids = await storedIds(s.db);
    expect(ids.size).toBe(N);
    expect([...ids.values()].every((c) => c === 1)).toBe(true);
    await s.stop();
    tmp.remove();
  });
});

describe('UsageDbClient backpressure', () => {
  it('track() throws once maxPendingEvents are waiting, and works again after flush()', async () => {
    let release = () => undefined as void;
    const gate = new Promise<void>((r) => (release = r));
    const slow: typeof fetch = async () => {
      await gate;
      return new Response(
        JSON.stringify({ accepted: 2, duplicates: 0, conflicts: 0, rejected: 0, errors: [] }),
      );
    };
    const client = new UsageDbClient({
      url: 'http://127.0.0.1:1',
      fetch: slow,
      batchSize: 2,
      maxPendingEvents: 3,
    });
    client.track(ev(1));
    client.track(ev(2)); // a full batch: now being sent
    client.track(ev(3));
    expect(client.pendingEvents).toBe(3);
    expect(() => client.track(ev(4))).toThrow(/maxPendingEvents/);
    const flushed = client.flush();
    release();
    expect((await flushed).accepted).toBe(4);
    client.track(ev(4));
    expect(client.pendingEvents).toBe(1);
    await client.close();
  });
});
