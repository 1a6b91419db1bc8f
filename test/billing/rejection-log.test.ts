import { describe, expect, it } from 'vitest';
import { EVENT_JSON_BYTES_MAX, storedEventOf } from '../../src/billing/rejection-log.ts';
import { UsageDbError } from '../../src/errors.ts';
import { abandonForCrashTest } from '../../src/testing.ts';
import { simDb } from '../support/events.ts';
import { ev } from './helpers.ts';

const bad = (id: string, account = 'acme') => ev(id, { quantity: -1, account_id: account });

describe('rejection log', () => {
  it('pages by cursor, filters by account and time, survives a restart (and a crash in strict mode)', async () => {
    const sim = simDb();
    let db = await sim.open({ durability: 'strict' });
    const t0 = sim.clock.nowMs();
    for (let i = 0; i < 5; i++) {
      await db.ingest([bad(`a${i}`), bad(`b${i}`, 'beta')]);
      sim.clock.advance(1000);
    }
    const all = [];
    let cursor: string | null = null;
    do {
      const page = await db.rejections({ account_id: 'acme', limit: 2, cursor });
      all.push(...page.rejections);
      cursor = page.next_cursor;
    } while (cursor !== null);
    expect(all.map((r) => r.event_id)).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
    const ranged = await db.rejections({ from: t0 + 1000, to: t0 + 3000 });
    expect(ranged.rejections.map((r) => r.event_id)).toEqual(['a1', 'b1', 'a2', 'b2']);
    abandonForCrashTest(db);
    sim.fs.crash();
    sim.fs.restart();
    db = await sim.open({ durability: 'strict' });
    expect((await db.rejections({ account_id: 'beta' })).rejections.map((r) => r.event_id)).toEqual([
      'b0',
      'b1',
      'b2',
      'b3',
      'b4',
    ]);
    expect((await db.check()).rejection_log).toMatchObject({ entries: 10, dropped: 0, corrupt_lines: 0 });
    const err = await db.rejections({ cursor: 'garbage' }).catch((e: unknown) => e);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_INVALID_QUERY');
    await db.close();
  });

  it('is bounded in bytes: the oldest entries go first and are counted as dropped', async () => {
    const sim = simDb();
    const bytesMax = 8 * 1024;
    let db = await sim.open({ limits: { rejectionLogBytesMax: bytesMax } });
    for (let i = 0; i < 200; i++) await db.ingest([bad(`e${i}`)]);
    const report = (await db.check()).rejection_log;
    expect(report.bytes).toBeLessThanOrEqual(bytesMax + 1024);
    expect(report.dropped).toBeGreaterThan(0);
    expect(report.entries + report.dropped).toBe(200);
    const page = await db.rejections({ limit: 1000 });
    expect(page.rejections.length).toBe(report.entries);
    // What is left is the newest, in order.
    expect(page.rejections.at(-1)?.event_id).toBe('e199');
    expect(page.rejections[0].event_id).toBe(`e${report.dropped}`);
    await db.close();
    db = await sim.open({ limits: { rejectionLogBytesMax: bytesMax } });
    expect((await db.check()).rejection_log).toMatchObject({
      entries: report.entries,
      dropped: report.dropped,
    });
    await db.close();
  });

  it('is bounded in age: entries older than the limit are dropped', async () => {
    const sim = simDb();
    const db = await sim.open({ limits: { rejectionLogAgeMaxMs: 10_000 } });
    await db.ingest([bad('old1'), bad('old2')]);
    sim.clock.advance(8_000);
    await db.ingest([bad('new1')]);
    sim.clock.advance(5_000);
    expect((await db.rejections()).rejections.map((r) => r.event_id)).toEqual(['new1']);
    expect((await db.check()).rejection_log).toMatchObject({ entries: 1, dropped: 2 });
    expect((await db.lookupEvent('old1')).status).toBe('unknown');
    await db.close();
  });

  it('stores huge events truncated, and says so', async () => {
    const sim = simDb();
    const db = await sim.open();
    const huge = ev('huge', { quantity: -1, source: 'x'.repeat(100_000) });
    await db.ingest([huge]);
    const [entry] = (await db.rejections()).rejections;
    expect(entry.event_truncated).toBe(true);
    expect(JSON.stringify(entry.event).length).toBeLessThanOrEqual(EVENT_JSON_BYTES_MAX);
    expect((entry.event as { event_id: string }).event_id).toBe('huge');
    expect(storedEventOf({ a: 1 })).toEqual({ event: { a: 1 }, truncated: false });
    const cyclic: Record<string, unknown> = { event_id: 'c' };
    cyclic.self = cyclic;
    expect(storedEventOf(cyclic).truncated).toBe(true);
    expect(storedEventOf({ big: 10n }).event).toEqual({ big: '10' });
    await db.close();
  });
});
