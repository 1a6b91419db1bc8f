/**
 * Where each file lives under db_root (DESIGN §2 on-disk layout).
 */
import { joinPath } from './fs/file-system.ts';

export const LOCK_FILE = 'LOCK';
export const MANIFEST_DIR = 'manifest';
export const WAL_DIR = 'wal';
export const RAW_DIR = 'raw';
export const ROLLUP_DIR = 'rollup_hourly';
export const ID_FILTER_DIR = 'idfilter';
export const TMP_DIR = 'tmp';

export function rawPartitionDir(root: string, day: string, bucket: number): string {
  return joinPath(root, RAW_DIR, `date=${day}`, `bucket=${String(bucket).padStart(3, '0')}`);
}

export function segmentFileName(segmentId: number): string {
  return `${String(segmentId).padStart(8, '0')}.useg`;
}

export function rawSegmentPath(root: string, day: string, bucket: number, segmentId: number): string {
  return joinPath(rawPartitionDir(root, day, bucket), segmentFileName(segmentId));
}

export function idFilterPath(root: string, filterId: number): string {
  return joinPath(root, ID_FILTER_DIR, `${String(filterId).padStart(8, '0')}.idf`);
}
