/**
 * A read-only tmpfs mounted for a test, so the real EROFS of the kernel can be observed.
 * Mounting needs root (CI runs as root); elsewhere `mount` fails and the caller skips, saying
 * why.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ReadOnlyMount {
  /** The mount point: an empty directory on a read-only file system. */
  dir: string;
  unmount(): void;
}

/** The mount, or the reason it could not be made (not root, no tmpfs, ...). */
export function mountReadOnly(): ReadOnlyMount | { skipped: string } {
  const dir = mkdtempSync(join(tmpdir(), 'usagedb-ro-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return {
      skipped: `cannot mount a read-only tmpfs (needs root): ${(r.stderr || String(r.error)).trim()}`,
    };
  }
  return {
    dir,
    unmount: () => {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** uid and gid of `nobody`, to run a child where root would ignore permissions; null when not root. */
export function unprivilegedIds(): { uid: number; gid: number } | null {
  return process.getuid?.() === 0 ? { uid: 65_534, gid: 65_534 } : null;
}
