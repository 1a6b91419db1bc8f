/**
 * NodeFileSystem: the FileSystem interface over the real disk (`node:fs/promises`).
 *
 * Invariants:
 * - Every operating error leaves this module as an FsError: a Node error whose code is an
 *   FsErrorCode keeps it, any other system error becomes EIO with the original as `cause`.
 *   Programmer errors (Node's ERR_* codes, failed assertions) pass through unchanged.
 * - `sync` and `syncDir` return only after fsync(2) returned, so what they cover is on disk.
 * - A handle never outlives its `close`: every later call on it throws FsError('EBADF').
 * - An AppendFile's tracked size equals the file length after each successful append or
 *   truncate (and is re-read from the disk after a failed append, whose length is unknown).
 */

import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as fsp from 'node:fs/promises';
import {
  type AppendFile,
  dirName,
  type FileSystem,
  FsError,
  isFsErrorCode,
  type ReadFile,
  type WriteFileOptions,
} from './file-system.ts';

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`NodeFileSystem: assertion failed: ${message}`);
}

function systemErrorCode(err: unknown): string | undefined {
  if (!(err instanceof Error) || !('code' in err)) return undefined;
  const code = err.code;
  // ERR_* codes are Node's argument validation: bugs in the caller, not disk trouble.
  if (typeof code !== 'string' || code.startsWith('ERR_')) return undefined;
  return code;
}

function toFsError(err: unknown, syscall: string, path: string): unknown {
  if (err instanceof FsError) return err;
  const code = systemErrorCode(err);
  if (code === undefined) return err;
  return new FsError(isFsErrorCode(code) ? code : 'EIO', syscall, path, { cause: err });
}

/** Runs one system call, translating its failure to an FsError. */
async function io<T>(syscall: string, path: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw toFsError(err, syscall, path);
  }
}

/** On an error path the first error is the one worth reporting; a close failure would hide it. */
async function closeQuietly(fh: FileHandle): Promise<void> {
  try {
    await fh.close();
  } catch {
    // Deliberately ignored: see above.
  }
}

/** mkdir -p without `recursive`, so each failure is the errno of its own mkdir(2). */
async function mkdirEachLevel(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir);
    return;
  } catch (err) {
    const code = systemErrorCode(err);
    const parent = dirName(dir);
    if (code === 'EEXIST') {
      const stats = await io('stat', dir, () => fsp.stat(dir));
      if (stats.isDirectory()) return;
    }
    if (code !== 'ENOENT' || parent === dir) throw toFsError(err, 'mkdir', dir);
    await mkdirEachLevel(parent);
  }
  try {
    await fsp.mkdir(dir);
  } catch (err) {
    // Created meanwhile by someone else: as good as created here.
    if (systemErrorCode(err) !== 'EEXIST') throw toFsError(err, 'mkdir', dir);
  }
}

/** Node may return a Buffer; callers get a plain Uint8Array view of the same bytes. */
function plainBytes(buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export class NodeFileSystem implements FileSystem {
  async mkdirp(dir: string): Promise<void> {
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (err) {
      // Node's recursive mkdir reports ENOENT when creating a missing directory fails for
      // another reason (EROFS, ...): it stats the path after the failure and reports that.
      // Redo it one level at a time to learn the real errno.
      if (systemErrorCode(err) !== 'ENOENT') throw toFsError(err, 'mkdir', dir);
      await mkdirEachLevel(dir);
    }
  }

  async canonicalName(path: string): Promise<string> {
    return `disk:${await io('realpath', path, () => fsp.realpath(path))}`;
  }

  async readdir(dir: string): Promise<string[]> {
    const names = await io('readdir', dir, () => fsp.readdir(dir));
    return names.sort();
  }

  async exists(path: string): Promise<boolean> {
    try {
      await fsp.stat(path);
      return true;
    } catch (err) {
      const code = systemErrorCode(err);
      // A file in the middle of the path (ENOTDIR) means the path cannot exist either.
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw toFsError(err, 'stat', path);
    }
  }

  async stat(path: string): Promise<{ sizeBytes: number; isDirectory: boolean }> {
    const stats = await io('stat', path, () => fsp.stat(path));
    // A directory's st_size is file-system specific; report 0 so both implementations agree.
    if (stats.isDirectory()) return { sizeBytes: 0, isDirectory: true };
    return { sizeBytes: stats.size, isDirectory: false };
  }

  async readFile(path: string): Promise<Uint8Array> {
    return plainBytes(await io('read', path, () => fsp.readFile(path)));
  }

  async writeFile(path: string, data: Uint8Array, options?: WriteFileOptions): Promise<void> {
    const fh = await io('open', path, () => fsp.open(path, 'w'));
    try {
      await io('write', path, () => fh.writeFile(data));
      if (options?.sync === true) await io('fsync', path, () => fh.sync());
    } catch (err) {
      await closeQuietly(fh);
      throw err;
    }
    await io('close', path, () => fh.close());
  }

  async openAppend(path: string): Promise<AppendFile> {
    const fh = await io('open', path, () => fsp.open(path, 'a'));
    try {
      const stats = await io('fstat', path, () => fh.stat());
      return new NodeAppendFile(path, fh, stats.size);
    } catch (err) {
      await closeQuietly(fh);
      throw err;
    }
  }

  async openRead(path: string): Promise<ReadFile> {
    const fh = await io('open', path, () => fsp.open(path, 'r'));
    try {
      const stats = await io('fstat', path, () => fh.stat());
      // Linux lets open(2) read-only succeed on a directory; reject it here, as the sim does.
      if (stats.isDirectory()) throw new FsError('EISDIR', 'open', path);
      return new NodeReadFile(path, fh, stats.size);
    } catch (err) {
      await closeQuietly(fh);
      throw err;
    }
  }

  async rename(fromPath: string, toPath: string): Promise<void> {
    await io('rename', fromPath, () => fsp.rename(fromPath, toPath));
  }

  async unlink(path: string): Promise<void> {
    await io('unlink', path, () => fsp.unlink(path));
  }

  async rmdir(path: string): Promise<void> {
    await io('rmdir', path, () => fsp.rmdir(path));
  }

  async syncDir(dir: string): Promise<void> {
    const fh = await io('open', dir, () => fsp.open(dir, 'r'));
    try {
      const stats = await io('fstat', dir, () => fh.stat());
      if (!stats.isDirectory()) throw new FsError('ENOTDIR', 'fsync', dir);
      await io('fsync', dir, () => fh.sync());
    } catch (err) {
      await closeQuietly(fh);
      throw err;
    }
    await io('close', dir, () => fh.close());
  }

  async createExclusive(path: string, data: Uint8Array): Promise<void> {
    const fh = await io('open', path, () => fsp.open(path, 'wx'));
    try {
      await io('write', path, () => fh.writeFile(data));
      await io('fsync', path, () => fh.sync());
      await io('close', path, () => fh.close());
    } catch (err) {
      await closeQuietly(fh);
      // A half-written lock file would make every later attempt fail with EEXIST.
      await fsp.unlink(path).catch(() => undefined);
      throw err;
    }
    await this.syncDir(dirName(path));
  }
}

class NodeAppendFile implements AppendFile {
  readonly path: string;
  private readonly fh: FileHandle;
  private sizeBytes: number;
  private closed = false;

  constructor(path: string, fh: FileHandle, sizeBytes: number) {
    this.path = path;
    this.fh = fh;
    this.sizeBytes = sizeBytes;
  }

  size(): number {
    this.checkOpen('size');
    return this.sizeBytes;
  }

  async append(data: Uint8Array): Promise<void> {
    this.checkOpen('write');
    try {
      let writtenBytes = 0;
      // write(2) may write less than asked (e.g. near a full disk); keep going until done.
      while (writtenBytes < data.byteLength) {
        const { bytesWritten } = await this.fh.write(data, writtenBytes, data.byteLength - writtenBytes);
        writtenBytes += bytesWritten;
      }
      this.sizeBytes += writtenBytes;
    } catch (err) {
      await this.refreshSize();
      throw toFsError(err, 'write', this.path);
    }
  }

  async sync(): Promise<void> {
    this.checkOpen('fsync');
    await io('fsync', this.path, () => this.fh.sync());
  }

  async truncate(sizeBytes: number): Promise<void> {
    this.checkOpen('ftruncate');
    assert(Number.isSafeInteger(sizeBytes), `truncate size ${sizeBytes} is an integer`);
    assert(
      sizeBytes >= 0 && sizeBytes <= this.sizeBytes,
      `truncate ${sizeBytes} within 0..${this.sizeBytes}`,
    );
    await io('ftruncate', this.path, () => this.fh.truncate(sizeBytes));
    this.sizeBytes = sizeBytes;
  }

  async close(): Promise<void> {
    this.checkOpen('close');
    this.closed = true;
    await io('close', this.path, () => this.fh.close());
  }

  private checkOpen(syscall: string): void {
    if (this.closed) throw new FsError('EBADF', syscall, this.path);
  }

  /** After a failed append part of the data may be on disk; ask the disk how much. */
  private async refreshSize(): Promise<void> {
    try {
      this.sizeBytes = (await this.fh.stat()).size;
    } catch {
      // Keep the old size: the append error is the one to report.
    }
  }
}

class NodeReadFile implements ReadFile {
  readonly path: string;
  readonly sizeBytes: number;
  private readonly fh: FileHandle;
  private closed = false;

  constructor(path: string, fh: FileHandle, sizeBytes: number) {
    this.path = path;
    this.fh = fh;
    this.sizeBytes = sizeBytes;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (this.closed) throw new FsError('EBADF', 'read', this.path);
    assert(Number.isSafeInteger(offset) && offset >= 0, `read offset ${offset} is a non-negative integer`);
    assert(Number.isSafeInteger(length) && length >= 0, `read length ${length} is a non-negative integer`);
    const bytes = new Uint8Array(length);
    let filledBytes = 0;
    while (filledBytes < length) {
      const position = offset + filledBytes;
      const { bytesRead } = await io('read', this.path, () =>
        this.fh.read(bytes, filledBytes, length - filledBytes, position),
      );
      if (bytesRead === 0) break;
      filledBytes += bytesRead;
    }
    // A short read means the file is shorter than its caller believes: report, never pad.
    if (filledBytes < length) throw new FsError('EIO', 'read', this.path);
    return bytes;
  }

  readSync(offset: number, length: number): Uint8Array {
    if (this.closed) throw new FsError('EBADF', 'read', this.path);
    assert(Number.isSafeInteger(offset) && offset >= 0, `read offset ${offset} is a non-negative integer`);
    assert(Number.isSafeInteger(length) && length >= 0, `read length ${length} is a non-negative integer`);
    const bytes = new Uint8Array(length);
    let filledBytes = 0;
    try {
      while (filledBytes < length) {
        const n = readSync(this.fh.fd, bytes, filledBytes, length - filledBytes, offset + filledBytes);
        if (n === 0) break;
        filledBytes += n;
      }
    } catch (err) {
      throw toFsError(err, 'read', this.path);
    }
    if (filledBytes < length) throw new FsError('EIO', 'read', this.path);
    return bytes;
  }

  async close(): Promise<void> {
    if (this.closed) throw new FsError('EBADF', 'close', this.path);
    this.closed = true;
    await io('close', this.path, () => this.fh.close());
  }
}
