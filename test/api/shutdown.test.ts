/**
 * Graceful shutdown of the real binary: SIGTERM while four clients stream batches. The server
 * exits 0 after answering what was in flight; after a restart every acknowledged event is
 * stored exactly once, and no event is stored twice.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { UsageDbClient } from '../../src/client/index.ts';
import { usage } from '../support/events.ts';
import { tempDir } from './harness.ts';
import { startServe } from './serve-process.ts';

const SENDERS = 4;
const BATCH_EVENTS = 200;

describe('serve: SIGTERM with batches in flight', () => {
  const tmp = tempDir('usagedb-shutdown-');
  afterAll(() => tmp.remove());

  it('finishes in-flight batches, closes the database, exits 0; every acknowledged event is stored once', async () => {
    const first = await startServe(['--db-root', tmp.dir, '--log-level', 'warn']);
    const acked = new Set<string>();
    const sent = new Set<string>();
    let inFlight = 0;
    let answeredAfterSignal = 0;
    let signalled = false;
    const sender = async (k: number) => {
      for (let n = 0; ; n++) {
        const events = Array.from({ length: BATCH_EVENTS }, (_, j) => ({
          ...usage(j),
          event_id: `s${k}_${n}_${j}`,
        }));
        for (const e of events) sent.add(e.event_id);
        inFlight++;
        try {
          const r = await fetch(`${first.url}/v1/usage/batch`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ events }),
          });
          if (signalled) answeredAfterSignal++;
          if (r.status !== 200) {
            // 503 while closing: nothing acknowledged, in the API's error shape.
            expect(r.status).toBe(503);
            expect(await r.json()).toMatchObject({ error: { code: 'USAGEDB_ERR_CLOSED' } });
            return;
          }
          const body = (await r.json()) as { accepted: number };
          expect(body.accepted).toBe(BATCH_EVENTS);
          for (const e of events) acked.add(e.event_id);
        } catch {
          return; // connection refused or reset: not acknowledged
        } finally {
          inFlight--;
        }
      }
    };
    const senders = Array.from({ length: SENDERS }, (_, k) => sender(k));
    while (acked.size < 20 * BATCH_EVENTS) await new Promise((r) => setTimeout(r, 10));
    const inFlightAtSignal = inFlight;
    signalled = true;
    first.child.kill('SIGTERM');
    await Promise.all(senders);
    expect(await first.exited, first.stderr()).toBe(0);
    expect(first.stdout()).toMatch(/stopped on SIGTERM/);
    expect(inFlightAtSignal).toBeGreaterThan(0);
    expect(answeredAfterSignal).toBeGreaterThan(0);

    const second = await startServe(['--db-root', tmp.dir, '--log-level', 'warn']);
    try {
      const client = new UsageDbClient({ url: second.url });
      const counts = new Map<string, number>();
      for (let a = 0; a < 7; a++) {
        for await (const page of client.allEvents(`acct_${a}`, {
          from: 0,
          to: 2_000_000_000_000,
          limit: 10_000,
        }))
          for (const e of page.events) counts.set(e.event_id, (counts.get(e.event_id) ?? 0) + 1);
      }
      for (const id of acked) expect(counts.get(id), id).toBe(1);
      for (const [id, c] of counts) {
        expect(c, id).toBe(1);
        expect(sent.has(id), id).toBe(true);
      }
      expect(counts.size).toBeGreaterThanOrEqual(acked.size);
    } finally {
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);
    }
  });
});
