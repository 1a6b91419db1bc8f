/**
 * Validation of the JSON query (docs/query.md) into a `Query`.
 *
 * Invariants:
 * - every way an input can be wrong raises USAGEDB_ERR_INVALID_QUERY with a message naming
 *   the field (`query.group_by[1]: ...`); nothing unknown is silently ignored;
 * - the output satisfies the `Query` invariants (types.ts), which the executor relies on.
 */
import { UsageDbError } from '../errors.ts';
import { KIND_NAMES } from '../model/columns.ts';
import { parseRange } from './time.ts';
import {
  BASE_GROUP_KEYS,
  DIMENSION_KEY_PREFIX,
  FILTER_COLUMNS,
  type FilterColumn,
  type GroupKey,
  METRICS,
  type Metric,
  NULLABLE_FILTER_COLUMNS,
  QUERY_SOURCES,
  type Query,
  type QueryOrder,
  type QuerySource,
} from './types.ts';

/** A filter list longer than this is a mistake or an attack, not a billing question. */
export const FILTER_VALUES_MAX = 10_000;
export const DIMENSION_FILTERS_MAX = 16;
export const ORDER_BY_MAX = 16;
export const GROUP_BY_MAX = 16;
export const ID_BYTES_MAX = 256;

function invalid(message: string): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_INVALID_QUERY', message);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `"${value}"` : typeof value === 'object' ? 'an object' : String(value);
}

function checkId(value: unknown, what: string): string {
  if (typeof value !== 'string') throw invalid(`${what} must be a string, got ${describe(value)}`);
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes < 1 || bytes > ID_BYTES_MAX)
    throw invalid(`${what} must be 1-${ID_BYTES_MAX} bytes, got ${bytes}`);
  return value;
}

/** A group key name, or throws naming the allowed ones. */
export function checkGroupKey(value: unknown, what: string): GroupKey {
  if (typeof value === 'string') {
    if ((BASE_GROUP_KEYS as readonly string[]).includes(value)) return value as GroupKey;
    if (value.startsWith(DIMENSION_KEY_PREFIX)) {
      checkId(value.slice(DIMENSION_KEY_PREFIX.length), `${what} (dimension key)`);
      return value as GroupKey;
    }
  }
  throw invalid(
    `${what}: unknown group key ${describe(value)}; use one of ${BASE_GROUP_KEYS.join(', ')} or dimensions.<key>`,
  );
}

function parseGroupBy(value: unknown): GroupKey[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid('query.group_by must be an array of group keys');
  if (value.length > GROUP_BY_MAX)
    throw invalid(`query.group_by has ${value.length} keys; at most ${GROUP_BY_MAX}`);
  const keys = value.map((k, i) => checkGroupKey(k, `query.group_by[${i}]`));
  const seen = new Set<string>();
  for (const k of keys) {
    if (seen.has(k)) throw invalid(`query.group_by: key "${k}" appears twice`);
    seen.add(k);
  }
  return keys;
}

function parseMetrics(value: unknown): Metric[] {
  if (value === undefined) return ['sum', 'count'];
  if (!Array.isArray(value)) throw invalid('query.metrics must be an array such as ["sum", "count"]');
  const out: Metric[] = [];
  value.forEach((m, i) => {
    if (typeof m !== 'string' || !(METRICS as readonly string[]).includes(m)) {
      throw invalid(`query.metrics[${i}]: unknown metric ${describe(m)}; use sum, count, min or max`);
    }
    if (out.includes(m as Metric)) throw invalid(`query.metrics: "${m}" appears twice`);
    out.push(m as Metric);
  });
  return out;
}

function parseFilterValues(column: FilterColumn, value: unknown): (string | null)[] {
  const what = `query.filters.${column}`;
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw invalid(`${what} is an empty list (it would match nothing)`);
  if (list.length > FILTER_VALUES_MAX)
    throw invalid(`${what} has ${list.length} values; at most ${FILTER_VALUES_MAX}`);
  const nullable = NULLABLE_FILTER_COLUMNS.includes(column);
  return list.map((v: unknown, i) => {
    const at = Array.isArray(value) ? `${what}[${i}]` : what;
    if (v === null) {
      if (!nullable)
        throw invalid(
          `${at}: ${column} is never null; null is only allowed for ${NULLABLE_FILTER_COLUMNS.join(', ')}`,
        );
      return null;
    }
    if (column === 'kind') {
      if (typeof v !== 'string' || !(KIND_NAMES as readonly string[]).includes(v)) {
        throw invalid(`${at}: unknown kind ${describe(v)}; use ${KIND_NAMES.join(', ')}`);
      }
      return v;
    }
    return checkId(v, at);
  });
}

function parseDimensionFilter(value: unknown): [string, string][] {
  if (!isPlainObject(value)) throw invalid('query.filters.dimensions must be an object of key -> value');
  const entries = Object.entries(value);
  if (entries.length > DIMENSION_FILTERS_MAX)
    throw invalid(`query.filters.dimensions has ${entries.length} keys; at most ${DIMENSION_FILTERS_MAX}`);
  return entries.map(([k, v]) => {
    checkId(k, 'query.filters.dimensions key');
    return [k, checkId(v, `query.filters.dimensions.${k}`)];
  });
}

function parseFilters(value: unknown): Pick<Query, 'filters' | 'dimensions'> {
  if (value === undefined || value === null) return { filters: {}, dimensions: [] };
  if (!isPlainObject(value)) throw invalid('query.filters must be an object');
  const filters: Partial<Record<FilterColumn, (string | null)[]>> = {};
  let dimensions: [string, string][] = [];
  for (const [key, v] of Object.entries(value)) {
    if (key === 'dimensions') {
      dimensions = parseDimensionFilter(v);
    } else if ((FILTER_COLUMNS as readonly string[]).includes(key)) {
      filters[key as FilterColumn] = parseFilterValues(key as FilterColumn, v);
    } else {
      const hint = key === 'account_id' ? ' (account_id is a top-level field of the query)' : '';
      throw invalid(
        `query.filters: unknown filter "${key}"${hint}; use ${FILTER_COLUMNS.join(', ')} or dimensions`,
      );
    }
  }
  return { filters, dimensions };
}

function parseOrderBy(value: unknown, groupBy: readonly GroupKey[]): QueryOrder[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid('query.order_by must be an array of { key, dir }');
  if (value.length > ORDER_BY_MAX)
    throw invalid(`query.order_by has ${value.length} entries; at most ${ORDER_BY_MAX}`);
  return value.map((o: unknown, i) => {
    const what = `query.order_by[${i}]`;
    if (!isPlainObject(o)) throw invalid(`${what} must be an object { key, dir }`);
    for (const k of Object.keys(o))
      if (k !== 'key' && k !== 'dir') throw invalid(`${what}: unknown field "${k}"`);
    const key = o.key;
    const isMetric = typeof key === 'string' && (METRICS as readonly string[]).includes(key);
    const isGroupKey = typeof key === 'string' && (groupBy as readonly string[]).includes(key);
    if (!isMetric && !isGroupKey) {
      throw invalid(
        `${what}: key ${describe(key)} is neither a metric (sum, count, min, max) nor one of the query's group_by keys`,
      );
    }
    const dir = o.dir ?? 'asc';
    if (dir !== 'asc' && dir !== 'desc')
      throw invalid(`${what}: dir must be "asc" or "desc", got ${describe(dir)}`);
    return { key: key as QueryOrder['key'], dir };
  });
}

export function parseLimit(value: unknown, what: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${what} must be a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

const QUERY_FIELDS = [
  'source',
  'account_id',
  'from',
  'to',
  'group_by',
  'filters',
  'metrics',
  'order_by',
  'limit',
];

/** Validates a JSON query (docs/query.md) and returns its normalised form. */
export function parseJsonQuery(input: unknown): Query {
  if (!isPlainObject(input)) throw invalid('a query must be a JSON object');
  for (const key of Object.keys(input)) {
    if (!QUERY_FIELDS.includes(key))
      throw invalid(`query: unknown field "${key}"; fields are ${QUERY_FIELDS.join(', ')}`);
  }
  const source = (input.source ?? 'auto') as QuerySource;
  if (!QUERY_SOURCES.includes(source))
    throw invalid(`query.source must be auto, rollup or raw, got ${describe(input.source)}`);
  const accountIds = input.account_id === undefined ? null : [checkId(input.account_id, 'query.account_id')];
  const { fromMs, toMs } = parseRange(input.from, input.to, 'query');
  const groupBy = parseGroupBy(input.group_by);
  return {
    source,
    accountIds,
    fromMs,
    toMs,
    groupBy,
    ...parseFilters(input.filters),
    metrics: parseMetrics(input.metrics),
    orderBy: parseOrderBy(input.order_by, groupBy),
    limit: parseLimit(input.limit, 'query.limit'),
  };
}
