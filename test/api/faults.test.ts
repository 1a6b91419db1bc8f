/**
 * A disk that cannot persist: ingest answers 503 and acknowledges nothing; once the disk
 * recovers, the next request works (the library repairs its WAL on the next ingest).
 */
import { describe, expect, it } from 'vitest';
import { simDb, usageBatch } from '../support/events.ts';
import { call, startServer } from './harness.ts';

const ALL = 'from=0&to=2000000000000';

async function total(url: string): Promise<number> {
  const r = await call(`${url}/v1/query/json`, { body: { from: 0, to: 2_000_000_000_000 } });
  return (r.body as { rows: { count: number }[] }).rows[0].count;
}

describe('HTTP API on a failing disk', () => {
  for (const [op, errno, code] of [
    ['append', 'EIO', 'USAGEDB_ERR_WAL_WRITE'],
    ['sync', 'EIO', 'USAGEDB_ERR_WAL_WRITE'],
    ['append', 'ENOSPC', 'USAGEDB_ERR_'],
  ] as const) {
    it(`${errno} on WAL ${op}: 503 with nothing acknowledged, then recovery`, async () => {
      const sim = simDb();
      const s = await startServer({ db: await sim.open() });
      try {
        expect(
          (await call(`${s.url}/v1/usage/batch`, { body: { events: usageBatch(0, 10) } })).body,
        ).toMatchObject({
          accepted: 10,
        });
        const remove = sim.fs.injectFault((c) =>
          c.op === op && c.path.includes('/wal/') ? errno : undefined,
        );
        const failed = await call(`${s.url}/v1/usage/batch`, { body: { events: usageBatch(10, 10) } });
        expect(failed.status, failed.text).toBe(503);
        expect((failed.body as { error: { code: string } }).error.code).toMatch(new RegExp(`^${code}`));
        expect(await total(s.url)).toBe(10);
        const events = await call(`${s.url}/v1/accounts/acct_1/usage/events?${ALL}&limit=100`);
        expect(
          (events.body as { events: { event_id: string }[] }).events.map((e) => e.event_id).sort(),
        ).toEqual(
          usageBatch(0, 10)
            .filter((e) => e.account_id === 'acct_1')
            .map((e) => e.event_id)
            .sort(),
        );
        remove();
        const again = await call(`${s.url}/v1/usage/batch`, { body: { events: usageBatch(5, 10) } });
        expect(again.status, again.text).toBe(200);
        expect(again.body).toMatchObject({ accepted: 5, duplicates: 5 });
        expect(await total(s.url)).toBe(15);
      } finally {
        await s.stop();
      }
      // After a restart, exactly the acknowledged events are there.
      const db = await sim.open();
      expect((await db.query({ from: 0, to: 2_000_000_000_000 })).rows[0].count).toBe(15);
      await db.close();
    });
  }
});
