/**
 * `npx node bench/raw-dir.ts DIR`: the query suite (q1–q4, `bench/queries.ts`) through the
 * `raw` path on an existing usagedb directory of the bench workload, without building rollups.
 * For re-measuring the raw query path without loading every engine again. The runner loads
 * the built package: run `npm run build` first.
 */
import { percentile } from './common.ts';
import { runQuerySuite, WARMUP_ACCOUNTS } from './queries.ts';
import { usagedbQueryRunner } from './usagedb.ts';
import { querySample } from './workload.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: npx node bench/raw-dir.ts DIR');
const q3Runs = Number(process.argv[3] ?? 10);
const sample = querySample(42, 50 + WARMUP_ACCOUNTS);
const runner = await usagedbQueryRunner(dir, 1000, 'raw');
const result = await runQuerySuite(runner, {
  engine: 'usagedb',
  accounts: sample.slice(0, 50),
  warmup: sample.slice(50),
  q3Runs,
  answersFile: `${dir}.raw-answers.json`,
});
for (const kind of ['q1', 'q2', 'q3', 'q4'] as const) {
  const ms = result.timings.filter((t) => t.kind === kind).map((t) => t.ms);
  console.log(`${kind} p50 ${percentile(ms, 50).toFixed(2)} ms, p95 ${percentile(ms, 95).toFixed(2)} ms`);
}
await runner.close();
