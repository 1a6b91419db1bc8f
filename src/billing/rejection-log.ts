/**
 * The rejection log: every rejected event and every conflicting copy, as sent, with when and
 * why — the answer to "why was this event not billed". Durable, bounded, and read back by
 * `db.rejections()` and `db.lookupEvent()`.
 *
 * On disk: `rejections/NNNNNN.log`, each file a header line `{"rejection_log":1,"first_seq":S}`
 * then one line per entry: `<crc32c of the JSON, 8 hex> <JSON>\n`. Every entry has a sequence
 * number (`seq`), one higher than the entry before it, across files and restarts.
 *
 * Invariants:
 * - bounded: the files together stay under `bytesMax` (plus one entry): when a new file would
 *   pass it, the oldest files go first; entries older than `ageMaxMs` are not returned and
 *   their file goes once all its entries are that old; `dropped` = entries gone so far;
 * - one ingest call = one append (one write); in strict and balanced mode the append is
 *   fsynced before the ingest call returns; in fast mode it is synced at rotation and close;
 * - a line cut short by a crash (the end of the newest file) or failing its checksum is
 *   skipped at open and counted in `corruptLines`, never guessed at;
 * - an event larger than EVENT_JSON_BYTES_MAX is stored truncated, marked `event_truncated`.
 */
import { UsageDbError } from '../errors.ts';
import { crc32c } from '../storage/encoding/crc32c.ts';
import { type AppendFile, type FileSystem, isFsError, joinPath } from '../storage/fs/file-system.ts';
import { AsyncMutex } from '../util/async-mutex.ts';

export const REJECTIONS_DIR = 'rejections';
/** Bytes of one stored event's JSON before it is truncated. */
export const EVENT_JSON_BYTES_MAX = 4096;
/** Bytes kept of one string value of a truncated event. */
const STRING_BYTES_MAX = 256;
export const REJECTIONS_LIMIT_DEFAULT = 100;
export const REJECTIONS_LIMIT_MAX = 1000;
export const DEFAULT_REJECTION_LOG_BYTES_MAX = 16 * 1024 * 1024;
export const DEFAULT_REJECTION_LOG_AGE_MAX_MS = 90 * 24 * 60 * 60 * 1000;

export interface RejectionEntry {
  seq: number;
  received_at_ms: number;
  /** Position of the event in its batch. */
  index: number;
  event_id: string | null;
  status: 'rejected' | 'conflict';
  reason: string;
  /** From the event as sent, when it held a string account_id. */
  account_id: string | null;
  /** The event as sent (truncated when large: see `event_truncated`). */
  event: unknown;
  event_truncated: boolean;
}

export interface RejectionInput {
  index: number;
  event_id: string | null;
  status: 'rejected' | 'conflict';
  reason: string;
  event: unknown;
}

export interface RejectionsParams {
  account_id?: string;
  from?: number;
  to?: number;
  limit?: number;
  cursor?: string | null;
}

export interface RejectionsPage {
  /** The entries without their internal sequence number. */
  rejections: Omit<RejectionEntry, 'seq'>[];
  next_cursor: string | null;
}

export interface RejectionLogReport {
  entries: number;
  bytes: number;
  files: number;
  dropped: number;
  corrupt_lines: number;
  write_failures: number;
}

interface LogFile {
  number: number;
  firstSeq: number;
  bytes: number;
  entries: RejectionEntry[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function fileName(n: number): string {
  return `${String(n).padStart(6, '0')}.log`;
}

function crcHex(text: string): string {
  return crc32c(encoder.encode(text)).toString(16).padStart(8, '0');
}

/** A JSON-safe copy of what was sent: depth, keys, strings bounded; bigint as text; cycles cut. */
function boundedCopy(v: unknown, depth: number, seen: Set<object>): unknown {
  if (v === null || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') {
    if (v.length <= STRING_BYTES_MAX) return v;
    return `${v.slice(0, STRING_BYTES_MAX)}…[${v.length - STRING_BYTES_MAX} more chars]`;
  }
  if (typeof v !== 'object') return `[${typeof v}]`;
  if (seen.has(v)) return '[circular]';
  if (depth >= 4) return '[nested too deep]';
  seen.add(v);
  try {
    if (Array.isArray(v)) {
      const out = v.slice(0, 32).map((x) => boundedCopy(x, depth + 1, seen));
      if (v.length > 32) out.push(`…[${v.length - 32} more items]`);
      return out;
    }
    const out: Record<string, unknown> = {};
    const keys = Object.keys(v);
    for (const k of keys.slice(0, 32)) {
      out[boundedCopy(k, depth, seen) as string] = boundedCopy(
        (v as Record<string, unknown>)[k],
        depth + 1,
        seen,
      );
    }
    if (keys.length > 32) out['…'] = `${keys.length - 32} more keys`;
    return out;
  } finally {
    seen.delete(v);
  }
}

/** The event as stored: itself when its JSON is small, else a bounded copy (marked truncated). */
export function storedEventOf(event: unknown): { event: unknown; truncated: boolean } {
  let json: string | undefined;
  try {
    json = JSON.stringify(event);
  } catch {
    json = undefined;
  }
  if (json !== undefined && Buffer.byteLength(json, 'utf8') <= EVENT_JSON_BYTES_MAX) {
    return { event: JSON.parse(json) as unknown, truncated: false };
  }
  let copy = boundedCopy(event, 0, new Set());
  if (Buffer.byteLength(JSON.stringify(copy) ?? 'null', 'utf8') > EVENT_JSON_BYTES_MAX) {
    const text = JSON.stringify(copy) ?? 'null';
    copy = { _json_prefix: text.slice(0, EVENT_JSON_BYTES_MAX / 2) };
  }
  return { event: copy ?? null, truncated: true };
}

function accountOf(event: unknown): string | null {
  if (typeof event !== 'object' || event === null) return null;
  const a = (event as Record<string, unknown>).account_id;
  return typeof a === 'string' && a.length <= 1024 ? a : null;
}

function invalid(message: string): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_INVALID_QUERY', `rejections: ${message}`);
}

export class RejectionLog {
  private readonly fs: FileSystem;
  private readonly root: string;
  private readonly dir: string;
  private readonly bytesMax: number;
  private readonly ageMaxMs: number;
  private readonly sync: boolean;
  private readonly nowMs: () => number;
  private readonly mutex = new AsyncMutex();
  private files: LogFile[] = [];
  private out: AppendFile | null = null;
  private nextSeq = 0;
  private corruptLines = 0;
  private writeFailures = 0;
  private closed = false;

  private constructor(init: {
    fs: FileSystem;
    root: string;
    bytesMax: number;
    ageMaxMs: number;
    sync: boolean;
    nowMs: () => number;
  }) {
    this.fs = init.fs;
    this.root = init.root;
    this.dir = joinPath(init.root, REJECTIONS_DIR);
    this.bytesMax = Math.max(1024, init.bytesMax);
    this.ageMaxMs = init.ageMaxMs;
    this.sync = init.sync;
    this.nowMs = init.nowMs;
  }

  /** Opens the log under `root`, reading back every entry still within its bounds. */
  static async open(init: {
    fs: FileSystem;
    root: string;
    bytesMax: number;
    ageMaxMs: number;
    sync: boolean;
    nowMs: () => number;
  }): Promise<RejectionLog> {
    const log = new RejectionLog(init);
    await log.load();
    return log;
  }

  /** Files are cut at a quarter of the bound, so dropping the oldest frees space in steps. */
  private get fileBytesMax(): number {
    return Math.max(512, Math.floor(this.bytesMax / 4));
  }

  private async load(): Promise<void> {
    await this.fs.mkdirp(this.dir);
    // The directory entry itself must survive a crash, or every file in it goes with it.
    await this.fs.syncDir(this.root);
    const names = (await this.fs.readdir(this.dir)).filter((n) => /^\d{6}\.log$/.test(n)).sort();
    for (const name of names) {
      const bytes = await this.fs.readFile(joinPath(this.dir, name));
      const file = this.parseFile(Number(name.slice(0, 6)), decoder.decode(bytes), bytes.length);
      if (file === null) continue;
      this.files.push(file);
      const last = file.entries.at(-1);
      this.nextSeq = Math.max(this.nextSeq, file.firstSeq, last === undefined ? 0 : last.seq + 1);
    }
  }

  private parseFile(number: number, text: string, bytes: number): LogFile | null {
    const lines = text.split('\n');
    let header: { first_seq?: unknown } | null;
    try {
      header = JSON.parse(lines[0]) as { first_seq?: unknown };
    } catch {
      header = null;
    }
    if (header === null || typeof header.first_seq !== 'number') {
      this.corruptLines++;
      return null;
    }
    const file: LogFile = { number, firstSeq: header.first_seq, bytes, entries: [] };
    // The last element is '' after a final newline, or a line cut short by a crash.
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      if (line.length === 0 && i === lines.length - 1) break;
      const json = line.slice(9);
      if (line[8] !== ' ' || crcHex(json) !== line.slice(0, 8)) {
        this.corruptLines++;
        continue;
      }
      file.entries.push(JSON.parse(json) as RejectionEntry);
    }
    return file;
  }

  /**
   * Appends one ingest call's rejections (one write). A failure to write is counted and
   * thrown: the caller decides (the ingest result stands either way).
   */
  async append(receivedAtMs: number, inputs: readonly RejectionInput[]): Promise<void> {
    if (inputs.length === 0) return;
    await this.mutex.run(async () => {
      if (this.closed) throw new UsageDbError('USAGEDB_ERR_CLOSED', 'the rejection log is closed');
      const lines: string[] = [];
      for (const r of inputs) {
        const { event, truncated } = storedEventOf(r.event);
        const entry: RejectionEntry = {
          seq: this.nextSeq + lines.length,
          received_at_ms: receivedAtMs,
          index: r.index,
          event_id: r.event_id,
          status: r.status,
          reason: r.reason,
          account_id: accountOf(r.event),
          event,
          event_truncated: truncated,
        };
        lines.push(JSON.stringify(entry));
      }
      const text = lines.map((json) => `${crcHex(json)} ${json}\n`).join('');
      const bytes = encoder.encode(text);
      try {
        const out = await this.writable(bytes.length);
        const before = out.size();
        try {
          await out.append(bytes);
          if (this.sync) await out.sync();
        } catch (err) {
          await out.truncate(before).catch(() => undefined);
          throw err;
        }
      } catch (err) {
        this.writeFailures++;
        throw err;
      }
      const file = this.files[this.files.length - 1];
      file.bytes += bytes.length;
      for (const json of lines) file.entries.push(JSON.parse(json) as RejectionEntry);
      this.nextSeq += lines.length;
    });
  }

  /** The file to append `bytes` to: the newest, or a new one once it is full (old ones dropped). */
  private async writable(bytes: number): Promise<AppendFile> {
    const last = this.files.at(-1);
    if (this.out !== null && last !== undefined && last.bytes + bytes <= this.fileBytesMax) return this.out;
    if (this.out === null && last !== undefined && last.bytes + bytes <= this.fileBytesMax) {
      this.out = await this.fs.openAppend(joinPath(this.dir, fileName(last.number)));
      return this.out;
    }
    if (this.out !== null) {
      await this.out.sync();
      await this.out.close();
      this.out = null;
    }
    const number = (last?.number ?? 0) + 1;
    const header = encoder.encode(`${JSON.stringify({ rejection_log: 1, first_seq: this.nextSeq })}\n`);
    const path = joinPath(this.dir, fileName(number));
    await this.fs.writeFile(path, header, { sync: true });
    await this.fs.syncDir(this.dir);
    this.files.push({ number, firstSeq: this.nextSeq, bytes: header.length, entries: [] });
    await this.enforceBounds();
    this.out = await this.fs.openAppend(path);
    return this.out;
  }

  /** Drops the oldest files past the byte bound, and files whose every entry is too old. */
  private async enforceBounds(): Promise<void> {
    const cutoff = this.nowMs() - this.ageMaxMs;
    let total = this.files.reduce((n, f) => n + f.bytes, 0);
    const drop: LogFile[] = [];
    for (const f of this.files.slice(0, -1)) {
      const newest = f.entries.at(-1);
      const tooOld = newest === undefined || newest.received_at_ms < cutoff;
      if (total <= this.bytesMax - this.fileBytesMax && !tooOld) break;
      drop.push(f);
      total -= f.bytes;
    }
    if (drop.length === 0) return;
    for (const f of drop) {
      try {
        await this.fs.unlink(joinPath(this.dir, fileName(f.number)));
      } catch (err) {
        if (!isFsError(err, 'ENOENT')) throw err;
      }
    }
    await this.fs.syncDir(this.dir);
    this.files = this.files.slice(drop.length);
  }

  /** Entries still within the bounds, oldest first. */
  private *visible(): Generator<RejectionEntry> {
    const cutoff = this.nowMs() - this.ageMaxMs;
    for (const f of this.files) for (const e of f.entries) if (e.received_at_ms >= cutoff) yield e;
  }

  /** One page, oldest first; `cursor` is the previous page's `next_cursor`. */
  page(params: RejectionsParams): RejectionsPage {
    const limit = params.limit ?? REJECTIONS_LIMIT_DEFAULT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > REJECTIONS_LIMIT_MAX)
      throw invalid(`limit must be an integer from 1 to ${REJECTIONS_LIMIT_MAX}`);
    let after = -1;
    if (params.cursor !== undefined && params.cursor !== null) {
      if (!/^r\d{1,15}$/.test(params.cursor)) throw invalid('cursor is not one this log handed out');
      after = Number(params.cursor.slice(1));
    }
    const from = params.from ?? 0;
    const to = params.to ?? Number.MAX_SAFE_INTEGER;
    const out: RejectionEntry[] = [];
    let more = false;
    for (const e of this.visible()) {
      if (e.seq <= after || e.received_at_ms < from || e.received_at_ms >= to) continue;
      if (params.account_id !== undefined && e.account_id !== params.account_id) continue;
      if (out.length === limit) {
        more = true;
        break;
      }
      out.push(e);
    }
    return {
      rejections: out.map(({ seq: _seq, ...rest }) => rest),
      next_cursor: more ? `r${out[out.length - 1].seq}` : null,
    };
  }

  /** Every visible entry for an event id, oldest first. */
  entriesFor(eventId: string): RejectionEntry[] {
    const found: RejectionEntry[] = [];
    for (const e of this.visible()) if (e.event_id === eventId) found.push(e);
    return found;
  }

  report(): RejectionLogReport {
    let entries = 0;
    let firstVisible = this.nextSeq;
    for (const e of this.visible()) {
      if (entries === 0) firstVisible = e.seq;
      entries++;
    }
    return {
      entries,
      bytes: this.files.reduce((n, f) => n + f.bytes, 0),
      files: this.files.length,
      dropped: firstVisible,
      corrupt_lines: this.corruptLines,
      write_failures: this.writeFailures,
    };
  }

  async close(): Promise<void> {
    await this.mutex.run(async () => {
      this.closed = true;
      if (this.out === null) return;
      await this.out.sync().catch(() => undefined);
      await this.out.close().catch(() => undefined);
      this.out = null;
    });
  }
}
