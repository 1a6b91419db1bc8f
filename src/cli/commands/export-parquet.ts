/**
 * `usagedb export-parquet OUT [--from --to --account --partition day|none]`: flushes the
 * memtable, then exports a snapshot (docs/export.md). The database must exist.
 */
import { Option, type Command } from 'commander';
import { UsageDbError } from '../../errors.ts';
import {
  checkExportRequest,
  type ExportParquetOptions,
  type ExportParquetResult,
  type ExportPartition,
  ROW_GROUP_ROWS_DEFAULT,
  ROW_GROUP_ROWS_MAX,
} from '../../export/parquet.ts';
import { echoText } from '../../model/echo.ts';
import type { CliContext } from '../context.ts';
import { count, megabytes, quantity, seconds } from '../format.ts';
import { openExistingDb } from '../open-db.ts';
import { startProgress } from '../progress.ts';
import { parseTime } from '../time.ts';

interface ExportFlags {
  from?: string;
  to?: string;
  account?: string;
  partition: ExportPartition;
  rowGroupRows: string;
}

function parseRowGroupRows(text: string): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > ROW_GROUP_ROWS_MAX) {
    throw new UsageDbError(
      'USAGEDB_ERR_INVALID_ARGUMENT',
      `--row-group-rows must be an integer in 1..${ROW_GROUP_ROWS_MAX}, got ${JSON.stringify(echoText(text))}`,
    );
  }
  return n;
}

export function registerExportParquet(program: Command, ctx: CliContext): void {
  program
    .command('export-parquet')
    .description(
      'export events to Parquet (zstd; one file, or date=YYYY-MM-DD/ partitions); the memtable is flushed first',
    )
    .argument('<out>', 'output file (--partition none) or directory (--partition day)')
    .option('--from <time>', 'inclusive start: RFC 3339 or ms since the epoch')
    .option('--to <time>', 'exclusive end: RFC 3339 or ms since the epoch')
    .option('--account <id>', 'only this account_id')
    .addOption(
      new Option('--partition <layout>', 'one file, or one directory per UTC day')
        .choices(['none', 'day'])
        .default('none'),
    )
    .option('--row-group-rows <n>', 'rows per Parquet row group', String(ROW_GROUP_ROWS_DEFAULT))
    .action(async (out: string, flags: ExportFlags, command: Command) => {
      const g = ctx.globals(command);
      // Validate every flag before touching the database (and its lock).
      const from = flags.from === undefined ? undefined : parseTime(flags.from, '--from');
      const to = flags.to === undefined ? undefined : parseTime(flags.to, '--to');
      if (from !== undefined && to !== undefined && from >= to) {
        const why = from > to ? 'is after' : 'is the same instant as';
        throw new UsageDbError(
          'USAGEDB_ERR_INVALID_ARGUMENT',
          `--from (${echoText(flags.from ?? '')}) ${why} --to (${echoText(flags.to ?? '')}): the range [from, to) would be empty`,
        );
      }
      const rowGroupRows = parseRowGroupRows(flags.rowGroupRows);
      const request: ExportParquetOptions = {
        from,
        to,
        account_id: flags.account,
        partition: flags.partition,
        rowGroupRows,
      };
      // The library's own checks (account id, output path), before the database and its lock.
      await checkExportRequest(out, request);
      const started = performance.now();
      const db = await openExistingDb(g.dbRoot);
      let result: ExportParquetResult;
      try {
        const bar = startProgress(ctx.progressEnabled(command), ctx.io.stderr, 'export', 0, 'events');
        // Flushes the memtable, then exports a snapshot (docs/export.md).
        result = await db.exportParquet(out, {
          ...request,
          onProgress: (p) => bar.update(p.rowsWritten, p.rowsEstimated),
        });
        bar.stop();
        await db.close();
      } catch (err) {
        await db.close().catch(() => undefined);
        throw err;
      }
      const elapsedMs = performance.now() - started;
      const rate = result.rows / Math.max(elapsedMs / 1000, 1e-9);
      const where =
        result.files.length === 1 ? result.files[0] : `${count(result.files.length)} files under ${out}`;
      ctx.finish({
        data: {
          db_root: g.dbRoot,
          out,
          partition: flags.partition,
          from: from ?? null,
          to: to ?? null,
          account_id: flags.account ?? null,
          rows: result.rows,
          quantity_sum: result.quantitySum,
          files: result.files,
          bytes: result.bytes,
          seconds: elapsedMs / 1000,
        },
        human:
          `exported ${count(result.rows)} events (quantity sum ${quantity(result.quantitySum)}) to ${where}\n` +
          `  ${megabytes(result.bytes)} in ${seconds(elapsedMs)} (${count(Math.round(rate))} events/s); row count and sum verified\n`,
      });
    });
}
