/**
 * `usagedb serve`: the HTTP server over the database in --db-root, until SIGTERM or SIGINT.
 * With --demo, an empty database first gets the generated demo month, and the banner shows
 * curl commands that work as printed.
 *
 * Invariants:
 * - the configuration is checked before the database is opened (flags > environment > file);
 * - on SIGTERM/SIGINT: stop accepting, let in-flight batches finish and answer, then
 *   `db.close()` (flush, lock released), then exit 0;
 * - timers only call `db.tick()`.
 */
import type { Command } from 'commander';
import { pino } from 'pino';
import { readConfigFile, resolveConfig, type ServerConfig } from '../../api/config.ts';
import { closeServer, createServer, listen } from '../../api/server.ts';
import { UsageDb } from '../../db.ts';
import { UsageDbError } from '../../errors.ts';
import type { CliContext } from '../context.ts';
import { demoAccounts, demoBatches, previousMonth } from '../demo-data.ts';
import { count, seconds } from '../format.ts';

/** Events loaded by --demo: a month of several accounts, loaded in a second or two. */
const DEMO_EVENTS = 100_000;
const DEMO_ACCOUNTS = 5;
const DEMO_SEED = 42;
const DEMO_BATCH_EVENTS = 1_000;
/** Concurrent ingest calls while loading: they share fsyncs (group commit). */
const DEMO_BATCHES_IN_FLIGHT = 4;

interface ServeFlags {
  host?: string;
  port?: string;
  config?: string;
  insecure?: boolean;
  demo?: boolean;
  durability?: string;
  bodyBytesMax?: string;
  batchEventsMax?: string;
  requestTimeoutMs?: string;
  logLevel?: string;
  tickIntervalMs?: string;
  rejectionLogBytesMax?: string;
  rejectionLogAgeMaxMs?: string;
  memtableBytesMax?: string;
}

const FLAG_KEYS = [
  'host',
  'port',
  'insecure',
  'durability',
  'bodyBytesMax',
  'batchEventsMax',
  'requestTimeoutMs',
  'logLevel',
  'tickIntervalMs',
  'rejectionLogBytesMax',
  'rejectionLogAgeMaxMs',
  'memtableBytesMax',
] as const;

async function loadDemoMonth(db: UsageDb): Promise<{ events: number; ms: number }> {
  const month = previousMonth(Date.now());
  const t0 = performance.now();
  let accepted = 0;
  const inFlight = new Set<Promise<void>>();
  const batches = demoBatches(
    {
      events: DEMO_EVENTS,
      accounts: DEMO_ACCOUNTS,
      seed: DEMO_SEED,
      monthStartMs: month.startMs,
      monthEndMs: month.endMs,
    },
    DEMO_BATCH_EVENTS,
  );
  for (const batch of batches) {
    const p = db.ingest(batch).then((r) => {
      accepted += r.accepted;
    });
    inFlight.add(p);
    p.finally(() => inFlight.delete(p)).catch(() => undefined);
    if (inFlight.size >= DEMO_BATCHES_IN_FLIGHT) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return { events: accepted, ms: performance.now() - t0 };
}

/** Quotes `text` for a POSIX shell (single quotes, unless the text holds one). */
function shellQuote(text: string): string {
  if (!text.includes("'")) return `'${text}'`;
  return `"${text.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

/** curl commands against the demo data that work exactly as printed. */
export function demoCurls(url: string, withKey: boolean): string[] {
  const month = previousMonth(Date.now());
  const account = demoAccounts(DEMO_ACCOUNTS)[0];
  const from = new Date(month.startMs).toISOString().slice(0, 10);
  const to = new Date(month.endMs).toISOString().slice(0, 10);
  const auth = withKey ? ' -H "Authorization: Bearer $USAGEDB_API_KEY"' : '';
  const json = " -H 'content-type: application/json'";
  const event = {
    event_id: 'curl-demo-1',
    account_id: account,
    product_id: 'llm-api',
    meter_id: 'tokens.output',
    unit: 'tokens',
    source: 'curl',
    model_id: 'gpt-4.1',
    timestamp_ms: month.startMs + 86_400_000,
    quantity: 1234,
  };
  const sql =
    `SELECT meter_id, unit, SUM(quantity) AS total, COUNT(*) AS events FROM usage_events ` +
    `WHERE account_id = '${account}' AND timestamp_ms >= '${from}' AND timestamp_ms < '${to}' ` +
    `GROUP BY meter_id, unit ORDER BY total DESC`;
  return [
    `curl -s -X POST ${url}/v1/usage/batch${auth}${json} -d ${shellQuote(JSON.stringify({ events: [event] }))}`,
    `curl -s${auth} '${url}/v1/accounts/${account}/usage?from=${from}&to=${to}'`,
    `curl -s -X POST ${url}/v1/query/sql${auth}${json} -d ${shellQuote(JSON.stringify({ query: sql }))}`,
  ];
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      // A second signal while draining exits at once (the WAL still holds every ack).
      const force = () => process.exit(130);
      process.once('SIGTERM', force);
      process.once('SIGINT', force);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

async function configFrom(flags: ServeFlags, command: Command, dbRoot: string | null): Promise<ServerConfig> {
  const given: Partial<Record<keyof ServerConfig, unknown>> = {};
  for (const key of FLAG_KEYS) {
    if (command.getOptionValueSource(key) === 'cli') given[key] = flags[key];
  }
  if (dbRoot !== null) given.dbRoot = dbRoot;
  return resolveConfig({
    flags: given,
    env: process.env,
    file: flags.config === undefined ? undefined : await readConfigFile(flags.config),
  });
}

export function registerServe(program: Command, ctx: CliContext): void {
  program
    .command('serve')
    .description('run the HTTP API over the database in --db-root until SIGTERM or SIGINT')
    .option('--host <host>', 'address to bind (default 127.0.0.1; others need API keys or --insecure)')
    .option('--port <port>', 'port (default 8080; 0 picks a free one)')
    .option('--config <file>', 'JSON configuration file (flags > USAGEDB_* environment > file)')
    .option('--insecure', 'allow a non-loopback address without API keys')
    .option('--demo', 'load the demo month into an empty database first, and print curl commands')
    .option('--durability <mode>', 'strict, balanced (default) or fast')
    .option('--body-bytes-max <n>', 'largest request body in bytes (default 16 MiB)')
    .option('--batch-events-max <n>', 'most events per batch (default 10,000)')
    .option('--request-timeout-ms <n>', 'time to receive a whole request (default 30,000)')
    .option('--log-level <level>', 'fatal, error, warn, info (default), debug, trace or silent')
    .option('--tick-interval-ms <n>', 'how often background work runs (default 10,000)')
    .option('--rejection-log-bytes-max <n>', 'size bound of the rejection log in bytes')
    .option('--rejection-log-age-max-ms <n>', 'age bound of rejection log entries in ms')
    .option('--memtable-bytes-max <n>', 'memtable size that triggers a flush (default 64 MiB)')
    .action(async (flags: ServeFlags, command: Command) => {
      const g = ctx.globals(command);
      const config = await configFrom(flags, command, g.dbRootGiven ? g.dbRoot : null);
      // --json keeps stdout for the one result object: the banner goes to stderr then.
      const banner = g.json ? ctx.io.stderr : ctx.io.stdout;
      // Listening for signals before anything is announced: a signal sent right after the
      // banner must shut down gracefully, not kill the process.
      const stopSignal = waitForSignal();
      // One structured log for the server and the engine's own warnings (torn WAL tail, failing flush).
      const logger = pino({ level: config.logLevel }, pino.destination(2));
      const db = await UsageDb.open({
        dir: config.dbRoot,
        durability: config.durability,
        limits: {
          batchEventsMax: config.batchEventsMax,
          rejectionLogBytesMax: config.rejectionLogBytesMax,
          rejectionLogAgeMaxMs: config.rejectionLogAgeMaxMs,
          memtableBytesMax: config.memtableBytesMax,
        },
        logger: logger.child({ component: 'engine' }),
      });
      let demo: { events: number; ms: number } | null = null;
      let server: Awaited<ReturnType<typeof createServer>> | null = null;
      let tick: NodeJS.Timeout | null = null;
      try {
        const s = db.stats();
        if (flags.demo === true && s.segments === 0 && s.memtableRows === 0 && s.frozenMemtables === 0) {
          demo = await loadDemoMonth(db);
          await db.flush();
        }
        server = await createServer({ db, config, logger, version: program.version() ?? '0.0.0' });
        const url = await listen(server, config).catch((err: unknown) => {
          const code = (err as { code?: unknown }).code;
          if (code === 'EADDRINUSE')
            throw new UsageDbError(
              'USAGEDB_ERR_INVALID_ARGUMENT',
              `${config.host}:${config.port} is already in use (choose another --port)`,
            );
          throw err;
        });
        tick = setInterval(() => {
          db.tick().catch((err: unknown) => server?.log.error({ err }, 'background tick failed'));
        }, config.tickIntervalMs);
        tick.unref();
        const lines = [
          `usagedb serving ${config.dbRoot} on ${url} (durability ${config.durability}, API keys ${config.apiKeys.length > 0 ? 'on' : 'off'})`,
        ];
        if (demo !== null)
          lines.push(`loaded the demo month: ${count(demo.events)} events in ${seconds(demo.ms)}`);
        if (flags.demo === true) {
          lines.push('try:', ...demoCurls(url, config.apiKeys.length > 0));
          if (config.apiKeys.length > 0) lines.push('(set USAGEDB_API_KEY to one of your keys first)');
        }
        lines.push('stop with Ctrl-C (SIGINT) or SIGTERM');
        banner.write(`${lines.join('\n')}\n`);
        const signal = await stopSignal;
        server.log.info({ signal }, 'shutting down: finishing in-flight requests');
        clearInterval(tick);
        const t0 = performance.now();
        await closeServer(server);
        server.log.info('requests finished; closing the database');
        await db.close();
        server.log.info('database closed');
        server = null;
        ctx.finish({
          data: { db_root: config.dbRoot, url, signal, shutdown_ms: performance.now() - t0 },
          human: `stopped on ${signal}: in-flight requests finished, database closed in ${seconds(performance.now() - t0)}\n`,
        });
      } catch (err) {
        if (tick !== null) clearInterval(tick);
        if (server !== null) await closeServer(server).catch(() => undefined);
        await db.close().catch(() => undefined);
        throw err;
      }
    });
}
