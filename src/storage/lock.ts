/**
 * One process owns a data directory: `db_root/LOCK`, created exclusively, names its owner.
 *
 * Invariants:
 * - while a UsageDb is open, LOCK exists and names this process, and this process's registry
 *   holds the path (so a second open in the same process is refused too);
 * - a LOCK left by a dead process (kill -9, power loss) is taken over; one naming a live
 *   process is never taken over.
 */
import { hostname } from 'node:os';
import { UsageDbError } from '../errors.ts';
import { type FileSystem, isFsError, joinPath } from './fs/file-system.ts';
import { LOCK_FILE } from './layout.ts';

interface LockOwner {
  pid: number;
  hostname: string;
  acquired_at_ms: number;
}

const heldByThisProcess = new WeakMap<FileSystem, Set<string>>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function lockedError(dir: string, owner: LockOwner | null): UsageDbError {
  const who = owner ? `process ${owner.pid} on ${owner.hostname}` : 'another process';
  return new UsageDbError(
    'USAGEDB_ERR_LOCKED',
    `data directory ${dir} is locked by ${who} (${joinPath(dir, LOCK_FILE)})`,
  );
}

async function readOwner(fs: FileSystem, path: string): Promise<LockOwner | null> {
  try {
    return JSON.parse(new TextDecoder().decode(await fs.readFile(path))) as LockOwner;
  } catch {
    return null;
  }
}

export class DirectoryLock {
  private readonly fs: FileSystem;
  private readonly path: string;
  private released = false;

  private constructor(fs: FileSystem, path: string) {
    this.fs = fs;
    this.path = path;
  }

  static async acquire(fs: FileSystem, dir: string, nowMs: number): Promise<DirectoryLock> {
    const path = joinPath(dir, LOCK_FILE);
    const held = heldByThisProcess.get(fs) ?? new Set<string>();
    heldByThisProcess.set(fs, held);
    if (held.has(path)) throw lockedError(dir, { pid: process.pid, hostname: hostname(), acquired_at_ms: 0 });
    const owner: LockOwner = { pid: process.pid, hostname: hostname(), acquired_at_ms: nowMs };
    const content = new TextEncoder().encode(`${JSON.stringify(owner)}\n`);
    try {
      await fs.createExclusive(path, content);
    } catch (err) {
      if (!isFsError(err, 'EEXIST')) throw err;
      const existing = await readOwner(fs, path);
      // Our own pid but not in our registry: left by an instance of this process that crashed (simulated).
      const stale =
        existing !== null &&
        existing.hostname === owner.hostname &&
        (existing.pid === process.pid || !processAlive(existing.pid));
      if (!stale) throw lockedError(dir, existing);
      await fs.unlink(path);
      try {
        await fs.createExclusive(path, content);
      } catch (again) {
        if (isFsError(again, 'EEXIST')) throw lockedError(dir, await readOwner(fs, path));
        throw again;
      }
    }
    held.add(path);
    return new DirectoryLock(fs, path);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldByThisProcess.get(this.fs)?.delete(this.path);
    try {
      await this.fs.unlink(this.path);
    } catch (err) {
      if (!isFsError(err, 'ENOENT')) throw err;
    }
  }

  /** Forgets the lock without touching the disk (a simulated crash of this instance). */
  abandon(): void {
    this.released = true;
    heldByThisProcess.get(this.fs)?.delete(this.path);
  }
}
