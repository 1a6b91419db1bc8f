/**
 * Opening the database from the CLI. Commands that read (export) refuse a directory that holds
 * no database instead of silently creating an empty one; commands that write (ingest) create it.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Durability, UsageDb } from '../db.ts';
import { UsageDbError } from '../errors.ts';
import { MANIFEST_DIR } from '../storage/layout.ts';

/** False when `path` is missing; any other failure (EACCES, ...) is thrown, with its errno. */
async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

/** Opens an existing database; USAGEDB_ERR_NOT_FOUND when `dir` is missing or holds none. */
export async function openExistingDb(dir: string): Promise<UsageDb> {
  if (!(await isDirectory(dir))) {
    throw new UsageDbError(
      'USAGEDB_ERR_NOT_FOUND',
      `database directory ${dir} does not exist (set --db-root)`,
    );
  }
  if (!(await isDirectory(join(dir, MANIFEST_DIR)))) {
    throw new UsageDbError(
      'USAGEDB_ERR_NOT_FOUND',
      `${dir} holds no usagedb database (no ${MANIFEST_DIR}/ directory)`,
    );
  }
  return UsageDb.open({ dir });
}

/** Opens the database in `dir`, creating it (and the directory) if needed. */
export async function openOrCreateDb(dir: string, durability: Durability = 'balanced'): Promise<UsageDb> {
  return UsageDb.open({ dir, durability });
}
