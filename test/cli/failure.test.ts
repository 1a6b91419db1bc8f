/**
 * How a thrown error becomes the CLI's one line and exit code: the errno decides the catalogue
 * code, and the line names the real errno.
 */
import { describe, expect, it } from 'vitest';
import { FAILURE_MESSAGE_BYTES_MAX, toFailure } from '../../src/cli/failure.ts';
import { FsError, type FsErrorCode } from '../../src/storage/fs/file-system.ts';

/** A Node system error as node:fs throws it. */
function nodeError(code: string, text: string, syscall: string, path: string): Error {
  return Object.assign(new Error(`${code}: ${text}, ${syscall} '${path}'`), { code, syscall, path });
}

describe('toFailure', () => {
  it.each<[FsErrorCode, string, string, number]>([
    ['EACCES', 'permission denied', 'USAGEDB_ERR_PERMISSION', 5],
    ['EPERM', 'operation not permitted', 'USAGEDB_ERR_PERMISSION', 5],
    ['EROFS', 'read-only file system', 'USAGEDB_ERR_PERMISSION', 5],
    ['ENOSPC', 'no space left on device', 'USAGEDB_ERR_NO_SPACE', 5],
    ['EIO', 'i/o error', 'USAGEDB_ERR_IO', 5],
    ['ENOENT', 'no such file or directory', 'USAGEDB_ERR_NOT_FOUND', 3],
  ])('maps an FsError %s (%s) to %s, naming the errno', (errno, text, code, exitCode) => {
    const cause = nodeError(errno, text, 'mkdir', '/data/db');
    const f = toFailure(new FsError(errno, 'mkdir', '/data/db', { cause }));
    expect(f).toEqual({ code, exitCode, message: `${errno}: ${text}, mkdir '/data/db'` });
  });

  it('maps a raw Node error by its errno too, and an unknown errno to USAGEDB_ERR_IO', () => {
    expect(toFailure(nodeError('EACCES', 'permission denied', 'open', '/x')).code).toBe(
      'USAGEDB_ERR_PERMISSION',
    );
    expect(toFailure(nodeError('ENOSPC', 'no space left on device', 'write', '/x')).code).toBe(
      'USAGEDB_ERR_NO_SPACE',
    );
    const other = toFailure(nodeError('EMFILE', 'too many open files', 'open', '/x'));
    expect(other).toMatchObject({ code: 'USAGEDB_ERR_IO', exitCode: 5 });
    expect(other.message).toMatch(/^EMFILE: too many open files/);
  });

  it('keeps an FsError without a cause as it is: the errno leads its message', () => {
    const f = toFailure(new FsError('EROFS', 'mkdir', '/data/db'));
    expect(f).toMatchObject({ code: 'USAGEDB_ERR_PERMISSION', message: "EROFS: mkdir '/data/db'" });
  });

  it('treats an error without an errno as internal', () => {
    expect(toFailure(new Error('boom'))).toMatchObject({ code: 'USAGEDB_ERR_INTERNAL', exitCode: 1 });
  });
});

describe('echoed input in failures is bounded', () => {
  it('cuts a huge message to FAILURE_MESSAGE_BYTES_MAX bytes, marked with …', () => {
    const f = toFailure(new Error(`unknown option '--${'x'.repeat(1_000_000)}'`));
    expect(Buffer.byteLength(f.message)).toBeLessThanOrEqual(FAILURE_MESSAGE_BYTES_MAX + 3);
    expect(f.message.endsWith('…')).toBe(true);
  });
});
