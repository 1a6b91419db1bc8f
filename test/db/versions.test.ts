/**
 * Versions and pinning, file lifecycle, failed commits, flush failures: readers keep the
 * version they started on; no file a pinned version or a kept generation names is deleted.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageDb } from '../../src/db.ts';
import { UsageDbError } from '../../src/errors.ts';
import { MERGE_FANOUT } from '../../src/compact/planner.ts';
import { createQueryEngine } from '../../src/query/index.ts';
import { segmentFileName } from '../../src/storage/layout.ts';
import { MANIFEST_GENERATIONS_KEPT, manifestFileName } from '../../src/storage/manifest.ts';
import { abandonForCrashTest, readSnapshot } from '../../src/testing.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { DAY_MS, simDb, T0, usage, usageBatch } from '../support/events.ts';

const RANGE = { from: T0 - DAY_MS, to: T0 + 40 * DAY_MS };
const TOTALS = { ...RANGE, group_by: ['account_id', 'product_id'], metrics: ['sum', 'count'] };

async function walk(db: UsageDb, accountId: string, between?: () => Promise<void>): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let page = 0;
  do {
    const p: Awaited<ReturnType<UsageDb['events']>> = await db.events({
      account_id: accountId,
      ...RANGE,
      limit: 7,
      cursor,
    });
    ids.push(...p.events.map((e) => e.event_id));
    cursor = p.next_cursor;
    if (page++ === 1 && between) await between();
  } while (cursor !== null);
  return ids;
}

/** New events of an account no test walks, so the walked answers stay what they were. */
function elsewhere(from: number, count: number) {
  return usageBatch(from, count, { account_id: 'acct_elsewhere' });
}

describe('pinned versions', () => {
  it('a query, an audit walk and a snapshot read across compaction keep their version; files go only when unpinned and no longer named by the previous generation', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest(usageBatch(0, 150));
    await db.flush();
    await db.ingest(usageBatch(150, 150));
    await db.flush();
    const before = await db.query(TOTALS);
    const listing = await walk(db, 'acct_1');
    const inputs = [1, 2].map((id) => `/db/raw/${segmentFileName(id)}`);
    for (const f of inputs) expect(await sim.fs.exists(f)).toBe(true);

    const pinned = readSnapshot(db);
    // The walk pins nothing between pages: the compaction and a dozen commits happen mid-walk.
    const walked = await walk(db, 'acct_1', async () => {
      expect(await db.compact()).toMatchObject({ inputSegments: 2, outputRows: 300 });
      for (let g = 0; g < MANIFEST_GENERATIONS_KEPT + 2; g++) {
        await db.ingest(elsewhere(1_000 + g, 1));
        await db.flush();
      }
    });
    expect(walked).toEqual(listing);
    // Out of every kept generation, but pinned: still there, and the pinned view reads it.
    for (const f of inputs) expect(await sim.fs.exists(f)).toBe(true);
    const engine = createQueryEngine();
    expect((await engine.queryJson(pinned, TOTALS)).rows).toEqual(before.rows);
    pinned.release();
    await db.ingest(elsewhere(2_000, 1));
    await db.flush();
    for (const f of inputs) expect(await sim.fs.exists(f)).toBe(false);
    const after = await db.query({ ...TOTALS, filters: {} });
    expect(after.rows.filter((r) => r.account_id !== 'acct_elsewhere')).toEqual(before.rows);
    await db.close();
  });

  it('an export running while a compaction replaces its files gives the version it started on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'usagedb-versions-'));
    try {
      const db = await UsageDb.open({ dir: join(dir, 'db'), logger: silentLogger });
      await db.ingest(usageBatch(0, 200));
      await db.flush();
      await db.ingest(usageBatch(200, 200));
      await db.flush();
      const [exported, merged] = await Promise.all([
        db.exportParquet(join(dir, 'out.parquet')),
        (async () => {
          await new Promise((r) => setTimeout(r, 0));
          return db.compact();
        })(),
      ]);
      expect(merged?.outputRows).toBe(400);
      expect(exported).toMatchObject({ rows: 400 });
      expect(statSync(join(dir, 'out.parquet')).size).toBeGreaterThan(0);
      await db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a rollback past a corrupt newest generation finds every file it names (the previous generation keeps them)', async () => {
    const sim = simDb();
    const db = await sim.open();
    for (let f = 0; f < MERGE_FANOUT; f++) {
      await db.ingest(usageBatch(f * 50, 50));
      await db.flush();
    }
    const before = await db.query(TOTALS);
    await db.tick(); // a planned merge: the newest generation replaces the four inputs
    expect(db.stats().segments).toBe(1);
    const generation = db.stats().manifestGeneration;
    await db.close();
    // close committed nothing new (no WAL left to cover): the merge is the newest generation.
    sim.fs.flipBit(`/db/manifest/${manifestFileName(generation)}`, 40, 2);
    const reopened = await sim.open();
    expect(reopened.stats().manifestGeneration).toBe(generation - 1);
    expect(reopened.stats().segments).toBe(MERGE_FANOUT);
    expect((await reopened.query(TOTALS)).rows).toEqual(before.rows);
    await reopened.close();
  });
});

describe('rollback further back', () => {
  it('refuses to start when a generation it would roll back to names a deleted file', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest(usageBatch(0, 50));
    await db.flush();
    await db.ingest(usageBatch(50, 50));
    await db.flush();
    await db.compact(); // merge, then an unchanged generation: the inputs are deleted
    const generation = db.stats().manifestGeneration;
    await db.close();
    expect(await sim.fs.exists(`/db/raw/${segmentFileName(1)}`)).toBe(false);
    for (const g of [generation, generation - 1])
      sim.fs.flipBit(`/db/manifest/${manifestFileName(g)}`, 40, 2);
    const err = await sim.open().catch((x: unknown) => x);
    expect(err).toBeInstanceOf(UsageDbError);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_MANIFEST_CORRUPT');
    // Every older generation named a deleted file or a deleted WAL file: none can be used.
    expect((err as Error).message).toMatch(/refusing to start/);
  });

  it('a generation kept on disk never names a missing file', async () => {
    const sim = simDb();
    const db = await sim.open();
    for (let round = 0; round < 3; round++) {
      for (let f = 0; f < 3; f++) {
        await db.ingest(usageBatch(round * 1_000 + f * 50, 50));
        await db.flush();
      }
      await db.compact();
    }
    for (let f = 0; f < 3; f++) {
      await db.ingest(usageBatch(9_000 + f * 50, 50));
      await db.flush();
    }
    await db.close();
    const { decodeManifest } = await import('../../src/storage/manifest.ts');
    const generations = (await sim.fs.readdir('/db/manifest')).filter((n) => /^manifest-\d+\.json$/.test(n));
    expect(generations.length).toBeGreaterThan(2);
    for (const name of generations) {
      const g = Number(/(\d+)/.exec(name)?.[1]);
      const { state } = decodeManifest(await sim.fs.readFile(`/db/manifest/${name}`), g);
      for (const e of [...state.raw_segments, ...state.quarantine]) {
        expect(
          await sim.fs.exists(`/db/raw/${segmentFileName(e.id)}`),
          `generation ${g} names segment ${e.id}`,
        ).toBe(true);
      }
    }
  });
});

describe('failed commits and failing flushes', () => {
  it('a failed manifest commit and its retry in the same process, then a reopen, answer correctly', async () => {
    const sim = simDb();
    const db = await sim.open({ logger: silentLogger });
    await db.ingest(usageBatch(0, 80));
    let failures = 1;
    const remove = sim.fs.injectFault((c) =>
      c.op === 'rename' && c.path.includes('/manifest/manifest-') && failures-- > 0 ? 'EIO' : undefined,
    );
    const err = await db.flush().then(
      () => null,
      (x: unknown) => x,
    );
    expect(err).toBeInstanceOf(UsageDbError);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_IO');
    remove();
    await db.flush();
    // The retry wrote a segment under a new id: no file whose bytes differ from what the store expects.
    expect(db.stats().segments).toBe(1);
    const before = await db.query(TOTALS);
    expect((await db.ingest(usageBatch(0, 80))).duplicates).toBe(80);
    await db.close();
    const reopened = await sim.open();
    expect((await reopened.query(TOTALS)).rows).toEqual(before.rows);
    expect((await reopened.ingest(usageBatch(0, 80))).duplicates).toBe(80);
    // The first attempt's file was never committed: the open removed it.
    const raw = await sim.fs.readdir('/db/raw');
    expect(raw.filter((n) => n.endsWith('.useg'))).toHaveLength(1);
    await reopened.close();
  });

  it('a persistently failing flush stops ingest with its error once memory is bounded, and recovers by itself', async () => {
    const sim = simDb();
    const db = await sim.open({ logger: silentLogger, limits: { memtableBytesMax: 4_000 } });
    const remove = sim.fs.injectFault((c) =>
      c.path.includes('/raw/') && c.op === 'writeFile' ? 'ENOSPC' : undefined,
    );
    const acked: string[] = [];
    let refused: unknown = null;
    for (let i = 0; i < 200 && refused === null; i++) {
      const batch = usageBatch(i * 5, 5);
      try {
        const r = await db.ingest(batch);
        expect(r.accepted).toBe(5);
        for (const e of batch) acked.push(e.event_id as string);
      } catch (err) {
        refused = err;
      }
    }
    expect(refused).toBeInstanceOf(UsageDbError);
    expect((refused as UsageDbError).code).toBe('USAGEDB_ERR_NO_SPACE');
    expect(db.stats().frozenMemtables).toBeLessThanOrEqual(2);
    expect(db.stats().flushError).toMatch(/ENOSPC/);
    remove();
    sim.clock.advance(1_000);
    const r = await db.ingest(usageBatch(5_000, 5));
    expect(r.accepted).toBe(5);
    expect(db.stats().flushError).toBeNull();
    await db.flush();
    const again = await db.ingest(acked.map((id) => usage(Number(id.slice(4)))));
    expect(again.duplicates).toBe(acked.length);
    await db.close();
  });

  it('flush() leaves no WAL the committed segments cover: bytes after flush() = after close()', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'usagedb-flushwal-'));
    const bytes = (sub: string) =>
      readdirSync(join(dir, sub)).reduce((n, f) => n + statSync(join(dir, sub, f)).size, 0);
    try {
      const db = await UsageDb.open({ dir, logger: silentLogger });
      await db.ingest(usageBatch(0, 2_000));
      await db.flush();
      const walAfterFlush = bytes('wal');
      const rawAfterFlush = bytes('raw');
      await db.close();
      expect(walAfterFlush).toBe(bytes('wal'));
      expect(rawAfterFlush).toBe(bytes('raw'));
      expect(walAfterFlush).toBeLessThan(100);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('segment ids are never reused, also after a crash that loses an uncommitted segment', async () => {
    const sim = simDb();
    const db = await sim.open({ logger: silentLogger });
    await db.ingest(usageBatch(0, 50));
    const remove = sim.fs.injectFault((c) =>
      c.op === 'rename' && c.path.includes('/manifest/') ? 'EIO' : undefined,
    );
    await db.flush().catch(() => undefined);
    remove();
    abandonForCrashTest(db);
    const reopened = await sim.open({ logger: silentLogger });
    await reopened.flush();
    const names = (await sim.fs.readdir('/db/raw')).filter((n) => n.endsWith('.useg'));
    // Segment 1 was written but never committed: the next flush writes 2, never 1 again.
    expect(names).toEqual([segmentFileName(2)]);
    expect((await reopened.ingest(usageBatch(0, 50))).duplicates).toBe(50);
    await reopened.close();
  });
});
