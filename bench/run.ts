/**
 * `npm run bench`: usagedb against SQLite and DuckDB on the same generated AI-usage events, in
 * one run on one machine (issues 2, 3 and 4). Every engine phase runs in its own child process
 * (worker.ts) so each peak RSS belongs to one engine and one phase.
 *
 *   node --expose-gc bench/run.ts [--events N | --10m] [--seed S] [--only ingest,http,query,export]
 *     [--engines usagedb,sqlite,duckdb] [--dir PATH] [--json FILE] [--samples N] [--q3-runs N]
 *     [--page-size N] [--duckdb-order account|arrival] [--duckdb-quantity decimal38|bigint] [--verbose]
 *     [--reuse] (keep --dir and reuse the loads an earlier run of the same events left there)
 */
import { spawn, spawnSync } from 'node:child_process';
import { RUNTIME_ENV, RUNTIME_NODE_FLAGS } from '../src/cli/runtime-profile.ts';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type BenchReport,
  type DuckdbOrder,
  type DuckdbQuantity,
  type Engine,
  type EncodeFloorResult,
  type ExportResult,
  errorMessage,
  type IngestResult,
  percentile,
  QUERY_KINDS,
  type QueryKind,
  type QueryResult,
  type ReopenResult,
  type RollupBuildResult,
  type Task,
  type TaskResult,
} from './common.ts';
import type { HttpFloorResult, HttpIngestResult } from './http.ts';
import { WARMUP_ACCOUNTS, WARMUP_PASSES } from './queries.ts';
import { RESULT_MARKER } from './worker.ts';
import { querySample, type WorkloadTotals } from './workload.ts';

const MARKER_FILE = '.usagedb-bench';
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Flags

interface Options {
  events: number;
  seed: number;
  only: Set<string>;
  engines: Set<Engine>;
  dir: string;
  json: string | null;
  samples: number;
  q3Runs: number;
  pageSize: number;
  duckdbOrder: DuckdbOrder;
  /** One DuckDB load per type, queried side by side; the first is also the export peer. */
  duckdbQuantities: DuckdbQuantity[];
  verbose: boolean;
  /** Every durability mode and the WAL reopen run (default below 10M; --all-modes at 10M). */
  allModes: boolean;
  /** Keep the directory and reuse loads an earlier run of the same events and seed left. */
  reuse: boolean;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      events: { type: 'string' },
      '10m': { type: 'boolean', default: false },
      seed: { type: 'string', default: '42' },
      only: { type: 'string' },
      engines: { type: 'string', default: 'usagedb,sqlite,duckdb' },
      dir: { type: 'string', default: './bench-data' },
      json: { type: 'string' },
      samples: { type: 'string', default: '50' },
      'q3-runs': { type: 'string', default: '20' },
      'page-size': { type: 'string', default: '1000' },
      'duckdb-order': { type: 'string', default: 'account' },
      'duckdb-quantity': { type: 'string', default: 'hugeint,bigint' },
      verbose: { type: 'boolean', default: false },
      'all-modes': { type: 'boolean', default: false },
      reuse: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const int = (name: string, v: string): number => {
    const n = Number(v.replaceAll('_', ''));
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new Error(`--${name} must be a positive integer, got '${v}'`);
    return n;
  };
  const list = (name: string, v: string, allowed: readonly string[]): Set<string> => {
    const items = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const i of items)
      if (!allowed.includes(i)) throw new Error(`--${name}: unknown '${i}' (${allowed.join(', ')})`);
    return new Set(items);
  };
  const order = values['duckdb-order'];
  if (order !== 'account' && order !== 'arrival')
    throw new Error('--duckdb-order must be account or arrival');
  const quantities = [
    ...list('duckdb-quantity', values['duckdb-quantity'], ['hugeint', 'bigint', 'decimal38']),
  ] as DuckdbQuantity[];
  if (quantities.length === 0) throw new Error('--duckdb-quantity needs at least one type');
  return {
    events: values['10m'] ? 10_000_000 : int('events', values.events ?? '1000000'),
    seed: int('seed', values.seed),
    // At 10M the default is the ingest and the query suite (the HTTP and export runs and every
    // durability mode at 10M take far longer; ask for them with --only).
    only: list('only', values.only ?? (values['10m'] ? 'ingest,query' : 'ingest,http,query,export'), [
      'ingest',
      'http',
      'query',
      'export',
    ]),
    allModes: values['all-modes'] || !values['10m'],
    engines: list('engines', values.engines, ['usagedb', 'sqlite', 'duckdb']) as Set<Engine>,
    dir: resolve(values.dir),
    json: values.json ?? null,
    samples: int('samples', values.samples),
    q3Runs: int('q3-runs', values['q3-runs']),
    pageSize: int('page-size', values['page-size']),
    duckdbOrder: order,
    duckdbQuantities: quantities,
    verbose: values.verbose,
    reuse: values.reuse,
  };
}

/** The result of a load an earlier run left for the same events and seed (--reuse), or null. */
function reusedLoad(file: string, o: Options): IngestResult | null {
  if (!existsSync(file)) return null;
  const saved = JSON.parse(readFileSync(file, 'utf8')) as {
    events: number;
    seed: number;
    result: IngestResult;
  };
  return saved.events === o.events && saved.seed === o.seed ? saved.result : null;
}

/** Wipes the scratch directory, but only one this benchmark created (or an empty one). */
function prepareDir(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(join(dir, MARKER_FILE))) {
    throw new Error(`refusing to wipe ${dir}: not empty and not a benchmark directory (no ${MARKER_FILE})`);
  }
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, MARKER_FILE), 'scratch directory of bench/run.ts; wiped at every run\n');
}

// ---------------------------------------------------------------------------------------------
// Child processes

const failures: string[] = [];
const mismatches: string[] = [];

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

function runTask<T extends TaskResult>(label: string, task: Task, verbose: boolean): Promise<T | null> {
  // Each task starts with no earlier task's writes pending in the page cache: their writeback
  // would otherwise land on whichever task runs next, engine or floor alike.
  spawnSync('sync');
  log(`» ${label} ...`);
  const t0 = performance.now();
  return new Promise((done) => {
    const child = spawn(
      process.execPath,
      // Every engine's process runs under usagedb's runtime profile (src/cli/runtime-profile.ts).
      [
        ...RUNTIME_NODE_FLAGS,
        '--expose-gc',
        '--disable-warning=ExperimentalWarning',
        WORKER,
        JSON.stringify(task),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...RUNTIME_ENV } },
    );
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      // Keep only a tail: a failing child's stack trace is what matters.
      err = (err + d).slice(-8000);
      if (verbose) process.stderr.write(d);
    });
    child.on('close', (code) => {
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      const line = out.split('\n').find((l) => l.startsWith(RESULT_MARKER));
      if (code === 0 && line) {
        log(`  done in ${secs} s`);
        done(JSON.parse(line.slice(RESULT_MARKER.length)) as T);
        return;
      }
      const lines = err.trim().split('\n');
      const reason = lines.find((l) => /Error|error:/.test(l)) ?? lines[0] ?? `exit code ${code}`;
      failures.push(`${label}: ${reason.trim()}`);
      log(`  FAILED after ${secs} s (exit ${code}): ${reason.trim()}`);
      if (!verbose)
        log(
          lines
            .slice(-12)
            .map((l) => `    ${l}`)
            .join('\n'),
        );
      done(null);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Formatting

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, digits: number): string => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const ms = (n: number): string => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : '-');
const ratio = (n: number): string =>
  Number.isFinite(n) && n > 0 ? `${n < 10 ? n.toFixed(2) : n.toFixed(1)}×` : '-';
const mib = (bytes: number): string => fixed(bytes / MiB, 1);

/** Plain aligned table: first column left-aligned, the others right-aligned. */
function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [fmt(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}

const section = (title: string): void => {
  console.log(`\n== ${title} ${'='.repeat(Math.max(0, 86 - title.length))}`);
};

// ---------------------------------------------------------------------------------------------
// Checks

function checkIngest(r: IngestResult, expected: WorkloadTotals): boolean {
  const problems: string[] = [];
  const want: [string, number, number][] = [
    ['accepted', r.counts.accepted, r.expected.unique],
    ['duplicates', r.counts.duplicates, r.expected.duplicates],
    ['conflicts', r.counts.conflicts, r.expected.conflicts],
    ['rejected', r.counts.rejected, 0],
  ];
  for (const [name, got, exp] of want)
    if (got !== exp) problems.push(`${name} ${int(got)} != expected ${int(exp)}`);
  // (Field by field: a load kept by --reuse may predate a newer field.)
  const fields = ['sent', 'unique', 'duplicates', 'conflicts', 'quantitySum'] as const;
  if (fields.some((f) => r.expected[f] !== expected[f]))
    problems.push('generator totals differ between processes');
  if (r.stored) {
    if (r.stored.count !== expected.unique)
      problems.push(`stored rows ${int(r.stored.count)} != ${int(expected.unique)}`);
    if (r.stored.quantitySum !== String(expected.quantitySum)) {
      problems.push(`stored quantity sum ${r.stored.quantitySum} != ${expected.quantitySum}`);
    }
  }
  for (const p of problems) mismatches.push(`ingest ${r.label}: ${p}`);
  return problems.length === 0;
}

// ---------------------------------------------------------------------------------------------

interface Plan {
  label: string;
  key: string;
  task: Task & { phase: 'ingest' };
  /** Shown in the ingest table (false for loads that only prepare the query/export phases). */
  shown: boolean;
}

async function main(): Promise<void> {
  const o = parseOptions();
  if (!o.reuse || !existsSync(join(o.dir, MARKER_FILE))) prepareDir(o.dir);
  const sqliteVersion = o.engines.has('sqlite') ? (await import('./sqlite.ts')).sqliteVersion() : '-';
  const duckdbVersion = o.engines.has('duckdb') ? (await import('./duckdb.ts')).duckdbVersion() : '-';
  const cpus = os.cpus();
  const machine: BenchReport['machine'] = {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model ?? 'unknown',
    memory_gib: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    sqlite: sqliteVersion,
    duckdb: duckdbVersion,
    date: new Date().toISOString(),
    load_average_start: Number(os.loadavg()[0].toFixed(2)),
  };
  const report: BenchReport = {
    machine,
    seed: o.seed,
    events: o.events,
    ingest: [],
    http: null,
    reopen: null,
    query: [],
    export: [],
    failures,
    mismatches,
  };

  console.log('usagedb benchmark');
  console.log(
    `machine: ${machine.cpus} × ${machine.cpu_model}, ${machine.memory_gib} GiB, ${machine.platform}; node ${machine.node}`,
  );
  console.log(`load average at start: ${machine.load_average_start}`);
  console.log(`engines: SQLite ${sqliteVersion} (node:sqlite), DuckDB ${duckdbVersion} (@duckdb/node-api)`);
  console.log(
    `workload: ${int(o.events)} events (batches of 1,000), seed ${o.seed}, 1,000 Zipf accounts, May 2026 UTC; dir ${o.dir}`,
  );

  const wantIngest = o.only.has('ingest');
  const wantQuery = o.only.has('query');
  const wantExport = o.only.has('export');
  const base = { phase: 'ingest' as const, events: o.events, seed: o.seed };
  const dirOf = (key: string): string => join(o.dir, key);

  const plans: Plan[] = [];
  const usagedb = o.engines.has('usagedb');
  if (o.engines.has('sqlite') && (wantIngest || wantQuery)) {
    plans.push({
      label: 'sqlite',
      key: 'sqlite',
      task: { ...base, engine: 'sqlite', dir: dirOf('sqlite') },
      shown: wantIngest,
    });
  }
  if (usagedb) {
    const modes: [string, 'strict' | 'balanced' | 'fast', number][] = !o.allModes
      ? [['usagedb-balanced', 'balanced', 1]]
      : wantIngest
        ? [
            ['usagedb-strict', 'strict', 1],
            ['usagedb-balanced', 'balanced', 1],
            ['usagedb-fast', 'fast', 1],
            ['usagedb-balanced-x4', 'balanced', 4],
          ]
        : wantQuery || wantExport
          ? [['usagedb-balanced', 'balanced', 1]]
          : [];
    for (const [key, durability, concurrency] of modes) {
      plans.push({
        label: `usagedb ${durability}${concurrency > 1 ? ` ×${concurrency}` : ''}`,
        key,
        task: { ...base, engine: 'usagedb', dir: dirOf(key), durability, concurrency },
        shown: wantIngest,
      });
    }
  }
  if (o.engines.has('duckdb')) {
    for (const [i, q] of o.duckdbQuantities.entries()) {
      plans.push({
        label: `duckdb load (${q})`,
        key: `duckdb-${q}`,
        task: {
          ...base,
          engine: 'duckdb',
          dir: dirOf(`duckdb-${q}`),
          order: o.duckdbOrder,
          quantityType: q,
        },
        shown: wantIngest && i === 0,
      });
    }
  }
  const duckdbKey = `duckdb-${o.duckdbQuantities[0]}`;

  // ---- ingest ------------------------------------------------------------------------------
  const loaded = new Map<string, IngestResult>();
  for (const p of plans) {
    const saved = join(o.dir, `${p.key}.load.json`);
    let r = o.reuse ? reusedLoad(saved, o) : null;
    if (r) log(`reused ${p.label}: loaded by an earlier run (${saved})`);
    else {
      r = await runTask<IngestResult>(`ingest ${p.label}`, p.task, o.verbose);
      if (r) writeFileSync(saved, JSON.stringify({ events: o.events, seed: o.seed, result: r }));
    }
    if (r) {
      loaded.set(p.key, r);
      report.ingest.push(r);
    }
  }
  const expected = [...loaded.values()][0]?.expected ?? null;

  if (wantIngest) {
    let reopen: ReopenResult | null = null;
    let walIngest: IngestResult | null = null;
    if (usagedb && o.allModes) {
      const dir = dirOf('usagedb-wal');
      walIngest = await runTask<IngestResult>(
        'ingest usagedb balanced, closed without flush',
        { ...base, engine: 'usagedb', dir, durability: 'balanced', concurrency: 1, noFlush: true },
        o.verbose,
      );
      if (walIngest) {
        reopen = await runTask<ReopenResult>(
          'reopen usagedb',
          { phase: 'reopen', engine: 'usagedb', dir, expected: walIngest.expected },
          o.verbose,
        );
        report.reopen = reopen;
      }
    }
    printIngest(plans, loaded, expected, o);
    if (walIngest && expected) checkIngest(walIngest, expected);
    if (reopen) {
      const stored = reopen.stored ? `${int(reopen.stored.count)} events visible after open` : 'count n/a';
      console.log(
        `\nreopen: UsageDb.open over ${int(o.events)} events left in the WAL (${mib(reopen.walBytes)} MiB of WAL, ` +
          `${mib(reopen.dirBytes)} MiB in the dir): ${fixed(reopen.openSeconds, 3)} s, ` +
          `peak RSS ${mib(reopen.maxRssBytes)} MiB; ${stored}`,
      );
      if (reopen.storedError) {
        if (reopen.stored) mismatches.push(`reopen: ${reopen.storedError}`);
        else console.log(`  (recovered count not checked: ${reopen.storedError})`);
      }
    } else if (usagedb && o.allModes) console.log('\nreopen: FAILED (see failures below)');
  } else if (plans.length > 0 && expected) {
    for (const r of loaded.values()) checkIngest(r, expected);
    log(`setup loads done: ${[...loaded.keys()].join(', ')}`);
  }

  // ---- HTTP ingest -------------------------------------------------------------------------
  if (o.only.has('http') && usagedb) {
    const bodiesFile = join(o.dir, 'http-bodies.ndjson');
    const http = await runTask<HttpIngestResult>(
      'ingest usagedb over HTTP',
      {
        phase: 'http-ingest',
        engine: 'usagedb',
        dir: dirOf('usagedb-http'),
        bodiesFile,
        events: o.events,
        seed: o.seed,
        clients: HTTP_CLIENTS,
      },
      o.verbose,
    );
    const floor = http
      ? await runTask<HttpFloorResult>(
          'floor: JSON.parse + append + fsync',
          { phase: 'http-floor', engine: 'floor', dir: dirOf('http-floor'), bodiesFile },
          o.verbose,
        )
      : null;
    report.http = { ingest: http, floor };
    if (http) printHttp(http, floor, loaded, o);
    rmSync(bodiesFile, { force: true });
  }

  // ---- query -------------------------------------------------------------------------------
  if (wantQuery) {
    const sample = querySample(o.seed, o.samples + WARMUP_ACCOUNTS);
    const accounts = sample.slice(0, o.samples);
    const warmup = sample.slice(o.samples);
    // usagedb on the raw path first, then after building its rollups (timed) through `auto`;
    // DuckDB once per quantity type.
    const stores: { engine: Engine; key: string; variant?: string; extra?: Record<string, unknown> }[] = [
      { engine: 'usagedb', key: 'usagedb-balanced', variant: 'raw', extra: { source: 'raw' } },
      {
        engine: 'usagedb',
        key: 'usagedb-balanced',
        variant: 'auto',
        extra: { source: 'auto' },
      },
      ...o.duckdbQuantities.map((q) => ({ engine: 'duckdb' as const, key: `duckdb-${q}`, variant: q })),
      { engine: 'sqlite', key: 'sqlite' },
    ];
    const files = new Map<string, string>();
    for (const { engine, key, variant, extra } of stores) {
      const name = resultName({ engine, variant });
      if (!o.engines.has(engine)) continue;
      if (!loaded.has(key)) {
        failures.push(`query ${name}: skipped, its load failed`);
        continue;
      }
      const answersFile = join(o.dir, `answers-${name}.json`);
      // The auto path builds rollups and compacts: on a copy, so the load stays as ingested.
      let dir = dirOf(key);
      let rollupBuild: RollupBuildResult | null = null;
      if (variant === 'auto') {
        dir = dirOf('usagedb-auto');
        rmSync(dir, { recursive: true, force: true });
        cpSync(dirOf(key), dir, { recursive: true });
        rollupBuild = await runTask<RollupBuildResult>(
          `rollup build ${name}`,
          { phase: 'rollup-build', engine: 'usagedb', dir },
          o.verbose,
        );
        if (rollupBuild === null) {
          failures.push(`query ${name}: skipped, its rollup build failed`);
          continue;
        }
      }
      const r = await runTask<QueryResult>(
        `query ${name}`,
        {
          phase: 'query',
          engine,
          dir,
          accounts,
          warmup,
          q3Runs: o.q3Runs,
          pageSize: o.pageSize,
          answersFile,
          ...(variant === undefined ? {} : { variant }),
          ...extra,
        },
        o.verbose,
      );
      if (r) {
        if (rollupBuild !== null) r.rollupBuild = rollupBuild;
        report.query.push(r);
        files.set(name, answersFile);
      }
    }
    printQueries(report.query, o, accounts.length);
    checkAnswers(report.query, files);
  }

  // ---- export ------------------------------------------------------------------------------
  if (wantExport) {
    const outDir = join(o.dir, 'export');
    mkdirSync(outDir, { recursive: true });
    const usagedbOut = join(outDir, 'usagedb.parquet');
    const duckdbOut = join(outDir, 'duckdb.parquet');
    const usagedbDays = join(outDir, 'usagedb-by-day');
    let encodeFloor: EncodeFloorResult | null = null;
    if (usagedb && loaded.has('usagedb-balanced')) {
      rmSync(usagedbDays, { recursive: true, force: true });
      const byDay = await runTask<ExportResult>(
        'export usagedb (exportParquet, day partitions)',
        {
          phase: 'export',
          engine: 'usagedb',
          dir: dirOf('usagedb-balanced'),
          out: usagedbDays,
          verify: [],
          partition: 'day',
        },
        o.verbose,
      );
      if (byDay) report.export.push(byDay);
      const r = await runTask<ExportResult>(
        'export usagedb (exportParquet)',
        { phase: 'export', engine: 'usagedb', dir: dirOf('usagedb-balanced'), out: usagedbOut, verify: [] },
        o.verbose,
      );
      if (r) report.export.push(r);
      if (r)
        encodeFloor = await runTask<EncodeFloorResult>(
          'parquet-wasm encoding alone (same rows, same settings)',
          { phase: 'encode-floor', engine: 'usagedb', file: usagedbOut },
          o.verbose,
        );
    }
    if (o.engines.has('duckdb') && loaded.has(duckdbKey)) {
      // The DuckDB child also reads both files back (after its timing) to check rows and sums.
      const dayFiles = join(usagedbDays, '*', '*.parquet');
      const verify = [usagedbOut, duckdbOut, dayFiles].filter(
        (f) => f === duckdbOut || existsSync(f === dayFiles ? usagedbDays : f),
      );
      const r = await runTask<ExportResult>(
        'export duckdb (COPY TO parquet)',
        { phase: 'export', engine: 'duckdb', dir: dirOf(duckdbKey), out: duckdbOut, verify },
        o.verbose,
      );
      if (r) report.export.push(r);
    }
    printExport(report.export, expected, { [usagedbOut]: 'usagedb', [duckdbOut]: 'duckdb' }, encodeFloor);
  }

  // ---- summary -----------------------------------------------------------------------------
  section('checks');
  if (mismatches.length === 0) {
    console.log(
      failures.length === 0
        ? 'every count, sum and answer checked: equal across engines'
        : 'no mismatch among the phases that ran (failed phases below were not checked)',
    );
  }
  const load = os.loadavg()[0];
  console.log(`load average at the end: ${load.toFixed(2)} (${cpus.length} cpus)`);
  if (load > cpus.length / 2)
    console.log('warning: the machine was busy; timings are noisy, rerun on a quiet machine');
  for (const m of mismatches) console.log(`MISMATCH ${m}`);
  for (const f of failures) console.log(`FAILED ${f}`);
  if (o.json) {
    writeFileSync(o.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`results written to ${o.json}`);
  }
  if (mismatches.length > 0 || failures.length > 0) process.exitCode = 1;
}

// ---------------------------------------------------------------------------------------------

/** Concurrent keep-alive clients of the HTTP ingest run. */
const HTTP_CLIENTS = 4;

function printHttp(
  http: HttpIngestResult,
  floor: HttpFloorResult | null,
  loaded: Map<string, IngestResult>,
  o: Options,
): void {
  section(
    `HTTP ingest (${int(o.events)} events, POST /v1/usage/batch of 1,000, ${http.clients} keep-alive clients on loopback, balanced)`,
  );
  const sqlite = loaded.get('sqlite');
  const sqliteEps = sqlite ? sqlite.events / sqlite.ingestSeconds : Number.NaN;
  const floorEps = floor ? floor.events / floor.seconds : Number.NaN;
  const e = http.expected;
  // Four clients race: a conflicting copy may land before its original, and later retries of
  // that original are then conflicts (see WorkloadTotals): what is stored stays exact.
  const extra = http.stored ? Number(http.stored.quantitySum) - e.quantitySum : Number.NaN;
  const countsOk =
    http.failures.length === 0 &&
    http.counts.accepted === e.unique &&
    http.counts.duplicates + http.counts.conflicts === e.duplicates + e.conflicts &&
    Math.abs(http.counts.duplicates - e.duplicates) <= e.orderSensitive &&
    http.stored?.count === e.unique &&
    extra >= 0 &&
    extra <= e.conflictQuantityDelta;
  if (!countsOk)
    mismatches.push(
      `http ingest: counts ${JSON.stringify(http.counts)}, stored ${JSON.stringify(http.stored)}, expected ${JSON.stringify(e)}; ${http.failures.join('; ')}`,
    );
  const rows: string[][] = [];
  const add = (label: string, eps: number, p50: number, p99: number, check: string) =>
    rows.push([label, int(eps), ratio(eps / floorEps), ratio(eps / sqliteEps), ms(p50), ms(p99), check]);
  const httpEps = http.events / http.seconds;
  add(http.label, httpEps, http.p50Ms, http.p99Ms, countsOk ? 'ok' : 'MISMATCH');
  const embedded = loaded.get('usagedb-balanced-x4');
  if (embedded)
    add(`${embedded.label} (embedded)`, embedded.events / embedded.ingestSeconds, Number.NaN, Number.NaN, '');
  if (floor) add('floor: JSON.parse + append + fsync', floorEps, floor.p50Ms, floor.p99Ms, '');
  if (sqlite) add('sqlite (embedded)', sqliteEps, Number.NaN, Number.NaN, '');
  console.log(table(['path', 'events/s', '× floor', '× SQLite', 'p50 ms', 'p99 ms', 'counts'], rows));
  console.log(
    `events/s over HTTP: events sent / wall time of the client process (request bodies built beforehand, ${mib(http.bodyBytes)} MiB);\n` +
      'p50/p99: one batch, request sent to response read (floor: parse + append + fsync of one body, one at a time);\n' +
      `server peak RSS ${mib(http.maxRssBytes)} MiB; final flush ${fixed(http.flushSeconds, 2)} s (not in events/s);\n` +
      `answers: ${int(http.counts.accepted)} accepted, ${int(http.counts.duplicates)} duplicates, ${int(http.counts.conflicts)} conflicts ` +
      `(generator: ${int(e.duplicates)} duplicates, ${int(e.conflicts)} conflicts, ${int(e.orderSensitive)} copies whose answer depends on arrival order).`,
  );
}

function printIngest(
  plans: Plan[],
  loaded: Map<string, IngestResult>,
  expected: WorkloadTotals | null,
  o: Options,
): void {
  section(`ingest (${int(o.events)} events, batches of 1,000)`);
  if (expected) {
    console.log(
      `expected: ${int(expected.unique)} unique, ${int(expected.duplicates)} duplicates (retries), ` +
        `${int(expected.conflicts)} conflicts; quantity sum ${expected.quantitySum}`,
    );
  }
  const sqlite = loaded.get('sqlite');
  const rows: string[][] = [];
  const notes: string[] = [];
  for (const p of plans.filter((x) => x.shown)) {
    const r = loaded.get(p.key);
    if (!r) {
      rows.push([p.label, 'FAILED']);
      continue;
    }
    const eps = r.events / r.ingestSeconds;
    const bpe = r.bytesOnDisk / r.expected.unique;
    const ok = expected ? checkIngest(r, expected) : false;
    const isDuck = r.engine === 'duckdb';
    rows.push([
      isDuck ? `${p.label} ¹` : p.label,
      int(eps),
      sqlite && !isDuck ? ratio(eps / (sqlite.events / sqlite.ingestSeconds)) : '-',
      fixed(r.flushSeconds, 2),
      fixed(bpe, 1),
      sqlite ? ratio(bpe / (sqlite.bytesOnDisk / sqlite.expected.unique)) : '-',
      mib(r.maxRssBytes),
      ok ? 'ok' : 'MISMATCH',
    ]);
    if (r.storedError) notes.push(`${p.label}: stored totals not checked (${r.storedError})`);
    for (const n of r.notes) if (!isDuck) notes.push(`${p.label}: ${n}`);
  }
  console.log(
    table(
      [
        'engine / mode',
        'events/s',
        '× SQLite',
        'flush s',
        'bytes/event',
        '× SQLite',
        'peak RSS MiB',
        'counts',
      ],
      rows,
    ),
  );
  console.log(
    'events/s: events sent (retries and conflicts included) / time inside ingest calls, generation excluded;\n' +
      'flush s: final flush (usagedb) / WAL checkpoint (SQLite) / sort + checkpoint (DuckDB), not in events/s;\n' +
      'bytes/event: every file in the engine directory after flush and close / unique events stored.',
  );
  if ([...loaded.keys()].some((k) => k.startsWith('duckdb'))) {
    console.log(
      `¹ DuckDB: bulk appender load of the events the generator labels new (no idempotency check), ` +
        `quantity ${duckdbQuantityLabel(o)}, stored ` +
        `${o.duckdbOrder === 'account' ? 'sorted by (account_id, timestamp_ms)' : 'in arrival order'}; for size only.`,
    );
  }
  for (const n of notes) console.log(`note: ${n}`);
}

const QUANTITY_LABELS: Record<DuckdbQuantity, string> = {
  hugeint: 'HUGEINT (128-bit, the contract range)',
  bigint: 'BIGINT (overflows past 2^63)',
  decimal38: 'DECIMAL(38,0) (the contract range)',
};
const duckdbQuantityLabel = (o: Options): string => QUANTITY_LABELS[o.duckdbQuantities[0]];

interface QueryStat {
  p50: number;
  p95: number;
  rows: number;
}

function queryStats(r: QueryResult, kind: QueryKind): QueryStat {
  const t = r.timings.filter((x) => x.kind === kind);
  return {
    p50: percentile(
      t.map((x) => x.ms),
      50,
    ),
    p95: percentile(
      t.map((x) => x.ms),
      95,
    ),
    rows: percentile(
      t.map((x) => x.rows),
      50,
    ),
  };
}

const QUERY_TITLES: Record<QueryKind, string> = {
  q1: 'q1 month by product/meter/model/unit',
  q2: 'q2 month by day/meter/unit',
  q3: 'q3 top 100 accounts tokens.output',
  q4: 'q4 audit account+meter+model',
};

/** `usagedb-auto`, `duckdb-hugeint`, `sqlite`: an engine and the variant it ran as. */
function resultName(r: { engine: Engine; variant?: string }): string {
  return r.variant === undefined ? r.engine : `${r.engine}-${r.variant}`;
}

function printQueries(results: QueryResult[], o: Options, accounts: number): void {
  section(`query (${accounts} accounts drawn by activity; q3 run ${o.q3Runs}×; q4 page size ${o.pageSize})`);
  const names = results.map(resultName);
  const by = new Map(results.map((r) => [resultName(r), r]));
  const headers = ['query (ms)', 'rows p50'];
  for (const n of names) headers.push(`${n} p50`, `${n} p95`);
  console.log(
    table(
      headers,
      QUERY_KINDS.map((kind) => {
        const cells = [QUERY_TITLES[kind], int(queryStats(results[0], kind).rows)];
        for (const n of names) {
          const st = queryStats(by.get(n)!, kind);
          cells.push(ms(st.p50), ms(st.p95));
        }
        return cells;
      }),
    ),
  );
  // Ratios of each usagedb path against each peer: p50 and p95 (above 1× = usagedb faster).
  const ours = names.filter((n) => n.startsWith('usagedb'));
  const peers = names.filter((n) => !n.startsWith('usagedb'));
  if (ours.length > 0 && peers.length > 0) {
    const rh = ['peer time / usagedb time'];
    for (const u of ours) for (const p of peers) rh.push(`${u} vs ${p} p50/p95`);
    console.log(
      table(
        rh,
        QUERY_KINDS.map((kind) => {
          const cells: string[] = [kind];
          for (const u of ours) {
            const a = queryStats(by.get(u)!, kind);
            for (const p of peers) {
              const b = queryStats(by.get(p)!, kind);
              cells.push(`${ratio(b.p50 / a.p50)} / ${ratio(b.p95 / a.p95)}`);
            }
          }
          return cells;
        }),
      ),
    );
  }
  for (const r of results) {
    if (r.rollupBuild)
      console.log(
        `rollup build (${resultName(r)}): ${int(r.rollupBuild.rows)} events in ${fixed(r.rollupBuild.seconds, 2)} s = ` +
          `${int(r.rollupBuild.rows / r.rollupBuild.seconds)} events/s`,
      );
  }
  console.log(
    `peak RSS MiB: ${names.map((n) => `${n} ${mib(by.get(n)!.maxRssBytes)}`).join(', ')}\n` +
      `duckdb quantity columns: ${o.duckdbQuantities.map((q) => QUANTITY_LABELS[q]).join('; ')}\n` +
      'usagedb-raw: source raw, as ingested (no rollups, no compaction); usagedb-auto: source auto after\n' +
      'db.rollup() (timed above) and db.compact() in a process of their own (as background work\n' +
      'would leave the store);\n' +
      `times: call to fully materialised JS rows; each question first asked untimed ${WARMUP_PASSES}× of ${WARMUP_ACCOUNTS} accounts outside the sample.`,
  );
}

/** Compares every engine's answers (digests) with the first present of SQLite, DuckDB, usagedb. */
function checkAnswers(results: QueryResult[], files: Map<string, string>): void {
  const order: Engine[] = ['sqlite', 'duckdb', 'usagedb'];
  const ref = order.map((e) => results.find((r) => r.engine === e)).find((r) => r !== undefined);
  if (!ref) return;
  const firstDigest = (r: QueryResult): Map<string, { digest: string; rows: number }> => {
    const m = new Map<string, { digest: string; rows: number }>();
    for (const t of r.timings) {
      const k = `${t.kind} ${t.key}`;
      const prev = m.get(k);
      if (!prev) m.set(k, { digest: t.digest, rows: t.rows });
      else if (prev.digest !== t.digest)
        mismatches.push(`${resultName(r)} ${k}: answers differ between runs`);
    }
    return m;
  };
  const refDigests = firstDigest(ref);
  const loadAnswers = (e: string): Record<string, Record<string, string[]>> =>
    JSON.parse(readFileSync(files.get(e)!, 'utf8')) as Record<string, Record<string, string[]>>;
  for (const r of results) {
    if (r === ref) continue;
    const mine = firstDigest(r);
    let detailed = 0;
    for (const [k, want] of refDigests) {
      const got = mine.get(k);
      if (got?.digest === want.digest) continue;
      let detail = got
        ? `${resultName(r)} ${got.rows} rows, ${resultName(ref)} ${want.rows} rows`
        : 'missing answer';
      // Show the first differing row for the first few mismatches of each engine.
      if (got && detailed++ < 5) {
        try {
          const [kind, key] = k.split(' ');
          const a = loadAnswers(resultName(r))[kind][key];
          const b = loadAnswers(resultName(ref))[kind][key];
          const i = a.findIndex((x, j) => x !== b[j]);
          const at = i === -1 ? a.length : i;
          detail += `; first difference at row ${at}: ${resultName(r)}=${a[at] ?? '(none)'} ${resultName(ref)}=${b[at] ?? '(none)'}`;
        } catch (e) {
          detail += ` (answer files unreadable: ${errorMessage(e)})`;
        }
      }
      mismatches.push(`query ${k}: ${resultName(r)} differs from ${resultName(ref)}: ${detail}`);
    }
  }
}

function printExport(
  results: ExportResult[],
  expected: WorkloadTotals | null,
  names: Record<string, string>,
  floor: EncodeFloorResult | null,
): void {
  section('export (whole database to Parquet, zstd)');
  const rows: string[][] = [];
  const duck = results.find((r) => r.engine === 'duckdb');
  for (const r of results) {
    const events = expected?.unique ?? Number.NaN;
    rows.push([
      r.engine === 'duckdb'
        ? 'duckdb COPY TO parquet'
        : r.partition === 'day'
          ? 'usagedb, day partitions'
          : 'usagedb exportParquet',
      fixed(r.seconds, 2),
      int(events / r.seconds),
      fixed(r.outBytes / MiB / r.seconds, 1),
      mib(r.outBytes),
      fixed(r.outBytes / events, 1),
      mib(r.maxRssBytes),
      r.engine === 'usagedb' && r.partition === 'none' && duck ? ratio(duck.seconds / r.seconds) : '-',
    ]);
  }
  console.log(
    table(
      [
        'engine',
        'seconds',
        'events/s',
        'MB/s out',
        'output MiB',
        'bytes/event',
        'peak RSS MiB',
        'speed vs duckdb',
      ],
      rows,
    ),
  );
  console.log(
    'MB/s out: Parquet bytes written per second; speed vs duckdb: DuckDB seconds / usagedb seconds.',
  );
  if (floor) {
    // The ceiling of any export through parquet-wasm: its own encoding time, nothing around it.
    const vs = duck ? `, ${ratio(duck.seconds / floor.seconds)} DuckDB's whole COPY` : '';
    console.log(
      `parquet-wasm encoding alone (${int(floor.rows)} rows already in WebAssembly memory, one thread, ` +
        `no reading or I/O): ${fixed(floor.seconds, 2)} s${vs}`,
    );
  }
  for (const v of duck?.verified ?? []) {
    const who = names[v.file] ?? 'usagedb, day partitions';
    const problems: string[] = [];
    if (expected && v.rows !== expected.unique)
      problems.push(`rows ${int(v.rows)} != ${int(expected.unique)}`);
    if (expected && v.quantitySum !== String(expected.quantitySum)) {
      problems.push(`sum(quantity) ${v.quantitySum} != ${expected.quantitySum}`);
    }
    if (v.distinctIds !== v.rows) problems.push(`${int(v.rows - v.distinctIds)} repeated event_ids`);
    for (const p of problems) mismatches.push(`export ${who} parquet: ${p}`);
    console.log(
      `read back by DuckDB: ${who}: ${int(v.rows)} rows, sum(quantity) ${v.quantitySum}: ${problems.length ? 'MISMATCH' : 'ok'}`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(`bench: ${errorMessage(e)}`);
  process.exitCode = 1;
});
