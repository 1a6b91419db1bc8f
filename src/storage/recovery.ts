/**
 * Recovery at open: the newest valid manifest, the WAL files it does not cover replayed into a
 * memtable, leftovers removed. Reads no segment data, so reopening stays fast.
 *
 * Invariants:
 * - WAL files numbered >= manifest.wal_start are replayed in order; only the newest may end in
 *   a torn tail, anything else damaged refuses the open (WalCorruptError);
 * - a rollback past corrupt generations is allowed only when no event can be lost: the WAL
 *   file `wal_start` of the generation we roll back to must still exist, otherwise refuse.
 */
import { UsageDbError } from '../errors.ts';
import { parseWalFileName, readWalFile, walFileName } from '../ingest/wal.ts';
import { decodeWalBatch } from '../ingest/wal-batch.ts';
import type { StoredEvent } from '../model/event.ts';
import { type FileSystem, isFsError, joinPath } from './fs/file-system.ts';
import { MANIFEST_DIR, TMP_DIR, WAL_DIR } from './layout.ts';
import { type LoadedManifest, ManifestStore } from './manifest.ts';

export interface ReplayedWal {
  events: StoredEvent[];
  /** The newest WAL file and its valid length, to keep appending to; null when none exists. */
  last: { fileNumber: number; validBytes: number } | null;
  tornTail: boolean;
}

export async function walNumbersOnDisk(fs: FileSystem, root: string): Promise<number[]> {
  return (await fs.readdir(joinPath(root, WAL_DIR)))
    .map(parseWalFileName)
    .filter((n): n is number => n !== null)
    .sort((a, b) => a - b);
}

/** Loads the manifest, refusing a rollback that would lose events. */
export async function loadManifest(fs: FileSystem, root: string): Promise<LoadedManifest | null> {
  const store = new ManifestStore(fs, joinPath(root, MANIFEST_DIR));
  const loaded = await store.load();
  if (loaded === null) {
    if ((await walNumbersOnDisk(fs, root)).length > 0) {
      throw new UsageDbError(
        'USAGEDB_ERR_MANIFEST_CORRUPT',
        `${root} has WAL files but no manifest; refusing to start rather than guess`,
      );
    }
    return null;
  }
  if (loaded.skippedGenerations.length > 0) {
    const walStart = loaded.state.wal_start;
    if (!(await fs.exists(joinPath(root, WAL_DIR, walFileName(walStart))))) {
      throw new UsageDbError(
        'USAGEDB_ERR_MANIFEST_CORRUPT',
        `manifest generation(s) ${loaded.skippedGenerations.join(', ')} are corrupt, and rolling back to generation ` +
          `${loaded.state.generation} would lose events (its WAL file ${walStart} is gone); refusing to start`,
      );
    }
  }
  return loaded;
}

/** Replays every WAL file from `walStart` on; deletes older leftovers. */
export async function replayWal(fs: FileSystem, root: string, walStart: number): Promise<ReplayedWal> {
  const numbers = await walNumbersOnDisk(fs, root);
  const events: StoredEvent[] = [];
  let last: ReplayedWal['last'] = null;
  let tornTail = false;
  const live = numbers.filter((n) => n >= walStart);
  for (let i = 0; i < live.length; i++) {
    const n = live[i];
    if (i > 0 && n !== live[i - 1] + 1) {
      throw new UsageDbError(
        'USAGEDB_ERR_WAL_CORRUPT',
        `WAL file ${live[i - 1] + 1} is missing (found ${n})`,
      );
    }
    const path = joinPath(root, WAL_DIR, walFileName(n));
    const isLast = i === live.length - 1;
    const read = readWalFile(path, await fs.readFile(path), n, isLast);
    for (const record of read.records) {
      for (const e of decodeWalBatch(record)) events.push(e);
    }
    if (isLast) {
      last = { fileNumber: n, validBytes: read.validBytes };
      tornTail = read.tornTail;
    }
  }
  for (const n of numbers) {
    if (n < walStart) await fs.unlink(joinPath(root, WAL_DIR, walFileName(n)));
  }
  return { events, last, tornTail };
}

/** Removes tmp files left by an interrupted write. */
export async function removeTmpFiles(fs: FileSystem, root: string): Promise<void> {
  const tmpDir = joinPath(root, TMP_DIR);
  try {
    for (const name of await fs.readdir(tmpDir)) await fs.unlink(joinPath(tmpDir, name));
  } catch (err) {
    if (!isFsError(err, 'ENOENT')) throw err;
  }
}
