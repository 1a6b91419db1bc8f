/**
 * Regression tests for defects found by black-box probing of the engine: a second open in the
 * same process, a full disk at restart, a deleted or emptied WAL file, tick() during a flush,
 * and raw file-system errors escaping the public API.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, truncateSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UsageDb } from '../../src/db.ts';
import { UsageDbError } from '../../src/errors.ts';
import { walFileName } from '../../src/ingest/wal.ts';
import { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';
import type { LogFields } from '../../src/util/logger.ts';
import { DAY_MS, simDb, T0, usage } from '../support/events.ts';
import { abandonForCrashTest } from '../../src/testing.ts';

const dirs: string[] = [];
function tmpDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'usagedb-defects-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const e = (i: number, quantity: number) => usage(i, { quantity, timestamp_ms: T0 + (i % 3) * DAY_MS + i });

async function codeOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(err).toBeInstanceOf(UsageDbError);
  return (err as UsageDbError).code;
}

describe('a second open in the same process', () => {
  it('is refused for every spelling of the directory, on the real disk', async () => {
    const parent = tmpDir();
    const dir = join(parent, 'db');
    const a = await UsageDb.open({ dir, durability: 'strict' });
    await a.ingest([e(1, 1)]);
    symlinkSync(dir, join(parent, 'link'));
    const spellings = [
      dir,
      `${dir}/`,
      dir.replace('/db', '//db'),
      join(parent, 'db', '..', 'db'),
      relative(process.cwd(), dir),
      join(parent, 'link'),
    ];
    for (const spelling of spellings) {
      expect(await codeOf(UsageDb.open({ dir: spelling })), spelling).toBe('USAGEDB_ERR_LOCKED');
    }
    // The refused opens left a's LOCK in place: another process is refused as well.
    await a.ingest([e(2, 100)]);
    await a.close();
    const reopened = await UsageDb.open({ dir });
    const r = await reopened.ingest([e(2, 7), e(2, 100)]);
    expect(r).toMatchObject({ accepted: 0, conflicts: 1, duplicates: 1 });
    await reopened.close();
  });

  it('is refused through another FileSystem instance of the same disk, and after a close it opens', async () => {
    const dir = join(tmpDir(), 'db');
    const { NodeFileSystem } = await import('../../src/storage/fs/node-file-system.ts');
    const a = await UsageDb.open({ dir, fs: new NodeFileSystem() });
    expect(await codeOf(UsageDb.open({ dir, fs: new NodeFileSystem() }))).toBe('USAGEDB_ERR_LOCKED');
    await a.close();
    const b = await UsageDb.open({ dir, fs: new NodeFileSystem() });
    await b.close();
  });

  it('is refused on a simulated disk for every spelling; two simulated disks are two directories', async () => {
    const sim = simDb();
    const a = await sim.open();
    for (const dir of ['/db', '/db/', '//db']) {
      expect(await codeOf(UsageDb.open({ dir, fs: sim.fs, clock: sim.clock })), dir).toBe(
        'USAGEDB_ERR_LOCKED',
      );
    }
    const other = await UsageDb.open({ dir: '/db', fs: new SimFileSystem({ seed: 2 }), clock: sim.clock });
    await other.close();
    await a.close();
  });

  it('refuses a LOCK naming this process that no instance gave up', async () => {
    const { hostname } = await import('node:os');
    const sim = simDb();
    await sim.fs.mkdirp('/db');
    const owner = { pid: process.pid, hostname: hostname(), acquired_at_ms: 1 };
    await sim.fs.createExclusive('/db/LOCK', new TextEncoder().encode(JSON.stringify(owner)));
    expect(await codeOf(sim.open())).toBe('USAGEDB_ERR_LOCKED');
  });

  it('never takes over a LOCK naming this process unless the instance was abandoned', async () => {
    const sim = simDb();
    const a = await sim.open();
    await a.ingest([e(1, 1)]);
    abandonForCrashTest(a);
    // Abandoned (a simulated crash): the LOCK naming this process may be taken over.
    const b = await sim.open();
    expect((await b.ingest([e(1, 1)])).duplicates).toBe(1);
    await b.close();
  });
});

describe('the WAL files the manifest names', () => {
  it('a deleted current WAL file refuses the open instead of losing acknowledged events', async () => {
    const sim = simDb();
    const db = await sim.open({ durability: 'strict' });
    await db.ingest([e(1, 1), e(2, 2)]);
    await db.flush();
    await db.ingest([e(3, 3)]);
    const walFile = db.stats().walFile;
    abandonForCrashTest(db);
    await sim.fs.unlink(`/db/wal/${walFileName(walFile)}`);
    await sim.fs.syncDir('/db/wal');
    expect(await codeOf(sim.open())).toBe('USAGEDB_ERR_WAL_CORRUPT');
  });

  it('an emptied current WAL file refuses the open', async () => {
    const sim = simDb();
    const db = await sim.open({ durability: 'strict' });
    await db.ingest([e(1, 1)]);
    await db.flush();
    await db.ingest([e(3, 3)]);
    const walFile = db.stats().walFile;
    abandonForCrashTest(db);
    await sim.fs.writeFile(`/db/wal/${walFileName(walFile)}`, new Uint8Array(0), { sync: true });
    expect(await codeOf(sim.open())).toBe('USAGEDB_ERR_WAL_CORRUPT');
  });

  it('the same on the real disk: deleted or truncated to 0 bytes', async () => {
    for (const damage of ['delete', 'truncate'] as const) {
      const dir = join(tmpDir(), 'db');
      const db = await UsageDb.open({ dir, durability: 'strict' });
      await db.ingest([e(1, 1)]);
      await db.flush();
      await db.ingest([e(3, 3)]);
      const path = join(dir, 'wal', walFileName(db.stats().walFile));
      abandonForCrashTest(db);
      rmSync(join(dir, 'LOCK'));
      if (damage === 'delete') unlinkSync(path);
      else truncateSync(path, 0);
      expect(await codeOf(UsageDb.open({ dir })), damage).toBe('USAGEDB_ERR_WAL_CORRUPT');
    }
  });

  it('a torn tail dropped at open is logged and counted in stats()', async () => {
    const sim = simDb();
    const db = await sim.open({ durability: 'fast' });
    await db.ingest([e(1, 1)]);
    await db.close({ flushMemtable: false });
    const db2 = await sim.open({ durability: 'fast' });
    await db2.ingest([e(2, 2), e(4, 4)]);
    sim.fs.crash({ tornWrites: true });
    abandonForCrashTest(db2);
    sim.fs.restart();
    // Make sure a tail is there to tear: append garbage that looks like a partial record.
    const walPath = `/db/wal/${walFileName(db2.stats().walFile)}`;
    const f = await sim.fs.openAppend(walPath);
    await f.append(new Uint8Array([9, 9, 9]));
    await f.sync();
    await f.close();
    const warnings: { fields: LogFields; message: string }[] = [];
    const logger = {
      warn: (fields: LogFields, message: string) => warnings.push({ fields, message }),
      info: () => undefined,
    };
    const db3 = await sim.open({ logger });
    expect(db3.stats().recovery.walTornTail.files).toBe(1);
    expect(db3.stats().recovery.walTornTail.bytes).toBeGreaterThanOrEqual(3);
    expect(db3.stats().recovery.walTornTail.records).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0].message).toMatch(/torn WAL tail/);
    await db3.close();
    const clean = await sim.open({ logger });
    expect(clean.stats().recovery.walTornTail).toEqual({ files: 0, bytes: 0, records: 0 });
    expect(warnings).toHaveLength(1);
    await clean.close();
  });
});

describe('a full disk at restart', () => {
  it('leaves no WAL file without its header: once space is back the database opens (simulated)', async () => {
    const sim = simDb();
    const db = await sim.open({ durability: 'strict' });
    const events = Array.from({ length: 50 }, (_, i) => e(i, i));
    await db.ingest(events);
    abandonForCrashTest(db);
    // The disk is full: every write fails.
    const full = sim.fs.injectFault((c) =>
      ['writeFile', 'append', 'createExclusive'].includes(c.op) ? 'ENOSPC' : undefined,
    );
    for (let round = 0; round < 2; round++) {
      const again = await sim.open({ durability: 'strict' }).catch((err: unknown) => err);
      if (again instanceof UsageDb) {
        expect(await codeOf(again.close())).toBe('USAGEDB_ERR_NO_SPACE');
      } else {
        expect((again as UsageDbError).code).toBe('USAGEDB_ERR_NO_SPACE');
      }
    }
    full();
    const reopened = await sim.open();
    const r = await reopened.ingest(events);
    expect(r.duplicates).toBe(50);
    await reopened.close();
  });

  const tmpfsIt = process.getuid?.() === 0 ? it : it.skip;
  tmpfsIt('on a real 20 MiB tmpfs: ingest, fill the disk, open + close twice, free space, open', async () => {
    const mount = tmpDir();
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=20m', 'tmpfs', mount]);
    } catch {
      // No mount capability here (not root in a namespace): the simulated test above covers it.
      return;
    }
    try {
      const dir = join(mount, 'db');
      const db = await UsageDb.open({ dir, durability: 'strict' });
      const events = Array.from({ length: 5_000 }, (_, i) => e(i, i + 1));
      for (let i = 0; i < events.length; i += 1_000) await db.ingest(events.slice(i, i + 1_000));
      abandonForCrashTest(db);
      rmSync(join(dir, 'LOCK'));
      const filler = join(mount, 'filler');
      try {
        execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=64'], { stdio: 'ignore' });
      } catch {
        // dd stops at ENOSPC: the disk is full now.
      }
      for (let round = 0; round < 2; round++) {
        const again = await UsageDb.open({ dir, durability: 'strict' }).catch((err: unknown) => err);
        if (again instanceof UsageDb) {
          const code = await again.close().then(
            () => 'ok',
            (err: unknown) => (err as UsageDbError).code,
          );
          expect(['ok', 'USAGEDB_ERR_NO_SPACE']).toContain(code);
        } else {
          expect(['USAGEDB_ERR_NO_SPACE', 'USAGEDB_ERR_LOCKED']).toContain((again as UsageDbError).code);
        }
      }
      rmSync(filler);
      const reopened = await UsageDb.open({ dir });
      let duplicates = 0;
      for (let i = 0; i < events.length; i += 1_000)
        duplicates += (await reopened.ingest(events.slice(i, i + 1_000))).duplicates;
      expect(duplicates).toBe(5_000);
      await reopened.close();
    } finally {
      execFileSync('umount', ['-l', mount]);
    }
  });
});

describe('tick() while a flush runs', () => {
  it('does not cut the current memtable; it only flushes what is due', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([e(1, 1), e(2, 2)]);
    // Hold the segment write, so the flush stays in flight.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let held = false;
    const realWrite = sim.fs.writeFile.bind(sim.fs);
    sim.fs.writeFile = async (path, data, options) => {
      if (path.includes('/raw/') && !held) {
        held = true;
        await gate;
      }
      return realWrite(path, data, options);
    };
    const flushing = db.flush();
    while (!held) await new Promise((r) => setTimeout(r, 1));
    await db.ingest([e(3, 3)]);
    for (let i = 0; i < 5; i++) await db.tick();
    expect(db.stats().frozenMemtables).toBe(1);
    expect(db.stats().memtableRows).toBe(1);
    release();
    await flushing;
    expect(db.stats().segments).toBe(1);
    // Not aged: tick leaves the memtable alone; aged: it flushes it.
    await db.tick();
    expect(db.stats().segments).toBe(1);
    sim.clock.advance(db.limits.flushIntervalMs);
    await db.tick();
    expect(db.stats().segments).toBe(2);
    await db.close();
  });
});

describe('file-system errors leave the public API as catalogue errors', () => {
  it('flush(), close() and exportParquet() on a full disk throw USAGEDB_ERR_NO_SPACE with the errno as cause', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([e(1, 1)]);
    const full = sim.fs.injectFault((c) => (c.op === 'writeFile' ? 'ENOSPC' : undefined));
    for (const call of [() => db.flush(), () => db.exportParquet('/out.parquet')]) {
      const err = await call().then(
        () => null,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(UsageDbError);
      expect((err as UsageDbError).code).toBe('USAGEDB_ERR_NO_SPACE');
      expect(((err as UsageDbError).cause as { code: string }).code).toBe('ENOSPC');
    }
    expect(await codeOf(db.close())).toBe('USAGEDB_ERR_NO_SPACE');
    full();
    const again = await sim.open();
    expect((await again.ingest([e(1, 1)])).duplicates).toBe(1);
    await again.close();
  });

  it('an EIO while reading a segment is an I/O error, not corruption', async () => {
    const sim = simDb();
    const db = await sim.open();
    await db.ingest([e(1, 1)]);
    await db.flush();
    await db.close();
    const again = await sim.open();
    const eio = sim.fs.injectFault((c) => (c.path.includes('/raw/') ? 'EIO' : undefined));
    expect(
      await codeOf(again.query({ from: T0 - DAY_MS, to: T0 + 10 * DAY_MS, group_by: ['account_id'] })),
    ).toBe('USAGEDB_ERR_IO');
    eio();
    await again.close();
  });
});
