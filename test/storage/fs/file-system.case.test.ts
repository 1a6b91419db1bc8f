/**
 * The shared FileSystem contract: every implementation must pass these cases unchanged, so the
 * engine behaves the same on the real disk and in simulation.
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FileSystem, FsError, type FsErrorCode, joinPath } from '../../../src/storage/fs/file-system.ts';
import { NodeFileSystem } from '../../../src/storage/fs/node-file-system.ts';
import { SimFileSystem } from '../../../src/storage/fs/sim-file-system.ts';
import { mountReadOnly } from './read-only-mount.ts';

interface Fixture {
  fs: FileSystem;
  /** An existing, empty directory to work in. */
  root: string;
  cleanup(): void;
}

const implementations: { name: string; create: () => Promise<Fixture> }[] = [
  {
    name: 'NodeFileSystem',
    create: async () => {
      const root = fs.mkdtempSync(`${os.tmpdir()}/usagedb-fs-`);
      return {
        fs: new NodeFileSystem(),
        root,
        cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
      };
    },
  },
  {
    name: 'SimFileSystem',
    create: async () => {
      const sim = new SimFileSystem({ seed: 7 });
      await sim.mkdirp('/usagedb-fs');
      return { fs: sim, root: '/usagedb-fs', cleanup: () => undefined };
    },
  },
];

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

async function expectFsError(promise: Promise<unknown>, code: FsErrorCode, path?: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FsError);
  if (!(err instanceof FsError)) return;
  expect(err.code).toBe(code);
  if (path !== undefined) expect(err.path).toBe(path);
}

describe.each(implementations)('FileSystem contract: $name', ({ create }) => {
  let fixture: Fixture;
  let fsys: FileSystem;
  const at = (...parts: string[]): string => joinPath(fixture.root, ...parts);

  beforeEach(async () => {
    fixture = await create();
    fsys = fixture.fs;
  });
  afterEach(() => fixture.cleanup());

  describe('writeFile / readFile', () => {
    it('round-trips bytes, including an empty file', async () => {
      await fsys.writeFile(at('a.bin'), bytes(1, 2, 3));
      await fsys.writeFile(at('empty.bin'), new Uint8Array(0), { sync: true });
      expect(await fsys.readFile(at('a.bin'))).toEqual(bytes(1, 2, 3));
      expect(await fsys.readFile(at('empty.bin'))).toEqual(new Uint8Array(0));
    });

    it('replaces the whole content of an existing file, longer or shorter', async () => {
      await fsys.writeFile(at('a.bin'), bytes(1, 2, 3, 4, 5));
      await fsys.writeFile(at('a.bin'), bytes(9, 8));
      expect(await fsys.readFile(at('a.bin'))).toEqual(bytes(9, 8));
      await fsys.writeFile(at('a.bin'), bytes(7, 7, 7), { sync: true });
      expect(await fsys.readFile(at('a.bin'))).toEqual(bytes(7, 7, 7));
    });

    it('keeps no alias of the caller data and hands out copies', async () => {
      const data = bytes(1, 2, 3);
      await fsys.writeFile(at('a.bin'), data);
      data[0] = 99;
      const first = await fsys.readFile(at('a.bin'));
      first[1] = 99;
      expect(await fsys.readFile(at('a.bin'))).toEqual(bytes(1, 2, 3));
    });

    it('returns a plain Uint8Array', async () => {
      await fsys.writeFile(at('a.bin'), bytes(1));
      const read = await fsys.readFile(at('a.bin'));
      expect(Object.getPrototypeOf(read)).toBe(Uint8Array.prototype);
    });

    it('fails with ENOENT for a missing file or parent, EISDIR for a directory', async () => {
      await expectFsError(fsys.readFile(at('missing')), 'ENOENT', at('missing'));
      await expectFsError(fsys.writeFile(at('no-dir', 'a'), bytes(1)), 'ENOENT');
      await fsys.mkdirp(at('d'));
      await expectFsError(fsys.readFile(at('d')), 'EISDIR');
      await expectFsError(fsys.writeFile(at('d'), bytes(1)), 'EISDIR');
    });
  });

  describe('openAppend', () => {
    it('creates a missing file and tracks the size of appends', async () => {
      const file = await fsys.openAppend(at('wal.log'));
      expect(file.path).toBe(at('wal.log'));
      expect(file.size()).toBe(0);
      await file.append(bytes(1, 2));
      await file.append(new Uint8Array(0));
      await file.append(bytes(3, 4, 5));
      expect(file.size()).toBe(5);
      await file.sync();
      await file.close();
      expect(await fsys.readFile(at('wal.log'))).toEqual(bytes(1, 2, 3, 4, 5));
    });

    it('reopens an existing file at its end', async () => {
      await fsys.writeFile(at('wal.log'), bytes(1, 2, 3));
      const file = await fsys.openAppend(at('wal.log'));
      expect(file.size()).toBe(3);
      await file.append(bytes(4));
      await file.close();
      expect(await fsys.readFile(at('wal.log'))).toEqual(bytes(1, 2, 3, 4));
    });

    it('makes appends visible to readers before sync', async () => {
      const file = await fsys.openAppend(at('wal.log'));
      await file.append(bytes(1, 2));
      expect(await fsys.readFile(at('wal.log'))).toEqual(bytes(1, 2));
      expect((await fsys.stat(at('wal.log'))).sizeBytes).toBe(2);
      await file.close();
    });

    it('does not alias the appended array', async () => {
      const file = await fsys.openAppend(at('wal.log'));
      const data = bytes(1, 2);
      await file.append(data);
      data[0] = 42;
      await file.close();
      expect(await fsys.readFile(at('wal.log'))).toEqual(bytes(1, 2));
    });

    it('truncate cuts the tail and later appends continue from the cut', async () => {
      const file = await fsys.openAppend(at('wal.log'));
      await file.append(bytes(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
      await file.truncate(4);
      expect(file.size()).toBe(4);
      await file.append(bytes(20, 21));
      expect(file.size()).toBe(6);
      await file.sync();
      await file.close();
      expect(await fsys.readFile(at('wal.log'))).toEqual(bytes(0, 1, 2, 3, 20, 21));
    });

    it('truncate to zero empties the file', async () => {
      const file = await fsys.openAppend(at('wal.log'));
      await file.append(bytes(1, 2, 3));
      await file.truncate(0);
      await file.close();
      expect(await fsys.readFile(at('wal.log'))).toEqual(new Uint8Array(0));
    });

    it('refuses a truncate beyond the end (a programmer error, not an FsError)', async () => {
      const file = await fsys.openAppend(at('wal.log'));
      await file.append(bytes(1));
      const err = await file.truncate(5).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(FsError);
      expect(await fsys.readFile(at('wal.log'))).toEqual(bytes(1));
      await file.close();
    });

    it('fails with EISDIR on a directory and ENOENT under a missing directory', async () => {
      await fsys.mkdirp(at('d'));
      await expectFsError(fsys.openAppend(at('d')), 'EISDIR');
      await expectFsError(fsys.openAppend(at('missing', 'wal.log')), 'ENOENT');
    });

    it('throws EBADF on every call after close', async () => {
      const file = await fsys.openAppend(at('wal.log'));
      await file.append(bytes(1));
      await file.close();
      await expectFsError(file.append(bytes(2)), 'EBADF');
      await expectFsError(file.sync(), 'EBADF');
      await expectFsError(file.truncate(0), 'EBADF');
      await expectFsError(file.close(), 'EBADF');
      expect(() => file.size()).toThrow(FsError);
      expect(await fsys.readFile(at('wal.log'))).toEqual(bytes(1));
    });
  });

  describe('openRead', () => {
    beforeEach(async () => {
      await fsys.writeFile(at('seg.bin'), bytes(10, 11, 12, 13, 14, 15, 16, 17));
    });

    it('reads exact ranges and reports the size', async () => {
      const file = await fsys.openRead(at('seg.bin'));
      expect(file.path).toBe(at('seg.bin'));
      expect(file.sizeBytes).toBe(8);
      expect(await file.read(0, 3)).toEqual(bytes(10, 11, 12));
      expect(await file.read(5, 3)).toEqual(bytes(15, 16, 17));
      expect(await file.read(2, 4)).toEqual(bytes(12, 13, 14, 15));
      expect(await file.read(8, 0)).toEqual(new Uint8Array(0));
      await file.close();
    });

    it('throws EIO on a short read past the end', async () => {
      const file = await fsys.openRead(at('seg.bin'));
      await expectFsError(file.read(6, 3), 'EIO', at('seg.bin'));
      await expectFsError(file.read(100, 1), 'EIO');
      await file.close();
    });

    it('hands out copies', async () => {
      const file = await fsys.openRead(at('seg.bin'));
      const first = await file.read(0, 2);
      first[0] = 0;
      expect(await file.read(0, 2)).toEqual(bytes(10, 11));
      await file.close();
    });

    it('keeps reading an unlinked file through an open handle', async () => {
      const file = await fsys.openRead(at('seg.bin'));
      await fsys.unlink(at('seg.bin'));
      expect(await fsys.exists(at('seg.bin'))).toBe(false);
      expect(await file.read(1, 2)).toEqual(bytes(11, 12));
      await file.close();
    });

    it('fails with ENOENT when missing and EISDIR on a directory', async () => {
      await expectFsError(fsys.openRead(at('missing')), 'ENOENT', at('missing'));
      await fsys.mkdirp(at('d'));
      await expectFsError(fsys.openRead(at('d')), 'EISDIR');
    });

    it('throws EBADF after close', async () => {
      const file = await fsys.openRead(at('seg.bin'));
      await file.close();
      await expectFsError(file.read(0, 1), 'EBADF');
      await expectFsError(file.close(), 'EBADF');
    });
  });

  describe('rename', () => {
    it('moves a file', async () => {
      await fsys.writeFile(at('a.tmp'), bytes(1));
      await fsys.rename(at('a.tmp'), at('a'));
      expect(await fsys.exists(at('a.tmp'))).toBe(false);
      expect(await fsys.readFile(at('a'))).toEqual(bytes(1));
    });

    it('replaces an existing target', async () => {
      await fsys.writeFile(at('manifest'), bytes(1, 1, 1));
      await fsys.writeFile(at('manifest.tmp'), bytes(2));
      await fsys.rename(at('manifest.tmp'), at('manifest'));
      expect(await fsys.readFile(at('manifest'))).toEqual(bytes(2));
      expect(await fsys.readdir(fixture.root)).toEqual(['manifest']);
    });

    it('moves a file between directories and moves a directory with its contents', async () => {
      await fsys.mkdirp(at('x'));
      await fsys.mkdirp(at('y'));
      await fsys.writeFile(at('x', 'f'), bytes(5));
      await fsys.rename(at('x', 'f'), at('y', 'g'));
      expect(await fsys.readdir(at('x'))).toEqual([]);
      expect(await fsys.readFile(at('y', 'g'))).toEqual(bytes(5));
      await fsys.rename(at('y'), at('z'));
      expect(await fsys.exists(at('y'))).toBe(false);
      expect(await fsys.readFile(at('z', 'g'))).toEqual(bytes(5));
    });

    it('is a no-op onto itself', async () => {
      await fsys.writeFile(at('a'), bytes(3));
      await fsys.rename(at('a'), at('a'));
      expect(await fsys.readFile(at('a'))).toEqual(bytes(3));
    });

    it('fails with ENOENT for a missing source or target directory, EISDIR/ENOTDIR on kind mismatch', async () => {
      await expectFsError(fsys.rename(at('missing'), at('b')), 'ENOENT');
      await fsys.writeFile(at('a'), bytes(1));
      await expectFsError(fsys.rename(at('a'), at('no-dir', 'b')), 'ENOENT');
      await fsys.mkdirp(at('d'));
      await expectFsError(fsys.rename(at('a'), at('d')), 'EISDIR');
      await expectFsError(fsys.rename(at('d'), at('a')), 'ENOTDIR');
      expect(await fsys.readFile(at('a'))).toEqual(bytes(1));
    });
  });

  describe('unlink / rmdir', () => {
    it('unlink removes a file; ENOENT when missing, EISDIR on a directory', async () => {
      await fsys.writeFile(at('a'), bytes(1));
      await fsys.unlink(at('a'));
      expect(await fsys.exists(at('a'))).toBe(false);
      await expectFsError(fsys.unlink(at('a')), 'ENOENT', at('a'));
      await fsys.mkdirp(at('d'));
      await expectFsError(fsys.unlink(at('d')), 'EISDIR');
      expect(await fsys.exists(at('d'))).toBe(true);
    });

    it('rmdir removes an empty directory only', async () => {
      await fsys.mkdirp(at('d', 'e'));
      await expectFsError(fsys.rmdir(at('d')), 'ENOTEMPTY');
      await fsys.rmdir(at('d', 'e'));
      await fsys.rmdir(at('d'));
      expect(await fsys.exists(at('d'))).toBe(false);
      await expectFsError(fsys.rmdir(at('d')), 'ENOENT');
      await fsys.writeFile(at('f'), bytes(1));
      await expectFsError(fsys.rmdir(at('f')), 'ENOTDIR');
    });
  });

  describe('mkdirp / readdir / stat / exists', () => {
    it('mkdirp creates parents and is idempotent', async () => {
      await fsys.mkdirp(at('a', 'b', 'c'));
      await fsys.mkdirp(at('a', 'b', 'c'));
      await fsys.mkdirp(at('a'));
      expect(await fsys.stat(at('a', 'b', 'c'))).toEqual({ sizeBytes: 0, isDirectory: true });
      expect(await fsys.readdir(at('a'))).toEqual(['b']);
    });

    it('mkdirp fails with EEXIST over a file and ENOTDIR beneath one', async () => {
      await fsys.writeFile(at('f'), bytes(1));
      await expectFsError(fsys.mkdirp(at('f')), 'EEXIST');
      await expectFsError(fsys.mkdirp(at('f', 'g', 'h')), 'ENOTDIR');
    });

    it('readdir returns names sorted by code unit, files and directories alike', async () => {
      for (const name of ['c2', 'b', 'c10', 'a', 'B']) await fsys.writeFile(at(name), bytes(0));
      await fsys.mkdirp(at('d'));
      expect(await fsys.readdir(fixture.root)).toEqual(['B', 'a', 'b', 'c10', 'c2', 'd']);
      expect(await fsys.readdir(at('d'))).toEqual([]);
    });

    it('readdir fails with ENOENT when missing and ENOTDIR on a file', async () => {
      await expectFsError(fsys.readdir(at('missing')), 'ENOENT', at('missing'));
      await fsys.writeFile(at('f'), bytes(1));
      await expectFsError(fsys.readdir(at('f')), 'ENOTDIR');
    });

    it('stat reports file size and kind; ENOENT when missing', async () => {
      await fsys.writeFile(at('f'), bytes(1, 2, 3, 4));
      expect(await fsys.stat(at('f'))).toEqual({ sizeBytes: 4, isDirectory: false });
      expect(await fsys.stat(fixture.root)).toEqual({ sizeBytes: 0, isDirectory: true });
      await expectFsError(fsys.stat(at('missing')), 'ENOENT', at('missing'));
    });

    it('exists is true for files and directories, false for missing paths and paths under a file', async () => {
      await fsys.writeFile(at('f'), bytes(1));
      await fsys.mkdirp(at('d'));
      expect(await fsys.exists(at('f'))).toBe(true);
      expect(await fsys.exists(at('d'))).toBe(true);
      expect(await fsys.exists(at('missing'))).toBe(false);
      expect(await fsys.exists(at('missing', 'deeper'))).toBe(false);
      expect(await fsys.exists(at('f', 'child'))).toBe(false);
    });
  });

  describe('syncDir / createExclusive', () => {
    it('syncDir succeeds on a directory; ENOENT when missing, ENOTDIR on a file', async () => {
      await fsys.writeFile(at('f'), bytes(1), { sync: true });
      await fsys.syncDir(fixture.root);
      expect(await fsys.readdir(fixture.root)).toEqual(['f']);
      await expectFsError(fsys.syncDir(at('missing')), 'ENOENT');
      await expectFsError(fsys.syncDir(at('f')), 'ENOTDIR');
    });

    it('createExclusive creates once, then fails with EEXIST leaving the content alone', async () => {
      await fsys.createExclusive(at('LOCK'), text('pid 1'));
      expect(await fsys.readFile(at('LOCK'))).toEqual(text('pid 1'));
      await expectFsError(fsys.createExclusive(at('LOCK'), text('pid 2')), 'EEXIST', at('LOCK'));
      expect(await fsys.readFile(at('LOCK'))).toEqual(text('pid 1'));
    });

    it('createExclusive fails with EEXIST on a directory and ENOENT under a missing one', async () => {
      await fsys.mkdirp(at('d'));
      await expectFsError(fsys.createExclusive(at('d'), bytes(1)), 'EEXIST');
      await expectFsError(fsys.createExclusive(at('missing', 'LOCK'), bytes(1)), 'ENOENT');
      expect(await fsys.exists(at('missing'))).toBe(false);
    });
  });
});

describe('NodeFileSystem: the real errno of a failed mkdirp', () => {
  // Node's recursive mkdir says ENOENT here; the file system says EROFS.
  it('reports EROFS on a read-only mount, for the directory and for missing parents', async (context) => {
    // Mounted here, not at collection: a filtered-out suite runs no hooks and would leak it.
    const mount = mountReadOnly();
    if ('skipped' in mount) return context.skip(mount.skipped);
    try {
      const nodeFs = new NodeFileSystem();
      await expectFsError(nodeFs.mkdirp(joinPath(mount.dir, 'db')), 'EROFS', joinPath(mount.dir, 'db'));
      await expectFsError(
        nodeFs.mkdirp(joinPath(mount.dir, 'a', 'b', 'c')),
        'EROFS',
        joinPath(mount.dir, 'a'),
      );
      // An existing directory needs no write: still no error.
      await nodeFs.mkdirp(mount.dir);
    } finally {
      mount.unmount();
    }
  });

  it('still creates missing parents on a writable disk', async () => {
    const root = fs.mkdtempSync(`${os.tmpdir()}/usagedb-fs-`);
    try {
      const nodeFs = new NodeFileSystem();
      await nodeFs.mkdirp(joinPath(root, 'x', 'y'));
      expect(fs.statSync(joinPath(root, 'x', 'y')).isDirectory()).toBe(true);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
