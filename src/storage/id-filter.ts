/**
 * The database-wide event-id filter: one blocked Bloom filter (encoding/blocked-bloom.ts) over
 * the ids of every live raw segment, so a new event costs one filter probe whatever the number
 * of segment files. A "maybe" goes on to the segments' own filters and id indexes
 * (segment-store.ts, ingest/dedupe.ts).
 *
 * Maintenance: a flush adds its ids as its segment becomes visible; a compaction adds
 * nothing (its output holds a subset of its inputs' ids; dropped duplicates and quarantined
 * copies only leave extra keys, which cost false positives, never misses). When the keys
 * outgrow the filter (fewer than GROW_BITS_PER_KEY bits each), a larger one is rebuilt in the
 * background from the segments' event ids while flushes add to both, then swapped in.
 *
 * Persistence (`idfilter/ids-NNNNNNNN.bf`): the filter's bits with the list of segments whose
 * ids they hold ("covered"), and a CRC32C; written to a tmp name, fsynced, renamed, directory
 * fsynced. At open, the newest file that verifies is loaded and the ids of every live segment
 * it does not cover are added from the segment files; with no valid file, all are. A file is
 * written after a rebuild, after PERSIST_ROWS new rows, after a full compaction and at close
 * (those two only when the newest file lacks a key or a live segment).
 *
 * Invariants:
 * - every id of every live segment is in `filter` (no false negatives): a flushed segment is
 *   added in the step that makes it visible, a merge output's ids are its inputs', a rebuild
 *   sees every segment of the version it pinned (in the same synchronous step as it starts
 *   taking adds) plus every flush committed meanwhile;
 * - a persisted file lists only segments whose ids were added to the bits it holds;
 * - at most one rebuild or write runs at a time.
 */
import { assert } from '../errors.ts';
import { BlockedBloom } from './encoding/blocked-bloom.ts';
import { crc32c } from './encoding/crc32c.ts';
import { type FileSystem, joinPath } from './fs/file-system.ts';

export const ID_FILTER_DIR = 'idfilter';
const MAGIC = [0x55, 0x49, 0x44, 0x46]; // "UIDF"
const FILE_VERSION = 1;
/**
 * Bits per key a new or rebuilt filter gets: at most 15/8 bytes of memory per stored event
 * (plus, during a rebuild, the old filter).
 */
export const TARGET_BITS_PER_KEY = 15;
/**
 * Below this many bits per key (~1% false positives), a filter 1.5 times the size is rebuilt
 * (TARGET_BITS_PER_KEY for the keys then stored). Each false positive costs a cold lookup
 * (probes of every file's own filter, often an id index read), and at 10M events those
 * outweighed the rebuilds: letting the filter fall to 7.5 bits per key (~3%) before doubling
 * ran the tenth million at 29.2 µs of CPU per event, against 21.0 with this threshold and
 * 12-bit segment filters. Growth by 1.5 keeps the rebuilds' total work under three times the
 * keys stored (each reads the event ids of every segment).
 */
export const GROW_BITS_PER_KEY = 10;
/** Smallest capacity a filter is sized for (keys): 1.9 MiB, so small databases never rebuild. */
const MIN_KEYS = 1 << 20;
/** New rows after which the filter is written again. */
export const PERSIST_ROWS = 1_000_000;

/** hash128 words h1 and h2 of each event id of a segment. */
export interface IdHashes {
  h1: Uint32Array;
  h2: Uint32Array;
}

export type HashesOf = (segmentId: number) => Promise<IdHashes>;

interface Rebuild {
  filter: BlockedBloom;
  /** Segments whose ids are in the new filter, or will be before the swap. */
  covered: Set<number>;
}

export interface IdFilterStats {
  keys: number;
  bytes: number;
  bitsPerKey: number;
  rebuilds: number;
  writes: number;
  probes: number;
}

function fileName(seq: number): string {
  return `ids-${String(seq).padStart(8, '0')}.bf`;
}

function seqOf(name: string): number | null {
  const m = /^ids-(\d{8})\.bf$/.exec(name);
  return m ? Number(m[1]) : null;
}

export function encodeIdFilterFile(
  filter: BlockedBloom,
  keys: number,
  covered: readonly number[],
): Uint8Array {
  const bloom = filter.toBytes();
  const out = new Uint8Array(4 + 1 + 8 + 4 + covered.length * 8 + bloom.length + 4);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = FILE_VERSION;
  view.setFloat64(5, keys, true);
  view.setUint32(13, covered.length, true);
  let pos = 17;
  for (const id of covered) {
    view.setFloat64(pos, id, true);
    pos += 8;
  }
  out.set(bloom, pos);
  pos += bloom.length;
  view.setUint32(pos, crc32c(out.subarray(0, pos)), true);
  return out;
}

/** Parses a filter file; null when it does not verify (damaged or torn). */
export function decodeIdFilterFile(
  bytes: Uint8Array,
): { filter: BlockedBloom; keys: number; covered: number[] } | null {
  if (bytes.length < 21) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length - 4;
  if (crc32c(bytes.subarray(0, end)) !== view.getUint32(end, true)) return null;
  if (MAGIC.some((b, i) => bytes[i] !== b) || bytes[4] !== FILE_VERSION) return null;
  const keys = view.getFloat64(5, true);
  const count = view.getUint32(13, true);
  if (17 + count * 8 > end) return null;
  const covered: number[] = [];
  for (let i = 0; i < count; i++) covered.push(view.getFloat64(17 + i * 8, true));
  try {
    return { filter: BlockedBloom.fromBytes(bytes.subarray(17 + count * 8, end)), keys, covered };
  } catch {
    return null;
  }
}

export class IdFilter {
  private readonly fs: FileSystem;
  private readonly dir: string;
  private readonly persistRows: number;
  private filter: BlockedBloom;
  private keys: number;
  private covered: Set<number>;
  private rebuilding: Rebuild | null = null;
  private rowsSinceWrite = 0;
  /** Segments the newest file on disk lists as covered. */
  private fileCovered: ReadonlySet<number> = new Set();
  private seq: number;
  private busy: Promise<void> = Promise.resolve();
  private rebuilds = 0;
  private writes = 0;
  /** Probes of filters that were swapped out (stats). */
  private oldProbes = 0;

  private constructor(
    fs: FileSystem,
    root: string,
    filter: BlockedBloom,
    keys: number,
    covered: Set<number>,
    seq: number,
    persistRows: number,
  ) {
    this.fs = fs;
    this.dir = joinPath(root, ID_FILTER_DIR);
    this.filter = filter;
    this.keys = keys;
    this.covered = covered;
    this.seq = seq;
    this.persistRows = persistRows;
  }

  /**
   * Loads the newest valid filter file and adds the ids of every live segment it does not
   * cover (read through `hashesOf`). `live`: id and row count of each live raw segment.
   */
  static async open(
    fs: FileSystem,
    root: string,
    live: readonly { id: number; rows: number }[],
    hashesOf: HashesOf,
    persistRows = PERSIST_ROWS,
  ): Promise<IdFilter> {
    const dir = joinPath(root, ID_FILTER_DIR);
    await fs.mkdirp(dir);
    await fs.syncDir(root);
    let loaded: ReturnType<typeof decodeIdFilterFile> = null;
    let seq = 0;
    const names = await fs.readdir(dir);
    for (const name of names) if (name.endsWith('.tmp')) await fs.unlink(joinPath(dir, name));
    const seqs = names
      .map(seqOf)
      .filter((s): s is number => s !== null)
      .sort((a, b) => b - a);
    if (seqs.length > 0) seq = seqs[0];
    for (const s of seqs) {
      loaded = decodeIdFilterFile(await fs.readFile(joinPath(dir, fileName(s))));
      if (loaded !== null) break;
    }
    const totalRows = live.reduce((n, e) => n + e.rows, 0);
    const liveIds = new Set(live.map((e) => e.id));
    let filter: BlockedBloom;
    let keys: number;
    const covered = new Set<number>();
    if (loaded !== null) {
      filter = loaded.filter;
      keys = loaded.keys;
      for (const id of loaded.covered) if (liveIds.has(id)) covered.add(id);
    } else {
      filter = BlockedBloom.create(Math.max(MIN_KEYS, totalRows), TARGET_BITS_PER_KEY);
      keys = 0;
    }
    const f = new IdFilter(fs, root, filter, keys, covered, seq, persistRows);
    if (loaded !== null) f.fileCovered = new Set(loaded.covered);
    for (const e of live) {
      if (covered.has(e.id)) continue;
      f.addSegment(e.id, await hashesOf(e.id));
    }
    return f;
  }

  mayContain(h1: number, h2: number): boolean {
    return this.filter.mayContain(h1, h2);
  }

  /**
   * Adds a flushed segment's ids: call in the synchronous step that makes it visible (a
   * rebuild in progress then gets them too, or pinned a version that holds the segment).
   */
  addSegment(segmentId: number, hashes: IdHashes): void {
    assert(hashes.h1.length === hashes.h2.length, 'id filter: hash arrays differ in length');
    this.filter.addAll(hashes.h1, hashes.h2);
    this.covered.add(segmentId);
    if (this.rebuilding !== null) {
      this.rebuilding.filter.addAll(hashes.h1, hashes.h2);
      this.rebuilding.covered.add(segmentId);
    }
    this.keys += hashes.h1.length;
    this.rowsSinceWrite += hashes.h1.length;
  }

  /** A merge committed: its output holds only ids of its inputs. */
  noteMerge(outputId: number, inputIds: Iterable<number>): void {
    const inputs = [...inputIds];
    if (inputs.every((id) => this.covered.has(id))) this.covered.add(outputId);
    const r = this.rebuilding;
    if (r !== null && inputs.every((id) => r.covered.has(id))) r.covered.add(outputId);
  }

  get stats(): IdFilterStats {
    return {
      keys: this.keys,
      bytes: this.filter.sizeBytes + (this.rebuilding?.filter.sizeBytes ?? 0),
      bitsPerKey: (this.filter.sizeBytes * 8) / Math.max(1, this.keys),
      rebuilds: this.rebuilds,
      writes: this.writes,
      probes: this.oldProbes + this.filter.probes,
    };
  }

  /** The keys outgrew the filter: a larger one should be rebuilt. */
  get wantsGrowth(): boolean {
    return this.keys * GROW_BITS_PER_KEY > this.filter.sizeBytes * 8 && this.filter.blockCount < 2 ** 21;
  }

  get wantsWrite(): boolean {
    return this.rowsSinceWrite >= this.persistRows;
  }

  /**
   * Runs `work` after any rebuild or write in progress (one at a time). Never rejects: a
   * failure only postpones the work (the filter in memory stays complete).
   */
  private serial(work: () => Promise<void>): Promise<void> {
    const next = this.busy.then(work);
    this.busy = next.catch(() => undefined);
    return next;
  }

  /** Waits for any running rebuild or write. */
  idle(): Promise<void> {
    return this.busy;
  }

  /**
   * Background upkeep: rebuilds a larger filter when the keys outgrew it, writes the filter
   * when enough new rows are unwritten. `live`: pins the current version, returning its
   * segments and a release.
   */
  maintain(
    live: () => { segments: readonly { id: number; rows: number }[]; release: () => void },
    hashesOf: HashesOf,
    liveIds: () => ReadonlySet<number>,
  ): Promise<void> {
    return this.serial(async () => {
      if (this.wantsGrowth) await this.rebuild(live, hashesOf);
      if (this.wantsWrite) await this.write(liveIds());
    });
  }

  /**
   * Writes the filter now (after a full compaction, at close), unless the newest file already
   * holds every key and covers every live segment: a read-only open and close writes nothing.
   */
  persist(liveIds: () => ReadonlySet<number>): Promise<void> {
    return this.serial(async () => {
      const live = liveIds();
      const upToDate =
        this.rowsSinceWrite === 0 &&
        [...this.covered].every((id) => !live.has(id) || this.fileCovered.has(id));
      if (!upToDate) await this.write(live);
    });
  }

  private async rebuild(
    live: () => { segments: readonly { id: number; rows: number }[]; release: () => void },
    hashesOf: HashesOf,
  ): Promise<void> {
    const pinned = live();
    const keysAtStart = this.keys;
    try {
      const keys = pinned.segments.reduce((n, e) => n + e.rows, 0);
      const r: Rebuild = {
        filter: BlockedBloom.create(Math.max(MIN_KEYS, keys), TARGET_BITS_PER_KEY),
        covered: new Set(pinned.segments.map((e) => e.id)),
      };
      this.rebuilding = r;
      let added = 0;
      for (const e of pinned.segments) {
        const h = await hashesOf(e.id);
        r.filter.addAll(h.h1, h.h2);
        added += h.h1.length;
      }
      // Flushes committed meanwhile were added to both filters (addSegment).
      const flushedMeanwhile = this.keys - keysAtStart;
      this.oldProbes += this.filter.probes;
      this.filter = r.filter;
      this.covered = r.covered;
      this.keys = added + flushedMeanwhile;
      this.rebuilds++;
      this.rowsSinceWrite = this.persistRows;
    } finally {
      this.rebuilding = null;
      pinned.release();
    }
  }

  private async write(liveIds: ReadonlySet<number>): Promise<void> {
    const covered = [...this.covered].filter((id) => liveIds.has(id));
    const bytes = encodeIdFilterFile(this.filter, this.keys, covered);
    const written = this.rowsSinceWrite;
    const seq = this.seq + 1;
    const tmp = joinPath(this.dir, `${fileName(seq)}.tmp`);
    await this.fs.writeFile(tmp, bytes, { sync: true });
    await this.fs.rename(tmp, joinPath(this.dir, fileName(seq)));
    await this.fs.syncDir(this.dir);
    this.seq = seq;
    this.fileCovered = new Set(covered);
    this.rowsSinceWrite = Math.max(0, this.rowsSinceWrite - written);
    this.writes++;
    // Older files go only after the new one is durable (a damaged newest file is ignored
    // at open, which then reads every segment's ids: slower, never wrong).
    for (const name of await this.fs.readdir(this.dir)) {
      const s = seqOf(name);
      if (s !== null && s < seq) await this.fs.unlink(joinPath(this.dir, name));
    }
  }
}
