/**
 * Every failure leaves the server as `{ "error": { "code", "message" } }` with the catalogue's
 * HTTP status: library errors keep their code, Fastify's own (body too large, content type,
 * malformed JSON, schema validation) get the catalogue code that means the same.
 */
import { ERROR_CATALOGUE, type ErrorCode, UsageDbError } from '../errors.ts';

export interface HttpError {
  status: number;
  code: ErrorCode;
  message: string;
}

function httpError(
  code: ErrorCode,
  message: string,
  status: number = ERROR_CATALOGUE[code].httpStatus,
): HttpError {
  return { status, code, message };
}

function field(err: unknown, name: string): unknown {
  return typeof err === 'object' && err !== null ? (err as Record<string, unknown>)[name] : undefined;
}

export function toHttpError(err: unknown, limits: { bodyBytesMax: number }): HttpError {
  if (err instanceof UsageDbError) return httpError(err.code, err.message);
  const message = err instanceof Error ? err.message : String(err);
  const code = field(err, 'code');
  const status = field(err, 'statusCode');
  if (field(err, 'validation') !== undefined) return httpError('USAGEDB_ERR_INVALID_ARGUMENT', message);
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return httpError(
        'USAGEDB_ERR_BODY_TOO_LARGE',
        `request body exceeds the limit of ${limits.bodyBytesMax} bytes; send smaller batches`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      if (status === 415)
        return httpError(
          'USAGEDB_ERR_UNSUPPORTED_MEDIA_TYPE',
          `${message}; send Content-Type: application/json`,
        );
      break;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return httpError('USAGEDB_ERR_INVALID_ARGUMENT', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return httpError('USAGEDB_ERR_INVALID_ARGUMENT', `the request body is not valid JSON: ${message}`);
  }
  if (status === 415) return httpError('USAGEDB_ERR_UNSUPPORTED_MEDIA_TYPE', message);
  if (status === 413) return httpError('USAGEDB_ERR_BODY_TOO_LARGE', message);
  if (typeof status === 'number' && status >= 400 && status < 500)
    return httpError('USAGEDB_ERR_INVALID_ARGUMENT', message, status);
  // A file-system error that escaped the library still means "could not persist".
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return httpError('USAGEDB_ERR_IO', message);
  return httpError('USAGEDB_ERR_INTERNAL', 'internal error; see the server log');
}

/**
 * The answer to an error Node's HTTP server raises on a connection before any request exists
 * (`clientError`): `code` is Node's error code.
 */
export function clientErrorAnswer(code: string | undefined, limits: { requestTimeoutMs: number }): HttpError {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return httpError(
        'USAGEDB_ERR_REQUEST_TIMEOUT',
        `the request was not received within ${limits.requestTimeoutMs} ms; nothing of it was ingested`,
      );
    case 'HPE_HEADER_OVERFLOW':
      return httpError('USAGEDB_ERR_INVALID_ARGUMENT', 'the request headers are too large', 431);
    default:
      return httpError('USAGEDB_ERR_INVALID_ARGUMENT', 'malformed HTTP request');
  }
}
