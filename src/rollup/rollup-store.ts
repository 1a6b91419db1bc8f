/**
 * Reads rollup segment files for queries: footers kept per live file, decoded blocks in a
 * byte-bounded LRU cache, and only the blocks a query's accounts and range can touch are read.
 *
 * Invariants:
 * - a block is verified (CRC32C) before it is decoded; a footer too, and its file size must be
 *   the one its manifest entry records; anything wrong is USAGEDB_ERR_SEGMENT_CORRUPT (never a
 *   number);
 * - cached blocks are shared by every query: callers treat them as read-only;
 * - the cache never holds more than `cacheBytes` after an insert returns;
 * - files held whole and their decoded blocks never take more than `pinnedBytesMax`.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { UsageDbError } from '../errors.ts';
import { type FileSystem, type ReadFile, readSmall } from '../storage/fs/file-system.ts';
import { rollupPath } from '../storage/layout.ts';
import { lowerBound } from '../util/lower-bound.ts';
import type { RollupSegmentEntry } from '../storage/manifest.ts';
import type { RollupBatch, RollupBlockFilter, RollupSource } from '../query/types.ts';
import { ROLLUP_DICT_COLUMNS } from './rollup-rows.ts';
import {
  decodeRollupBlock,
  decodeRollupFooter,
  ROLLUP_TRAILER_BYTES,
  type RollupBlockMeta,
  type RollupFooter,
  rollupFooterRange,
} from './rollup-file.ts';

export const DEFAULT_ROLLUP_CACHE_BYTES = 64 * 1024 * 1024;
/**
 * Memory for whole files of the levels one account's questions read (month and meter levels,
 * about 1% of the raw bytes) and for their decoded blocks: read once and decoded ahead, in the
 * background, from their first use (at 10M events ~12 MB of files, ~65 MB decoded).
 */
export const DEFAULT_ROLLUP_PINNED_BYTES = 128 * 1024 * 1024;
const PINNED_LEVELS: ReadonlySet<string> = new Set(['month', 'meter_day', 'meter_month']);
/** Blocks decoded ahead per turn of the event loop (~0.1 ms each): queries wait at most a few. */
const AHEAD_BLOCKS_PER_TURN = 4;

interface CachedBlock {
  key: string;
  rows: RollupBatch;
  bytes: number;
}

/** A file of a pinned level held whole, and its blocks decoded so far. */
interface PinnedFile {
  bytes: Uint8Array;
  blocks: (RollupBatch | undefined)[];
}

interface Handle {
  file: Promise<ReadFile>;
  /** Reads in flight. */
  users: number;
  /** The file is no longer live: closed when its last read ends. */
  dead: boolean;
}

const AHEAD_COLUMNS = [...ROLLUP_DICT_COLUMNS, 'kind', 'timestamp_ms', 'quantity', 'count'] as const;

function blockBytes(rows: RollupBatch): number {
  // Eight typed columns of 8 bytes, seven of 4, kind 1; big values rarely matter.
  return rows.rowCount * (8 * 8 + 7 * 4 + 1) + 64;
}

export class RollupStore implements RollupSource {
  private readonly fs: FileSystem;
  private readonly root: string;
  private readonly cacheBytes: number;
  private readonly footers = new Map<number, Promise<RollupFooter>>();
  private readonly blocks = new Map<string, CachedBlock>();
  /**
   * An open handle per live file read since open (a few dozen at most: day, month and meter
   * files are merged): opening and closing a file for each first read of a block cost more
   * than decoding it.
   */
  private readonly handles = new Map<number, Handle>();
  private heldBytes = 0;
  /**
   * Whole files of PINNED_LEVELS, in process memory, and their blocks decoded ahead of use: the
   * operating system may drop file pages that a minute went without reading (this machine's VM
   * does), and a first read of an account's blocks would then wait for the disk, then decode.
   * Blocks are still verified when decoded. `pinnedBytes` counts files and decoded blocks.
   */
  private readonly pinned = new Map<number, PinnedFile>();
  private readonly pinning = new Map<number, Promise<void>>();
  private pinnedBytes = 0;
  private readonly pinnedBytesMax: number;
  /** Blocks read from disk since open (tests and stats). */
  blocksRead = 0;

  constructor(
    fs: FileSystem,
    root: string,
    cacheBytes = DEFAULT_ROLLUP_CACHE_BYTES,
    pinnedBytesMax = DEFAULT_ROLLUP_PINNED_BYTES,
  ) {
    this.fs = fs;
    this.root = root;
    this.cacheBytes = cacheBytes;
    this.pinnedBytesMax = pinnedBytesMax;
  }

  /** Drops what is cached for files no longer live (no snapshot can read them). */
  retain(live: ReadonlySet<number>): void {
    for (const id of this.footers.keys()) if (!live.has(id)) this.footers.delete(id);
    for (const [id, held] of this.pinned) {
      if (live.has(id)) continue;
      this.pinned.delete(id);
      this.pinnedBytes -= held.bytes.length;
      for (const rows of held.blocks) if (rows !== undefined) this.pinnedBytes -= blockBytes(rows);
    }
    for (const [id, h] of this.handles) {
      if (live.has(id)) continue;
      h.dead = true;
      if (h.users === 0) this.dropHandle(id, h);
    }
    for (const [key, b] of this.blocks) {
      if (live.has(Number(key.slice(0, key.indexOf(':'))))) continue;
      this.blocks.delete(key);
      this.heldBytes -= b.bytes;
    }
  }

  footer(entry: RollupSegmentEntry): Promise<RollupFooter> {
    let f = this.footers.get(entry.id);
    if (f === undefined) {
      f = this.readFooter(entry);
      this.footers.set(entry.id, f);
      f.catch(() => this.footers.delete(entry.id));
    }
    return f;
  }

  private readFooter(entry: RollupSegmentEntry): Promise<RollupFooter> {
    return this.withFile(entry, (file) => this.footerOf(entry, file));
  }

  private async withFile<T>(entry: RollupSegmentEntry, use: (file: ReadFile) => Promise<T>): Promise<T> {
    let h = this.handles.get(entry.id);
    if (h === undefined) {
      const opened = this.open(entry);
      const handle: Handle = { file: opened, users: 0, dead: false };
      // A failed open is not kept: the next read tries again (and reports again).
      opened.catch(() => {
        if (this.handles.get(entry.id) === handle) this.handles.delete(entry.id);
      });
      this.handles.set(entry.id, (h = handle));
    }
    h.users++;
    try {
      return await use(await h.file);
    } finally {
      h.users--;
      if (h.dead && h.users === 0) this.dropHandle(entry.id, h);
    }
  }

  private dropHandle(id: number, h: Handle): void {
    if (this.handles.get(id) === h) this.handles.delete(id);
    // Nothing waits for this close: a failure (the file already gone with a crashed disk) only
    // leaves the handle to the process's exit.
    h.file.then((f) => f.close()).catch(() => undefined);
  }

  /** Closes every open file (the database is closing: no query runs). */
  async close(): Promise<void> {
    await this.settled();
    const open = [...this.handles.values()];
    this.handles.clear();
    for (const h of open) {
      const file = await h.file.catch(() => null);
      await file?.close();
    }
  }

  private async open(entry: RollupSegmentEntry): Promise<ReadFile> {
    const file = await this.fs.openRead(rollupPath(this.root, entry.id));
    if (file.sizeBytes !== entry.size_bytes) {
      await file.close();
      throw corrupt(entry, `its size is ${file.sizeBytes} bytes, the manifest records ${entry.size_bytes}`);
    }
    return file;
  }

  private async footerOf(entry: RollupSegmentEntry, file: ReadFile): Promise<RollupFooter> {
    try {
      const trailer = await file.read(file.sizeBytes - ROLLUP_TRAILER_BYTES, ROLLUP_TRAILER_BYTES);
      const range = rollupFooterRange(trailer, file.sizeBytes);
      const footer = decodeRollupFooter(
        await file.read(range.offset, range.length),
        range.crc,
        file.sizeBytes,
      );
      if (footer.level !== entry.level || footer.rows !== entry.rows)
        throw new Error(
          `footer says ${footer.level}/${footer.rows} rows, manifest ${entry.level}/${entry.rows}`,
        );
      return footer;
    } catch (err) {
      if (err instanceof UsageDbError) throw err;
      throw corrupt(entry, (err as Error).message, err);
    }
  }

  /** The decoded blocks of `entry` that may hold rows of the filter's accounts and range. */
  async read(entry: RollupSegmentEntry, filter: RollupBlockFilter): Promise<RollupBatch[]> {
    const footer = await this.footer(entry);
    this.pin(entry, footer);
    const held = this.pinned.get(entry.id);
    const wanted = blocksFor(footer.blocks, filter, lastAccountsOf(footer));
    const out: RollupBatch[] = [];
    const missing: number[] = [];
    for (const i of wanted) {
      const kept = held?.blocks[i];
      if (kept !== undefined) {
        out.push(kept);
        continue;
      }
      const hit = this.blocks.get(`${entry.id}:${i}`);
      if (hit === undefined) missing.push(i);
      else {
        // LRU: a hit moves to the newest end.
        this.blocks.delete(hit.key);
        this.blocks.set(hit.key, hit);
        out.push(hit.rows);
      }
    }
    if (missing.length > 0) {
      await this.withFile(entry, async (file) => {
        for (const i of missing) {
          const meta = footer.blocks[i];
          // From the file held whole, else one read per block (a few KiB, without leaving the
          // thread): its buffer then holds only this block, kept without a copy.
          const whole = this.pinned.get(entry.id);
          const stored =
            whole === undefined
              ? await readSmall(file, meta.offset, meta.length)
              : whole.bytes.subarray(meta.offset, meta.offset + meta.length);
          const rows = this.decode(entry, footer, i, stored);
          this.blocksRead++;
          if (whole === undefined || !this.hold(whole, i, rows))
            this.insert({ key: `${entry.id}:${i}`, rows, bytes: blockBytes(rows) });
          out.push(rows);
        }
      });
    }
    return out;
  }

  private decode(
    entry: RollupSegmentEntry,
    footer: RollupFooter,
    i: number,
    stored: Uint8Array,
  ): RollupBatch {
    try {
      return decodeRollupBlock(footer, i, stored, {
        onError: (err) => {
          throw corrupt(entry, (err as Error).message, err);
        },
      });
    } catch (err) {
      throw corrupt(entry, (err as Error).message, err);
    }
  }

  /** Keeps a decoded block of a file held whole, if the budget has room; else false. */
  private hold(held: PinnedFile, i: number, rows: RollupBatch): boolean {
    const bytes = blockBytes(rows);
    if (this.pinnedBytes + bytes > this.pinnedBytesMax) return false;
    held.blocks[i] = rows;
    this.pinnedBytes += bytes;
    return true;
  }

  /** Waits for the whole-file reads and the decoding ahead in flight (tests and tools). */
  async settled(): Promise<void> {
    await Promise.all(this.pinning.values());
  }

  /** Bytes of whole files held in memory and of their blocks decoded so far. */
  get heldFileBytes(): number {
    return this.pinnedBytes;
  }

  /**
   * Starts reading a whole file of a pinned level, if it fits and is not held yet, then decodes
   * its blocks ahead of use, a few per turn of the event loop, while the budget has room.
   */
  private pin(entry: RollupSegmentEntry, footer: RollupFooter): void {
    if (!PINNED_LEVELS.has(entry.level) || this.pinned.has(entry.id) || this.pinning.has(entry.id)) return;
    if (this.pinnedBytes + entry.size_bytes > this.pinnedBytesMax) return;
    const load = this.withFile(entry, (file) => file.read(0, entry.size_bytes))
      .then(async (bytes) => {
        // Still live (retain has not dropped its footer) and still room.
        if (!this.footers.has(entry.id) || this.pinnedBytes + bytes.length > this.pinnedBytesMax) return;
        const held: PinnedFile = { bytes, blocks: new Array<RollupBatch | undefined>(footer.blocks.length) };
        this.pinned.set(entry.id, held);
        this.pinnedBytes += bytes.length;
        await this.decodeAhead(entry, footer, held);
      })
      // Blocks are then read one by one, as before; a damaged file is reported by them.
      .catch(() => undefined)
      .finally(() => this.pinning.delete(entry.id));
    this.pinning.set(entry.id, load);
  }

  private async decodeAhead(
    entry: RollupSegmentEntry,
    footer: RollupFooter,
    held: PinnedFile,
  ): Promise<void> {
    for (let i = 0; i < footer.blocks.length; i++) {
      if (i % AHEAD_BLOCKS_PER_TURN === 0) await nextTurn();
      // Dropped by retain (no longer live), or decoded meanwhile by a query.
      if (this.pinned.get(entry.id) !== held) return;
      if (held.blocks[i] !== undefined) continue;
      const key = `${entry.id}:${i}`;
      const cached = this.blocks.get(key);
      const meta = footer.blocks[i];
      const rows =
        cached?.rows ??
        this.decode(entry, footer, i, held.bytes.subarray(meta.offset, meta.offset + meta.length));
      // The columns every question of these levels reads (not min/max, first/last times).
      for (const name of AHEAD_COLUMNS) void rows[name];
      if (!this.hold(held, i, rows)) return;
      if (cached !== undefined) {
        this.blocks.delete(key);
        this.heldBytes -= cached.bytes;
      }
    }
  }

  private insert(b: CachedBlock): void {
    if (b.bytes > this.cacheBytes) return;
    this.blocks.set(b.key, b);
    this.heldBytes += b.bytes;
    for (const [key, old] of this.blocks) {
      if (this.heldBytes <= this.cacheBytes) break;
      this.blocks.delete(key);
      this.heldBytes -= old.bytes;
    }
  }
}

/**
 * The blocks that may hold rows of the filter's accounts and range, in file order. Blocks are
 * in account order (`lastAccounts[i]`: block i's last account, non-decreasing), so each
 * account's blocks are found by binary search.
 */
export function blocksFor(
  blocks: readonly RollupBlockMeta[],
  filter: RollupBlockFilter,
  lastAccounts: readonly string[],
): number[] {
  const wanted: number[] = [];
  const inRange = (i: number): boolean =>
    blocks[i].max_bucket >= filter.fromMs && blocks[i].min_bucket < filter.toMs;
  if (filter.accountIds === null) {
    for (let i = 0; i < blocks.length; i++) if (inRange(i)) wanted.push(i);
    return wanted;
  }
  for (const account of filter.accountIds) {
    for (let i = lowerBound(lastAccounts, account); i < blocks.length; i++) {
      if (blocks[i].min_account > account) break;
      // Accounts are sorted: only a block shared with the previous account can repeat.
      if (inRange(i) && wanted[wanted.length - 1] !== i) wanted.push(i);
    }
  }
  return wanted;
}

const lastAccounts = new WeakMap<RollupFooter, string[]>();

/** Each block's last account (non-decreasing: rows are sorted by account), kept per footer. */
function lastAccountsOf(footer: RollupFooter): string[] {
  let list = lastAccounts.get(footer);
  if (list === undefined) {
    list = footer.blocks.map((b) => b.max_account);
    lastAccounts.set(footer, list);
  }
  return list;
}

function corrupt(entry: RollupSegmentEntry, why: string, cause?: unknown): UsageDbError {
  return new UsageDbError(
    'USAGEDB_ERR_SEGMENT_CORRUPT',
    `rollup segment ${entry.id} (${entry.level}) is corrupt: ${why}`,
    cause === undefined ? undefined : { cause },
  );
}
