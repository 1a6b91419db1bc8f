/**
 * `usagedb query --sql "..." | --json '{...}'`: one query over the database in --db-root
 * (`db.sql` or `db.query`), printed as a table or, with --json, as one JSON object.
 *
 * The global `--json` flag doubles as the JSON-query flag: `query --json '{...}'` runs that
 * JSON query (and prints JSON, as --json always does); `query --sql "..." --json` runs the
 * SQL and prints JSON.
 */
import type { Command } from 'commander';
import { UsageDbClient, UsageDbClientError } from '../../client/index.ts';
import { ERROR_CATALOGUE, type ErrorCode, UsageDbError } from '../../errors.ts';
import type { CliContext } from '../context.ts';
import { table } from '../format.ts';
import { openExistingDb } from '../open-db.ts';

interface QueryFlags {
  sql?: string;
  url?: string;
}

/** A server's answer or failure, as the error the CLI prints (the server sends catalogue codes). */
function fromClient(err: unknown, url: string): unknown {
  if (!(err instanceof UsageDbClientError)) return err;
  if (err.code in ERROR_CATALOGUE) return new UsageDbError(err.code as ErrorCode, err.message);
  if (err.status === 0) return new UsageDbError('USAGEDB_ERR_IO', `cannot reach ${url}: ${err.message}`);
  return new UsageDbError('USAGEDB_ERR_INTERNAL', `${url} answered ${err.status}: ${err.message}`);
}

type Cell = string | number | null;

function cellText(v: Cell): string {
  return v === null ? '-' : String(v);
}

function render(columns: string[], rows: Cell[][]): string {
  const right = columns.map(
    (_, i) => rows.length > 0 && rows.every((r) => r[i] === null || /^-?[0-9]+$/.test(String(r[i]))),
  );
  return `${table(
    columns,
    rows.map((r) => r.map(cellText)),
    right,
  )}\n(${rows.length} row${rows.length === 1 ? '' : 's'})\n`;
}

function parseJsonQuery(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageDbError(
      'USAGEDB_ERR_INVALID_QUERY',
      `the JSON query is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** Where a query runs: the database in --db-root, or a server (--url). */
interface Runner {
  where: Record<string, string>;
  sql(text: string): Promise<{ columns: string[]; rows: Cell[][]; stats: unknown }>;
  query(q: unknown): Promise<{ rows: Record<string, Cell>[]; stats: unknown }>;
  close(): Promise<void>;
}

async function localRunner(dbRoot: string): Promise<Runner> {
  const db = await openExistingDb(dbRoot);
  return {
    where: { db_root: dbRoot },
    sql: (text) => db.sql(text),
    query: (q) => db.query(q),
    // A query writes nothing: events replayed from the WAL stay there for the next open.
    close: () => db.close({ flushMemtable: false }),
  };
}

function remoteRunner(url: string): Runner {
  const client = new UsageDbClient({ url, apiKey: process.env.USAGEDB_API_KEY, maxRetries: 2 });
  const remote = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (err) {
      throw fromClient(err, url);
    }
  };
  return {
    where: { url },
    sql: (text) => remote(() => client.querySql(text)),
    query: (q) => remote(() => client.queryJson(q as Parameters<UsageDbClient['queryJson']>[0])),
    close: async () => undefined,
  };
}

export function registerQuery(program: Command, ctx: CliContext): void {
  program
    .command('query')
    .description('run one query: --sql "SELECT ..." or --json \'{"from":...,"to":...}\' (see docs/query.md)')
    .argument('[json-query]', "the JSON query, when given as --json '{...}'")
    .option('--sql <query>', 'a query in the SQL subset over the table usage_events')
    .option('--url <url>', 'ask a running server instead of opening --db-root (API key from USAGEDB_API_KEY)')
    .action(async (jsonText: string | undefined, flags: QueryFlags, command: Command) => {
      const g = ctx.globals(command);
      if ((flags.sql === undefined) === (jsonText === undefined)) {
        throw new UsageDbError(
          'USAGEDB_ERR_INVALID_ARGUMENT',
          `give exactly one of --sql "SELECT ..." or --json '{...}'`,
        );
      }
      if (jsonText !== undefined && !g.json) {
        throw new UsageDbError(
          'USAGEDB_ERR_INVALID_ARGUMENT',
          `unexpected argument ${JSON.stringify(jsonText)}; a JSON query is given as --json '{...}'`,
        );
      }
      const jsonQuery = jsonText === undefined ? null : parseJsonQuery(jsonText);
      const runner = flags.url === undefined ? await localRunner(g.dbRoot) : remoteRunner(flags.url);
      try {
        const t0 = performance.now();
        if (flags.sql !== undefined) {
          const r = await runner.sql(flags.sql);
          ctx.finish({
            data: {
              ...runner.where,
              columns: r.columns,
              rows: r.rows,
              stats: r.stats,
              ms: performance.now() - t0,
            },
            human: render(r.columns, r.rows),
          });
        } else {
          const r = await runner.query(jsonQuery);
          const columns = r.rows.length > 0 ? Object.keys(r.rows[0]) : [];
          ctx.finish({
            data: { ...runner.where, rows: r.rows, stats: r.stats, ms: performance.now() - t0 },
            human: render(
              columns,
              r.rows.map((row) => columns.map((c) => row[c])),
            ),
          });
        }
      } finally {
        await runner.close();
      }
    });
}
