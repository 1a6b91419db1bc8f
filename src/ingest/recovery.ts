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
import { assert, UsageDbError } from '../errors.ts';
import type { StoredEvent } from '../model/event.ts';
import { type FileSystem, isFsError, joinPath } from '../storage/fs/file-system.ts';
import { MANIFEST_DIR, TMP_DIR, WAL_DIR } from '../storage/layout.ts';
import { type LoadedManifest, ManifestStore } from '../storage/manifest.ts';
import { parseWalFileName, readWalFile, WAL_HEADER_BYTES, WAL_TMP_SUFFIX, walFileName } from './wal.ts';
import { decodeWalBatch } from './wal-batch.ts';

export interface ReplayedWal {
  events: StoredEvent[];
  /** The newest WAL file and its valid length, to keep appending to. */
  last: { fileNumber: number; validBytes: number };
  /** What a torn tail cost: a crash mid-write loses only unacknowledged bytes, but say so. */
  tornTail: TornTailReport;
}

export interface TornTailReport {
  files: number;
  bytes: number;
  /** Damaged records cut (a torn tail is at most one partial record). */
  records: number;
}

export async function walNumbersOnDisk(fs: FileSystem, root: string): Promise<number[]> {
  return (await fs.readdir(joinPath(root, WAL_DIR)))
    .map(parseWalFileName)
    .filter((n): n is number => n !== null)
    .sort((a, b) => a - b);
}

async function isEmptyWalFile(fs: FileSystem, root: string, fileNumber: number): Promise<boolean> {
  const path = joinPath(root, WAL_DIR, walFileName(fileNumber));
  try {
    return readWalFile(path, await fs.readFile(path), fileNumber, true).validBytes === WAL_HEADER_BYTES;
  } catch (err) {
    if (err instanceof UsageDbError) return false;
    throw err;
  }
}

/** Loads the manifest, refusing a rollback that would lose events. */
export async function loadManifest(fs: FileSystem, root: string): Promise<LoadedManifest | null> {
  const store = new ManifestStore(fs, joinPath(root, MANIFEST_DIR));
  const loaded = await store.load();
  if (loaded === null) {
    const wal = await walNumbersOnDisk(fs, root);
    // A database is created WAL file first, manifest second: a crash between leaves an empty
    // first WAL file, which holds nothing.
    if (wal.length === 1 && wal[0] === 1 && (await isEmptyWalFile(fs, root, 1))) return null;
    if (wal.length > 0) {
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

/**
 * Replays every WAL file from `walStart` on; deletes older leftovers and WAL files whose
 * creation never finished (tmp names). The manifest names `walStart`, so that file must exist:
 * a missing or emptied file there, or a gap after it, means acknowledged events are gone, and
 * the open is refused rather than served short.
 */
export async function replayWal(fs: FileSystem, root: string, walStart: number): Promise<ReplayedWal> {
  const walDir = joinPath(root, WAL_DIR);
  for (const name of await fs.readdir(walDir)) {
    if (name.endsWith(WAL_TMP_SUFFIX)) await fs.unlink(joinPath(walDir, name));
  }
  const numbers = await walNumbersOnDisk(fs, root);
  const events: StoredEvent[] = [];
  let last: ReplayedWal['last'] | null = null;
  const tornTail: TornTailReport = { files: 0, bytes: 0, records: 0 };
  const live = numbers.filter((n) => n >= walStart);
  if (live[0] !== walStart) {
    throw new UsageDbError(
      'USAGEDB_ERR_WAL_CORRUPT',
      `WAL file ${walFileName(walStart)}, which the manifest names as the first holding events not yet ` +
        `in segments, is missing; refusing to start without events it may hold`,
    );
  }
  for (let i = 0; i < live.length; i++) {
    const n = live[i];
    if (i > 0 && n !== live[i - 1] + 1) {
      throw new UsageDbError(
        'USAGEDB_ERR_WAL_CORRUPT',
        `WAL file ${live[i - 1] + 1} is missing (found ${n})`,
      );
    }
    const path = joinPath(walDir, walFileName(n));
    const isLast = i === live.length - 1;
    const bytes = await fs.readFile(path);
    const read = readWalFile(path, bytes, n, isLast);
    for (const record of read.records) {
      for (const e of decodeWalBatch(record)) events.push(e);
    }
    if (isLast) {
      last = { fileNumber: n, validBytes: read.validBytes };
      if (read.tornTail) {
        tornTail.files = 1;
        tornTail.bytes = bytes.length - read.validBytes;
        tornTail.records = 1;
      }
    }
  }
  for (const n of numbers) {
    if (n < walStart) await fs.unlink(joinPath(walDir, walFileName(n)));
  }
  assert(last !== null, 'the WAL file wal_start was read');
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
