/**
 * Operating errors of the disk as catalogue errors: what leaves the public API is always a
 * UsageDbError, and the errno stays reachable as its `cause`.
 *
 * - ENOSPC -> USAGEDB_ERR_NO_SPACE (free space and retry);
 * - EACCES, EPERM, EROFS -> USAGEDB_ERR_PERMISSION (fix the directory's permissions or mount);
 * - any other FsError -> USAGEDB_ERR_IO.
 * A UsageDbError passes through unchanged; anything else is a programmer error and passes too.
 */
import { type ErrorCode, UsageDbError } from '../../errors.ts';
import { type FsErrorCode, isFsError } from './file-system.ts';

const PERMISSION_ERRNOS: ReadonlySet<FsErrorCode> = new Set(['EACCES', 'EPERM', 'EROFS']);

export function ioErrorCode(errno: FsErrorCode): ErrorCode {
  if (errno === 'ENOSPC') return 'USAGEDB_ERR_NO_SPACE';
  if (PERMISSION_ERRNOS.has(errno)) return 'USAGEDB_ERR_PERMISSION';
  return 'USAGEDB_ERR_IO';
}

/** `what` says what was being done, e.g. "cannot flush the memtable". */
export function ioError(err: unknown, what: string): unknown {
  if (err instanceof UsageDbError || !isFsError(err)) return err;
  return new UsageDbError(ioErrorCode(err.code), `${what}: ${err.message}`, { cause: err });
}

/** Runs `work`, turning a file-system failure into a catalogue error. */
export async function withIoErrors<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw ioError(err, what);
  }
}
