import { describe, expect, it } from 'vitest';
import type { UsageDb } from '../../src/db.ts';
import { SimulatedCrashError } from '../../src/storage/fs/sim-file-system.ts';
import { manifestFileName } from '../../src/storage/manifest.ts';
import { DAY_MS, simDb, T0, usage, usageBatch, type WireInput } from '../support/events.ts';
import { abandonForCrashTest } from '../../src/testing.ts';
import { scanAccount } from '../support/scan.ts';

const ACCOUNTS = Array.from({ length: 7 }, (_, i) => `acct_${i}`);

async function allIds(db: UsageDb): Promise<string[]> {
  const ids: string[] = [];
  for (const a of [...ACCOUNTS, 'acct_other'])
    for (const e of await scanAccount(db, a, 0, Number.MAX_SAFE_INTEGER)) ids.push(e.event_id);
  return ids;
}

/** Three days only, so flushes write few partitions and the crash sweep stays small. */
function small(i: number): WireInput {
  return usage(i, { timestamp_ms: T0 + (i % 3) * DAY_MS + i });
}

describe('faults', () => {
  it('an EIO on WAL append rejects the call, keeps nothing of it, and the db keeps working', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([small(1)]);
    const remove = sim.fs.injectFault((c) =>
      c.op === 'append' && c.path.includes('/wal/') ? 'EIO' : undefined,
    );
    await expect(db.ingest([small(2), small(3)])).rejects.toMatchObject({ code: 'USAGEDB_ERR_WAL_WRITE' });
    remove();
    const r = await db.ingest([small(2), small(3), small(1)]);
    expect(r).toMatchObject({ accepted: 2, duplicates: 1 });
    await db.close();
    const again = await sim.open();
    expect((await allIds(again)).sort()).toEqual(['evt_1', 'evt_2', 'evt_3']);
    await again.close();
  });

  it('an EIO on fsync rejects the call and forgets its events, also after a restart', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([small(1)]);
    const remove = sim.fs.injectFault((c) =>
      c.op === 'sync' && c.path.includes('/wal/') ? 'EIO' : undefined,
    );
    await expect(db.ingest([small(2)])).rejects.toMatchObject({ code: 'USAGEDB_ERR_WAL_WRITE' });
    remove();
    expect(await allIds(db)).toEqual(['evt_1']);
    await db.close({ flushMemtable: false });
    const again = await sim.open();
    expect(await allIds(again)).toEqual(['evt_1']);
    expect((await again.ingest([small(2)])).accepted).toBe(1);
    await again.close();
  });

  it('ENOSPC during a flush keeps the events and a later flush succeeds', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest(usageBatch(0, 30).map((e, i) => ({ ...e, ...small(i) })));
    const remove = sim.fs.injectFault((c) =>
      c.op === 'writeFile' && c.path.endsWith('.useg') ? 'ENOSPC' : undefined,
    );
    await expect(db.flush()).rejects.toThrow();
    remove();
    expect((await allIds(db)).length).toBe(30);
    await db.flush();
    expect(db.stats().segments).toBeGreaterThan(0);
    expect((await allIds(db)).length).toBe(30);
    await db.close();
  });

  for (const durability of ['strict', 'balanced'] as const) {
    it(`${durability}: a crash at every file-system call loses no acknowledged event and invents none`, async () => {
      // Count the calls of one clean run first.
      const workload = async (db: UsageDb, acked: Set<string>) => {
        const batches = [0, 1, 2, 3, 4, 5].map((b) => Array.from({ length: 8 }, (_, k) => small(b * 8 + k)));
        const ack = (batch: WireInput[]) => (r: { accepted: number }) => {
          for (const e of batch) acked.add(e.event_id as string);
          return r;
        };
        await db.ingest(batches[0]).then(ack(batches[0]));
        await Promise.all([
          db.ingest(batches[1]).then(ack(batches[1])),
          db.ingest(batches[2]).then(ack(batches[2])),
        ]);
        await db.flush();
        await db.ingest(batches[3]).then(ack(batches[3]));
        await db.ingest([...batches[4], small(3)]).then(ack(batches[4]));
        await db.flush();
        await db.ingest(batches[5]).then(ack(batches[5]));
        await db.close();
      };
      const clean = simDb(11, { durability, bucketCount: 2 });
      const start = clean.fs.callCount;
      await workload(await clean.open(), new Set());
      const totalCalls = clean.fs.callCount - start;
      expect(totalCalls).toBeGreaterThan(50);
      const submitted = new Set(Array.from({ length: 48 }, (_, i) => `evt_${i}`));
      for (let n = 1; n <= totalCalls; n++) {
        const sim = simDb(11, { durability, bucketCount: 2 });
        const acked = new Set<string>();
        let db: UsageDb | null = null;
        sim.fs.crashAt(sim.fs.callCount + n, { tornWrites: n % 2 === 0 });
        try {
          db = await sim.open();
          await workload(db, acked);
        } catch (err) {
          if (!(err instanceof SimulatedCrashError) && !sim.fs.halted) throw err;
        }
        if (db) abandonForCrashTest(db);
        if (sim.fs.halted) sim.fs.restart();
        else sim.fs.clearFaults();
        const reopened = await sim.open();
        const ids = await allIds(reopened);
        const unique = new Set(ids);
        expect(unique.size, `crash at call ${n}: an event is stored twice`).toBe(ids.length);
        for (const id of acked)
          expect(unique.has(id), `crash at call ${n}: acknowledged ${id} lost`).toBe(true);
        for (const id of unique) expect(submitted.has(id), `crash at call ${n}: invented ${id}`).toBe(true);
        await reopened.close();
      }
    }, 300_000);
  }

  it('recovers a torn WAL tail (fast mode, crash before fsync)', async () => {
    const sim = simDb(3, { durability: 'fast' });
    const db = await sim.open();
    await db.ingest([small(1)]);
    await db.close({ flushMemtable: false });
    const db2 = await sim.open({ durability: 'fast' });
    await db2.ingest([small(2), small(3)]);
    sim.fs.crash({ tornWrites: true });
    abandonForCrashTest(db2);
    const db3 = await sim.open();
    const ids = await allIds(db3);
    expect(ids).toContain('evt_1');
    expect((await db3.ingest([small(4)])).accepted).toBe(1);
    await db3.close();
  });

  // Known bug, so `.fails` (remove it once fixed). In fast mode a failed background fsync
  // drops the acknowledged events it covered (documented: as a crash would), but a later
  // flush() then resolves as if it had written them ("writes every acknowledged event to
  // segments"): nothing tells the caller that events acknowledged and then flushed are gone,
  // so it has no reason to retry them. Found by the simulation: SIM_SEED=38, where the fsync
  // failure is a crash and flush() still resolves before the next call fails.
  it('fast: a flush that resolves has every event acknowledged before it in a segment; one that lost some says so', async () => {
    const sim = simDb(5, { durability: 'fast' });
    const db = await sim.open();
    const remove = sim.fs.injectFault((c) =>
      c.op === 'sync' && c.path.includes('/wal/') ? 'EIO' : undefined,
    );
    expect((await db.ingest([small(1), small(2), small(3)])).accepted).toBe(3);
    await new Promise((resolve) => setTimeout(resolve, 20)); // the background fsync fails meanwhile
    remove();
    let flushError: unknown = null;
    await db.flush().catch((err: unknown) => {
      flushError = err;
    });
    // The fsync failed, so the three were lost: flush() must say so, not resolve.
    expect(flushError).toMatchObject({ code: 'USAGEDB_ERR_WAL_WRITE' });
    expect((flushError as Error).message).toMatch(/3 events acknowledged in fast mode were lost/);
    // Resent, they are new (nothing of them was stored), and a later flush resolves.
    expect((await db.ingest([small(1), small(2), small(3)])).accepted).toBe(3);
    await db.flush();
    expect((await allIds(db)).sort()).toEqual(['evt_1', 'evt_2', 'evt_3']);
    await db.close();
  });

  it('a flipped bit in a segment is reported, never served as numbers', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([small(1), small(8)]);
    await db.flush();
    await db.close();
    const seg = sim.fs.listAll().find((p) => p.endsWith('.useg'));
    expect(seg).toBeDefined();
    sim.fs.flipBit(seg as string, 40, 3);
    const db2 = await sim.open();
    await expect(scanAccount(db2, 'acct_1', 0, Number.MAX_SAFE_INTEGER)).rejects.toMatchObject({
      code: 'USAGEDB_ERR_SEGMENT_CORRUPT',
    });
    await db2.close({ flushMemtable: false });
  });

  it('a flipped bit in a stored event id chunk fails a retry closed instead of storing it twice', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([small(1), small(8)]);
    await db.flush();
    await db.close();
    const seg = sim.fs.listAll().find((p) => p.endsWith('.useg')) as string;
    sim.fs.flipBit(seg, 6, 0); // inside the first event_id chunk (right after the 4-byte magic)
    const db2 = await sim.open();
    await expect(db2.ingest([small(1)])).rejects.toMatchObject({ code: 'USAGEDB_ERR_SEGMENT_CORRUPT' });
    await db2.close({ flushMemtable: false });
  });

  it('a flipped bit in the middle of the WAL refuses the open', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([small(1)]);
    await db.ingest([small(2)]);
    await db.close({ flushMemtable: false });
    const wal = sim.fs.listAll().find((p) => p.includes('/wal/wal-')) as string;
    sim.fs.flipBit(wal, 16 + 12 + 5, 2);
    await expect(sim.open()).rejects.toMatchObject({ code: 'USAGEDB_ERR_WAL_CORRUPT' });
  });

  it('a corrupt newest manifest rolls back without losing events', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest(usageBatch(0, 20).map((_, i) => small(i)));
    await db.flush();
    await db.ingest(usageBatch(20, 20).map((_, i) => small(20 + i)));
    await db.flush();
    const generation = db.stats().manifestGeneration;
    await db.close({ flushMemtable: false });
    sim.fs.flipBit(`/db/manifest/${manifestFileName(generation)}`, 100, 1);
    const db2 = await sim.open();
    expect(db2.stats().manifestGeneration).toBe(generation - 1);
    expect((await allIds(db2)).length).toBe(40);
    expect((await db2.ingest([small(5)])).duplicates).toBe(1);
    await db2.close();
  });
});
