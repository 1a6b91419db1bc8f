/**
 * The evidence digest of a closed period: SHA-256 over a canonical text of the events behind
 * its lines, one line per event, so anyone holding a Parquet export can recompute it with one
 * DuckDB query (docs/billing.md gives the text and the query).
 *
 * Canonical line of an event (no escaping needed: every string is length-prefixed):
 *   F(event_id) "," kind "," F(product_id) "," F(meter_id) "," M "," F(unit) ","
 *   timestamp_ms "," quantity "\n"
 * where F(s) = (UTF-8 byte length of s, decimal) ":" s; M = F(model_id), or "~" when null;
 * timestamp_ms and quantity are decimal integers (a quantity may start with "-").
 * Lines are sorted by event_id compared as UTF-8 bytes; the text is hashed as UTF-8; the
 * digest is lower-case hex. No events: SHA-256 of the empty text.
 *
 * Invariant: `DIGEST_DUCKDB_SQL` over an export of exactly those events gives the same hex.
 */
import { createHash } from 'node:crypto';

export interface DigestEvent {
  event_id: string;
  kind: string;
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  timestamp_ms: number;
  quantity: string;
}

function field(s: string): string {
  return `${Buffer.byteLength(s, 'utf8')}:${s}`;
}

export function canonicalDigestLine(e: DigestEvent): string {
  const model = e.model_id === null ? '~' : field(e.model_id);
  return (
    `${field(e.event_id)},${e.kind},${field(e.product_id)},${field(e.meter_id)},${model},` +
    `${field(e.unit)},${e.timestamp_ms},${e.quantity}\n`
  );
}

/** Orders strings as their UTF-8 bytes (JS `<` compares UTF-16 code units, which differs). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** The hex digest of the events (any order in, sorted here). */
export function evidenceDigest(events: readonly DigestEvent[]): string {
  const sorted = [...events].sort((a, b) => compareUtf8(a.event_id, b.event_id));
  const hash = createHash('sha256');
  for (const e of sorted) hash.update(canonicalDigestLine(e), 'utf8');
  return hash.digest('hex');
}

/**
 * The DuckDB query that recomputes the digest over a Parquet export of one account-month
 * (`exportParquet(out, { account_id, from, to })`, partition none). `{file}` is the
 * export's path, quoted as an SQL string literal by the caller.
 */
export const DIGEST_DUCKDB_SQL = `SELECT sha256(coalesce(string_agg(
    CAST(strlen(event_id) AS VARCHAR) || ':' || event_id || ',' || kind || ',' ||
    CAST(strlen(product_id) AS VARCHAR) || ':' || product_id || ',' ||
    CAST(strlen(meter_id) AS VARCHAR) || ':' || meter_id || ',' ||
    coalesce(CAST(strlen(model_id) AS VARCHAR) || ':' || model_id, '~') || ',' ||
    CAST(strlen(unit) AS VARCHAR) || ':' || unit || ',' ||
    CAST(timestamp_ms AS VARCHAR) || ',' || CAST(quantity AS VARCHAR) || chr(10),
    '' ORDER BY encode(event_id)), '')) AS evidence_digest
FROM read_parquet({file})`;
