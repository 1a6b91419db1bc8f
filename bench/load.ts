/**
 * `npm run test:load`: a bounded load test on loopback. The built `usagedb serve` runs on a
 * fresh directory; several clients ingest batches while others query (JSON query, account
 * usage, audit pages) for a fixed time. Afterwards the total is proven: every acknowledged
 * event is stored exactly once (audit walk, counted per id), nothing else is, and the query
 * engine's count and sum equal the acknowledged ones. Prints throughput, latency percentiles
 * and the proof; exits 1 when the proof fails.
 *
 *   node bench/load.ts [--seconds 60] [--ingest-clients 4] [--query-clients 2] [--batch 200]
 *     [--durability balanced] [--memtable-bytes-max N] [--json FILE]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { percentile } from './common.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(REPO, 'dist', 'cli', 'main.js');
const ACCOUNTS = 20;
const T0 = Date.UTC(2026, 4, 1);

export interface LoadOptions {
  seconds: number;
  ingestClients: number;
  queryClients: number;
  batch: number;
  durability: 'strict' | 'balanced' | 'fast';
  memtableBytesMax?: number;
}

export interface LoadReport {
  seconds: number;
  ingest: {
    requests: number;
    events: number;
    eventsPerSecond: number;
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
  };
  query: { requests: number; perSecond: number; p50Ms: number; p99Ms: number; maxMs: number };
  failures: string[];
  proof: {
    acknowledged: number;
    stored: number;
    lost: number;
    doubled: number;
    invented: number;
    countMatches: boolean;
    sumMatches: boolean;
  };
}

function eventOf(n: number): Record<string, unknown> {
  return {
    event_id: `load_${n}`,
    account_id: `acct_${n % ACCOUNTS}`,
    product_id: 'llm-api',
    meter_id: n % 2 === 0 ? 'tokens.input' : 'tokens.output',
    unit: 'tokens',
    source: 'load',
    model_id: `model-${n % 3}`,
    timestamp_ms: T0 + (n % 28) * 86_400_000 + (n % 86_400_000),
    quantity: (n * 7919) % 10_000,
  };
}

async function startServer(dir: string, o: LoadOptions): Promise<{ url: string; stop(): Promise<void> }> {
  const args = [
    BIN,
    'serve',
    '--port',
    '0',
    '--db-root',
    dir,
    '--durability',
    o.durability,
    '--log-level',
    'warn',
  ];
  if (o.memtableBytesMax !== undefined) args.push('--memtable-bytes-max', String(o.memtableBytesMax));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  for (let i = 0; i < 1200; i++) {
    const m = /serving .* on (http:\/\/\S+)/.exec(out);
    if (m)
      return {
        url: m[1],
        async stop() {
          child.kill('SIGTERM');
          await exited;
        },
      };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`serve did not start:\n${out}`);
}

async function json(url: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const r = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  const dir = mkdtempSync(join(tmpdir(), 'usagedb-load-'));
  const server = await startServer(dir, o);
  const ingestMs: number[] = [];
  const queryMs: number[] = [];
  const failures: string[] = [];
  const acknowledged = new Set<number>();
  let ackedSum = 0n;
  let next = 0;
  const deadline = performance.now() + o.seconds * 1000;
  try {
    const ingestClient = async () => {
      while (performance.now() < deadline) {
        const batch = Array.from({ length: o.batch }, () => next++);
        const t = performance.now();
        const r = await json(`${server.url}/v1/usage/batch`, { events: batch.map(eventOf) });
        ingestMs.push(performance.now() - t);
        if (r.status !== 200 || (r.body as { accepted: number }).accepted !== batch.length) {
          failures.push(`ingest ${r.status}: ${JSON.stringify(r.body).slice(0, 200)}`);
          continue;
        }
        for (const n of batch) {
          acknowledged.add(n);
          ackedSum += BigInt(eventOf(n).quantity as number);
        }
      }
    };
    const queryClient = async (k: number) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const account = `acct_${(k + i) % ACCOUNTS}`;
        const t = performance.now();
        const r =
          i % 3 === 0
            ? await json(`${server.url}/v1/query/json`, {
                account_id: account,
                from: T0,
                to: T0 + 31 * 86_400_000,
                group_by: ['meter_id', 'day'],
              })
            : i % 3 === 1
              ? await json(`${server.url}/v1/accounts/${account}/usage?from=${T0}&to=${T0 + 31 * 86_400_000}`)
              : await json(
                  `${server.url}/v1/accounts/${account}/usage/events?from=${T0}&to=${T0 + 31 * 86_400_000}&limit=100`,
                );
        queryMs.push(performance.now() - t);
        if (r.status !== 200) failures.push(`query ${r.status}: ${JSON.stringify(r.body).slice(0, 200)}`);
      }
    };
    const started = performance.now();
    await Promise.all([
      ...Array.from({ length: o.ingestClients }, ingestClient),
      ...Array.from({ length: o.queryClients }, (_, k) => queryClient(k)),
    ]);
    const seconds = (performance.now() - started) / 1000;

    // The proof: every acknowledged event once, nothing else, and the billing totals agree.
    const copies = new Map<string, number>();
    for (let a = 0; a < ACCOUNTS; a++) {
      let cursor: string | null = null;
      do {
        const q = `from=0&to=2000000000000&limit=10000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
        const page = (await json(`${server.url}/v1/accounts/acct_${a}/usage/events?${q}`)).body as {
          events: { event_id: string }[];
          next_cursor: string | null;
        };
        for (const e of page.events) copies.set(e.event_id, (copies.get(e.event_id) ?? 0) + 1);
        cursor = page.next_cursor;
      } while (cursor !== null);
    }
    let lost = 0;
    for (const n of acknowledged) if (copies.get(`load_${n}`) !== 1) lost++;
    let doubled = 0;
    let invented = 0;
    for (const [id, c] of copies) {
      if (c !== 1) doubled++;
      const m = /^load_(\d+)$/.exec(id);
      if (m === null || !acknowledged.has(Number(m[1]))) invented++;
    }
    const totals = (await json(`${server.url}/v1/query/json`, { from: 0, to: 2_000_000_000_000 })).body as {
      rows: { sum: string; count: number }[];
    };
    const events = ingestMs.length * o.batch;
    return {
      seconds,
      ingest: {
        requests: ingestMs.length,
        events,
        eventsPerSecond: Math.round(acknowledged.size / seconds),
        p50Ms: percentile(ingestMs, 50),
        p99Ms: percentile(ingestMs, 99),
        maxMs: Math.max(...ingestMs),
      },
      query: {
        requests: queryMs.length,
        perSecond: Math.round(queryMs.length / seconds),
        p50Ms: percentile(queryMs, 50),
        p99Ms: percentile(queryMs, 99),
        maxMs: Math.max(0, ...queryMs),
      },
      failures,
      proof: {
        acknowledged: acknowledged.size,
        stored: copies.size,
        lost,
        doubled,
        invented,
        countMatches: totals.rows[0].count === acknowledged.size,
        sumMatches: totals.rows[0].sum === ackedSum.toString(),
      },
    };
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function proven(r: LoadReport): boolean {
  const p = r.proof;
  return (
    r.failures.length === 0 &&
    p.lost === 0 &&
    p.doubled === 0 &&
    p.invented === 0 &&
    p.countMatches &&
    p.sumMatches
  );
}

export function describeReport(r: LoadReport): string {
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  return [
    `load: ${r.seconds.toFixed(1)} s on loopback`,
    `  ingest: ${r.ingest.requests} batches, ${r.proof.acknowledged} events acknowledged, ${r.ingest.eventsPerSecond} events/s; ` +
      `latency p50 ${ms(r.ingest.p50Ms)}, p99 ${ms(r.ingest.p99Ms)}, max ${ms(r.ingest.maxMs)}`,
    `  queries (concurrent): ${r.query.requests} (${r.query.perSecond}/s); latency p50 ${ms(r.query.p50Ms)}, p99 ${ms(r.query.p99Ms)}, max ${ms(r.query.maxMs)}`,
    `  proof: stored ${r.proof.stored}, lost ${r.proof.lost}, doubled ${r.proof.doubled}, invented ${r.proof.invented}, ` +
      `count ${r.proof.countMatches ? 'matches' : 'DIFFERS'}, sum ${r.proof.sumMatches ? 'matches' : 'DIFFERS'}; ` +
      `${r.failures.length} failed requests`,
  ].join('\n');
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '60' },
      'ingest-clients': { type: 'string', default: '4' },
      'query-clients': { type: 'string', default: '2' },
      batch: { type: 'string', default: '200' },
      durability: { type: 'string', default: 'balanced' },
      'memtable-bytes-max': { type: 'string' },
      json: { type: 'string' },
    },
  });
  const report = await runLoad({
    seconds: Number(values.seconds),
    ingestClients: Number(values['ingest-clients']),
    queryClients: Number(values['query-clients']),
    batch: Number(values.batch),
    durability: values.durability as LoadOptions['durability'],
    ...(values['memtable-bytes-max'] === undefined
      ? {}
      : { memtableBytesMax: Number(values['memtable-bytes-max']) }),
  });
  console.log(describeReport(report));
  if (values.json !== undefined) writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
  if (!proven(report)) {
    console.error(report.failures.slice(0, 5).join('\n'));
    process.exit(1);
  }
}
