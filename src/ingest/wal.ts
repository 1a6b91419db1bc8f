/**
 * Write-ahead log: numbered files `wal/wal-NNNNNN.log`, each a header then framed records.
 *
 * Invariants:
 * - an acknowledged batch (strict, balanced) is inside a record that was fsynced, in a file
 *   whose directory entry was fsynced;
 * - records are framed [length u32][crc32c(length) u32][crc32c(payload) u32][payload], so the
 *   reader tells a torn tail (clean end) from corruption in the middle (refused);
 * - bytes after `durableOffset` may be lost by a crash; a failed append or sync is undone by
 *   cutting the file back to `durableOffset` before the log is used again.
 */
import { assert, UsageDbError } from '../errors.ts';
import { crc32c } from '../storage/encoding/crc32c.ts';
import type { AppendFile, FileSystem } from '../storage/fs/file-system.ts';
import { joinPath } from '../storage/fs/file-system.ts';

/** Persisted — never change. */
const WAL_MAGIC = 0x4c415755; // "UWAL" little-endian
const WAL_VERSION = 1;
export const WAL_HEADER_BYTES = 16;
export const RECORD_HEADER_BYTES = 12;
/** A single record larger than this is refused (guards against a corrupt length field). */
export const RECORD_BYTES_MAX = 256 * 1024 * 1024;
/** Masks the length checksum so a zeroed header never verifies. */
const LENGTH_CRC_MASK = 0xa282ead8;

/** A WAL file being created (see WalWriter.create); removed at open. */
export const WAL_TMP_SUFFIX = '.tmp';

export function walFileName(fileNumber: number): string {
  return `wal-${String(fileNumber).padStart(6, '0')}.log`;
}

export function parseWalFileName(name: string): number | null {
  const m = /^wal-(\d{6,})\.log$/.exec(name);
  return m ? Number(m[1]) : null;
}

function encodeFileHeader(fileNumber: number): Uint8Array {
  const header = new Uint8Array(WAL_HEADER_BYTES);
  const view = new DataView(header.buffer);
  view.setUint32(0, WAL_MAGIC, true);
  view.setUint8(4, WAL_VERSION);
  view.setUint32(8, fileNumber, true);
  view.setUint32(12, crc32c(header.subarray(0, 12)), true);
  return header;
}

export function encodeRecord(payload: Uint8Array): Uint8Array {
  assert(payload.length > 0 && payload.length <= RECORD_BYTES_MAX, 'WAL record size out of range');
  const record = new Uint8Array(RECORD_HEADER_BYTES + payload.length);
  const view = new DataView(record.buffer);
  view.setUint32(0, payload.length, true);
  view.setUint32(4, (crc32c(record.subarray(0, 4)) ^ LENGTH_CRC_MASK) >>> 0, true);
  view.setUint32(8, crc32c(payload), true);
  record.set(payload, RECORD_HEADER_BYTES);
  return record;
}

export class WalCorruptError extends UsageDbError {
  constructor(path: string, offset: number, what: string) {
    super(
      'USAGEDB_ERR_WAL_CORRUPT',
      `WAL ${path} is corrupt at byte ${offset}: ${what}; refusing to guess past it`,
    );
  }
}

export interface WalReadResult {
  records: Uint8Array[];
  /** Byte length of the valid prefix (header + whole records). */
  validBytes: number;
  /** True when bytes after the valid prefix were dropped as a torn tail. */
  tornTail: boolean;
}

function isAllZero(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * Parses one WAL file. A damaged final record is a torn tail (a crash mid-write) only when
 * `allowTornTail` (the newest file) and nothing valid could follow it; anything else is
 * corruption and throws WalCorruptError.
 */
export function readWalFile(
  path: string,
  bytes: Uint8Array,
  fileNumber: number,
  allowTornTail: boolean,
): WalReadResult {
  const torn = (offset: number, what: string): WalReadResult => {
    if (!allowTornTail) throw new WalCorruptError(path, offset, what);
    return { records, validBytes: offset, tornTail: true };
  };
  const records: Uint8Array[] = [];
  // Files are created with their header atomically: a short one was damaged, not torn.
  if (bytes.length < WAL_HEADER_BYTES) throw new WalCorruptError(path, 0, 'file shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== WAL_MAGIC || view.getUint32(12, true) !== crc32c(bytes.subarray(0, 12))) {
    throw new WalCorruptError(path, 0, 'bad file header');
  }
  if (view.getUint8(4) !== WAL_VERSION)
    throw new WalCorruptError(path, 0, `unsupported version ${view.getUint8(4)}`);
  if (view.getUint32(8, true) !== fileNumber)
    throw new WalCorruptError(path, 0, 'file number does not match its name');
  let offset = WAL_HEADER_BYTES;
  while (offset < bytes.length) {
    if (bytes.length - offset < RECORD_HEADER_BYTES) return torn(offset, 'partial record header');
    const length = view.getUint32(offset, true);
    const lengthCrc = (crc32c(bytes.subarray(offset, offset + 4)) ^ LENGTH_CRC_MASK) >>> 0;
    if (view.getUint32(offset + 4, true) !== lengthCrc) {
      if (isAllZero(bytes.subarray(offset))) return torn(offset, 'zero-filled tail');
      throw new WalCorruptError(path, offset, 'record length checksum mismatch');
    }
    if (length === 0 || length > RECORD_BYTES_MAX)
      throw new WalCorruptError(path, offset, `impossible record length ${length}`);
    const end = offset + RECORD_HEADER_BYTES + length;
    if (end > bytes.length) return torn(offset, 'record extends past end of file');
    const payload = bytes.subarray(offset + RECORD_HEADER_BYTES, end);
    if (view.getUint32(offset + 8, true) !== crc32c(payload)) {
      // A torn write leaves the final record damaged; a damaged record with data after it is bit rot.
      if (end === bytes.length) return torn(offset, 'final record checksum mismatch');
      throw new WalCorruptError(path, offset, 'record checksum mismatch');
    }
    records.push(payload);
    offset = end;
  }
  return { records, validBytes: offset, tornTail: false };
}

/**
 * The open WAL file that ingest appends to, with group commit: concurrent callers that wait
 * for durability share one fsync.
 */
/** fsync latency of the WAL, over every WAL file of one open database (for metrics). */
export class FsyncTimes {
  count = 0;
  totalMs = 0;
  maxMs = 0;

  record(ms: number): void {
    this.count++;
    this.totalMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }
}

export class WalWriter {
  /** Where this writer's fsync times go (the ingestor shares one across rotations). */
  fsyncs = new FsyncTimes();
  readonly fileNumber: number;
  readonly path: string;
  private readonly file: AppendFile;
  private durable: number;
  private syncInFlight: Promise<void> | null = null;
  /** Set by a failed append or sync: nothing more is trusted until `cutToDurable`. */
  private failure: unknown = null;

  private constructor(fileNumber: number, path: string, file: AppendFile, durableBytes: number) {
    this.fileNumber = fileNumber;
    this.path = path;
    this.file = file;
    this.durable = durableBytes;
  }

  /**
   * Creates a new WAL file durably (file header and directory entry fsynced). The header is
   * written under a tmp name and renamed, so a WAL file under its own name always has a whole
   * header: a short one is damage, never a create cut short (a full disk, a crash).
   */
  static async create(fs: FileSystem, walDir: string, fileNumber: number): Promise<WalWriter> {
    const path = joinPath(walDir, walFileName(fileNumber));
    const tmpPath = `${path}${WAL_TMP_SUFFIX}`;
    await fs.writeFile(tmpPath, encodeFileHeader(fileNumber), { sync: true });
    await fs.rename(tmpPath, path);
    await fs.syncDir(walDir);
    const file = await fs.openAppend(path);
    return new WalWriter(fileNumber, path, file, file.size());
  }

  /** Reopens an existing WAL file after recovery, cut back to its valid prefix. */
  static async reopen(
    fs: FileSystem,
    walDir: string,
    fileNumber: number,
    validBytes: number,
  ): Promise<WalWriter> {
    const path = joinPath(walDir, walFileName(fileNumber));
    const file = await fs.openAppend(path);
    if (file.size() !== validBytes) {
      await file.truncate(validBytes);
      await file.sync();
    }
    return new WalWriter(fileNumber, path, file, validBytes);
  }

  get sizeBytes(): number {
    return this.file.size();
  }

  get durableOffset(): number {
    return this.durable;
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  private throwIfFailed(): void {
    if (this.failure !== null) {
      throw new UsageDbError('USAGEDB_ERR_WAL_WRITE', `WAL ${this.path} needs repair after a failed write`, {
        cause: this.failure,
      });
    }
  }

  /** Appends one record (not yet durable); returns the file offset where it ends. */
  async append(payload: Uint8Array): Promise<number> {
    this.throwIfFailed();
    try {
      await this.file.append(encodeRecord(payload));
    } catch (err) {
      this.failure = err;
      throw err;
    }
    return this.file.size();
  }

  /** Resolves once every byte before `offset` is fsynced; concurrent callers share fsyncs. */
  async syncTo(offset: number): Promise<void> {
    while (this.durable < offset) {
      this.throwIfFailed();
      if (this.syncInFlight === null) {
        const target = this.file.size();
        const startedMs = performance.now();
        this.syncInFlight = this.file.sync().then(
          () => {
            this.durable = Math.max(this.durable, target);
            this.syncInFlight = null;
            this.fsyncs.record(performance.now() - startedMs);
          },
          (err: unknown) => {
            this.syncInFlight = null;
            this.failure = err;
            throw err;
          },
        );
      }
      await this.syncInFlight;
    }
  }

  /** Undoes everything after the durable prefix (after a failed append or sync). */
  async cutToDurable(): Promise<void> {
    if (this.syncInFlight !== null) await this.syncInFlight.catch(() => undefined);
    await this.file.truncate(this.durable);
    await this.file.sync();
    this.failure = null;
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
