/**
 * Test hooks, for this repository's tests and benchmarks only: not exported from the package
 * entry (src/index.ts), so applications never depend on them.
 */
import { ABANDON, READ_SNAPSHOT, type UsageDb } from './db.ts';
import type { ReadSnapshot } from './storage/snapshot.ts';

/** Drops an instance without any I/O, as a crash of its process would (simulated disks). */
export function abandonForCrashTest(db: UsageDb): void {
  db[ABANDON]();
}

/** A pinned point-in-time view of the database; call `release()` when done with it. */
export function readSnapshot(db: UsageDb): ReadSnapshot {
  return db[READ_SNAPSHOT]();
}
