/**
 * One process owns a data directory: `db_root/LOCK`, created exclusively, names its owner.
 *
 * Invariants:
 * - while a UsageDb is open, LOCK exists and names this process, and the process-wide registry
 *   holds the directory's canonical name (the same for every spelling of the path and every
 *   FileSystem instance over the same disk), so a second open in this process is refused too;
 * - a LOCK left by a dead process on this host (kill -9, power loss) is taken over; one naming
 *   a live process, another host, or unreadable, never is;
 * - a LOCK naming this very process is taken over only when this process gave it up without
 *   removing the file: a test abandoned the instance (simulated crash) or the unlink failed.
 *   Never because the registry merely does not know the path.
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

/** Canonical names of the directories this process holds open. */
const heldByThisProcess = new Set<string>();
/** Canonical names whose LOCK still names this process although no instance holds it. */
const abandonedByThisProcess = new Set<string>();

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
  private readonly key: string;
  private released = false;

  private constructor(fs: FileSystem, path: string, key: string) {
    this.fs = fs;
    this.path = path;
    this.key = key;
  }

  /** `dir` must exist. */
  static async acquire(fs: FileSystem, dir: string, nowMs: number): Promise<DirectoryLock> {
    const path = joinPath(dir, LOCK_FILE);
    const key = await fs.canonicalName(dir);
    const self: LockOwner = { pid: process.pid, hostname: hostname(), acquired_at_ms: nowMs };
    if (heldByThisProcess.has(key)) throw lockedError(dir, self);
    // Registered before the first await below: a concurrent open in this process is refused.
    heldByThisProcess.add(key);
    try {
      await DirectoryLock.createLockFile(fs, dir, path, key, self);
    } catch (err) {
      heldByThisProcess.delete(key);
      throw err;
    }
    abandonedByThisProcess.delete(key);
    return new DirectoryLock(fs, path, key);
  }

  private static async createLockFile(
    fs: FileSystem,
    dir: string,
    path: string,
    key: string,
    self: LockOwner,
  ): Promise<void> {
    const content = new TextEncoder().encode(`${JSON.stringify(self)}\n`);
    try {
      await fs.createExclusive(path, content);
      return;
    } catch (err) {
      if (!isFsError(err, 'EEXIST')) throw err;
    }
    const existing = await readOwner(fs, path);
    const sameHost = existing !== null && existing.hostname === self.hostname;
    const stale =
      sameHost &&
      (existing.pid === process.pid ? abandonedByThisProcess.has(key) : !processAlive(existing.pid));
    if (!stale) throw lockedError(dir, existing);
    await fs.unlink(path);
    try {
      await fs.createExclusive(path, content);
    } catch (again) {
      if (isFsError(again, 'EEXIST')) throw lockedError(dir, await readOwner(fs, path));
      throw again;
    }
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldByThisProcess.delete(this.key);
    try {
      await this.fs.unlink(this.path);
    } catch (err) {
      if (isFsError(err, 'ENOENT')) return;
      // The file still names this process, and no instance holds it: a later open may take it.
      abandonedByThisProcess.add(this.key);
      throw err;
    }
  }

  /** Forgets the lock without touching the disk (a simulated crash of this instance; tests only). */
  abandon(): void {
    this.released = true;
    heldByThisProcess.delete(this.key);
    abandonedByThisProcess.add(this.key);
  }
}
