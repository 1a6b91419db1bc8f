/**
 * The four billing questions, run the same way against every engine: the same
 * accounts, in the same order, timed from the call to a fully materialised JS result
 * (normalisation for the answer check happens outside the timing).
 */
import { writeFileSync } from 'node:fs';
import {
  digest,
  type Engine,
  maxRssBytes,
  now,
  type PendingAnswer,
  type QueryKind,
  type QueryResult,
  type QueryTiming,
} from './common.ts';
import type { QueryAccount } from './workload.ts';

/**
 * q1 monthly usage of one account by (product, meter, model, unit);
 * q2 daily usage of one account by (day, meter, unit) — units are never summed together;
 * q3 top 100 accounts by tokens.output for the month (ties by account_id ascending);
 * q4 raw audit of one account + meter + model for the month, ordered by (timestamp_ms, event_id).
 */
export interface QueryRunner {
  q1(a: QueryAccount): Promise<PendingAnswer>;
  q2(a: QueryAccount): Promise<PendingAnswer>;
  q3(): Promise<PendingAnswer>;
  q4(a: QueryAccount): Promise<PendingAnswer>;
}

export const Q3_METER = 'tokens.output';
/**
 * Untimed accounts before the timed ones. A billing database is a long-running process: the
 * figures are its steady state, not the first queries of a fresh process, when a JS engine
 * still interprets its query code (and DuckDB and SQLite fill their plan caches). Every engine
 * gets the same warm-up; no measured account is queried before it is timed.
 */
export const WARMUP_ACCOUNTS = 20;
export const Q3_LIMIT = 100;

export interface QuerySuiteOptions {
  engine: Engine;
  accounts: QueryAccount[];
  /** Accounts outside the sample, queried untimed first (see WARMUP_ACCOUNTS). */
  warmup: readonly QueryAccount[];
  q3Runs: number;
  answersFile: string;
}

export async function runQuerySuite(runner: QueryRunner, opts: QuerySuiteOptions): Promise<QueryResult> {
  // The garbage of the setup (a load, a rollup build, a compaction in this process) collected
  // now, not in the middle of the timed queries (the bench runs with --expose-gc).
  (globalThis as { gc?: () => void }).gc?.();
  // Untimed passes on accounts outside the sample: open files, fill JIT and plan caches the
  // same way for every engine, without pre-warming any measured account.
  for (const a of opts.warmup) for (const kind of ['q1', 'q2', 'q4'] as const) (await runner[kind](a))();
  (await runner.q3())();

  const timings: QueryTiming[] = [];
  const answers: Record<QueryKind, Record<string, string[]>> = { q1: {}, q2: {}, q3: {}, q4: {} };
  const record = (kind: QueryKind, key: string, ms: number, rows: string[]): void => {
    timings.push({ kind, key, ms, rows: rows.length, digest: digest(rows) });
    answers[kind][key] = rows;
  };

  for (const kind of ['q1', 'q2', 'q4'] as const) {
    for (const a of opts.accounts) {
      const t0 = now();
      const pending = await runner[kind](a);
      const ms = now() - t0;
      record(kind, a.account_id, ms, pending());
    }
  }
  for (let i = 0; i < opts.q3Runs; i++) {
    const t0 = now();
    const pending = await runner.q3();
    const ms = now() - t0;
    const rows = pending();
    // Only the first run's answer is kept for the cross-engine check; later runs must agree.
    if (i === 0) record('q3', 'top100', ms, rows);
    else timings.push({ kind: 'q3', key: 'top100', ms, rows: rows.length, digest: digest(rows) });
  }

  writeFileSync(opts.answersFile, JSON.stringify(answers));
  return { engine: opts.engine, timings, maxRssBytes: maxRssBytes(), notes: [] };
}
