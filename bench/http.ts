/**
 * HTTP ingest for `npm run bench`: the same generated events as the embedded runs, sent as
 * `POST /v1/usage/batch` bodies of 1,000 events by 4 concurrent keep-alive clients (a separate
 * process) to the server over UsageDb (balanced), on loopback. Beside it, the floor of any
 * JSON-over-HTTP ingest on this disk: JSON.parse of the same bodies, append, fsync, nothing
 * else (no HTTP, no validation, no dedupe).
 */
import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { builtModule, type Counts, maxRssBytes, now, percentile } from './common.ts';
import { HTTP_CLIENT_MARKER, type HttpClientResult, readBodies } from './http-client.ts';
import { MONTH_FROM, MONTH_TO, Workload, type WorkloadTotals } from './workload.ts';

const CLIENT = fileURLToPath(new URL('./http-client.ts', import.meta.url));

export interface HttpIngestResult {
  engine: 'usagedb';
  label: string;
  clients: number;
  events: number;
  requests: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  flushSeconds: number;
  counts: Counts;
  expected: WorkloadTotals;
  stored: { count: number; quantitySum: string } | null;
  bodiesFile: string;
  bodyBytes: number;
  /** Server process (the client runs in its own). */
  maxRssBytes: number;
  failures: string[];
}

export interface HttpFloorResult {
  engine: 'floor';
  events: number;
  bodies: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
}

/** Writes the workload's batches as request bodies, one JSON line each. */
function writeBodies(file: string, events: number, seed: number): { totals: WorkloadTotals; bytes: number } {
  const workload = new Workload({ events, seed });
  const fd = openSync(file, 'w');
  let bytes = 0;
  try {
    for (const b of workload.batches()) {
      const line = Buffer.from(`${JSON.stringify({ events: b.events })}\n`);
      writeSync(fd, line);
      bytes += line.length;
    }
  } finally {
    closeSync(fd);
  }
  return { totals: workload.totals, bytes };
}

function runClient(url: string, bodiesFile: string, clients: number): Promise<HttpClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, url, bodiesFile, String(clients)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith(HTTP_CLIENT_MARKER));
      if (code !== 0 || line === undefined)
        reject(new Error(`http client exited ${code}: ${out.slice(-500)}`));
      else resolve(JSON.parse(line.slice(HTTP_CLIENT_MARKER.length)) as HttpClientResult);
    });
  });
}

export async function httpIngestUsagedb(o: {
  dir: string;
  bodiesFile: string;
  events: number;
  seed: number;
  clients: number;
}): Promise<HttpIngestResult> {
  mkdirSync(o.dir, { recursive: true });
  const { totals, bytes } = writeBodies(o.bodiesFile, o.events, o.seed);
  const { UsageDb } = await builtModule<typeof import('../src/index.ts')>('index.js');
  const { closeServer, createServer, DEFAULT_SERVER_CONFIG, listen } =
    await builtModule<typeof import('../src/api/index.ts')>('api/index.js');
  const db = await UsageDb.open({ dir: o.dir, durability: 'balanced' });
  // Request logs off (warn): one line per request is a deployment choice, not the engine's cost.
  const config = { ...DEFAULT_SERVER_CONFIG, port: 0, logLevel: 'warn' as const };
  const app = await createServer({ db, config, logger: pino({ level: 'warn' }) });
  const url = await listen(app, config);
  const client = await runClient(url, o.bodiesFile, o.clients);
  await closeServer(app);
  const f0 = now();
  await db.flush();
  const flushSeconds = (now() - f0) / 1000;
  const { rows } = await db.query({ from: MONTH_FROM, to: MONTH_TO, metrics: ['sum', 'count'] });
  const stored = { count: Number(rows[0]?.count ?? 0), quantitySum: String(rows[0]?.sum ?? '0') };
  await db.close();
  return {
    engine: 'usagedb',
    label: `usagedb HTTP balanced, ${o.clients} clients`,
    clients: o.clients,
    events: client.events,
    requests: client.requests,
    seconds: client.seconds,
    p50Ms: percentile(client.latenciesMs, 50),
    p99Ms: percentile(client.latenciesMs, 99),
    flushSeconds,
    counts: client.counts,
    expected: totals,
    stored,
    bodiesFile: o.bodiesFile,
    bodyBytes: bytes,
    maxRssBytes: maxRssBytes(),
    failures: client.failures.slice(0, 10),
  };
}

/** JSON.parse + append + fsync per body, one body at a time: no engine can ingest these bodies faster durably. */
export function httpFloor(bodiesFile: string, dir: string): HttpFloorResult {
  const bodies = readBodies(bodiesFile);
  mkdirSync(dir, { recursive: true });
  const fd = openSync(join(dir, 'floor.log'), 'w');
  const latencies: number[] = [];
  let events = 0;
  const t0 = now();
  try {
    for (const body of bodies) {
      const b0 = now();
      const parsed = JSON.parse(body.toString('utf8')) as { events: unknown[] };
      events += parsed.events.length;
      writeSync(fd, body);
      fsyncSync(fd);
      latencies.push(now() - b0);
    }
  } finally {
    closeSync(fd);
  }
  return {
    engine: 'floor',
    events,
    bodies: bodies.length,
    seconds: (now() - t0) / 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
}
