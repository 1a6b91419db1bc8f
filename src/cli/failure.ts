/**
 * Every failure of the CLI becomes one line and an exit code from the error catalogue: no
 * stack trace ever reaches the user.
 */
import { CommanderError } from 'commander';
import { ERROR_CATALOGUE, type ErrorCode, UsageDbError } from '../errors.ts';

export interface CliFailure {
  code: ErrorCode;
  message: string;
  exitCode: number;
}

/** Node's file-system error codes that mean "the path is not there or not usable". */
const NOT_FOUND_ERRNOS = new Set(['ENOENT', 'ENOTDIR']);
const INVALID_PATH_ERRNOS = new Set(['EISDIR', 'ENAMETOOLONG', 'EEXIST']);

function oneLine(text: string): string {
  return text
    .replace(/^error:\s*/i, '')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .join(' ');
}

function failure(code: ErrorCode, message: string): CliFailure {
  return { code, message: oneLine(message), exitCode: ERROR_CATALOGUE[code].exitCode };
}

function errnoOf(err: unknown): string | null {
  if (typeof err !== 'object' || err === null || !('code' in err)) return null;
  const code = (err as { code: unknown }).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) ? code : null;
}

export function toFailure(err: unknown): CliFailure {
  if (err instanceof UsageDbError) return failure(err.code, err.message);
  if (err instanceof CommanderError) return failure('USAGEDB_ERR_INVALID_ARGUMENT', err.message);
  const errno = errnoOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (errno !== null && NOT_FOUND_ERRNOS.has(errno)) return failure('USAGEDB_ERR_NOT_FOUND', message);
  if (errno !== null && INVALID_PATH_ERRNOS.has(errno))
    return failure('USAGEDB_ERR_INVALID_ARGUMENT', message);
  if (errno !== null) return failure('USAGEDB_ERR_IO', message);
  return failure('USAGEDB_ERR_INTERNAL', message);
}

/** The one line written to stderr: JSON (the HTTP error shape) with --json, else text. */
export function formatFailure(f: CliFailure, json: boolean): string {
  if (json) return `${JSON.stringify({ error: { code: f.code, message: f.message } })}\n`;
  return `usagedb: ${f.message} (${f.code})\n`;
}
