/**
 * Scale run (ingest only): `npm run bench:scale -- [events] [dir]` (default 10,000,000 events
 * into ./bench-data/scale; the script runs Node under the runtime profile of
 * src/cli/runtime-profile.ts). Prints throughput and RSS every 500k events, then bytes
 * per event on disk, peak RSS and reopen time. Not part of `npm run bench` (it takes minutes).
 */
import { execSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { UsageDb } from '../src/db.ts';
import { Workload } from './workload.ts';

const events = Number(process.argv[2] ?? 10_000_000);
const dir = process.argv[3] ?? './bench-data/scale';
rmSync(dir, { recursive: true, force: true });
const workload = new Workload({ events, seed: 42 });
const db = await UsageDb.open({ dir, durability: 'balanced' });
const started = performance.now();
let insideMs = 0;
let batches = 0;
for (const batch of workload.batches()) {
  const t0 = performance.now();
  await db.ingest(batch.events);
  insideMs += performance.now() - t0;
  if (++batches % 500 === 0) {
    const rssMiB = Math.round(process.memoryUsage().rss / 1048576);
    console.log(
      `${batches * 1000} events  ${Math.round((batches * 1000) / (insideMs / 1000))} events/s  rss ${rssMiB} MiB`,
    );
  }
}
console.log(
  `ingest: ${((performance.now() - started) / 1000).toFixed(1)} s wall, ${Math.round(events / (insideMs / 1000))} events/s inside ingest`,
);
const closeStart = performance.now();
await db.close();
console.log(`close (final flush): ${((performance.now() - closeStart) / 1000).toFixed(1)} s`);
const bytes = Number(execSync(`du -sb ${dir}`).toString().split('\t')[0]);
console.log(`on disk: ${bytes} bytes, ${(bytes / workload.totals.unique).toFixed(2)} bytes/event`);
console.log(`peak RSS: ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
const reopenStart = performance.now();
const reopened = await UsageDb.open({ dir });
console.log(`reopen: ${Math.round(performance.now() - reopenStart)} ms`);
await reopened.close();
