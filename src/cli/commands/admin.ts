/**
 * Operator commands over the database in --db-root: `check [--deep]`, `compact`,
 * `inspect-segment ID`, `rollup`, `rebuild-rollups --from --to`, `verify-period [--account]
 * --from --to`, `lookup EVENT_ID`. Each opens the database (so a running server's lock refuses it:
 * one process owns a directory), calls one library method, prints its result.
 */
import type { Command } from 'commander';
import type { EventLookup, UsageDb } from '../../db.ts';
import { UsageDbError } from '../../errors.ts';
import type { CliContext } from '../context.ts';
import { table } from '../format.ts';
import { openExistingDb } from '../open-db.ts';

async function withDb<T>(dir: string, work: (db: UsageDb) => Promise<T>, flushOnClose: boolean): Promise<T> {
  const db = await openExistingDb(dir);
  try {
    return await work(db);
  } finally {
    // Read-only commands leave replayed WAL events where they were, for the next open.
    await db.close({ flushMemtable: flushOnClose });
  }
}

export function registerAdmin(program: Command, ctx: CliContext): void {
  program
    .command('check')
    .description(
      'verify every file the manifest names (sizes; with --deep every checksum and a full decode); lists segment ids and the quarantine',
    )
    .option('--deep', 'read and verify every byte')
    .action(async (flags: { deep?: boolean }, command: Command) => {
      const g = ctx.globals(command);
      const report = await withDb(g.dbRoot, (db) => db.check({ deep: flags.deep === true }), false);
      const rows = report.segments.map((s) => [
        String(s.id),
        s.kind,
        String(s.rows),
        String(s.size_bytes),
        s.ok ? 'ok' : `FAILED: ${s.problem ?? ''}`,
      ]);
      const human =
        `manifest generation ${report.manifest.generation} (format ${report.manifest.format_version}), ` +
        `${report.segments.length} segments, ${report.quarantine.length} quarantined, ${report.deep ? 'deep' : 'shallow'} check\n` +
        `${table(['segment', 'kind', 'rows', 'bytes', 'status'], rows, [true, false, true, true, false])}\n` +
        `rejection log: ${report.rejection_log.entries} entries, ${report.rejection_log.bytes} bytes, ` +
        `${report.rejection_log.dropped} dropped\n` +
        `${report.ok ? 'ok' : `${report.problems.length} problem(s)`}\n`;
      ctx.finish({
        data: { db_root: g.dbRoot, ...report },
        human,
        ...(report.ok
          ? {}
          : { failure: new UsageDbError('USAGEDB_ERR_SEGMENT_CORRUPT', report.problems.join('; ')) }),
      });
    });

  program
    .command('compact')
    .description('merge segments now (exact duplicates dropped, conflicting copies quarantined)')
    .action(async (_flags: unknown, command: Command) => {
      const g = ctx.globals(command);
      const result = await withDb(g.dbRoot, (db) => db.compact(), true);
      ctx.finish({
        data: { db_root: g.dbRoot, merged: result },
        human:
          result === null
            ? 'nothing to merge\n'
            : `merged ${result.inputSegments} segments (${result.inputRows} rows) into ${result.outputRows} rows; ` +
              `${result.duplicatesDropped} duplicates dropped, ${result.quarantinedRows} quarantined; ` +
              `${result.bytesRead} bytes read, ${result.bytesWritten} written\n`,
      });
    });

  program
    .command('inspect-segment')
    .description("one segment's footer: partitions, blocks, bytes per column, id filter")
    .argument('<id>', 'segment id (see check)')
    .action(async (idText: string, _flags: unknown, command: Command) => {
      const g = ctx.globals(command);
      const id = Number(idText);
      if (!Number.isSafeInteger(id) || id < 1) {
        throw new UsageDbError(
          'USAGEDB_ERR_INVALID_ARGUMENT',
          `segment id must be a positive integer, got ${idText.slice(0, 64)}`,
        );
      }
      const s = await withDb(g.dbRoot, (db) => db.inspectSegment(id), false);
      const columns = Object.entries(s.bytes_by_column).map(([name, bytes]) => [name, String(bytes)]);
      const human =
        `segment ${s.id} (${s.kind}): ${s.rows} rows, ${s.size_bytes} bytes, ${s.blocks} blocks, ` +
        `${s.partitions.length} partitions, ${s.accounts} accounts, id filter ${s.id_filter.bits} bits\n` +
        `${table(['column', 'bytes'], columns, [false, true])}\n`;
      ctx.finish({ data: { db_root: g.dbRoot, segment: s }, human });
    });

  program
    .command('rollup')
    .description('build rollups now for every flushed raw segment none covers yet')
    .action(async (_flags: unknown, command: Command) => {
      const g = ctx.globals(command);
      const r = await withDb(g.dbRoot, (db) => db.rollup(), true);
      ctx.finish({
        data: { db_root: g.dbRoot, ...r },
        human: `rolled up ${r.segments} raw segments (${r.rawRows} events); watermark ${watermark(r.watermark_ms)}\n`,
      });
    });

  program
    .command('rebuild-rollups')
    .description(
      'drop and rebuild from raw events the rollups of every raw segment with events in [from, to)',
    )
    .requiredOption('--from <time>', 'RFC 3339 or epoch ms')
    .requiredOption('--to <time>', 'RFC 3339 or epoch ms (exclusive)')
    .action(async (flags: { from: string; to: string }, command: Command) => {
      const g = ctx.globals(command);
      const r = await withDb(g.dbRoot, (db) => db.rebuildRollups(flags.from, flags.to), true);
      ctx.finish({
        data: { db_root: g.dbRoot, ...r },
        human: `rebuilt the rollups of ${r.segments} raw segments (${r.rawRows} events); watermark ${watermark(r.watermark_ms)}\n`,
      });
    });

  program
    .command('verify-period')
    .description(
      'compare the raw scan and the rollup path per billing line, for one account or every account; exits non-zero on drift',
    )
    .option('--account <id>', 'one account (default: every account)')
    .requiredOption('--from <time>', 'RFC 3339 or epoch ms')
    .requiredOption('--to <time>', 'RFC 3339 or epoch ms (exclusive)')
    .action(async (flags: { account?: string; from: string; to: string }, command: Command) => {
      const g = ctx.globals(command);
      const r = await withDb(
        g.dbRoot,
        (db) =>
          db.verify({
            ...(flags.account === undefined ? {} : { account_id: flags.account }),
            from: flags.from,
            to: flags.to,
          }),
        false,
      );
      const rows = r.drift.map((d) => [
        d.account_id,
        `${d.product_id}/${d.meter_id}/${d.model_id ?? '-'}/${d.unit}`,
        d.raw === null ? '-' : `${d.raw.quantity} (${d.raw.event_count})`,
        d.rollup === null ? '-' : `${d.rollup.quantity} (${d.rollup.event_count})`,
      ]);
      const human =
        `${r.lines_compared} lines compared, ${r.rollup_segments_read} rollup segments read: ` +
        `${r.ok ? 'no drift' : `${r.drift.length} line(s) drift`}\n` +
        (r.ok ? '' : `${table(['account', 'line', 'raw', 'rollup'], rows, [false, false, true, true])}\n`);
      ctx.finish({
        data: { db_root: g.dbRoot, ...r },
        human,
        ...(r.ok
          ? {}
          : {
              failure: new UsageDbError(
                'USAGEDB_ERR_SEGMENT_CORRUPT',
                `${r.drift.length} billing line(s) differ between raw events and rollups (run rebuild-rollups)`,
              ),
            }),
      });
    });
}

function watermark(ms: number | null): string {
  return ms === null ? 'none (no flushed events)' : new Date(ms).toISOString();
}

/** One line per fact of a lookup, for a terminal. */
function lookupText(r: EventLookup): string {
  const out = [`${r.event_id}: ${r.status}`];
  if (r.location !== undefined) {
    const where = r.location === 'segment' ? `segment ${r.segment_id}` : 'memtable (not flushed yet)';
    out.push(`stored in ${where}; period ${r.period} (${r.period_closed ? 'closed' : 'open'})`);
    if (r.line !== undefined)
      out.push(`line ${r.line.product_id} / ${r.line.meter_id} / ${r.line.model_id ?? '-'} / ${r.line.unit}`);
    if (r.event !== undefined)
      out.push(`quantity ${r.event.quantity} at ${new Date(r.event.timestamp_ms).toISOString()}`);
  }
  if (r.retracted_by) out.push(`retracted by ${r.retracted_by.event_id} (${r.retracted_by.reason})`);
  for (const x of r.rejections)
    out.push(
      `${x.status} at ${new Date(x.received_at_ms).toISOString()}: ${x.reason} (batch index ${x.index})`,
    );
  return `${out.join('\n')}\n`;
}

export function registerLookup(program: Command, ctx: CliContext): void {
  program
    .command('lookup')
    .description('where an event is stored, or why it was not (rejected, conflict, unknown)')
    .argument('<event_id>', 'the event id')
    .action(async (eventId: string, _flags: unknown, command: Command) => {
      const g = ctx.globals(command);
      const r = await withDb(g.dbRoot, (db) => db.lookupEvent(eventId), false);
      ctx.finish({ data: { db_root: g.dbRoot, ...r }, human: lookupText(r) });
    });
}
