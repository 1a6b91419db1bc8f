/**
 * Real process kills: the built `usagedb serve` binary under HTTP ingest from several
 * concurrent clients, killed with SIGKILL at random moments and restarted on the same
 * directory, again and again. A tiny memtable and a fast tick make flushes and compactions
 * happen all the time, so kills land inside them too. After the last restart, through the
 * audit API: every acknowledged event is stored exactly once (counted per id), nothing stored
 * was never sent or differs from what was sent, and the query engine's totals equal the
 * stored events. Retries of acknowledged batches after a restart are all duplicates. Beside
 * the senders, a billing client closes and reopens one account's April over and over, so
 * kills land inside closes too: at the end that period is closed with exactly its events'
 * lines, or open and closes to them.
 *
 * KILL_ROUNDS=N runs more rounds (CI: 20); KILL_SEED=N replays the kill timings' seed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rng } from '../support/events.ts';
import { tempDir } from '../api/harness.ts';
import { type ServeProcess, startServe } from '../api/serve-process.ts';

const ROUNDS = Number(process.env.KILL_ROUNDS ?? 20);
const SEED = Number(process.env.KILL_SEED ?? Date.now() % 100_000);
const SENDERS = 4;
const ACCOUNTS = 5;
const T0 = Date.UTC(2026, 4, 1);

interface Sent {
  account: string;
  timestamp: number;
  quantity: number;
}

/** Event `n`: everything about it follows from its number, so a stored copy can be checked. */
function eventOf(n: number): Record<string, unknown> {
  return {
    event_id: `kill_${n}`,
    account_id: `acct_${n % ACCOUNTS}`,
    product_id: 'llm-api',
    meter_id: n % 3 === 0 ? 'tokens.input' : 'tokens.output',
    unit: 'tokens',
    source: 'kill-test',
    model_id: n % 2 === 0 ? 'model-a' : null,
    // Spread over 20 days: flushes write several partitions, merges have work.
    timestamp_ms: T0 + (n % 20) * 86_400_000 + n,
    quantity: (n * 7919) % 100_000,
    dimensions: n % 4 === 0 ? { region: 'eu' } : undefined,
  };
}

/** The billed account: a fixed month of events, closed and reopened while the senders run. */
const BILL_ACCOUNT = 'acct_bill';
const BILL_PERIOD = '2026-04';
const BILL_EVENTS = Array.from({ length: 40 }, (_, i) => ({
  event_id: `bill_${i}`,
  account_id: BILL_ACCOUNT,
  product_id: 'llm-api',
  meter_id: i % 2 === 0 ? 'tokens.input' : 'tokens.output',
  unit: 'tokens',
  source: 'kill-test',
  timestamp_ms: Date.UTC(2026, 3, 1) + i * 3_600_000,
  quantity: i + 1,
}));

async function periodCall(
  url: string,
  action: 'close' | 'reopen' | null,
): Promise<{ status: number; body: unknown }> {
  const path = `${url}/v1/accounts/${BILL_ACCOUNT}/periods/${BILL_PERIOD}${action === null ? '' : `/${action}`}`;
  const r = await fetch(path, { method: action === null ? 'GET' : 'POST' });
  return { status: r.status, body: await r.json() };
}

function sentOf(n: number): Sent {
  const e = eventOf(n);
  return {
    account: e.account_id as string,
    timestamp: e.timestamp_ms as number,
    quantity: e.quantity as number,
  };
}

async function post(
  url: string,
  events: Record<string, unknown>[],
): Promise<{ status: number; body: unknown }> {
  const r = await fetch(`${url}/v1/usage/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  return { status: r.status, body: await r.json() };
}

async function serve(dir: string, durability: string): Promise<ServeProcess> {
  return startServe([
    '--db-root',
    dir,
    '--log-level',
    'error',
    '--durability',
    durability,
    '--memtable-bytes-max',
    '8192',
    '--tick-interval-ms',
    '15',
  ]);
}

/** Every stored copy per id, through the audit API (paged), and each copy's payload. */
async function storedCopies(url: string): Promise<Map<string, { count: number; copies: Sent[] }>> {
  const out = new Map<string, { count: number; copies: Sent[] }>();
  for (let a = 0; a < ACCOUNTS; a++) {
    let cursor: string | null = null;
    do {
      const q = `from=0&to=2000000000000&limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
      const r = await fetch(`${url}/v1/accounts/acct_${a}/usage/events?${q}`);
      expect(r.status).toBe(200);
      const page = (await r.json()) as {
        events: { event_id: string; account_id: string; timestamp_ms: number; quantity: string }[];
        next_cursor: string | null;
      };
      for (const e of page.events) {
        const entry = out.get(e.event_id) ?? { count: 0, copies: [] };
        entry.count++;
        entry.copies.push({ account: e.account_id, timestamp: e.timestamp_ms, quantity: Number(e.quantity) });
        out.set(e.event_id, entry);
      }
      cursor = page.next_cursor;
    } while (cursor !== null);
  }
  return out;
}

/**
 * True when the directory holds a segment, rollup or manifest file that the committed
 * generation does not name: the kill landed between writing it and committing it.
 */
function writesInFlight(dir: string): boolean {
  const manifestDir = join(dir, 'manifest');
  const current = readFileSync(join(manifestDir, 'CURRENT'), 'utf8').trim();
  const doc = JSON.parse(readFileSync(join(manifestDir, current), 'utf8')) as {
    manifest: {
      raw_segments: { id: number }[];
      rollup_segments?: { id: number }[];
      quarantine: { id: number }[];
    };
  };
  const named = new Set(
    [...doc.manifest.raw_segments, ...(doc.manifest.rollup_segments ?? []), ...doc.manifest.quarantine].map(
      (e) => e.id,
    ),
  );
  const files = [
    ...readdirSync(join(dir, 'raw')),
    ...(existsSync(join(dir, 'rollup')) ? readdirSync(join(dir, 'rollup')) : []),
  ];
  const newest = Math.max(0, ...named);
  // Only ids above every committed one: older unnamed files are obsolete ones not yet deleted.
  if (files.some((f) => /^\d+\.(useg|rseg)$/.test(f) && Number(f.slice(0, 8)) > newest)) return true;
  return readdirSync(manifestDir).some((f) => f.endsWith('.tmp'));
}

describe('serve: SIGKILL at random moments under concurrent HTTP ingest', () => {
  const tmp = tempDir('usagedb-kill-serve-');
  afterAll(() => tmp.remove());

  it(`${ROUNDS} kills (seed ${SEED}): every acknowledged event exactly once, nothing invented`, async () => {
    const random = rng(SEED);
    /** Event numbers whose batch was answered 200 (accepted or duplicate). */
    const acked = new Set<number>();
    /** Batches sent but not answered (the kill came first): retried after the restart. */
    const unanswered: number[][] = [];
    let next = 0;
    let kills = 0;
    let closes = 0;
    let retriedDuplicates = 0;
    /** Kills that left a segment or manifest file no committed generation names yet. */
    let killedMidWrite = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const durability = (['strict', 'balanced'] as const)[round % 2];
      const server = await serve(tmp.dir, durability);
      if (round === 0) {
        const r = await post(server.url, BILL_EVENTS);
        expect(r.body).toMatchObject({ accepted: BILL_EVENTS.length });
      }
      // First the retries: earlier unanswered batches (any outcome allowed, then acknowledged)
      // and one acknowledged batch (must be all duplicates: nothing stored twice).
      for (const batch of unanswered.splice(0)) {
        const r = await post(server.url, batch.map(eventOf));
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        const body = r.body as { accepted: number; duplicates: number; conflicts: number };
        expect(body.accepted + body.duplicates, JSON.stringify(body)).toBe(batch.length);
        for (const n of batch) acked.add(n);
      }
      if (acked.size > 0) {
        const some = [...acked].slice(-30);
        const r = await post(server.url, some.map(eventOf));
        expect(r.body).toMatchObject({ accepted: 0, duplicates: some.length, conflicts: 0 });
        retriedDuplicates += some.length;
      }
      let stop = false;
      const sender = async () => {
        while (!stop) {
          const size = 1 + Math.floor(random() * 40);
          const batch = Array.from({ length: size }, () => next++);
          unanswered.push(batch);
          let r: { status: number; body: unknown };
          try {
            r = await post(server.url, batch.map(eventOf));
          } catch {
            return; // killed: the batch stays unanswered
          }
          if (r.status !== 200) throw new Error(`status ${r.status}: ${JSON.stringify(r.body)}`);
          expect(r.body).toMatchObject({ accepted: size, duplicates: 0, conflicts: 0, rejected: 0 });
          unanswered.splice(unanswered.indexOf(batch), 1);
          for (const n of batch) acked.add(n);
        }
      };
      // Failures are collected, not left unhandled while the test sleeps before the kill.
      const failures: unknown[] = [];
      const senders = Array.from({ length: SENDERS }, () =>
        sender().catch((err: unknown) => failures.push(err)),
      );
      // Closes and reopens the billed month until the kill (a 409 only means a race lost).
      const biller = async () => {
        while (!stop) {
          let r: { status: number; body: unknown };
          try {
            r = await periodCall(server.url, closes % 2 === 0 ? 'close' : 'reopen');
          } catch {
            return;
          }
          if (r.status !== 200 && r.status !== 409)
            throw new Error(`period: ${r.status} ${JSON.stringify(r.body)}`);
          closes++;
        }
      };
      senders.push(biller().catch((err: unknown) => failures.push(err)));
      // A random moment: with an 8 KiB memtable and a 15 ms tick, flushes and merges run
      // continuously, so the kill often lands inside one.
      await new Promise((r) => setTimeout(r, 50 + Math.floor(random() * 450)));
      server.child.kill('SIGKILL');
      kills++;
      stop = true;
      await server.exited;
      if (writesInFlight(tmp.dir)) killedMidWrite++;
      await Promise.all(senders);
      expect(failures.map(String)).toEqual([]);
    }

    const last = await serve(tmp.dir, 'balanced');
    try {
      const copies = await storedCopies(last.url);
      let lost = 0;
      for (const n of acked) if (copies.get(`kill_${n}`)?.count !== 1) lost++;
      let doubled = 0;
      let invented = 0;
      let sum = 0;
      for (const [id, { count, copies: got }] of copies) {
        if (count !== 1) doubled++;
        const m = /^kill_(\d+)$/.exec(id);
        if (m === null || Number(m[1]) >= next) {
          invented++;
          continue;
        }
        for (const c of got) {
          expect(c, `${id} stored with another payload`).toEqual(sentOf(Number(m[1])));
          sum += c.quantity;
        }
      }
      expect({ lost, doubled, invented }).toEqual({ lost: 0, doubled: 0, invented: 0 });
      // The billed month: closed with exactly its events' lines, or open and closing to them.
      let period = await periodCall(last.url, null);
      if ((period.body as { status: string }).status === 'open') period = await periodCall(last.url, 'close');
      const lines = (
        period.body as { snapshot: { lines: { meter_id: string; quantity: string; event_count: number }[] } }
      ).snapshot.lines;
      const want = ['tokens.input', 'tokens.output'].map((meter) => {
        const mine = BILL_EVENTS.filter((e) => e.meter_id === meter);
        return {
          meter_id: meter,
          quantity: String(mine.reduce((a, e) => a + e.quantity, 0)),
          event_count: mine.length,
        };
      });
      expect(
        lines.map((l) => ({ meter_id: l.meter_id, quantity: l.quantity, event_count: l.event_count })),
      ).toEqual(want);
      for (const e of BILL_EVENTS) sum += e.quantity;
      // The query engine, which bills, counts the same events once each.
      const r = await fetch(`${last.url}/v1/query/json`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ from: 0, to: 2_000_000_000_000, metrics: ['sum', 'count'] }),
      });
      expect(await r.json()).toMatchObject({
        rows: [{ sum: String(sum), count: copies.size + BILL_EVENTS.length }],
      });
      // The biller ran through the rounds (a close takes longer than some rounds live on a
      // busy machine, so not every round completes one).
      expect(closes).toBeGreaterThanOrEqual(ROUNDS / 4);
      expect(kills).toBe(ROUNDS);
      expect(acked.size).toBeGreaterThan(ROUNDS * 20);
      expect(retriedDuplicates).toBeGreaterThan(0);
      console.log(
        `kill-serve seed ${SEED}: ${kills} kills, ${next} events sent, ${acked.size} acknowledged, ` +
          `${copies.size} stored, lost 0, doubled 0, invented 0; ${killedMidWrite} kills landed inside a flush, ` +
          `merge or rollup build (files not yet committed); ${closes} period closes/reopens answered`,
      );
    } finally {
      last.child.kill('SIGTERM');
      await last.exited;
    }
  }, 240_000);
});
