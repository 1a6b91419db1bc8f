/**
 * `usagedb demo`: a month of AI usage, ingested durably (balanced: concurrent batches share
 * fsyncs), with retries (duplicates), a conflict and a correction; then account totals per
 * billing line (db.query) with timings; then close, reopen, and the same totals again.
 *
 * Invariant: the command fails (non-zero) unless the totals after reopening equal the totals
 * before closing, exactly.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { type IngestResult, UsageDb } from '../../db.ts';
import { UsageDbError } from '../../errors.ts';
import type { CliContext } from '../context.ts';
import { type DemoEvent, demoAccounts, demoBatches, previousMonth } from '../demo-data.ts';
import { count, quantity, seconds, table } from '../format.ts';
import { startProgress } from '../progress.ts';

const DEMO_BATCH_EVENTS = 1_000;
/** Batches in flight at once: concurrent ingest calls share one fsync (group commit). */
const DEMO_BATCHES_IN_FLIGHT = 4;
/** The first and then every RETRY_EVERY-th batch is sent twice, as a client retrying after a timeout would. */
const RETRY_EVERY = 50;
const ACCOUNTS_SHOWN = 3;

interface DemoFlags {
  events: string;
  accounts: string;
  seed: string;
}

interface BillingLine {
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  quantity: string;
  event_count: number;
}

interface AccountTotals {
  account_id: string;
  ms: number;
  lines: BillingLine[];
}

function positiveInt(text: string, flag: string, max: number): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new UsageDbError(
      'USAGEDB_ERR_INVALID_ARGUMENT',
      `${flag} must be an integer in 1..${max}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

type Tally = Omit<IngestResult, 'errors'> & { firstConflict: string | null };

function addResult(t: Tally, r: IngestResult): void {
  t.accepted += r.accepted;
  t.duplicates += r.duplicates;
  t.conflicts += r.conflicts;
  t.rejected += r.rejected;
  const conflict = r.errors.find((e) => e.status === 'conflict');
  if (t.firstConflict === null && conflict) t.firstConflict = `${conflict.event_id}: ${conflict.message}`;
  const rejected = r.errors.find((e) => e.status === 'rejected');
  if (rejected)
    throw new UsageDbError(
      'USAGEDB_ERR_INTERNAL',
      `demo event rejected: ${rejected.reason}: ${rejected.message}`,
    );
}

/** The month's batches plus the retries, a conflicting re-send and a correction. */
function* demoTraffic(
  events: number,
  accounts: number,
  seed: number,
  month: { startMs: number; endMs: number },
) {
  let first: DemoEvent | null = null;
  let n = 0;
  for (const batch of demoBatches(
    { events, accounts, seed, monthStartMs: month.startMs, monthEndMs: month.endMs },
    DEMO_BATCH_EVENTS,
  )) {
    first ??= batch[0];
    yield batch;
    // The first batch is retried too, so even a small demo shows idempotency.
    if (n++ % RETRY_EVERY === 0) yield batch;
  }
  if (first === null) return;
  yield [
    // Same event_id, different quantity: a conflict, reported and not stored.
    { ...first, quantity: first.quantity + 1 },
    // A signed adjustment of the first event, in the same period.
    {
      ...first,
      event_id: `${first.event_id}:credit`,
      kind: 'Correction',
      correction_ref: { original_event_id: first.event_id, reason: 'customer credit: duplicated prompt' },
      quantity: -Math.min(first.quantity, 100),
    },
  ];
}

async function ingestMonth(
  db: UsageDb,
  traffic: Iterable<DemoEvent[]>,
  onProgress: (events: number) => void,
): Promise<Tally> {
  const tally: Tally = { accepted: 0, duplicates: 0, conflicts: 0, rejected: 0, firstConflict: null };
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  for (const batch of traffic) {
    const p: Promise<void> = db.ingest(batch).then((r) => {
      addResult(tally, r);
      sent += batch.length;
      onProgress(sent);
    });
    inFlight.add(p);
    p.finally(() => inFlight.delete(p)).catch(() => undefined);
    if (inFlight.size >= DEMO_BATCHES_IN_FLIGHT) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return tally;
}

const LINE_KEYS = ['product_id', 'meter_id', 'model_id', 'unit'] as const;

function text(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/** Billing lines per (product, meter, model, unit) from the query engine (exact decimal sums). */
async function accountTotals(
  db: UsageDb,
  account: string,
  startMs: number,
  endMs: number,
): Promise<AccountTotals> {
  const t0 = performance.now();
  const result = await db.query({ account_id: account, from: startMs, to: endMs, group_by: [...LINE_KEYS] });
  const ms = performance.now() - t0;
  const lines: BillingLine[] = result.rows.map((row) => ({
    product_id: String(row.product_id),
    meter_id: String(row.meter_id),
    model_id: text(row.model_id),
    unit: String(row.unit),
    quantity: String(row.sum),
    event_count: Number(row.count),
  }));
  const key = (l: BillingLine) => JSON.stringify(LINE_KEYS.map((k) => l[k]));
  lines.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return { account_id: account, ms, lines };
}

async function allTotals(
  db: UsageDb,
  accounts: string[],
  month: { startMs: number; endMs: number },
): Promise<AccountTotals[]> {
  const out: AccountTotals[] = [];
  for (const account of accounts) out.push(await accountTotals(db, account, month.startMs, month.endMs));
  return out;
}

function totalsTable(t: AccountTotals): string {
  const rows = t.lines.map((l) => [
    l.product_id,
    l.meter_id,
    l.model_id ?? '-',
    l.unit,
    quantity(l.quantity),
    count(l.event_count),
  ]);
  return `account ${t.account_id}: ${t.lines.length} billing lines in ${seconds(t.ms)}\n${table(
    ['product', 'meter', 'model', 'unit', 'quantity', 'events'],
    rows,
    [false, false, false, false, true, true],
  )}\n`;
}

export function registerDemo(program: Command, ctx: CliContext): void {
  program
    .command('demo')
    .description(
      'generate a month of AI usage, ingest it durably, print account totals, reopen and check them (uses a fresh temporary directory unless --db-root is given)',
    )
    .option('--events <n>', 'approximate number of usage events', '100000')
    .option('--accounts <n>', 'number of accounts', '5')
    .option('--seed <n>', 'seed of the generated data', '42')
    .action(async (flags: DemoFlags, command: Command) => {
      const g = ctx.globals(command);
      const events = positiveInt(flags.events, '--events', 100_000_000);
      const accountCount = positiveInt(flags.accounts, '--accounts', 1_000);
      const seed = positiveInt(flags.seed, '--seed', 2 ** 31);
      const month = previousMonth(Date.now());
      const dir = g.dbRootGiven ? g.dbRoot : await mkdtemp(join(tmpdir(), 'usagedb-demo-'));
      const shown = demoAccounts(accountCount).slice(0, ACCOUNTS_SHOWN);
      const human: string[] = [
        `usagedb demo: ${month.label} (UTC), ${accountCount} accounts, database at ${dir}`,
      ];
      try {
        let db = await UsageDb.open({ dir, durability: 'balanced' });
        const t0 = performance.now();
        const bar = startProgress(ctx.progressEnabled(command), ctx.io.stderr, 'ingest', events, 'events');
        let tally: Tally;
        try {
          tally = await ingestMonth(db, demoTraffic(events, accountCount, seed, month), (n) => bar.update(n));
        } catch (err) {
          await db.close().catch(() => undefined);
          throw err;
        } finally {
          bar.stop();
        }
        const ingestMs = performance.now() - t0;
        const rate = Math.round(tally.accepted / (ingestMs / 1000));
        human.push(
          `ingested ${count(tally.accepted)} events in ${seconds(ingestMs)}: ${count(rate)} events/s ` +
            `(balanced durability, batches of ${count(DEMO_BATCH_EVENTS)}, ${DEMO_BATCHES_IN_FLIGHT} in flight)`,
          `  retries: ${count(tally.duplicates)} duplicates recognised, not stored again`,
          `  conflicts: ${count(tally.conflicts)}${tally.firstConflict ? ` (${tally.firstConflict})` : ''}`,
          '',
        );
        const before = await allTotals(db, shown, month);
        for (const t of before) human.push(totalsTable(t));
        const tClose = performance.now();
        await db.close();
        const closeMs = performance.now() - tClose;
        const tOpen = performance.now();
        db = await UsageDb.open({ dir });
        const reopenMs = performance.now() - tOpen;
        let after: AccountTotals[];
        try {
          after = await allTotals(db, shown, month);
        } finally {
          await db.close();
        }
        const identical =
          JSON.stringify(before.map((t) => t.lines)) === JSON.stringify(after.map((t) => t.lines));
        if (!identical)
          throw new UsageDbError(
            'USAGEDB_ERR_INTERNAL',
            'account totals differ after reopening the database',
          );
        human.push(
          `closed in ${seconds(closeMs)} (memtable flushed to segments), reopened in ${seconds(reopenMs)}: ` +
            `totals of ${after.length} accounts identical (${after.map((t) => `${t.account_id} ${seconds(t.ms)}`).join(', ')})`,
        );
        ctx.finish({
          data: {
            db_root: dir,
            month: month.label,
            ingest: { ...tally, seconds: ingestMs / 1000, events_per_second: rate },
            totals: before,
            reopen: { close_ms: closeMs, reopen_ms: reopenMs, totals_ms: after.map((t) => t.ms), identical },
          },
          human: `${human.join('\n')}\n`,
        });
      } finally {
        if (!g.dbRootGiven) await rm(dir, { recursive: true, force: true });
      }
    });
}
