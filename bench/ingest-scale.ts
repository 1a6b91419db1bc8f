/**
 * Scale run: `npm run bench:scale -- [events] [dir] [--no-compaction]` (default 10,000,000
 * events into ./bench-data/scale; Node runs under the runtime profile of
 * src/cli/runtime-profile.ts). Not part of `npm run bench` (it takes minutes).
 *
 * Ingests the generated workload in batches of 1,000 (balanced) while calling `tick()` about
 * every 200 batches, as a server's timer would (so background compaction runs as in
 * production), and prints per million events: the rate inside ingest, batch latency p50/p99,
 * RSS, heap, segment count and the database id filter (size, bits per key, probes of
 * per-segment filters). Then: batch p99 with and without a background merge running,
 * compaction totals and write amplification, bytes/event before and after a full compaction
 * (and its throughput), reopen time with the memory the reopened database holds per stored
 * event, a retry probe (retries of random events from the first 1% of history: all must be
 * recognised, p50/p99 per batch) and q1/q4 on the sampled accounts.
 */
import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { rmSync } from 'node:fs';
import { UsageDb } from '../src/db.ts';
import { dedupeState } from '../src/testing.ts';
import { usagedbQueryRunner } from './usagedb.ts';
import { querySample, Workload } from './workload.ts';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const compaction = !process.argv.includes('--no-compaction');
const events = Number(args[0] ?? 10_000_000);
const dir = args[1] ?? './bench-data/scale';
const MILLION = 1_000_000;
const TICK_EVERY_BATCHES = 200;

const pct = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
const mib = (bytes: number): number => Math.round(bytes / 1048576);
const diskBytes = (): number => Number(execSync(`du -sb ${dir}`).toString().split('\t')[0]);

rmSync(dir, { recursive: true, force: true });
const workload = new Workload({ events, seed: 42 });
const db = await UsageDb.open({ dir, durability: 'balanced' });
const started = performance.now();
let insideMs = 0;
let windowMs = 0;
let batches = 0;
let latencies: number[] = [];
const whileMerging: number[] = [];
const withoutMerge: number[] = [];
let ticking: Promise<void> | null = null;
const rates: number[] = [];
// CPU time of the whole process (every thread) per million: steadier than wall time when
// other processes share the machine.
let cpuAt = process.cpuUsage();
// USAGEDB_PROFILE_FROM=M: profile the main thread from the Mth million to the end of ingest.
const profileFrom = Number(process.env.USAGEDB_PROFILE_FROM ?? 0);
const profiler = profileFrom > 0 ? new Session() : null;
profiler?.connect();
// The largest RSS sampled every 50 ms, with what was running then: where the peak comes from.
type RssSample = { rss: number; at: number; what: string };
let rssPeak: RssSample = { rss: 0, at: 0, what: '' };
const rssSampler = setInterval(() => {
  const rss = process.memoryUsage.rss();
  if (rss <= rssPeak.rss) return;
  const m = process.memoryUsage();
  const st = db.stats();
  const f = dedupeState(db).filter;
  rssPeak = {
    rss,
    at: batches * 1000,
    what:
      `heap ${mib(m.heapTotal)}, external ${mib(m.external)} (array buffers ${mib(m.arrayBuffers)}), ` +
      `memtables ${mib(st.memtableBytes)} (${st.frozenMemtables} frozen), id filter ${mib(f.bytes)}, ` +
      `rollup ${st.rollups.running ? 'running' : 'idle'}, compaction ${st.compaction.running ? 'running' : 'idle'}`,
  };
}, 50);
rssSampler.unref();
for (const batch of workload.batches()) {
  const merging = db.stats().compaction.running;
  const t0 = performance.now();
  await db.ingest(batch.events);
  const ms = performance.now() - t0;
  (merging ? whileMerging : withoutMerge).push(ms);
  insideMs += ms;
  windowMs += ms;
  latencies.push(ms);
  batches++;
  if (compaction && batches % TICK_EVERY_BATCHES === 0 && ticking === null) {
    ticking = db.tick().finally(() => {
      ticking = null;
    });
  }
  if ((batches * 1000) % MILLION === 0) {
    latencies.sort((a, b) => a - b);
    const rate = Math.round(MILLION / (windowMs / 1000));
    rates.push(rate);
    const m = process.memoryUsage();
    const s = db.stats();
    const d = dedupeState(db);
    const cpu = process.cpuUsage(cpuAt);
    cpuAt = process.cpuUsage();
    const cpuUs = (cpu.user + cpu.system) / MILLION;
    console.log(
      `${(batches * 1000) / MILLION}M: ${rate} events/s inside ingest, ${cpuUs.toFixed(2)} µs CPU/event, batch p50 ${pct(latencies, 0.5).toFixed(1)} ms ` +
        `p99 ${pct(latencies, 0.99).toFixed(1)} ms, rss ${mib(m.rss)} MiB, heap ${mib(m.heapUsed)}/${mib(m.heapTotal)} MiB, ` +
        `external ${mib(m.external)} MiB (array buffers ${mib(m.arrayBuffers)}), memtables ${mib(s.memtableBytes)} MiB, ` +
        `caches ${mib(d.cacheBytes.segmentFilters)}+${mib(d.cacheBytes.idIndexChunks)}+${mib(d.cacheBytes.pointChunks)} MiB (filters+index+point), ` +
        `segments ${s.segments}, merges ${s.compaction.merges}; id filter ${mib(d.filter.bytes)} MiB ` +
        `(${d.filter.bitsPerKey.toFixed(1)} bits/key, ${d.filter.rebuilds} rebuilds, ${d.filter.writes} writes), ` +
        `cold lookups ${d.counters.coldLookups}, segment-filter probes ${d.counters.segmentFilterProbes}, ` +
        `id index chunk reads ${d.counters.idIndexChunkReads}; rollups ${s.rollups.segmentsBuilt} built, ` +
        `${s.rollups.merges} merges, ${mib(s.rollups.bytesWritten)} MiB written, ${(s.rollups.buildMs / 1000).toFixed(1)} s (totals so far)`,
    );
    latencies = [];
    windowMs = 0;
    if (profiler !== null && (batches * 1000) / MILLION === profileFrom) {
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.start');
    }
  }
}
if (profiler !== null) {
  const { profile } = await profiler.post('Profiler.stop');
  writeFileSync(`ingest-${profileFrom}M.cpuprofile`, JSON.stringify(profile));
}
if (ticking !== null) await ticking;
console.log(
  `ingest: ${((performance.now() - started) / 1000).toFixed(1)} s wall, ${Math.round(events / (insideMs / 1000))} events/s inside ingest`,
);
if (rates.length >= 2) {
  console.log(`last million / first million: ${((rates[rates.length - 1] / rates[0]) * 100).toFixed(0)}%`);
}
whileMerging.sort((a, b) => a - b);
withoutMerge.sort((a, b) => a - b);
console.log(
  `batch p99: ${pct(withoutMerge, 0.99).toFixed(1)} ms without a background merge (${withoutMerge.length} batches), ` +
    (whileMerging.length > 0
      ? `${pct(whileMerging, 0.99).toFixed(1)} ms while one ran (${whileMerging.length} batches)`
      : 'no batch ran beside a merge'),
);
{
  const d = dedupeState(db);
  const probesPerEvent = d.filter.probes / events;
  console.log(
    `dedupe: database filter ${d.filter.probes} probes (${probesPerEvent.toFixed(3)} per event sent), ` +
      `${d.counters.segmentFilterProbes} per-segment filter probes (${(d.counters.segmentFilterProbes / events).toFixed(4)} per event), ` +
      `${d.counters.segmentFilterLoads} filter loads, ${d.counters.idIndexChunkReads} id index chunk reads; ` +
      `caches ${mib(d.cacheBytes.segmentFilters)} + ${mib(d.cacheBytes.idIndexChunks)} + ${mib(d.cacheBytes.pointChunks)} MiB`,
  );
}
const closeStart = performance.now();
await db.flush();
const s = db.stats();
const amplification = (s.flushedBytes + s.compaction.bytesWritten) / Math.max(1, s.flushedBytes);
console.log(
  `compaction: ${s.compaction.merges} merges of ${s.compaction.segmentsMerged} segments, ` +
    `${mib(s.compaction.bytesWritten)} MiB written, write amplification ${amplification.toFixed(2)}, ` +
    `${s.segments} segments live`,
);
await db.close();
console.log(`close (final flush): ${((performance.now() - closeStart) / 1000).toFixed(1)} s`);
const before = diskBytes();
console.log(`on disk: ${before} bytes, ${(before / workload.totals.unique).toFixed(2)} bytes/event`);
console.log(`peak RSS: ${mib(process.resourceUsage().maxRSS * 1024)} MiB`);
clearInterval(rssSampler);
console.log(
  `largest RSS sampled (every 50 ms): ${mib(rssPeak.rss)} MiB after ${(rssPeak.at / MILLION).toFixed(2)}M events: ${rssPeak.what}`,
);

// Opens and closes the database once (one process owns a directory at a time).
await reportHeldMemory();
const reopenStart = performance.now();
const reopened = await UsageDb.open({ dir });
console.log(`reopen: ${Math.round(performance.now() - reopenStart)} ms`);
const compactStart = performance.now();
const merged = await reopened.compact();
const compactSec = (performance.now() - compactStart) / 1000;
if (merged !== null) {
  console.log(
    `full compaction: ${merged.inputSegments} segments, ${(merged.inputRows / compactSec / 1000).toFixed(0)}k rows/s, ` +
      `${merged.duplicatesDropped} duplicates dropped, ${merged.quarantinedRows} quarantined`,
  );
}
await reopened.close();
const after = diskBytes();
console.log(`after full compaction: ${(after / workload.totals.unique).toFixed(2)} bytes/event`);

// Retry probe: random events of the first 1% of history, resent after everything above.
const early = new Workload({ events: Math.max(1_000, Math.floor(events / 100)), seed: 42 });
const pool: unknown[] = [];
for (const batch of early.batches()) for (const e of batch.events) pool.push(e);
const probeDb = await UsageDb.open({ dir });
const probeLatencies: number[] = [];
let recognised = 0;
let probed = 0;
for (let i = 0; i < 200; i++) {
  const sample = Array.from({ length: 10 }, () => pool[Math.floor(Math.random() * pool.length)]);
  const t0 = performance.now();
  const r = await probeDb.ingest(sample);
  probeLatencies.push(performance.now() - t0);
  recognised += r.duplicates + r.conflicts;
  probed += sample.length - r.rejected;
}
probeLatencies.sort((a, b) => a - b);
console.log(
  `retry probe: ${recognised}/${probed} recognised (duplicates or conflicts), batch of 10 p50 ` +
    `${pct(probeLatencies, 0.5).toFixed(2)} ms p99 ${pct(probeLatencies, 0.99).toFixed(2)} ms`,
);
await probeDb.close();

// q1 and q4 on the sampled accounts, as `npm run bench` asks them.
const runner = await usagedbQueryRunner(dir, 1000, 'raw');
for (const kind of ['q1', 'q4'] as const) {
  const times: number[] = [];
  for (const a of querySample(42, 20)) {
    const t0 = performance.now();
    (await runner[kind](a))();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(`${kind}: p50 ${pct(times, 0.5).toFixed(1)} ms, p95 ${pct(times, 0.95).toFixed(1)} ms`);
}
await runner.close();

/**
 * Memory a freshly opened database holds: heap and array buffers after a GC with it open,
 * minus the same after closing it (so only what it held, nothing the run left behind).
 */
async function reportHeldMemory(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return;
  const used = (): number => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const stored = workload.totals.unique;
  // The database lives only inside this call, so it is garbage once the call returns.
  const measure = async (): Promise<{ withDb: number; line: string }> => {
    const open = await UsageDb.open({ dir });
    const withDb = used();
    const d = dedupeState(open);
    const line =
      `id filter ${(d.filter.bytes / stored).toFixed(2)} B/event at ${d.filter.bitsPerKey.toFixed(1)} bits/key, ` +
      `${open.stats().segments} segments`;
    await open.close();
    return { withDb, line };
  };
  const { withDb, line } = await measure();
  const held = withDb - used();
  console.log(
    `held by a reopened database: ${mib(held)} MiB, ${(held / stored).toFixed(2)} bytes/stored event (${line}; ` +
      'the rest: segment footers, WAL and memtable buffers)',
  );
}
