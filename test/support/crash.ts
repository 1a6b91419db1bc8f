/** Crash-point sweeps: crash a simulated disk at the n-th file-system call of some work. */
import type { UsageDb } from '../../src/db.ts';
import { SimulatedCrashError } from '../../src/storage/fs/sim-file-system.ts';
import { abandonForCrashTest } from '../../src/testing.ts';
import type { SimDb } from './events.ts';

/**
 * Runs `work` (then a clean close) on `db` with the disk set to crash at its `n`-th call from
 * now (tearing the write on even points), drops the instance as a dead process would, restarts
 * the disk and reopens: the database as the next process would find it.
 */
export async function crashDuring(
  sim: SimDb,
  db: UsageDb,
  n: number,
  work: (db: UsageDb) => Promise<unknown>,
): Promise<UsageDb> {
  sim.fs.crashAt(sim.fs.callCount + n, { tornWrites: n % 2 === 0 });
  try {
    await work(db);
    await db.close();
  } catch (err) {
    if (!(err instanceof SimulatedCrashError) && !sim.fs.halted) throw err;
  }
  abandonForCrashTest(db);
  if (sim.fs.halted) sim.fs.restart();
  return sim.open();
}
