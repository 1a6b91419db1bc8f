/**
 * The error catalogue: every error usagedb raises on purpose has a stable code, an HTTP status
 * and a CLI exit code. Clients switch on `code`, never on the message.
 */

export const ERROR_CATALOGUE = {
  USAGEDB_ERR_INVALID_ARGUMENT: { httpStatus: 400, exitCode: 2 },
  USAGEDB_ERR_INVALID_QUERY: { httpStatus: 400, exitCode: 2 },
  USAGEDB_ERR_UNSUPPORTED_SQL: { httpStatus: 400, exitCode: 2 },
  USAGEDB_ERR_BATCH_TOO_LARGE: { httpStatus: 413, exitCode: 2 },
  USAGEDB_ERR_BODY_TOO_LARGE: { httpStatus: 413, exitCode: 2 },
  USAGEDB_ERR_UNSUPPORTED_MEDIA_TYPE: { httpStatus: 415, exitCode: 2 },
  USAGEDB_ERR_UNAUTHORIZED: { httpStatus: 401, exitCode: 2 },
  USAGEDB_ERR_REQUEST_TIMEOUT: { httpStatus: 408, exitCode: 5 },
  USAGEDB_ERR_NOT_FOUND: { httpStatus: 404, exitCode: 3 },
  USAGEDB_ERR_STATE_CONFLICT: { httpStatus: 409, exitCode: 3 },
  USAGEDB_ERR_LOCKED: { httpStatus: 503, exitCode: 4 },
  USAGEDB_ERR_CLOSED: { httpStatus: 503, exitCode: 4 },
  USAGEDB_ERR_WAL_WRITE: { httpStatus: 503, exitCode: 5 },
  USAGEDB_ERR_WAL_CORRUPT: { httpStatus: 503, exitCode: 6 },
  USAGEDB_ERR_SEGMENT_CORRUPT: { httpStatus: 503, exitCode: 6 },
  USAGEDB_ERR_MANIFEST_CORRUPT: { httpStatus: 503, exitCode: 6 },
  USAGEDB_ERR_IO: { httpStatus: 503, exitCode: 5 },
  USAGEDB_ERR_NO_SPACE: { httpStatus: 503, exitCode: 5 },
  USAGEDB_ERR_PERMISSION: { httpStatus: 503, exitCode: 5 },
  USAGEDB_ERR_INTERNAL: { httpStatus: 500, exitCode: 1 },
} as const satisfies Record<string, { httpStatus: number; exitCode: number }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class UsageDbError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly exitCode: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageDbError';
    this.code = code;
    this.httpStatus = ERROR_CATALOGUE[code].httpStatus;
    this.exitCode = ERROR_CATALOGUE[code].exitCode;
  }
}

/** Throws an internal-invariant error: a programmer error, never bad input. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new UsageDbError('USAGEDB_ERR_INTERNAL', `invariant violated: ${message}`);
}
