/**
 * Test hooks, for this repository's tests and benchmarks only: not exported from the package
 * entry (src/index.ts), so applications never depend on them.
 */
import { ABANDON, READ_SNAPSHOT, REPLACE_ROLLUP, type UsageDb } from './db.ts';
import type { RollupRows } from './rollup/rollup-rows.ts';
import type { ReadSnapshot } from './storage/snapshot.ts';

/** Drops an instance without any I/O, as a crash of its process would (simulated disks). */
export function abandonForCrashTest(db: UsageDb): void {
  db[ABANDON]();
}

/** A pinned point-in-time view of the database; call `release()` when done with it. */
export function readSnapshot(db: UsageDb): ReadSnapshot {
  return db[READ_SNAPSHOT]();
}

/** Rewrites rollup segment `id` with `mutate` applied to its rows (valid checksums, wrong numbers). */
export function damageRollupForTest(
  db: UsageDb,
  id: number,
  mutate: (rows: RollupRows) => void,
): Promise<void> {
  return db[REPLACE_ROLLUP](id, mutate);
}
