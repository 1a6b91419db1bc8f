/**
 * `npm run bench:queries -- DIR`: the query suite (q1–q4, `bench/queries.ts`) through the
 * `auto` path on an existing usagedb directory of the bench workload (e.g. `usagedb-balanced`
 * left by `npm run bench -- --10m`), after `db.rollup()` builds and merges what is missing.
 * For re-measuring the query paths without loading every engine again.
 */
import { percentile } from './common.ts';
import { runQuerySuite, WARMUP_ACCOUNTS } from './queries.ts';
import { usagedbQueryRunner } from './usagedb.ts';
import { querySample } from './workload.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: npm run bench:queries -- DIR');
const sample = querySample(42, 50 + WARMUP_ACCOUNTS);
const runner = await usagedbQueryRunner(dir, 1000, 'auto');
const t0 = performance.now();
const built = await runner.rollup();
console.log(
  `db.rollup(): ${((performance.now() - t0) / 1000).toFixed(1)} s (${built.rows} events newly rolled up)`,
);
const result = await runQuerySuite(runner, {
  engine: 'usagedb',
  accounts: sample.slice(0, 50),
  warmup: sample.slice(50),
  q3Runs: 20,
  answersFile: `${dir}.answers.json`,
});
for (const kind of ['q1', 'q2', 'q3', 'q4'] as const) {
  const ms = result.timings.filter((t) => t.kind === kind).map((t) => t.ms);
  console.log(`${kind} p50 ${percentile(ms, 50).toFixed(2)} ms, p95 ${percentile(ms, 95).toFixed(2)} ms`);
}
await runner.close();
