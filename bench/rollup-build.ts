/**
 * `npx node bench/rollup-build.ts N DIR`: rollup build throughput. Loads N bench events into
 * `DIR/base` (batches of 1,000, durability 'balanced', no tick; skipped when already loaded),
 * copies it to `DIR/run` (no rollups yet) and times `db.rollup()` there: builds of every raw
 * segment (hour and day), the combine of their day rows into the other levels, any merges,
 * files written and fsynced. Then a phase breakdown, in this thread, over the same raw segment
 * files. `ROLLUP_DIST=1` times the built package (`dist/`, after `npm run build`) as
 * `npm run bench` does, instead of the sources through Node's type stripping.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { EventColumns } from '../src/model/columns.ts';
import { UsageDb as SourceUsageDb } from '../src/index.ts';
import { encodeRollupFile } from '../src/rollup/rollup-file.ts';
import {
  type BuildPhases,
  buildRollupLevels,
  combineDayRows,
  ROLLUP_SOURCE_COLUMNS,
  type RollupRows,
} from '../src/rollup/rollup-rows.ts';
import { CARRIED_LEVELS } from '../src/rollup/rollup-job.ts';
import { SegmentReader } from '../src/storage/segment/segment-reader.ts';
import { builtModule } from './common.ts';
import { Workload } from './workload.ts';

const UsageDb =
  process.env.ROLLUP_DIST === '1'
    ? (await builtModule<typeof import('../src/index.ts')>('index.js')).UsageDb
    : SourceUsageDb;

const events = Number(process.argv[2]);
const dir = process.argv[3];
if (!(events > 0) || dir === undefined) throw new Error('usage: npx node bench/rollup-build.ts N DIR');
const base = join(dir, 'base');
const run = join(dir, 'run');
const marker = join(dir, 'loaded.json');

if (!existsSync(marker)) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  const t0 = performance.now();
  const db = await UsageDb.open({ dir: base, durability: 'balanced' });
  const workload = new Workload({ events, seed: 1 });
  for (const batch of workload.batches()) await db.ingest(batch.events);
  await db.flush();
  await db.close();
  writeFileSync(marker, JSON.stringify({ events, unique: workload.totals.unique }));
  console.log(`loaded ${events} events in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
const loaded = JSON.parse(readFileSync(marker, 'utf8')) as { events: number };
if (loaded.events !== events) throw new Error(`${dir} holds ${loaded.events} events, not ${events}`);

rmSync(run, { recursive: true, force: true });
cpSync(base, run, { recursive: true });

const db = await UsageDb.open({ dir: run, durability: 'balanced' });
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const mainCpu0 = process.threadCpuUsage();
const result = await db.rollup();
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const mainCpu = process.threadCpuUsage(mainCpu0);
const stats = db.stats().rollups;
await db.close();
const rollupBytes = readdirSync(join(run, 'rollup')).reduce(
  (n, f) => n + readFileSync(join(run, 'rollup', f)).length,
  0,
);
console.log(
  `db.rollup(): ${result.rawRows} events from ${result.segments} raw segments in ${(wallMs / 1000).toFixed(2)} s` +
    ` = ${Math.round(result.rawRows / (wallMs / 1000)).toLocaleString('en-US')} events/s` +
    ` (${stats.merges} merges, ${(rollupBytes / 2 ** 20).toFixed(1)} MiB of rollup files;` +
    ` CPU of every thread ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s,` +
    ` of the main thread ${((mainCpu.user + mainCpu.system) / 1e6).toFixed(2)} s, load average ${loadavg()[0].toFixed(1)})`,
);

// Phase breakdown, in this thread (the build itself runs in workers), as db.rollup() does it
// from scratch: per raw segment read its columns, group hour rows, derive day rows, encode the
// hour file; then sum every segment's day rows, derive the other levels from the sum and
// encode one file each. ROLLUP_PHASES=0 skips it.
if (process.env.ROLLUP_PHASES === '0') process.exit(0);
const phases: BuildPhases = { readMs: 0, linesMs: 0, hourMs: 0, dayMonthMs: 0, rowsMs: 0, meterMs: 0 };
let encodeMs = 0;
const carried: RollupRows[] = [];
const rawDir = join(run, 'raw');
let rows = 0;
const cpuPhases0 = process.cpuUsage();
for (const f of readdirSync(rawDir).sort()) {
  const bytes = new Uint8Array(readFileSync(join(rawDir, f)));
  const r0 = performance.now();
  const columns = SegmentReader.fromBytes(bytes).readColumns(ROLLUP_SOURCE_COLUMNS) as EventColumns;
  phases.readMs += performance.now() - r0;
  rows += columns.rowCount;
  const levels = buildRollupLevels(columns, phases, true);
  const e0 = performance.now();
  encodeRollupFile(levels.get('hour') as RollupRows, 'hour');
  encodeMs += performance.now() - e0;
  carried.push(levels.get('day') as RollupRows);
}
const c0 = performance.now();
const combined = combineDayRows(carried);
const combine: string[] = [`day rows summed, other levels derived ${ms(performance.now() - c0)}`];
for (const level of CARRIED_LEVELS) {
  const rowsOf = combined.get(level) as RollupRows;
  const e0 = performance.now();
  encodeRollupFile(rowsOf, level);
  combine.push(`${level} ${rowsOf.rowCount} rows: encode ${ms(performance.now() - e0)}`);
}
const cpuPhases = process.cpuUsage(cpuPhases0);
function ms(x: number): string {
  return `${x.toFixed(0)} ms`;
}
console.log(
  `phases over ${rows} raw rows (one thread, CPU ${((cpuPhases.user + cpuPhases.system) / 1e6).toFixed(2)} s):` +
    ` read columns ${ms(phases.readMs)}, line ids ${ms(phases.linesMs)}, hour groups ${ms(phases.hourMs)},` +
    ` day from hour rows ${ms(phases.dayMonthMs)}, groups->rows ${ms(phases.rowsMs)},` +
    ` encode+compress hour files ${ms(encodeMs)}; combine ${combine.join('; ')}`,
);
