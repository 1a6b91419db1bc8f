/**
 * Where each file lives under db_root (docs/architecture.md, on-disk layout, with one raw segment file per
 * flush: see flush.ts for why).
 */
import { joinPath } from './fs/file-system.ts';

export const LOCK_FILE = 'LOCK';
export const MANIFEST_DIR = 'manifest';
export const WAL_DIR = 'wal';
export const RAW_DIR = 'raw';
export const ROLLUP_DIR = 'rollup';
export const TMP_DIR = 'tmp';

export function segmentFileName(segmentId: number): string {
  return `${String(segmentId).padStart(8, '0')}.useg`;
}

export function segmentPath(root: string, segmentId: number): string {
  return joinPath(root, RAW_DIR, segmentFileName(segmentId));
}

export function rollupFileName(segmentId: number): string {
  return `${String(segmentId).padStart(8, '0')}.rseg`;
}

export function rollupPath(root: string, segmentId: number): string {
  return joinPath(root, ROLLUP_DIR, rollupFileName(segmentId));
}
