/**
 * `usagedb query --sql "..." | --json '{...}'`: one query over the database in --db-root
 * (`db.sql` or `db.query`), printed as a table or, with --json, as one JSON object.
 *
 * The global `--json` flag doubles as the JSON-query flag: `query --json '{...}'` runs that
 * JSON query (and prints JSON, as --json always does); `query --sql "..." --json` runs the
 * SQL and prints JSON.
 */
import type { Command } from 'commander';
import { UsageDbError } from '../../errors.ts';
import type { CliContext } from '../context.ts';
import { table } from '../format.ts';
import { openExistingDb } from '../open-db.ts';

interface QueryFlags {
  sql?: string;
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

export function registerQuery(program: Command, ctx: CliContext): void {
  program
    .command('query')
    .description('run one query: --sql "SELECT ..." or --json \'{"from":...,"to":...}\' (see docs/query.md)')
    .argument('[json-query]', "the JSON query, when given as --json '{...}'")
    .option('--sql <query>', 'a query in the SQL subset over the table usage_events')
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
      const db = await openExistingDb(g.dbRoot);
      try {
        const t0 = performance.now();
        if (flags.sql !== undefined) {
          const r = await db.sql(flags.sql);
          const ms = performance.now() - t0;
          ctx.finish({
            data: { db_root: g.dbRoot, columns: r.columns, rows: r.rows, stats: r.stats, ms },
            human: render(r.columns, r.rows),
          });
        } else {
          const r = await db.query(jsonQuery);
          const ms = performance.now() - t0;
          const columns = r.rows.length > 0 ? Object.keys(r.rows[0]) : [];
          ctx.finish({
            data: { db_root: g.dbRoot, rows: r.rows, stats: r.stats, ms },
            human: render(
              columns,
              r.rows.map((row) => columns.map((c) => row[c])),
            ),
          });
        }
      } finally {
        // A query writes nothing: events replayed from the WAL stay there for the next open.
        await db.close({ flushMemtable: false });
      }
    });
}
