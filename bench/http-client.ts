/**
 * The HTTP load of `npm run bench`, in its own process so it does not share the server's
 * event loop: N keep-alive connections on loopback, each sending the next request body as
 * soon as its previous one is answered. Bodies are read into memory before the clock starts.
 *
 *   node bench/http-client.ts URL BODIES_FILE CLIENTS
 *
 * Prints one line: RESULT_MARKER + JSON (HttpClientResult).
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';

export const HTTP_CLIENT_MARKER = '@@http-client ';

export interface HttpClientResult {
  requests: number;
  events: number;
  seconds: number;
  latenciesMs: number[];
  counts: { accepted: number; duplicates: number; conflicts: number; rejected: number };
  failures: string[];
}

/** One body per line (each line a complete `{"events":[...]}` object). */
export function readBodies(file: string): Buffer[] {
  const all = readFileSync(file);
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < all.length; i++) {
    if (all[i] !== 0x0a) continue;
    if (i > start) out.push(all.subarray(start, i));
    start = i + 1;
  }
  if (start < all.length) out.push(all.subarray(start));
  return out;
}

function post(agent: Agent, url: URL, body: Buffer): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: '/v1/usage/batch',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function main(): Promise<void> {
  const [urlText, file, clientsText] = process.argv.slice(2);
  const url = new URL(urlText);
  const clients = Number(clientsText);
  const bodies = readBodies(file);
  const eventsPerBody = bodies.map((b) => {
    // Counting commas would be wrong (dimensions); the event objects start with "event_id".
    let n = 0;
    for (let i = b.indexOf('"event_id"'); i !== -1; i = b.indexOf('"event_id"', i + 10)) n++;
    return n;
  });
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const result: HttpClientResult = {
    requests: 0,
    events: 0,
    seconds: 0,
    latenciesMs: [],
    counts: { accepted: 0, duplicates: 0, conflicts: 0, rejected: 0 },
    failures: [],
  };
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) {
      const i = next++;
      const t0 = performance.now();
      const r = await post(agent, url, bodies[i]);
      result.latenciesMs.push(performance.now() - t0);
      result.requests++;
      if (r.status !== 200) {
        result.failures.push(`body ${i}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
        continue;
      }
      const c = JSON.parse(r.text) as HttpClientResult['counts'];
      result.counts.accepted += c.accepted;
      result.counts.duplicates += c.duplicates;
      result.counts.conflicts += c.conflicts;
      result.counts.rejected += c.rejected;
      result.events += eventsPerBody[i];
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, worker));
  result.seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  process.stdout.write(`${HTTP_CLIENT_MARKER}${JSON.stringify(result)}\n`);
}

if (process.argv[1]?.endsWith('http-client.ts') && process.argv[2]) await main();
