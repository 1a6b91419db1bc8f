/**
 * The one file-system interface every byte of usagedb goes through, so the engine runs
 * unchanged on the real disk (NodeFileSystem) and on a simulated one (SimFileSystem) that
 * loses un-fsynced data at a crash, tears writes, flips bits and fails chosen calls.
 *
 * Invariants (what callers may rely on, and what implementations must model):
 * - Data written to a file is durable only after `sync()` on a handle of that file (or
 *   `writeFile(..., { sync: true })`).
 * - A created, renamed or unlinked directory entry is durable only after `syncDir(dir)`.
 * - `rename` atomically replaces the target name.
 * - Operating errors are thrown as `FsError` with a `code` (ENOENT, EEXIST, EIO, ENOSPC, ...).
 *
 * Paths are plain strings joined with '/'; implementations never interpret '..'.
 */

export type FsErrorCode =
  | 'ENOENT'
  | 'EEXIST'
  | 'EIO'
  | 'ENOSPC'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'ENOTEMPTY'
  | 'EBADF'
  | 'EACCES'
  | 'EPERM'
  | 'EROFS';

const FS_ERROR_CODES: ReadonlySet<string> = new Set<FsErrorCode>([
  'ENOENT',
  'EEXIST',
  'EIO',
  'ENOSPC',
  'ENOTDIR',
  'EISDIR',
  'ENOTEMPTY',
  'EBADF',
  'EACCES',
  'EPERM',
  'EROFS',
]);

/** True when `code` (e.g. a Node error's) is one of the FsErrorCodes. */
export function isFsErrorCode(code: string): code is FsErrorCode {
  return FS_ERROR_CODES.has(code);
}

export class FsError extends Error {
  readonly code: FsErrorCode;
  readonly path: string;
  constructor(code: FsErrorCode, syscall: string, path: string, options?: { cause?: unknown }) {
    super(`${code}: ${syscall} '${path}'`, options);
    this.name = 'FsError';
    this.code = code;
    this.path = path;
  }
}

/** A file opened for appending (WAL). Writes go to the end; nothing is durable before `sync`. */
export interface AppendFile {
  readonly path: string;
  /** Current length in bytes, including un-synced appends. */
  size(): number;
  append(data: Uint8Array): Promise<void>;
  sync(): Promise<void>;
  /** Cuts the file to `sizeBytes` (used to undo a failed append). Not durable before `sync`. */
  truncate(sizeBytes: number): Promise<void>;
  close(): Promise<void>;
}

/** A file opened for random reads (segments). */
export interface ReadFile {
  readonly path: string;
  readonly sizeBytes: number;
  /** Reads exactly `length` bytes at `offset`; throws FsError('EIO') on a short read. */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * The same read, blocking the thread: for small reads on a query's hot path, where a round
   * trip through the I/O threads costs more than the read itself (the bytes are usually in the
   * page cache). Keep it to a few hundred KiB.
   */
  readSync(offset: number, length: number): Uint8Array;
  close(): Promise<void>;
}

/**
 * Reads up to this size go through `readSync` on query and lookup paths: the data is usually
 * in the page cache, and a round trip through Node's I/O threads and back through the event
 * loop costs more than the read. Larger reads stay asynchronous, so the event loop is never
 * held long.
 */
export const SYNC_READ_BYTES_MAX = 256 * 1024;

/** `file.read`, done synchronously when small (see SYNC_READ_BYTES_MAX). */
export function readSmall(file: ReadFile, offset: number, length: number): Promise<Uint8Array> {
  if (length > SYNC_READ_BYTES_MAX) return file.read(offset, length);
  try {
    return Promise.resolve(file.readSync(offset, length));
  } catch (err) {
    return Promise.reject(err);
  }
}

export interface WriteFileOptions {
  /** fsync the file before returning (the directory entry still needs `syncDir`). */
  sync?: boolean;
}

export interface FileSystem {
  /** Creates `dir` and its parents; no error if it exists. Not durable before `syncDir(parent)`. */
  mkdirp(dir: string): Promise<void>;
  /** Names (not paths) of the entries of `dir`, sorted. ENOENT if missing. */
  readdir(dir: string): Promise<string[]>;
  exists(path: string): Promise<boolean>;
  /** Size in bytes of a file. ENOENT if missing. */
  stat(path: string): Promise<{ sizeBytes: number; isDirectory: boolean }>;
  readFile(path: string): Promise<Uint8Array>;
  /** Creates or replaces `path` with `data`. */
  writeFile(path: string, data: Uint8Array, options?: WriteFileOptions): Promise<void>;
  /** Opens for append, creating the file if missing. */
  openAppend(path: string): Promise<AppendFile>;
  openRead(path: string): Promise<ReadFile>;
  rename(fromPath: string, toPath: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Removes an empty directory. */
  rmdir(path: string): Promise<void>;
  /** Makes the entries of `dir` (creates, renames, unlinks) durable. */
  syncDir(dir: string): Promise<void>;
  /**
   * Creates `path` only if it does not exist, with `data`, durably (file and directory).
   * Throws FsError('EEXIST') if it exists. Used for the data-directory lock.
   */
  createExclusive(path: string, data: Uint8Array): Promise<void>;
  /**
   * One name per directory whatever its spelling (relative, '..', '//', a trailing '/', a
   * symlink), unique across disks: keys the process-wide registry of open databases. `path`
   * must exist.
   */
  canonicalName(path: string): Promise<string>;
}

/** Joins path parts with '/', collapsing duplicate separators. */
export function joinPath(...parts: string[]): string {
  return parts
    .filter((p) => p.length > 0)
    .join('/')
    .replace(/\/{2,}/g, '/');
}

/** The directory part of a path ('.' when there is none). */
export function dirName(path: string): string {
  const i = path.lastIndexOf('/');
  if (i < 0) return '.';
  if (i === 0) return '/';
  return path.slice(0, i);
}

export function isFsError(err: unknown, code?: FsErrorCode): err is FsError {
  return err instanceof FsError && (code === undefined || err.code === code);
}
