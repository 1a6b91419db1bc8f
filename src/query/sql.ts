/**
 * The strict SQL subset (docs/query.md, POST /v1/query/sql) over the one table `usage_events`:
 *
 *   SELECT <group keys>, SUM(quantity), COUNT(*), MIN(quantity), MAX(quantity) [AS alias]
 *   FROM usage_events
 *   WHERE <AND of: col = v, col IN (...), timestamp_ms <|<=|>|>=|BETWEEN, dimensions['k'] = 'v'>
 *   GROUP BY ... ORDER BY ... LIMIT n
 *
 * parsed by node-sql-parser (PostgreSQL dialect: 'text' is a string, "x" an identifier) and
 * translated into the same `Query` the JSON form produces, then run by the same executor.
 *
 * Invariants:
 * - the translation accepts only what it understands: every AST node is matched against the
 *   subset, and anything else raises USAGEDB_ERR_UNSUPPORTED_SQL naming the construct — never
 *   a silent reinterpretation;
 * - a time range is required (both a lower and an upper timestamp_ms bound), so a query can
 *   never turn into an unbounded scan by accident.
 */
import pkg from 'node-sql-parser/build/postgresql.js';
import { UsageDbError } from '../errors.ts';
import { KIND_NAMES } from '../model/columns.ts';
import { checkGroupKey } from './parse-json.ts';
import { parseRfc3339 } from './time.ts';
import {
  BASE_GROUP_KEYS,
  DIMENSION_KEY_PREFIX,
  FILTER_COLUMNS,
  type FilterColumn,
  type GroupKey,
  type Metric,
  NULLABLE_FILTER_COLUMNS,
  type Query,
  type QueryOrder,
} from './types.ts';

export const SQL_TEXT_BYTES_MAX = 64 * 1024;
export const TABLE_NAME = 'usage_events';

type Node = Record<string, unknown>;

/** What each output column holds. */
export type SqlOutput = { kind: 'key'; key: GroupKey } | { kind: 'metric'; metric: Metric };

export interface SqlPlan {
  query: Query;
  columns: string[];
  outputs: SqlOutput[];
}

const OTHER_COLUMNS = [
  'quantity',
  'timestamp_ms',
  'event_id',
  'ingested_at_ms',
  'correction_original_event_id',
  'correction_reason',
  'dimensions',
];

function unsupported(construct: string, hint?: string): UsageDbError {
  return new UsageDbError(
    'USAGEDB_ERR_UNSUPPORTED_SQL',
    `unsupported SQL: ${construct}${hint === undefined ? '' : ` (${hint})`}`,
  );
}

function isNode(value: unknown): value is Node {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nodes(value: unknown): Node[] {
  return Array.isArray(value) ? value.filter(isNode) : [];
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** A name for an expression the subset does not take, for error messages. */
function describeExpr(node: Node): string {
  if ('ast' in node) return 'subquery';
  const type = str(node.type) ?? 'unknown';
  switch (type) {
    case 'binary_expr':
      return `operator ${str(node.operator) ?? '?'}`;
    case 'unary_expr':
      return `operator ${str(node.operator) ?? '?'}`;
    case 'function': {
      const name = isNode(node.name)
        ? nodes(node.name.name)
            .map((n) => str(n.value))
            .join('.')
        : '?';
      return `function ${name.toUpperCase()}()`;
    }
    case 'aggr_func':
      return `aggregate ${str(node.name) ?? '?'}()`;
    case 'case':
      return 'CASE';
    case 'cast':
      return 'CAST';
    case 'var':
      return 'parameter placeholder';
    case 'column_ref':
      return 'column reference';
    case 'bool':
      return 'boolean literal';
    case 'null':
      return 'NULL';
    case 'star':
      return '*';
    case 'number':
    case 'single_quote_string':
      return 'literal';
    default:
      return `${type.replace(/_/g, ' ')} expression`;
  }
}

// ---------------------------------------------------------------- columns

type ColumnRef = { kind: 'column'; name: string } | { kind: 'dimension'; key: string };

interface Scope {
  qualifiers: Set<string>;
}

function identifier(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (!isNode(value)) return null;
  const inner = isNode(value.expr) ? value.expr : value;
  const text = str(inner.value);
  if (text === null) return null;
  // Unquoted identifiers fold to lower case (PostgreSQL); "quoted" ones keep their case.
  return inner.type === 'double_quote_string' ? text : text.toLowerCase();
}

function columnRef(node: Node, scope: Scope): ColumnRef {
  if (node.column === '*') throw unsupported('SELECT *', 'name the group keys and aggregates');
  const table = node.table === null || node.table === undefined ? null : identifier(node.table);
  if (table !== null && !scope.qualifiers.has(table))
    throw unsupported(`unknown table qualifier "${table}"`, `the only table is ${TABLE_NAME}`);
  const name = identifier(node.column);
  if (name === null) throw unsupported('column reference form');
  const index = node.array_index;
  if (Array.isArray(index) && index.length > 0) {
    const parts = nodes(index);
    const key =
      parts.length === 1 && isNode(parts[0].index) && parts[0].index.type === 'single_quote_string'
        ? str(parts[0].index.value)
        : null;
    if (name !== 'dimensions' || key === null) {
      throw unsupported(`subscript on ${name}`, "only dimensions['key'] with one quoted key is supported");
    }
    return { kind: 'dimension', key };
  }
  if (!(BASE_GROUP_KEYS as readonly string[]).includes(name) && !OTHER_COLUMNS.includes(name)) {
    throw unsupported(
      `unknown column "${name}"`,
      `columns are ${[...BASE_GROUP_KEYS, ...OTHER_COLUMNS].join(', ')}`,
    );
  }
  return { kind: 'column', name };
}

/** The group key a column reference stands for, or a rejection naming why it cannot group. */
function groupKeyOf(ref: ColumnRef, where: string): GroupKey {
  if (ref.kind === 'dimension') return checkGroupKey(`${DIMENSION_KEY_PREFIX}${ref.key}`, where);
  if ((BASE_GROUP_KEYS as readonly string[]).includes(ref.name)) return ref.name as GroupKey;
  if (ref.name === 'quantity')
    throw unsupported(
      `bare column quantity in ${where}`,
      'aggregate it: SUM(quantity), MIN(quantity), MAX(quantity)',
    );
  if (ref.name === 'dimensions')
    throw unsupported(`bare column dimensions in ${where}`, "use dimensions['key']");
  throw unsupported(
    `column ${ref.name} in ${where}`,
    `group keys are ${BASE_GROUP_KEYS.join(', ')}, dimensions['key']`,
  );
}

/** The metric of an aggregate call of the subset. */
function metricOf(node: Node, scope: Scope): Metric {
  const name = (str(node.name) ?? '').toUpperCase();
  if (node.over !== null && node.over !== undefined) throw unsupported(`window function ${name}() OVER`);
  if (node.filter !== null && node.filter !== undefined) throw unsupported(`${name}() FILTER`);
  const args = isNode(node.args) ? node.args : {};
  if (args.distinct !== null && args.distinct !== undefined) throw unsupported(`${name}(DISTINCT ...)`);
  if (args.orderby !== null && args.orderby !== undefined) throw unsupported(`ORDER BY inside ${name}()`);
  const arg = isNode(args.expr) ? args.expr : null;
  if (name === 'COUNT') {
    if (arg?.type === 'star') return 'count';
    throw unsupported('COUNT of an expression', 'use COUNT(*)');
  }
  if (name !== 'SUM' && name !== 'MIN' && name !== 'MAX') {
    throw unsupported(
      `aggregate ${name}()`,
      'aggregates are SUM(quantity), COUNT(*), MIN(quantity), MAX(quantity)',
    );
  }
  const ref = arg?.type === 'column_ref' ? columnRef(arg, scope) : null;
  if (ref === null || ref.kind !== 'column' || ref.name !== 'quantity')
    throw unsupported(`${name} of something other than quantity`);
  return name.toLowerCase() as Metric;
}

function expressionName(expr: SqlOutput): string {
  if (expr.kind === 'metric') return expr.metric === 'count' ? 'count(*)' : `${expr.metric}(quantity)`;
  return expr.key.startsWith(DIMENSION_KEY_PREFIX)
    ? `dimensions['${expr.key.slice(DIMENSION_KEY_PREFIX.length)}']`
    : expr.key;
}

/** A select-list, GROUP BY or ORDER BY expression of the subset. */
function outputOf(node: Node, scope: Scope, where: string): SqlOutput {
  if (node.type === 'aggr_func') return { kind: 'metric', metric: metricOf(node, scope) };
  if (node.type === 'column_ref') {
    const ref = columnRef(node, scope);
    return { kind: 'key', key: groupKeyOf(ref, where) };
  }
  throw unsupported(`${describeExpr(node)} in ${where}`);
}

// ---------------------------------------------------------------- WHERE

interface Conditions {
  accountIds: string[] | null;
  filters: Partial<Record<FilterColumn, (string | null)[]>>;
  dimensions: Map<string, string>;
  fromMs: number | null;
  toMs: number | null;
}

/** The AND-ed conditions of a WHERE clause. */
function conjuncts(node: Node, out: Node[]): Node[] {
  if (
    node.type === 'binary_expr' &&
    str(node.operator)?.toUpperCase() === 'AND' &&
    isNode(node.left) &&
    isNode(node.right)
  ) {
    conjuncts(node.left, out);
    conjuncts(node.right, out);
  } else {
    out.push(node);
  }
  return out;
}

function stringLiteral(node: Node, column: string): string | null {
  if (node.type === 'single_quote_string') return str(node.value) ?? '';
  if (node.type === 'null')
    throw unsupported(
      `comparison of ${column} with NULL`,
      'a comparison with NULL is never true; null model_id/subscription_id cannot be selected in SQL',
    );
  if (node.type === 'number')
    throw unsupported(
      `number compared with ${column}`,
      "ids are strings: quote them, e.g. product_id = 'llm-api'",
    );
  if (node.type === 'column_ref')
    throw unsupported(
      `comparison of ${column} with a column or "double-quoted" identifier`,
      "string literals take 'single quotes'",
    );
  throw unsupported(`${describeExpr(node)} as a value for ${column}`, 'values must be literals');
}

/** A timestamp_ms bound: integer milliseconds or an RFC 3339 string. */
function timeLiteral(node: Node): number {
  if (node.type === 'number') {
    const v = typeof node.value === 'number' ? node.value : Number(node.value);
    if (!Number.isSafeInteger(v) || v < 0)
      throw unsupported(
        `timestamp_ms bound ${String(node.value)}`,
        'bounds are non-negative integer milliseconds or RFC 3339 strings',
      );
    return v;
  }
  if (node.type === 'single_quote_string') {
    const text = str(node.value) ?? '';
    try {
      return parseRfc3339(text, 'timestamp_ms bound');
    } catch (err) {
      throw unsupported(`timestamp_ms bound '${text}'`, (err as Error).message);
    }
  }
  throw unsupported(
    `${describeExpr(node)} as a timestamp_ms bound`,
    'bounds are integer milliseconds or RFC 3339 strings',
  );
}

function valueList(node: Node, column: string): Node[] {
  if (node.type !== 'expr_list' || !Array.isArray(node.value))
    throw unsupported(`IN with ${describeExpr(node)} on ${column}`);
  const list = nodes(node.value);
  for (const v of list) if ('ast' in v) throw unsupported(`subquery in IN on ${column}`);
  return list;
}

function intersect(
  current: (string | null)[] | null | undefined,
  next: (string | null)[],
): (string | null)[] {
  if (current === null || current === undefined) return [...new Set(next)];
  const keep = new Set(next);
  return current.filter((v) => keep.has(v));
}

function applyTime(c: Conditions, op: string, bound: number): void {
  // Half-open [from, to) over integer milliseconds.
  const lower = (v: number) => {
    c.fromMs = c.fromMs === null ? v : Math.max(c.fromMs, v);
  };
  const upper = (v: number) => {
    c.toMs = c.toMs === null ? v : Math.min(c.toMs, v);
  };
  if (op === '>=') lower(bound);
  else if (op === '>') lower(bound + 1);
  else if (op === '<') upper(bound);
  else if (op === '<=') upper(bound + 1);
  else {
    lower(bound);
    upper(bound + 1);
  }
}

function applyCondition(node: Node, scope: Scope, c: Conditions): void {
  if (node.type === 'unary_expr')
    throw unsupported(
      `${str(node.operator)?.toUpperCase() ?? 'unary operator'} in WHERE`,
      'only an AND of conditions is supported',
    );
  if (node.type !== 'binary_expr')
    throw unsupported(
      `${describeExpr(node)} in WHERE`,
      'conditions are column = value, IN, timestamp_ms ranges, AND',
    );
  const op = (str(node.operator) ?? '').toUpperCase();
  if (op === 'OR')
    throw unsupported(
      'OR in WHERE',
      'only an AND of conditions is supported; run one query per alternative or use IN',
    );
  const left = isNode(node.left) ? node.left : {};
  const right = isNode(node.right) ? node.right : {};
  if (!['=', 'IN', '<', '<=', '>', '>=', 'BETWEEN'].includes(op)) {
    throw unsupported(`operator ${op} in WHERE`, 'use =, IN, or <, <=, >, >=, BETWEEN on timestamp_ms');
  }
  if (left.type !== 'column_ref') {
    if ('ast' in left) throw unsupported('subquery in WHERE');
    throw unsupported(`${describeExpr(left)} on the left of ${op}`, 'write the column first: column = value');
  }
  if ('ast' in right) throw unsupported('subquery in WHERE');
  const ref = columnRef(left, scope);
  if (ref.kind === 'dimension') {
    if (op !== '=')
      throw unsupported(
        `operator ${op} on dimensions['${ref.key}']`,
        "dimensions take only dimensions['key'] = 'value'",
      );
    const v = stringLiteral(right, `dimensions['${ref.key}']`) ?? '';
    const prior = c.dimensions.get(ref.key);
    // Two different required values can never both hold: the query matches nothing.
    if (prior !== undefined && prior !== v) c.accountIds = [];
    c.dimensions.set(ref.key, v);
    return;
  }
  const column = ref.name;
  if (column === 'timestamp_ms') {
    if (op === 'IN')
      throw unsupported('IN on timestamp_ms', 'use a range: timestamp_ms >= a AND timestamp_ms < b');
    if (op === 'BETWEEN') {
      const [lo, hi] = valueList(right, column);
      if (lo === undefined || hi === undefined) throw unsupported('BETWEEN without two bounds');
      applyTime(c, '>=', timeLiteral(lo));
      applyTime(c, '<=', timeLiteral(hi));
    } else {
      applyTime(c, op, timeLiteral(right));
    }
    return;
  }
  if (op !== '=' && op !== 'IN') {
    throw unsupported(`range comparison ${op} on ${column}`, 'only timestamp_ms takes <, <=, >, >=, BETWEEN');
  }
  const values = (op === 'IN' ? valueList(right, column) : [right]).map((v) => stringLiteral(v, column));
  if (column === 'account_id') {
    c.accountIds = intersect(c.accountIds, values) as string[];
  } else if ((FILTER_COLUMNS as readonly string[]).includes(column)) {
    const fc = column as FilterColumn;
    if (fc === 'kind')
      for (const v of values)
        if (!(KIND_NAMES as readonly (string | null)[]).includes(v))
          throw unsupported(`kind value '${v}'`, `kinds are ${KIND_NAMES.join(', ')}`);
    if (!NULLABLE_FILTER_COLUMNS.includes(fc) && values.includes(null))
      throw unsupported(`NULL value for ${fc}`);
    c.filters[fc] = intersect(c.filters[fc], values);
  } else if (column === 'day' || column === 'hour') {
    throw unsupported(`filter on ${column}`, 'filter time with timestamp_ms bounds');
  } else {
    throw unsupported(
      `filter on ${column}`,
      `filters are on account_id, ${FILTER_COLUMNS.join(', ')}, dimensions['key'] and timestamp_ms ranges`,
    );
  }
}

function parseWhere(where: unknown, scope: Scope): Conditions {
  const c: Conditions = { accountIds: null, filters: {}, dimensions: new Map(), fromMs: null, toMs: null };
  if (isNode(where)) for (const node of conjuncts(where, [])) applyCondition(node, scope, c);
  if (c.fromMs === null || c.toMs === null) {
    throw unsupported(
      'a query without a time range',
      'add timestamp_ms >= <from> AND timestamp_ms < <to> (integer ms or RFC 3339 strings)',
    );
  }
  if (c.fromMs >= c.toMs)
    throw new UsageDbError(
      'USAGEDB_ERR_INVALID_QUERY',
      `the timestamp_ms bounds select nothing: [${c.fromMs}, ${c.toMs}) is empty`,
    );
  return c;
}

// ---------------------------------------------------------------- statement

const KNOWN_SELECT_KEYS = new Set([
  'with',
  'type',
  'options',
  'distinct',
  'columns',
  'into',
  'from',
  'where',
  'groupby',
  'having',
  'orderby',
  'limit',
  'window',
  'collate',
  '_next',
  'set_op',
  'loc',
]);

function checkClauses(ast: Node): void {
  if (ast.with !== null && ast.with !== undefined) throw unsupported('WITH (common table expressions)');
  if (ast._next !== undefined || ast.set_op !== undefined)
    throw unsupported(`${(str(ast.set_op) ?? 'UNION').toUpperCase()} of queries`);
  if (isNode(ast.distinct) && ast.distinct.type !== null && ast.distinct.type !== undefined)
    throw unsupported('SELECT DISTINCT', 'GROUP BY already gives distinct key rows');
  if (Array.isArray(ast.options) && ast.options.length > 0) throw unsupported('SELECT options');
  if (isNode(ast.into) && ast.into.position !== null && ast.into.position !== undefined)
    throw unsupported('SELECT INTO');
  if (ast.having !== null && ast.having !== undefined)
    throw unsupported('HAVING', 'filter rows with WHERE; filter groups in the client');
  if (ast.window !== null && ast.window !== undefined) throw unsupported('WINDOW');
  for (const [key, value] of Object.entries(ast)) {
    const empty =
      value === null ||
      value === undefined ||
      value === false ||
      (Array.isArray(value) && value.length === 0);
    if (!KNOWN_SELECT_KEYS.has(key) && !empty) throw unsupported(`clause ${key.toUpperCase()}`);
  }
}

function parseFrom(from: unknown): Scope {
  const tables = nodes(from);
  if (tables.length === 0) throw unsupported('SELECT without FROM', `query the table ${TABLE_NAME}`);
  if (tables.length > 1)
    throw unsupported(
      tables[1].join ? 'JOIN' : 'several tables in FROM (a join)',
      `the only table is ${TABLE_NAME}`,
    );
  const t = tables[0];
  if (t.join !== undefined && t.join !== null) throw unsupported('JOIN');
  if (isNode(t.expr)) throw unsupported('subquery in FROM');
  if (t.type === 'dual') throw unsupported('FROM DUAL');
  const name = identifier(t.table);
  if (name === null) throw unsupported('table expression in FROM');
  if (t.db !== null && t.db !== undefined)
    throw unsupported(`schema-qualified table ${String(t.db)}.${name}`, `the table is ${TABLE_NAME}`);
  if (name !== TABLE_NAME) throw unsupported(`table "${name}"`, `the only table is ${TABLE_NAME}`);
  const qualifiers = new Set([TABLE_NAME]);
  const alias = str(t.as);
  if (alias !== null) qualifiers.add(alias.toLowerCase()).add(alias);
  return { qualifiers };
}

function parseLimitClause(limit: unknown): number | null {
  if (!isNode(limit)) return null;
  const values = nodes(limit.value);
  if (values.length === 0) return null;
  const sep = str(limit.seperator) ?? '';
  if (sep.toLowerCase() === 'offset' || values.length > 1)
    throw unsupported('OFFSET', 'page with a smaller LIMIT and a tighter WHERE, or use the audit cursor');
  const v = values[0];
  if (v.type === 'origin' && str(v.value)?.toLowerCase() === 'all') return null;
  const n = typeof v.value === 'number' ? v.value : Number(v.value);
  if (v.type !== 'number' || !Number.isSafeInteger(n) || n < 0)
    throw unsupported(`LIMIT ${String(v.value)}`, 'LIMIT takes a non-negative integer');
  return n;
}

interface SelectItem {
  output: SqlOutput;
  name: string;
  alias: string | null;
}

function parseSelectList(columns: unknown, scope: Scope): SelectItem[] {
  if (!Array.isArray(columns)) throw unsupported('SELECT *', 'name the group keys and aggregates');
  const items = nodes(columns);
  if (items.length === 0) throw unsupported('an empty select list');
  return items.map((item) => {
    const expr = isNode(item.expr) ? item.expr : {};
    if ('ast' in expr) throw unsupported('subquery in SELECT');
    const output = outputOf(expr, scope, 'SELECT');
    const alias = str(item.as);
    return { output, alias, name: alias ?? expressionName(output) };
  });
}

/** ORDER BY / GROUP BY may name a select alias. */
function resolveOutput(node: Node, items: readonly SelectItem[], scope: Scope, where: string): SqlOutput {
  if (node.type === 'number')
    throw unsupported(`${where} position ${String(node.value)}`, 'name the column, expression or alias');
  if (node.type === 'column_ref' && node.table === null && !Array.isArray(node.array_index)) {
    const name = identifier(node.column);
    const aliased = items.find(
      (i) => i.alias !== null && (i.alias === name || i.alias.toLowerCase() === name),
    );
    if (aliased !== undefined) return aliased.output;
  }
  if ('ast' in node) throw unsupported(`subquery in ${where}`);
  return outputOf(node, scope, where);
}

/** Parses and translates SQL text into a plan: the Query plus the output columns. */
export function translateSql(text: unknown): SqlPlan {
  if (typeof text !== 'string' || text.trim() === '')
    throw new UsageDbError('USAGEDB_ERR_INVALID_QUERY', 'sql must be a non-empty string');
  if (Buffer.byteLength(text, 'utf8') > SQL_TEXT_BYTES_MAX)
    throw new UsageDbError('USAGEDB_ERR_INVALID_QUERY', `sql is longer than ${SQL_TEXT_BYTES_MAX} bytes`);
  let parsed: unknown;
  try {
    parsed = parser.astify(text, { database: 'postgresql' });
  } catch (err) {
    const message = (err as Error).message.replace(/\s+/g, ' ');
    throw new UsageDbError(
      'USAGEDB_ERR_INVALID_QUERY',
      `SQL syntax error: ${message.length > 300 ? `${message.slice(0, 300)}...` : message}`,
    );
  }
  const statements = Array.isArray(parsed) ? parsed : [parsed];
  if (statements.length !== 1) throw unsupported('several statements', 'send one SELECT');
  const ast = statements[0];
  if (!isNode(ast)) throw unsupported('statement');
  if (ast.type !== 'select')
    throw unsupported(`${(str(ast.type) ?? 'unknown').toUpperCase()} statement`, 'only SELECT is supported');
  checkClauses(ast);
  const scope = parseFrom(ast.from);
  const items = parseSelectList(ast.columns, scope);
  const groupBy: GroupKey[] = [];
  const groupNode = isNode(ast.groupby) ? ast.groupby : null;
  for (const g of nodes(groupNode?.columns)) {
    const out = resolveOutput(g, items, scope, 'GROUP BY');
    if (out.kind !== 'key') throw unsupported('aggregate in GROUP BY');
    if (!groupBy.includes(out.key)) groupBy.push(out.key);
  }
  for (const item of items) {
    if (item.output.kind === 'key' && !groupBy.includes(item.output.key)) {
      throw unsupported(
        `${item.name} selected but not in GROUP BY`,
        'every selected non-aggregate must be in GROUP BY',
      );
    }
  }
  const orderBy: QueryOrder[] = nodes(ast.orderby).map((o) => {
    if (o.nulls !== null && o.nulls !== undefined)
      throw unsupported(`ORDER BY ... ${String(o.nulls)}`, 'nulls sort first ascending, last descending');
    const expr = isNode(o.expr) ? o.expr : {};
    const out = resolveOutput(expr, items, scope, 'ORDER BY');
    if (out.kind === 'key' && !groupBy.includes(out.key))
      throw unsupported(`ORDER BY ${expressionName(out)} which is not in GROUP BY`);
    return {
      key: out.kind === 'key' ? out.key : out.metric,
      dir: str(o.type)?.toUpperCase() === 'DESC' ? 'desc' : 'asc',
    };
  });
  const c = parseWhere(ast.where, scope);
  const metrics: Metric[] = [];
  for (const item of items)
    if (item.output.kind === 'metric' && !metrics.includes(item.output.metric))
      metrics.push(item.output.metric);
  const query: Query = {
    source: 'auto',
    accountIds: c.accountIds,
    fromMs: c.fromMs as number,
    toMs: c.toMs as number,
    groupBy,
    filters: c.filters,
    dimensions: [...c.dimensions.entries()],
    metrics,
    orderBy,
    limit: parseLimitClause(ast.limit),
  };
  return { query, columns: items.map((i) => i.name), outputs: items.map((i) => i.output) };
}

const parser = new pkg.Parser();
