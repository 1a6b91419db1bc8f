/**
 * Which originals are retracted, at any age, without keeping their ids in the manifest or all
 * of them in memory: each raw segment holding Retractions has a side file
 * `raw/NNNNNNNN.rtx` listing the originals it retracts (sorted, checksummed, written and
 * fsynced with the segment, before the manifest commit that makes both live). In memory, one
 * 32-bit hash per retracted original points at its segment; a hash hit is confirmed against
 * the exact ids of that segment's side file (a small bounded cache of them).
 *
 * Invariants:
 * - a live raw segment with `retractions > 0` has a side file whose ids number exactly that;
 * - `has(id)` is exact: hashes only select which side files to read;
 * - memory: 8 bytes per retracted original (Retractions are a small share of events) plus at
 *   most SIDE_FILE_CACHE_IDS_MAX cached ids.
 */
import { assert, UsageDbError } from '../errors.ts';
import { hash128 } from '../model/hash.ts';
import { crc32c } from './encoding/crc32c.ts';
import { type FileSystem, joinPath } from './fs/file-system.ts';
import { RAW_DIR } from './layout.ts';

const SIDE_FILE_CACHE_IDS_MAX = 100_000;

export function retractionFileName(segmentId: number): string {
  return `${String(segmentId).padStart(8, '0')}.rtx`;
}

export function retractionFilePath(root: string, segmentId: number): string {
  return joinPath(root, RAW_DIR, retractionFileName(segmentId));
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeRetractionFile(originals: readonly string[]): Uint8Array {
  const body = JSON.stringify([...new Set(originals)].sort());
  const crc = crc32c(encoder.encode(body)).toString(16).padStart(8, '0');
  return encoder.encode(`${crc}\n${body}\n`);
}

export function decodeRetractionFile(bytes: Uint8Array, segmentId: number): string[] {
  const text = decoder.decode(bytes);
  const fail = (what: string) =>
    new UsageDbError('USAGEDB_ERR_SEGMENT_CORRUPT', `retraction list of segment ${segmentId}: ${what}`);
  const newline = text.indexOf('\n');
  if (newline !== 8 || !text.endsWith('\n')) throw fail('malformed');
  const body = text.slice(9, -1);
  if (crc32c(encoder.encode(body)).toString(16).padStart(8, '0') !== text.slice(0, 8))
    throw fail('checksum mismatch');
  const ids = JSON.parse(body) as unknown;
  if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string')) throw fail('not a list of ids');
  return ids as string[];
}

/** Writes a segment's side file durably (file fsynced; the caller fsyncs the directory). */
export async function writeRetractionFile(
  fs: FileSystem,
  root: string,
  segmentId: number,
  originals: readonly string[],
): Promise<number> {
  const bytes = encodeRetractionFile(originals);
  await fs.writeFile(retractionFilePath(root, segmentId), bytes, { sync: true });
  return new Set(originals).size;
}

export class RetractedOriginals {
  private readonly fs: FileSystem;
  private readonly root: string;
  /** hash (h1 of hash128) -> segment ids whose side file may list it. */
  private readonly byHash = new Map<number, number[]>();
  private readonly cache = new Map<number, Set<string>>();
  private cachedIds = 0;

  constructor(fs: FileSystem, root: string) {
    this.fs = fs;
    this.root = root;
  }

  /** Reads the side file of a segment about to become live (or live at open) into the hash map. */
  async addSegment(segmentId: number, expected: number): Promise<void> {
    const ids = await this.read(segmentId);
    assert(
      ids.size === expected,
      `segment ${segmentId}: ${ids.size} retracted ids, manifest says ${expected}`,
    );
    for (const id of ids) {
      const h = hash128(id).h1;
      const list = this.byHash.get(h);
      if (list === undefined) this.byHash.set(h, [segmentId]);
      else if (!list.includes(segmentId)) list.push(segmentId);
    }
  }

  /** Forgets segments no longer live (compaction moved their rows; the new segment lists them). */
  removeSegments(segmentIds: ReadonlySet<number>): void {
    for (const [h, list] of this.byHash) {
      const kept = list.filter((id) => !segmentIds.has(id));
      if (kept.length === 0) this.byHash.delete(h);
      else this.byHash.set(h, kept);
    }
    for (const id of segmentIds) this.uncache(id);
  }

  /** The live segments holding a Retraction of `originalId` (exact; normally at most one). */
  async segmentsRetracting(originalId: string): Promise<number[]> {
    const found: number[] = [];
    for (const segmentId of this.byHash.get(hash128(originalId).h1) ?? []) {
      if ((await this.read(segmentId)).has(originalId)) found.push(segmentId);
    }
    return found;
  }

  /** Whether a stored Retraction retracts `originalId`. */
  async has(originalId: string): Promise<boolean> {
    const candidates = this.byHash.get(hash128(originalId).h1);
    if (candidates === undefined) return false;
    for (const segmentId of candidates) if ((await this.read(segmentId)).has(originalId)) return true;
    return false;
  }

  private async read(segmentId: number): Promise<Set<string>> {
    const cached = this.cache.get(segmentId);
    if (cached !== undefined) return cached;
    const path = retractionFilePath(this.root, segmentId);
    let ids: Set<string>;
    try {
      ids = new Set(decodeRetractionFile(await this.fs.readFile(path), segmentId));
    } catch (err) {
      if (err instanceof UsageDbError) throw err;
      throw new UsageDbError(
        'USAGEDB_ERR_SEGMENT_CORRUPT',
        `retraction list of segment ${segmentId} (${path}) cannot be read: ${(err as Error).message}`,
        { cause: err },
      );
    }
    this.cache.set(segmentId, ids);
    this.cachedIds += ids.size;
    for (const id of this.cache.keys()) {
      if (this.cachedIds <= SIDE_FILE_CACHE_IDS_MAX || id === segmentId) break;
      this.uncache(id);
    }
    return ids;
  }

  private uncache(segmentId: number): void {
    const ids = this.cache.get(segmentId);
    if (ids === undefined) return;
    this.cachedIds -= ids.size;
    this.cache.delete(segmentId);
  }
}
