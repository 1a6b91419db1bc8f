/**
 * SimFileSystem-only behaviour: what a crash keeps and loses, torn writes, fault injection,
 * and the corruption helpers. The contract shared with NodeFileSystem is in file-system.case.
 */

import { beforeEach, describe, expect, it } from 'vitest';
import { FsError, type FsErrorCode } from '../../../src/storage/fs/file-system.ts';
import { type SimCall, SimFileSystem, SimulatedCrashError } from '../../../src/storage/fs/sim-file-system.ts';

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function range(length: number, start = 0): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (start + i) & 0xff);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

async function expectFsError(promise: Promise<unknown>, code: FsErrorCode): Promise<void> {
  const err = await rejection(promise);
  expect(err).toBeInstanceOf(FsError);
  expect(err instanceof FsError ? err.code : undefined).toBe(code);
}

/** A data directory whose existence is already durable, as after a clean start. */
async function simWithDir(seed = 1): Promise<SimFileSystem> {
  const sim = new SimFileSystem({ seed });
  await sim.mkdirp('/db/wal');
  sim.markAllDurable();
  return sim;
}

describe('SimFileSystem: crash keeps exactly what was synced', () => {
  let sim: SimFileSystem;
  beforeEach(async () => {
    sim = await simWithDir();
  });

  it('loses un-synced appends but keeps the durable directory entry', async () => {
    const wal = await sim.openAppend('/db/wal/1.log');
    await sim.syncDir('/db/wal');
    await wal.append(bytes(1, 2, 3));
    sim.crash();
    expect(await sim.exists('/db/wal/1.log')).toBe(true);
    expect(await sim.readFile('/db/wal/1.log')).toEqual(new Uint8Array(0));
  });

  it('keeps synced appends and drops only the tail appended after the sync', async () => {
    const wal = await sim.openAppend('/db/wal/1.log');
    await sim.syncDir('/db/wal');
    await wal.append(bytes(1, 2));
    await wal.sync();
    await wal.append(bytes(3, 4));
    expect(sim.readRaw('/db/wal/1.log')).toEqual(bytes(1, 2, 3, 4));
    expect(sim.readRaw('/db/wal/1.log', 'durable')).toEqual(bytes(1, 2));
    sim.crash();
    expect(await sim.readFile('/db/wal/1.log')).toEqual(bytes(1, 2));
  });

  it('an un-synced truncate is undone; a synced one is kept', async () => {
    const wal = await sim.openAppend('/db/wal/1.log');
    await sim.syncDir('/db/wal');
    await wal.append(bytes(1, 2, 3, 4));
    await wal.sync();
    await wal.truncate(1);
    sim.crash();
    expect(await sim.readFile('/db/wal/1.log')).toEqual(bytes(1, 2, 3, 4));

    const again = await sim.openAppend('/db/wal/1.log');
    await again.truncate(2);
    await again.append(bytes(9));
    await again.sync();
    sim.crash();
    expect(await sim.readFile('/db/wal/1.log')).toEqual(bytes(1, 2, 9));
  });

  it('a created file is gone after a crash unless its directory was synced', async () => {
    await sim.writeFile('/db/a', bytes(1), { sync: true });
    sim.crash();
    expect(await sim.exists('/db/a')).toBe(false);

    await sim.writeFile('/db/a', bytes(1), { sync: true });
    await sim.syncDir('/db');
    sim.crash();
    expect(await sim.readFile('/db/a')).toEqual(bytes(1));
  });

  it('a file whose entry is durable but whose bytes were not synced comes back empty', async () => {
    await sim.writeFile('/db/a', bytes(1, 2));
    await sim.syncDir('/db');
    sim.crash();
    expect(await sim.readFile('/db/a')).toEqual(new Uint8Array(0));
  });

  it('an un-synced overwrite is undone, a synced one kept', async () => {
    await sim.writeFile('/db/m', bytes(1), { sync: true });
    await sim.syncDir('/db');
    await sim.writeFile('/db/m', bytes(2, 2));
    sim.crash();
    expect(await sim.readFile('/db/m')).toEqual(bytes(1));
    await sim.writeFile('/db/m', bytes(3, 3), { sync: true });
    sim.crash();
    expect(await sim.readFile('/db/m')).toEqual(bytes(3, 3));
  });

  it('a rename over a target is undone at a crash without syncDir, kept after it', async () => {
    await sim.writeFile('/db/manifest', bytes(1), { sync: true });
    await sim.syncDir('/db');
    await sim.writeFile('/db/manifest.tmp', bytes(2), { sync: true });
    await sim.rename('/db/manifest.tmp', '/db/manifest');
    expect(await sim.readFile('/db/manifest')).toEqual(bytes(2));
    sim.crash();
    expect(await sim.readFile('/db/manifest')).toEqual(bytes(1));
    expect(await sim.exists('/db/manifest.tmp')).toBe(false);

    await sim.writeFile('/db/manifest.tmp', bytes(2), { sync: true });
    await sim.rename('/db/manifest.tmp', '/db/manifest');
    await sim.syncDir('/db');
    sim.crash();
    expect(await sim.readFile('/db/manifest')).toEqual(bytes(2));
    expect(await sim.readdir('/db')).toEqual(['manifest', 'wal']);
  });

  it('an un-synced unlink is undone; a synced one kept', async () => {
    await sim.writeFile('/db/a', bytes(4), { sync: true });
    await sim.syncDir('/db');
    await sim.unlink('/db/a');
    sim.crash();
    expect(await sim.readFile('/db/a')).toEqual(bytes(4));
    await sim.unlink('/db/a');
    await sim.syncDir('/db');
    sim.crash();
    expect(await sim.exists('/db/a')).toBe(false);
  });

  it('a directory from mkdirp is durable only once its parent is synced', async () => {
    await sim.mkdirp('/db/segments/0001');
    sim.crash();
    expect(await sim.exists('/db/segments')).toBe(false);

    await sim.mkdirp('/db/segments/0001');
    await sim.syncDir('/db');
    sim.crash();
    // The parent's entry survived, but the child's entry was never synced in 'segments'.
    expect(await sim.exists('/db/segments')).toBe(true);
    expect(await sim.readdir('/db/segments')).toEqual([]);
  });

  it('createExclusive is durable at once, file and entry', async () => {
    await sim.createExclusive('/db/LOCK', bytes(7, 7));
    sim.crash();
    expect(await sim.readFile('/db/LOCK')).toEqual(bytes(7, 7));
  });

  it('the root and markAllDurable state survive', async () => {
    await sim.writeFile('/top', bytes(1));
    sim.markAllDurable();
    sim.crash();
    expect(await sim.readFile('/top')).toEqual(bytes(1));
    expect(sim.listAll()).toEqual(['/db/', '/db/wal/', '/top']);
  });

  it('listAll shows the live and the durable namespace', async () => {
    await sim.writeFile('/db/wal/2.log', bytes(1));
    expect(sim.listAll()).toEqual(['/db/', '/db/wal/', '/db/wal/2.log']);
    expect(sim.listAll('durable')).toEqual(['/db/', '/db/wal/']);
    await expectFsError(
      Promise.resolve().then(() => sim.readRaw('/db/wal/2.log', 'durable')),
      'ENOENT',
    );
  });
});

describe('SimFileSystem: torn writes', () => {
  /** Durable prefix of 4 bytes, then 200 un-synced bytes; returns what survives a torn crash. */
  async function tornOutcome(seed: number): Promise<Uint8Array> {
    const sim = await simWithDir(seed);
    const wal = await sim.openAppend('/db/wal/1.log');
    await sim.syncDir('/db/wal');
    await wal.append(range(4, 100));
    await wal.sync();
    await wal.append(range(100));
    await wal.append(range(100, 100));
    sim.crash({ tornWrites: true });
    return sim.readFile('/db/wal/1.log');
  }

  it('keeps the durable bytes plus a prefix of the un-synced tail', async () => {
    const written = new Uint8Array([...range(4, 100), ...range(100), ...range(100, 100)]);
    for (let seed = 1; seed <= 20; seed++) {
      const kept = await tornOutcome(seed);
      expect(kept.length, `seed ${seed}`).toBeGreaterThanOrEqual(4);
      expect(kept.length, `seed ${seed}`).toBeLessThanOrEqual(204);
      expect(kept, `seed ${seed}`).toEqual(written.subarray(0, kept.length));
    }
  });

  it('replays from the seed and varies across seeds', async () => {
    const lengths: number[] = [];
    for (let seed = 1; seed <= 20; seed++) {
      const first = await tornOutcome(seed);
      const second = await tornOutcome(seed);
      expect(second, `seed ${seed}`).toEqual(first);
      lengths.push(first.length);
    }
    // 20 draws from 0..200 (uniform) all landing on one value would mean the PRNG is not used.
    expect(new Set(lengths).size).toBeGreaterThan(5);
  });

  it('without tornWrites keeps exactly the durable bytes', async () => {
    const sim = await simWithDir(3);
    const wal = await sim.openAppend('/db/wal/1.log');
    await sim.syncDir('/db/wal');
    await wal.append(bytes(1));
    await wal.sync();
    await wal.append(range(50));
    sim.crash({ tornWrites: false });
    expect(await sim.readFile('/db/wal/1.log')).toEqual(bytes(1));
  });

  it('tears only appends: an un-synced overwrite falls back to the durable bytes', async () => {
    for (let seed = 1; seed <= 10; seed++) {
      const sim = await simWithDir(seed);
      await sim.writeFile('/db/m', bytes(1, 2), { sync: true });
      await sim.syncDir('/db');
      await sim.writeFile('/db/m', range(40, 1));
      sim.crash({ tornWrites: true });
      expect(await sim.readFile('/db/m'), `seed ${seed}`).toEqual(bytes(1, 2));
    }
  });

  it('the torn tail becomes durable: a second crash keeps the same bytes', async () => {
    const sim = await simWithDir(11);
    const wal = await sim.openAppend('/db/wal/1.log');
    await sim.syncDir('/db/wal');
    await wal.append(range(100));
    sim.crash({ tornWrites: true });
    const afterFirst = await sim.readFile('/db/wal/1.log');
    sim.crash({ tornWrites: true });
    expect(await sim.readFile('/db/wal/1.log')).toEqual(afterFirst);
  });
});

describe('SimFileSystem: handles after a crash', () => {
  it('every call on a handle opened before the crash throws EBADF; new handles work', async () => {
    const sim = await simWithDir();
    await sim.writeFile('/db/seg', bytes(1, 2, 3), { sync: true });
    await sim.syncDir('/db');
    const wal = await sim.openAppend('/db/wal/1.log');
    const seg = await sim.openRead('/db/seg');
    sim.crash();
    await expectFsError(wal.append(bytes(1)), 'EBADF');
    await expectFsError(wal.sync(), 'EBADF');
    await expectFsError(wal.truncate(0), 'EBADF');
    await expectFsError(wal.close(), 'EBADF');
    expect(() => wal.size()).toThrow(FsError);
    await expectFsError(seg.read(0, 1), 'EBADF');
    await expectFsError(seg.close(), 'EBADF');
    // The dead append handle wrote nothing: the file was never durable, so it is gone.
    expect(await sim.exists('/db/wal/1.log')).toBe(false);

    const reopened = await sim.openRead('/db/seg');
    expect(await reopened.read(0, 3)).toEqual(bytes(1, 2, 3));
    await reopened.close();
  });
});

describe('SimFileSystem: fault injection', () => {
  it('counts every FileSystem and handle call from 1, but not size()', async () => {
    const sim = new SimFileSystem();
    expect(sim.callCount).toBe(0);
    await sim.mkdirp('/d'); // 1
    const file = await sim.openAppend('/d/f'); // 2
    await file.append(bytes(1)); // 3
    file.size();
    await file.sync(); // 4
    await file.close(); // 5
    await sim.readFile('/d/f'); // 6
    expect(sim.callCount).toBe(6);
  });

  it('failAt throws the code at exactly that call and changes nothing', async () => {
    const sim = await simWithDir();
    const wal = await sim.openAppend('/db/wal/1.log');
    await wal.append(bytes(1));
    sim.failAt(sim.callCount + 2, 'ENOSPC');
    await wal.append(bytes(2)); // the next call succeeds
    await expectFsError(wal.append(bytes(3)), 'ENOSPC');
    expect(wal.size()).toBe(2);
    await wal.append(bytes(4)); // one-shot: later calls succeed again
    expect(sim.readRaw('/db/wal/1.log')).toEqual(bytes(1, 2, 4));
  });

  it('failAt on a FileSystem method leaves the namespace alone', async () => {
    const sim = await simWithDir();
    await sim.writeFile('/db/a', bytes(1));
    sim.failAt(sim.callCount + 1, 'EIO');
    await expectFsError(sim.rename('/db/a', '/db/b'), 'EIO');
    expect(sim.listAll()).toEqual(['/db/', '/db/a', '/db/wal/']);
    sim.failAt(sim.callCount + 1, 'EIO');
    await expectFsError(sim.writeFile('/db/a', bytes(9)), 'EIO');
    expect(sim.readRaw('/db/a')).toEqual(bytes(1));
  });

  it('crashAt crashes at that call, refuses every later call until restart, then works', async () => {
    const sim = await simWithDir();
    const wal = await sim.openAppend('/db/wal/1.log');
    await sim.syncDir('/db/wal');
    await wal.append(bytes(1, 2));
    await wal.sync();
    await wal.append(bytes(3));
    const crashCall = sim.callCount + 1;
    sim.crashAt(crashCall);

    const err = await rejection(wal.sync());
    expect(err).toBeInstanceOf(SimulatedCrashError);
    expect(err instanceof SimulatedCrashError ? err.crashCallNumber : 0).toBe(crashCall);
    expect(sim.halted).toBe(true);
    // The crash was applied before the sync could run: byte 3 never became durable.
    expect(sim.readRaw('/db/wal/1.log')).toEqual(bytes(1, 2));

    for (const call of [
      () => sim.readFile('/db/wal/1.log'),
      () => sim.exists('/db'),
      () => sim.mkdirp('/x'),
      () => sim.openAppend('/db/wal/2.log'),
      () => wal.append(bytes(4)),
      () => wal.close(),
    ]) {
      expect(await rejection(call())).toBeInstanceOf(SimulatedCrashError);
    }
    expect(sim.callCount).toBe(crashCall);

    sim.restart();
    expect(sim.halted).toBe(false);
    expect(await sim.readFile('/db/wal/1.log')).toEqual(bytes(1, 2));
    await expectFsError(wal.append(bytes(4)), 'EBADF');
    expect(await sim.exists('/db/wal/2.log')).toBe(false);
  });

  it('crashAt with tornWrites tears like crash({ tornWrites: true }) and replays from the seed', async () => {
    const run = async (): Promise<Uint8Array> => {
      const sim = await simWithDir(42);
      const wal = await sim.openAppend('/db/wal/1.log');
      await sim.syncDir('/db/wal');
      await wal.append(range(64));
      sim.crashAt(sim.callCount + 1, { tornWrites: true });
      await rejection(wal.sync());
      sim.restart();
      return sim.readFile('/db/wal/1.log');
    };
    const first = await run();
    expect(first).toEqual(range(64).subarray(0, first.length));
    expect(await run()).toEqual(first);
  });

  it('injectFault fails targeted calls and sees op names, paths and call numbers', async () => {
    const sim = await simWithDir();
    const seen: SimCall[] = [];
    let walAppendsFailed = 0;
    const remove = sim.injectFault((call) => {
      seen.push(call);
      if (call.op === 'append' && /wal/.test(call.path) && walAppendsFailed === 0) {
        walAppendsFailed++;
        return 'EIO';
      }
      return undefined;
    });
    const wal = await sim.openAppend('/db/wal/1.log');
    const other = await sim.openAppend('/db/other.log');
    await other.append(bytes(1));
    await expectFsError(wal.append(bytes(2)), 'EIO');
    await wal.append(bytes(3));
    await sim.rename('/db/other.log', '/db/renamed.log');

    expect(seen.map((c) => [c.op, c.path])).toEqual([
      ['openAppend', '/db/wal/1.log'],
      ['openAppend', '/db/other.log'],
      ['append', '/db/other.log'],
      ['append', '/db/wal/1.log'],
      ['append', '/db/wal/1.log'],
      ['rename', '/db/other.log'],
    ]);
    expect(seen[5].toPath).toBe('/db/renamed.log');
    expect(seen.map((c) => c.callNumber)).toEqual([2, 3, 4, 5, 6, 7]);
    expect(sim.readRaw('/db/wal/1.log')).toEqual(bytes(3));

    remove();
    await sim.syncDir('/db');
    expect(seen).toHaveLength(6);
  });

  it("injectFault returning 'crash' crashes and halts like crashAt", async () => {
    const sim = await simWithDir();
    await sim.writeFile('/db/a', bytes(1), { sync: true });
    sim.injectFault((call) => (call.op === 'syncDir' ? 'crash' : undefined));
    expect(await rejection(sim.syncDir('/db'))).toBeInstanceOf(SimulatedCrashError);
    expect(sim.halted).toBe(true);
    expect(await rejection(sim.readdir('/db'))).toBeInstanceOf(SimulatedCrashError);
    sim.clearFaults();
    sim.restart();
    // The syncDir never ran, so the new entry was lost in the crash.
    expect(await sim.readdir('/db')).toEqual(['wal']);
  });

  it('clearFaults forgets scheduled failures', async () => {
    const sim = new SimFileSystem();
    sim.failAt(1, 'EIO');
    sim.crashAt(2);
    sim.clearFaults();
    await sim.mkdirp('/a');
    await sim.mkdirp('/b');
    expect(await sim.readdir('/')).toEqual(['a', 'b']);
  });
});

describe('SimFileSystem: corruption helpers and copies', () => {
  it('flipBit is visible to reads and survives a crash', async () => {
    const sim = await simWithDir();
    await sim.writeFile('/db/seg', bytes(0b0000_0000, 0b1111_0000), { sync: true });
    await sim.syncDir('/db');
    sim.flipBit('/db/seg', 1, 0);
    sim.flipBit('/db/seg', 0, 7);
    expect(await sim.readFile('/db/seg')).toEqual(bytes(0b1000_0000, 0b1111_0001));
    sim.crash();
    expect(await sim.readFile('/db/seg')).toEqual(bytes(0b1000_0000, 0b1111_0001));
  });

  it('truncateFile cuts live and durable bytes', async () => {
    const sim = await simWithDir();
    await sim.writeFile('/db/seg', range(10), { sync: true });
    await sim.syncDir('/db');
    sim.truncateFile('/db/seg', 3);
    expect(await sim.stat('/db/seg')).toEqual({ sizeBytes: 3, isDirectory: false });
    sim.crash();
    expect(await sim.readFile('/db/seg')).toEqual(range(3));
  });

  it('helpers do not count as calls and readRaw returns a copy', async () => {
    const sim = await simWithDir();
    await sim.writeFile('/db/a', bytes(5, 6));
    const before = sim.callCount;
    const raw = sim.readRaw('/db/a');
    raw[0] = 0;
    sim.listAll();
    sim.flipBit('/db/a', 0, 0);
    expect(sim.callCount).toBe(before);
    expect(sim.readRaw('/db/a')).toEqual(bytes(4, 6));
  });

  it('accepts relative paths as paths under the one root', async () => {
    const sim = new SimFileSystem();
    await sim.mkdirp('db');
    await sim.writeFile('db//a', bytes(1));
    expect(await sim.readFile('/db/a')).toEqual(bytes(1));
    expect(await sim.readdir('./db/')).toEqual(['a']);
  });
});

describe('SimFileSystem: determinism', () => {
  it('the same seed and workload give the same disk after torn crashes', async () => {
    const run = async (seed: number): Promise<string[]> => {
      const sim = await simWithDir(seed);
      const files = await Promise.all([0, 1, 2].map((i) => sim.openAppend(`/db/wal/${i}.log`)));
      await sim.syncDir('/db/wal');
      for (let round = 0; round < 5; round++) {
        for (const [i, file] of files.entries()) {
          await file.append(range(10 + i * round, round));
          if ((round + i) % 3 === 0) await file.sync();
        }
      }
      sim.crash({ tornWrites: true });
      const sizes = await Promise.all([0, 1, 2].map((i) => sim.stat(`/db/wal/${i}.log`)));
      return sizes.map((s, i) => `${i}:${s.sizeBytes}`);
    };
    expect(await run(5)).toEqual(await run(5));
    expect(await run(99)).toEqual(await run(99));
  });
});
