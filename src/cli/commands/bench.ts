/**
 * `usagedb bench [--events N] [--durability MODE]`: a quick embedded benchmark of this
 * installation, on a fresh temporary directory (never on --db-root): ingest of the demo
 * workload in batches of 1,000 with 4 calls in flight, bytes per event on disk, reopen time,
 * and the account-month query (p50/p95 over the demo accounts). The side-by-side comparison
 * with SQLite and DuckDB is `npm run bench` in the repository (docs/benchmark.md).
 */
import { readdir, rm, stat } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { type Durability, UsageDb } from '../../db.ts';
import { UsageDbError } from '../../errors.ts';
import { silentLogger } from '../../util/logger.ts';
import type { CliContext } from '../context.ts';
import { demoAccounts, demoBatches, previousMonth } from '../demo-data.ts';
import { count, seconds } from '../format.ts';

const BENCH_BATCH_EVENTS = 1_000;
const BENCH_IN_FLIGHT = 4;
const BENCH_ACCOUNTS = 10;
const BENCH_EVENTS_MAX = 10_000_000;

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size;
  }
  return total;
}

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

export function registerBench(program: Command, ctx: CliContext): void {
  program
    .command('bench')
    .description('a quick embedded benchmark on a temporary directory (ingest, size, reopen, queries)')
    .option('--events <n>', 'events to ingest', '200000')
    .option('--durability <mode>', 'strict, balanced or fast', 'balanced')
    .action(async (flags: { events: string; durability: string }, command: Command) => {
      ctx.globals(command);
      const events = Number(flags.events);
      if (!Number.isSafeInteger(events) || events < 1_000 || events > BENCH_EVENTS_MAX) {
        throw new UsageDbError(
          'USAGEDB_ERR_INVALID_ARGUMENT',
          `--events must be an integer in 1000..${BENCH_EVENTS_MAX}, got ${flags.events.slice(0, 32)}`,
        );
      }
      const dir = await mkdtemp(join(tmpdir(), 'usagedb-bench-'));
      try {
        const month = previousMonth(Date.now());
        const db = await UsageDb.open({
          dir,
          durability: flags.durability as Durability,
          logger: silentLogger,
        });
        const t0 = performance.now();
        let sent = 0;
        const inFlight = new Set<Promise<unknown>>();
        const batches = demoBatches(
          { events, accounts: BENCH_ACCOUNTS, monthStartMs: month.startMs, monthEndMs: month.endMs, seed: 7 },
          BENCH_BATCH_EVENTS,
        );
        for (const batch of batches) {
          sent += batch.length;
          const p = db.ingest(batch).finally(() => inFlight.delete(p));
          inFlight.add(p);
          if (inFlight.size >= BENCH_IN_FLIGHT) await Promise.race(inFlight);
        }
        await Promise.all(inFlight);
        const ingestSeconds = (performance.now() - t0) / 1000;
        await db.close();
        const bytes = await dirBytes(dir);
        const r0 = performance.now();
        const reopened = await UsageDb.open({ dir, logger: silentLogger });
        const reopenMs = performance.now() - r0;
        const times: number[] = [];
        for (const account of demoAccounts(BENCH_ACCOUNTS)) {
          const q0 = performance.now();
          await reopened.query({
            account_id: account,
            from: month.startMs,
            to: month.endMs,
            group_by: ['product_id', 'meter_id', 'model_id', 'unit'],
          });
          times.push(performance.now() - q0);
        }
        times.sort((a, b) => a - b);
        await reopened.close();
        const data = {
          events: sent,
          durability: flags.durability,
          ingest_events_per_second: Math.round(sent / ingestSeconds),
          bytes_per_event: Math.round((bytes / sent) * 100) / 100,
          reopen_ms: Math.round(reopenMs),
          account_month_query_ms: { p50: pct(times, 0.5), p95: pct(times, 0.95) },
        };
        ctx.finish({
          data,
          human:
            `ingest: ${count(sent)} events in ${seconds(ingestSeconds * 1000)} (${count(data.ingest_events_per_second)} events/s, ${flags.durability}, ${BENCH_IN_FLIGHT} calls in flight)\n` +
            `on disk: ${data.bytes_per_event} bytes/event; reopen ${data.reopen_ms} ms\n` +
            `account-month query: p50 ${pct(times, 0.5).toFixed(2)} ms, p95 ${pct(times, 0.95).toFixed(2)} ms\n` +
            `(npm run bench in the repository compares with SQLite and DuckDB on the same events)\n`,
        });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
}
