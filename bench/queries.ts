/**
 * The four billing questions, run the same way against every engine: the same
 * accounts, in the same order, timed from the call to a fully materialised JS result
 * (normalisation for the answer check happens outside the timing).
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
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
 * Untimed queries before the timed ones. A billing database is a long-running process: the
 * figures are its steady state, not the first queries of a fresh process, when a JS engine
 * still interprets or re-optimises its query code (and DuckDB and SQLite fill their plan
 * caches). Each question is asked WARMUP_PASSES times of WARMUP_ACCOUNTS accounts outside the
 * sample right before its own timed accounts, so one question's warm-up garbage (q4 reads
 * thousands of raw events) is not collected in the middle of another's timing. Every engine
 * gets the same warm-up; no measured account is queried before it is timed.
 */
export const WARMUP_ACCOUNTS = 100;
export const WARMUP_PASSES = 3;
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
  const timings: QueryTiming[] = [];
  const answers: Record<QueryKind, Record<string, string[]>> = { q1: {}, q2: {}, q3: {}, q4: {} };
  const record = (kind: QueryKind, key: string, ms: number, rows: string[]): void => {
    timings.push({ kind, key, ms, rows: rows.length, digest: digest(rows) });
    answers[kind][key] = rows;
  };

  // One turn of the event loop before each query, untimed, as a server has between requests:
  // work an engine leaves to the event loop (I/O callbacks, background steps) runs there, not
  // inside the next timed call. A loop of queries that never waits for I/O would starve it.
  for (const kind of ['q1', 'q2', 'q4'] as const) {
    // Untimed passes of this question on accounts outside the sample: open files, fill JIT and
    // plan caches the same way for every engine, without pre-warming any measured account.
    for (let pass = 0; pass < WARMUP_PASSES; pass++)
      for (const a of opts.warmup) {
        await nextTurn();
        (await runner[kind](a))();
      }
    for (const a of opts.accounts) {
      await nextTurn();
      const t0 = now();
      const pending = await runner[kind](a);
      const ms = now() - t0;
      record(kind, a.account_id, ms, pending());
    }
  }
  await nextTurn();
  (await runner.q3())();
  for (let i = 0; i < opts.q3Runs; i++) {
    await nextTurn();
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
