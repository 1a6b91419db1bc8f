/**
 * Child-process entry point: runs one engine phase and prints its result as one JSON line on
 * stdout, after RESULT_MARKER. One process per phase makes peak RSS (maxRSS) belong to exactly
 * that engine and phase, and keeps one engine's caches from warming another's.
 *
 * Engine modules are imported lazily so a phase only loads the engine it measures.
 */
import type { Task, TaskResult } from './common.ts';

export const RESULT_MARKER = '@@bench-result ';

async function run(task: Task): Promise<TaskResult> {
  switch (task.phase) {
    case 'ingest': {
      if (task.engine === 'sqlite')
        return (await import('./sqlite.ts')).ingestSqlite(task.dir, task.events, task.seed);
      if (task.engine === 'duckdb') {
        const { loadDuckdb } = await import('./duckdb.ts');
        return loadDuckdb(
          task.dir,
          task.events,
          task.seed,
          task.order ?? 'account',
          task.quantityType ?? 'decimal38',
        );
      }
      return (await import('./usagedb.ts')).ingestUsagedb({
        dir: task.dir,
        events: task.events,
        seed: task.seed,
        durability: task.durability ?? 'balanced',
        concurrency: task.concurrency ?? 1,
        noFlush: task.noFlush ?? false,
      });
    }
    case 'reopen':
      return (await import('./usagedb.ts')).reopenUsagedb(task.dir, task.expected);
    case 'query': {
      const { runQuerySuite } = await import('./queries.ts');
      const suite = { ...task, engine: task.engine };
      if (task.engine === 'sqlite') {
        const runner = (await import('./sqlite.ts')).sqliteQueryRunner(task.dir);
        const result = await runQuerySuite(runner, suite);
        runner.close();
        return result;
      }
      if (task.engine === 'duckdb') {
        const runner = await (await import('./duckdb.ts')).duckdbQueryRunner(task.dir);
        const result = await runQuerySuite(runner, suite);
        runner.close();
        return { ...result, variant: task.variant };
      }
      const { usagedbQueryRunner } = await import('./usagedb.ts');
      const runner = await usagedbQueryRunner(task.dir, task.pageSize, task.source ?? 'auto');
      const result = await runQuerySuite(runner, suite);
      await runner.close();
      return { ...result, variant: task.variant };
    }
    case 'rollup-build': {
      // In a process of its own: the queries then start from the files, as the other engines'
      // do, not from caches, compiled code and a heap shaped by rewriting the whole store.
      const { usagedbQueryRunner } = await import('./usagedb.ts');
      const runner = await usagedbQueryRunner(task.dir, 1, 'auto');
      const build = await runner.rollup();
      await runner.compact();
      await runner.close();
      return build;
    }
    case 'export': {
      if (task.engine === 'duckdb')
        return (await import('./duckdb.ts')).exportDuckdb(task.dir, task.out, task.verify);
      if (task.engine === 'usagedb')
        return (await import('./usagedb.ts')).exportUsagedb(task.dir, task.out, task.partition ?? 'none');
      throw new Error('SQLite has no Parquet export');
    }
    case 'encode-floor':
      return (await import('./usagedb.ts')).encodeFloor(task.file);
    case 'http-ingest':
      return (await import('./http.ts')).httpIngestUsagedb(task);
    case 'http-floor':
      return (await import('./http.ts')).httpFloor(task.bodiesFile, task.dir);
  }
}

// Only when started as a child (run.ts imports RESULT_MARKER from here).
if (process.argv[1]?.endsWith('worker.ts') && process.argv[2]) {
  const task = JSON.parse(process.argv[2]) as Task;
  // Start each phase from a collected heap so the baseline does not depend on module loading.
  globalThis.gc?.();
  try {
    const result = await run(task);
    process.stdout.write(`${RESULT_MARKER}${JSON.stringify(result)}\n`);
    // Exit explicitly: a timer or handle left behind by an engine must not hang the run
    // (stdout to a pipe is written synchronously on Linux, so nothing is lost).
    process.exit(0);
  } catch (e) {
    const err = e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`${err}\n`);
    process.exit(1);
  }
}
