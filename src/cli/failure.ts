/**
 * Every failure of the CLI becomes one line and an exit code from the error catalogue: no
 * stack trace ever reaches the user.
 */
import { CommanderError } from 'commander';
import { ERROR_CATALOGUE, type ErrorCode, UsageDbError } from '../errors.ts';
import { echoText } from '../model/echo.ts';
import { FsError, isFsErrorCode } from '../storage/fs/file-system.ts';
import { ioErrorCode } from '../storage/fs/io-error.ts';

export interface CliFailure {
  code: ErrorCode;
  message: string;
  exitCode: number;
}

/** Node's file-system error codes that mean "the path is not there or not usable". */
const NOT_FOUND_ERRNOS = new Set(['ENOENT', 'ENOTDIR']);
const INVALID_PATH_ERRNOS = new Set(['EISDIR', 'ENAMETOOLONG', 'EEXIST']);
/**
 * Longest failure line: messages echo input (commander repeats an unknown option whole), and
 * one line must stay one readable line. Paths (up to 4,096 bytes) still fit whole.
 */
export const FAILURE_MESSAGE_BYTES_MAX = 8_192;

function oneLine(text: string): string {
  return text
    .replace(/^error:\s*/i, '')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .join(' ');
}

function failure(code: ErrorCode, message: string): CliFailure {
  const text = echoText(oneLine(message), FAILURE_MESSAGE_BYTES_MAX);
  return { code, message: text, exitCode: ERROR_CATALOGUE[code].exitCode };
}

function errnoOf(err: unknown): string | null {
  if (typeof err !== 'object' || err === null || !('code' in err)) return null;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : null;
}

/**
 * The text of an operating error, naming its real errno: an FsError says `EROFS: mkdir '/x'`;
 * the Node error it wraps adds what the errno means (`EROFS: read-only file system, mkdir '/x'`).
 */
function errnoMessage(err: Error, errno: string): string {
  const cause = err instanceof FsError ? err.cause : undefined;
  if (cause instanceof Error && errnoOf(cause) === errno) return cause.message;
  return err.message.startsWith(errno) ? err.message : `${errno}: ${err.message}`;
}

export function toFailure(err: unknown): CliFailure {
  if (err instanceof UsageDbError) return failure(err.code, err.message);
  if (err instanceof CommanderError) return failure('USAGEDB_ERR_INVALID_ARGUMENT', err.message);
  const errno = errnoOf(err);
  if (errno === null || !(err instanceof Error))
    return failure('USAGEDB_ERR_INTERNAL', err instanceof Error ? err.message : String(err));
  const message = errnoMessage(err, errno);
  if (NOT_FOUND_ERRNOS.has(errno)) return failure('USAGEDB_ERR_NOT_FOUND', message);
  if (INVALID_PATH_ERRNOS.has(errno)) return failure('USAGEDB_ERR_INVALID_ARGUMENT', message);
  // EACCES, EPERM, EROFS -> PERMISSION; ENOSPC -> NO_SPACE; any other errno -> IO.
  return failure(ioErrorCode(isFsErrorCode(errno) ? errno : 'EIO'), message);
}

/** The one line written to stderr: JSON (the HTTP error shape) with --json, else text. */
export function formatFailure(f: CliFailure, json: boolean): string {
  if (json) return `${JSON.stringify({ error: { code: f.code, message: f.message } })}\n`;
  return `usagedb: ${f.message} (${f.code})\n`;
}
