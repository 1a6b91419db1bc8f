/**
 * A flush and a compaction committing concurrently (the server's tick and a full memtable do
 * this all the time). Found by killing the real server under load: the compaction's commit
 * dropped the segment footer the flush had just prepared; the flush's commit then failed
 * after its manifest generation was written, leaving the frozen memtable to be flushed (and
 * counted) a second time.
 */
import { describe, expect, it } from 'vitest';
import type { FileSystem } from '../../src/storage/fs/file-system.ts';
import { DAY_MS, simDb, T0, usage } from '../support/events.ts';

/** A FileSystem that holds manifest writes at a gate while `holding`, and reports segment reads. */
function gated(inner: FileSystem) {
  let holding = false;
  let release: () => void = () => undefined;
  let gate = Promise.resolve();
  let segmentOpens = 0;
  const fs = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const path = String(args[0]);
        if (prop === 'writeFile' && path.includes('/manifest/') && holding) await gate;
        if (prop === 'openRead' && path.endsWith('.useg')) segmentOpens++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    fs,
    hold() {
      holding = true;
      gate = new Promise<void>((r) => (release = r));
    },
    release() {
      holding = false;
      release();
    },
    segmentOpens: () => segmentOpens,
  };
}

describe('concurrent flush and compaction commits', () => {
  for (const first of ['compact', 'flush'] as const) {
    it(`${first} commits while the other waits with a prepared segment: every event counted once`, async () => {
      const sim = simDb(3, { bucketCount: 2 });
      const g = gated(sim.fs);
      const open = () => sim.open({ fs: g.fs });
      const db = await open();
      let n = 0;
      const batch = (size: number) =>
        Array.from({ length: size }, () => usage(n++, { timestamp_ms: T0 + (n % 3) * DAY_MS + n }));
      for (let s = 0; s < 3; s++) {
        await db.ingest(batch(20));
        await db.flush();
      }
      await db.ingest(batch(20));
      // The first one stops inside its manifest commit (holding the commit mutex); the second
      // prepares its segment (reads its footer), then waits for the mutex.
      g.hold();
      const opensBefore = g.segmentOpens();
      const a = first === 'compact' ? db.compact() : db.flush();
      await new Promise((r) => setTimeout(r, 50));
      const b = first === 'compact' ? db.flush() : db.compact();
      for (let i = 0; i < 400 && g.segmentOpens() < opensBefore + 2; i++)
        await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 20));
      g.release();
      await Promise.all([a, b]);
      const range = { from: T0 - DAY_MS, to: T0 + 10 * DAY_MS, metrics: ['count'] };
      const want = [{ count: n }];
      expect((await db.query(range)).rows).toEqual(want);
      // No frozen memtable is left to be flushed a second time.
      expect(db.stats()).toMatchObject({ frozenMemtables: 0, memtableRows: 0, flushError: null });
      await db.flush();
      expect((await db.query(range)).rows).toEqual(want);
      await db.close();
      const again = await open();
      expect((await again.query(range)).rows).toEqual(want);
      await again.close();
    });
  }
});
