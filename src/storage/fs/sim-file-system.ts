/**
 * SimFileSystem: a deterministic in-memory disk with a page cache, for crash and fault tests.
 * It loses what a real machine may lose at power failure (un-fsynced bytes, un-fsynced
 * directory entries), can tear un-synced appends, flip bits, and fail or crash at a chosen call.
 *
 * Invariants:
 * - Every file (inode) has volatile bytes (what reads see) and durable bytes (what a crash
 *   keeps); the two agree on [0, min(dirtyFromBytes, volatile size, durable size)).
 * - Every directory has a volatile entry table (what lookups see) and a durable one (what a
 *   crash keeps); only `syncDir`, `createExclusive` and `markAllDurable` copy one to the other.
 * - A crash replaces every reachable volatile table and byte array by its durable twin and
 *   bumps the boot id, which kills every handle opened before it.
 * - Each FileSystem or handle call (except the bookkeeping `size()`) takes exactly one call
 *   number before anything else happens, so a fault scheduled by number replays exactly. A
 *   call that faults changes nothing.
 * - Nothing handed to a caller aliases internal storage, and no caller's array is retained.
 * - All randomness comes from the seeded PRNG, so a run replays from its seed.
 */

import {
  type AppendFile,
  type FileSystem,
  FsError,
  type FsErrorCode,
  type ReadFile,
  type WriteFileOptions,
} from './file-system.ts';

/** Largest simulated file: a runaway writer gets ENOSPC instead of exhausting the heap. */
export const SIM_FILE_BYTES_MAX = 1024 * 1024 * 1024;
const INITIAL_CAPACITY_BYTES = 64;
const DEFAULT_SEED = 0x5eed;

export interface SimFileSystemOptions {
  /** Seeds the PRNG that picks torn-write lengths. */
  seed?: number;
}

export interface SimCrashOptions {
  /** Keep a random prefix of each un-synced append instead of dropping all of it. */
  tornWrites?: boolean;
}

/** One counted call, as fault predicates see it. `op` is the method name. */
export interface SimCall {
  op: string;
  path: string;
  /** The target of a `rename`. */
  toPath?: string;
  callNumber: number;
}

export type SimFault = FsErrorCode | 'crash' | undefined;
export type SimFaultPredicate = (call: SimCall) => SimFault;

/** Which namespace and bytes a test helper looks at: the live ones, or what a crash would keep. */
export type SimView = 'volatile' | 'durable';

/**
 * Thrown by the call at which a scheduled crash happened, and by every call after it until
 * `restart()`: the machine is off, so nothing reaches the disk.
 */
export class SimulatedCrashError extends Error {
  readonly op: string;
  readonly path: string;
  /** The number of the call that crashed the machine. */
  readonly crashCallNumber: number;
  constructor(op: string, path: string, crashCallNumber: number) {
    super(`simulated crash (at call ${crashCallNumber}): ${op} '${path}'`);
    this.name = 'SimulatedCrashError';
    this.op = op;
    this.path = path;
    this.crashCallNumber = crashCallNumber;
  }
}

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`SimFileSystem: assertion failed: ${message}`);
}

/** mulberry32: small and fast; torn-write lengths need replayability, not statistical quality. */
class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let mixed = this.state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 0x1_0000_0000;
  }
  /** Uniform integer in [0, bound). */
  nextInt(bound: number): number {
    assert(Number.isSafeInteger(bound) && bound > 0, `nextInt bound ${bound} is a positive integer`);
    return Math.floor(this.next() * bound);
  }
}

/** A byte array that grows by doubling, so a long run of small appends stays linear. */
class Bytes {
  private buffer: Uint8Array;
  private length = 0;

  constructor() {
    this.buffer = new Uint8Array(INITIAL_CAPACITY_BYTES);
  }

  get sizeBytes(): number {
    return this.length;
  }

  append(data: Uint8Array): void {
    const needBytes = this.length + data.byteLength;
    if (needBytes > this.buffer.byteLength) {
      let capacityBytes = this.buffer.byteLength;
      while (capacityBytes < needBytes) capacityBytes *= 2;
      const grown = new Uint8Array(capacityBytes);
      grown.set(this.buffer.subarray(0, this.length));
      this.buffer = grown;
    }
    this.buffer.set(data, this.length);
    this.length = needBytes;
  }

  /** Shrinks only; growing is done by `append`. */
  truncate(sizeBytes: number): void {
    assert(sizeBytes >= 0 && sizeBytes <= this.length, `truncate ${sizeBytes} within 0..${this.length}`);
    this.length = sizeBytes;
  }

  replace(data: Uint8Array): void {
    this.length = 0;
    this.append(data);
  }

  /** An alias of internal storage: for copying between Bytes only, never handed out. */
  view(start: number, end: number): Uint8Array {
    assert(
      start >= 0 && start <= end && end <= this.length,
      `view ${start}..${end} within 0..${this.length}`,
    );
    return this.buffer.subarray(start, end);
  }

  copy(start = 0, end = this.length): Uint8Array {
    return this.view(start, end).slice();
  }

  flipBit(byteOffset: number, bit: number): void {
    assert(byteOffset < this.length, `flip offset ${byteOffset} below ${this.length}`);
    this.buffer[byteOffset] ^= 1 << bit;
  }
}

interface Inode {
  readonly inodeId: number;
  readonly volatile: Bytes;
  readonly durable: Bytes;
  /** Lowest offset changed since the last sync (Infinity when clean): sync copies from here. */
  dirtyFromBytes: number;
}

interface Directory {
  volatile: Map<string, Entry>;
  durable: Map<string, Entry>;
}

type Entry =
  { readonly kind: 'file'; readonly inode: Inode } | { readonly kind: 'dir'; readonly dir: Directory };

interface Resolved {
  /** Undefined only for the root, which has no parent. */
  parent: Directory | undefined;
  name: string;
  entry: Entry | undefined;
}

/** Splits on '/', so 'a/b', '/a/b' and '/a//b/' all name the same file under the one root. */
function splitPath(path: string): string[] {
  const parts = path.split('/').filter((part) => part.length > 0 && part !== '.');
  assert(!parts.includes('..'), `path '${path}' uses '..', which the FileSystem contract excludes`);
  return parts;
}

function isInside(innerPath: string, outerPath: string): boolean {
  const inner = splitPath(innerPath);
  const outer = splitPath(outerPath);
  return inner.length > outer.length && outer.every((part, i) => inner[i] === part);
}

/** Liveness of one handle: dead once closed or once the machine it was opened on crashed. */
interface HandleState {
  readonly bootId: number;
  closed: boolean;
}

let nextDiskNumber = 1;

export class SimFileSystem implements FileSystem {
  readonly seed: number;
  private readonly random: Prng;
  private readonly root: Directory;
  private nextInodeId = 1;
  private bootId = 1;
  private calls = 0;
  /** The number of the call that crashed the machine, while it stays off (until `restart`). */
  private haltedAtCall: number | undefined;
  private readonly failAtCalls = new Map<number, FsErrorCode>();
  private readonly crashAtCalls = new Map<number, SimCrashOptions>();
  private predicates: { predicate: SimFaultPredicate; crashOptions: SimCrashOptions }[] = [];

  /** Tells simulated disks apart in canonicalName. */
  private readonly diskNumber = nextDiskNumber++;

  constructor(options: SimFileSystemOptions = {}) {
    this.seed = options.seed ?? DEFAULT_SEED;
    this.random = new Prng(this.seed);
    // The root always exists and is durable: there is no parent to syncDir it into.
    this.root = { volatile: new Map(), durable: new Map() };
  }

  // ---- FileSystem ----

  /** Not a counted call: bookkeeping, like `size()`. Each simulated disk has its own names. */
  async canonicalName(path: string): Promise<string> {
    const parts: string[] = [];
    for (const part of path.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') parts.pop();
      else parts.push(part);
    }
    return `sim-${this.diskNumber}:/${parts.join('/')}`;
  }

  async mkdirp(dir: string): Promise<void> {
    this.enter('mkdirp', dir);
    const parts = splitPath(dir);
    let current = this.root;
    for (let i = 0; i < parts.length; i++) {
      const entry = current.volatile.get(parts[i]);
      if (entry === undefined) {
        const created: Directory = { volatile: new Map(), durable: new Map() };
        current.volatile.set(parts[i], { kind: 'dir', dir: created });
        current = created;
      } else if (entry.kind === 'dir') {
        current = entry.dir;
      } else {
        // Same codes as mkdir -p on Linux: the last part exists as a file, or a parent is one.
        throw new FsError(i === parts.length - 1 ? 'EEXIST' : 'ENOTDIR', 'mkdirp', dir);
      }
    }
  }

  async readdir(dir: string): Promise<string[]> {
    this.enter('readdir', dir);
    return [...this.requireDir('readdir', dir).volatile.keys()].sort();
  }

  async exists(path: string): Promise<boolean> {
    this.enter('exists', path);
    try {
      return this.resolve('exists', path).entry !== undefined;
    } catch (err) {
      if (err instanceof FsError && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) return false;
      throw err;
    }
  }

  async stat(path: string): Promise<{ sizeBytes: number; isDirectory: boolean }> {
    this.enter('stat', path);
    const { entry } = this.resolve('stat', path);
    if (entry === undefined) throw new FsError('ENOENT', 'stat', path);
    if (entry.kind === 'dir') return { sizeBytes: 0, isDirectory: true };
    return { sizeBytes: entry.inode.volatile.sizeBytes, isDirectory: false };
  }

  async readFile(path: string): Promise<Uint8Array> {
    this.enter('readFile', path);
    return this.requireFile('readFile', path).volatile.copy();
  }

  async writeFile(path: string, data: Uint8Array, options?: WriteFileOptions): Promise<void> {
    this.enter('writeFile', path);
    if (data.byteLength > SIM_FILE_BYTES_MAX) throw new FsError('ENOSPC', 'writeFile', path);
    // Like open(O_CREAT | O_TRUNC): an existing file keeps its inode, only its bytes change.
    const inode = this.openOrCreate('writeFile', path);
    inode.volatile.replace(data);
    inode.dirtyFromBytes = 0;
    if (options?.sync === true) syncInode(inode);
  }

  async openAppend(path: string): Promise<AppendFile> {
    this.enter('openAppend', path);
    return this.makeAppendFile(path, this.openOrCreate('openAppend', path));
  }

  async openRead(path: string): Promise<ReadFile> {
    this.enter('openRead', path);
    return this.makeReadFile(path, this.requireFile('openRead', path));
  }

  async rename(fromPath: string, toPath: string): Promise<void> {
    this.enter('rename', fromPath, toPath);
    const from = this.resolve('rename', fromPath);
    if (from.entry === undefined) throw new FsError('ENOENT', 'rename', fromPath);
    const to = this.resolve('rename', toPath);
    assert(from.parent !== undefined && to.parent !== undefined, 'rename does not involve the root');
    if (sameEntry(from.entry, to.entry)) return; // POSIX: renaming a file onto itself does nothing.
    if (from.entry.kind === 'file') {
      if (to.entry?.kind === 'dir') throw new FsError('EISDIR', 'rename', toPath);
    } else {
      assert(!isInside(toPath, fromPath), `rename '${fromPath}' into itself ('${toPath}')`);
      if (to.entry?.kind === 'file') throw new FsError('ENOTDIR', 'rename', toPath);
      if (to.entry?.kind === 'dir' && to.entry.dir.volatile.size > 0) {
        throw new FsError('ENOTEMPTY', 'rename', toPath);
      }
    }
    from.parent.volatile.delete(from.name);
    to.parent.volatile.set(to.name, from.entry);
  }

  async unlink(path: string): Promise<void> {
    this.enter('unlink', path);
    const { parent, name, entry } = this.resolve('unlink', path);
    if (entry === undefined) throw new FsError('ENOENT', 'unlink', path);
    if (entry.kind === 'dir') throw new FsError('EISDIR', 'unlink', path);
    assert(parent !== undefined, 'a file always has a parent');
    parent.volatile.delete(name);
  }

  async rmdir(path: string): Promise<void> {
    this.enter('rmdir', path);
    const { parent, name, entry } = this.resolve('rmdir', path);
    if (entry === undefined) throw new FsError('ENOENT', 'rmdir', path);
    if (entry.kind === 'file') throw new FsError('ENOTDIR', 'rmdir', path);
    assert(parent !== undefined, 'rmdir of the root');
    if (entry.dir.volatile.size > 0) throw new FsError('ENOTEMPTY', 'rmdir', path);
    parent.volatile.delete(name);
  }

  async syncDir(dir: string): Promise<void> {
    this.enter('syncDir', dir);
    syncDirectory(this.requireDir('syncDir', dir));
  }

  async createExclusive(path: string, data: Uint8Array): Promise<void> {
    this.enter('createExclusive', path);
    const { parent, name, entry } = this.resolve('createExclusive', path);
    if (entry !== undefined) throw new FsError('EEXIST', 'createExclusive', path);
    assert(parent !== undefined, 'the root always exists');
    if (data.byteLength > SIM_FILE_BYTES_MAX) throw new FsError('ENOSPC', 'createExclusive', path);
    const inode = this.newInode();
    inode.volatile.replace(data);
    inode.dirtyFromBytes = 0;
    parent.volatile.set(name, { kind: 'file', inode });
    // Durable as one step, as the contract promises: file bytes, then the directory entry.
    syncInode(inode);
    syncDirectory(parent);
  }

  // ---- Crash and fault control ----

  /** Number of counted calls so far (calls refused while crashed are not counted). */
  get callCount(): number {
    return this.calls;
  }

  /** True between a scheduled crash and `restart()`. */
  get halted(): boolean {
    return this.haltedAtCall !== undefined;
  }

  /**
   * Power loss: the namespace becomes the durable one, every file its durable bytes (plus, with
   * `tornWrites`, a random prefix of an un-synced append), and every open handle dies. The fs
   * then works again as the rebooted machine.
   */
  crash(options: SimCrashOptions = {}): void {
    this.bootId++;
    const inodes = new Map<number, Inode>();
    // A stale durable table can, in odd rename orders, reach a directory twice (even in a cycle).
    const visited = new Set<Directory>();
    const restore = (dir: Directory): void => {
      if (visited.has(dir)) return;
      visited.add(dir);
      dir.volatile = new Map(dir.durable);
      for (const entry of dir.durable.values()) {
        if (entry.kind === 'dir') restore(entry.dir);
        else inodes.set(entry.inode.inodeId, entry.inode);
      }
    };
    restore(this.root);
    // Inode order, so the PRNG is consumed in the same order on every replay.
    const ordered = [...inodes.values()].sort((a, b) => a.inodeId - b.inodeId);
    for (const inode of ordered) this.restoreInode(inode, options.tornWrites === true);
  }

  /** Powers the machine back on after a scheduled crash (the crash itself was already applied). */
  restart(): void {
    this.haltedAtCall = undefined;
  }

  /** Call number `callNumber` (counted from 1) throws FsError(code) and does nothing. */
  failAt(callNumber: number, code: FsErrorCode): void {
    assert(callNumber > this.calls, `failAt(${callNumber}) is in the future (now at ${this.calls})`);
    this.failAtCalls.set(callNumber, code);
  }

  /** Call number `callNumber` crashes the machine; it and every later call throw until `restart()`. */
  crashAt(callNumber: number, options: SimCrashOptions = {}): void {
    assert(callNumber > this.calls, `crashAt(${callNumber}) is in the future (now at ${this.calls})`);
    this.crashAtCalls.set(callNumber, options);
  }

  /**
   * Asks `predicate` about every counted call; an error code fails the call, 'crash' crashes the
   * machine as `crashAt` does. Returns a function that removes the predicate.
   */
  injectFault(predicate: SimFaultPredicate, crashOptions: SimCrashOptions = {}): () => void {
    const registered = { predicate, crashOptions };
    this.predicates.push(registered);
    return () => {
      this.predicates = this.predicates.filter((p) => p !== registered);
    };
  }

  /** Forgets every scheduled failure, crash and predicate. */
  clearFaults(): void {
    this.failAtCalls.clear();
    this.crashAtCalls.clear();
    this.predicates = [];
  }

  /** Makes everything durable, as if every file and directory had been synced (test setup). */
  markAllDurable(): void {
    const visit = (dir: Directory): void => {
      syncDirectory(dir);
      for (const entry of dir.volatile.values()) {
        if (entry.kind === 'dir') visit(entry.dir);
        else syncInode(entry.inode);
      }
    };
    visit(this.root);
  }

  // ---- Inspection and corruption, for tests (not counted, never faulted) ----

  /** A copy of a file's bytes: live (what reads see) or durable (what a crash would keep). */
  readRaw(path: string, view: SimView = 'volatile'): Uint8Array {
    const { entry } = this.resolve('readRaw', path, view);
    if (entry === undefined) throw new FsError('ENOENT', 'readRaw', path);
    if (entry.kind === 'dir') throw new FsError('EISDIR', 'readRaw', path);
    return view === 'volatile' ? entry.inode.volatile.copy() : entry.inode.durable.copy();
  }

  /** Every path in the namespace, absolute and sorted; directories end with '/'. */
  listAll(view: SimView = 'volatile'): string[] {
    const paths: string[] = [];
    const visited = new Set<Directory>();
    const walk = (dir: Directory, prefix: string): void => {
      if (visited.has(dir)) return;
      visited.add(dir);
      for (const [name, entry] of view === 'volatile' ? dir.volatile : dir.durable) {
        if (entry.kind === 'file') {
          paths.push(prefix + name);
        } else {
          paths.push(`${prefix}${name}/`);
          walk(entry.dir, `${prefix}${name}/`);
        }
      }
    };
    walk(this.root, '/');
    return paths.sort();
  }

  /** Bit rot: flips bit `bit` (0 = least significant) of one byte, in live and durable bytes. */
  flipBit(path: string, byteOffset: number, bit: number): void {
    assert(Number.isInteger(bit) && bit >= 0 && bit < 8, `bit ${bit} within 0..7`);
    const inode = this.requireFile('flipBit', path);
    assert(Number.isInteger(byteOffset) && byteOffset >= 0, `byte offset ${byteOffset} is not negative`);
    inode.volatile.flipBit(byteOffset, bit);
    if (byteOffset < inode.durable.sizeBytes) inode.durable.flipBit(byteOffset, bit);
  }

  /** Lost tail: cuts a file's live and durable bytes to at most `sizeBytes`. */
  truncateFile(path: string, sizeBytes: number): void {
    const inode = this.requireFile('truncateFile', path);
    assert(Number.isInteger(sizeBytes), `truncate size ${sizeBytes} is an integer`);
    inode.volatile.truncate(sizeBytes);
    inode.durable.truncate(Math.min(sizeBytes, inode.durable.sizeBytes));
  }

  // ---- Internals ----

  /** Every counted call starts here: refuse while crashed, take a number, apply scheduled faults. */
  private enter(op: string, path: string, toPath?: string): void {
    if (this.haltedAtCall !== undefined) throw new SimulatedCrashError(op, path, this.haltedAtCall);
    const callNumber = ++this.calls;
    const call: SimCall = toPath === undefined ? { op, path, callNumber } : { op, path, toPath, callNumber };
    const crashOptions = this.crashAtCalls.get(callNumber);
    if (crashOptions !== undefined) {
      this.crashAtCalls.delete(callNumber);
      this.crashAndHalt(call, crashOptions);
    }
    const code = this.failAtCalls.get(callNumber);
    if (code !== undefined) {
      this.failAtCalls.delete(callNumber);
      throw new FsError(code, op, path);
    }
    for (const { predicate, crashOptions: options } of [...this.predicates]) {
      const fault = predicate(call);
      if (fault === 'crash') this.crashAndHalt(call, options);
      if (fault !== undefined) throw new FsError(fault, op, path);
    }
  }

  private crashAndHalt(call: SimCall, options: SimCrashOptions): never {
    this.crash(options);
    this.haltedAtCall = call.callNumber;
    throw new SimulatedCrashError(call.op, call.path, call.callNumber);
  }

  private restoreInode(inode: Inode, tornWrites: boolean): void {
    const durableBytes = inode.durable.sizeBytes;
    const volatileBytes = inode.volatile.sizeBytes;
    // Only an append since the last sync can tear: durable bytes are then a prefix of volatile.
    const unsyncedAppend = volatileBytes > durableBytes && inode.dirtyFromBytes >= durableBytes;
    if (tornWrites && unsyncedAppend) {
      const keptTailBytes = this.random.nextInt(volatileBytes - durableBytes + 1);
      // What reached the platter before power went is on disk after the reboot.
      inode.durable.append(inode.volatile.view(durableBytes, durableBytes + keptTailBytes));
    }
    inode.volatile.replace(inode.durable.view(0, inode.durable.sizeBytes));
    inode.dirtyFromBytes = Number.POSITIVE_INFINITY;
  }

  private newInode(): Inode {
    return {
      inodeId: this.nextInodeId++,
      volatile: new Bytes(),
      durable: new Bytes(),
      dirtyFromBytes: Number.POSITIVE_INFINITY,
    };
  }

  /** Finds a path in the live (or durable) namespace; a missing last part gives entry undefined. */
  private resolve(op: string, path: string, view: SimView = 'volatile'): Resolved {
    const parts = splitPath(path);
    if (parts.length === 0) return { parent: undefined, name: '', entry: { kind: 'dir', dir: this.root } };
    let dir = this.root;
    for (const part of parts.slice(0, -1)) {
      const entry = (view === 'volatile' ? dir.volatile : dir.durable).get(part);
      if (entry === undefined) throw new FsError('ENOENT', op, path);
      if (entry.kind === 'file') throw new FsError('ENOTDIR', op, path);
      dir = entry.dir;
    }
    const name = parts[parts.length - 1];
    return { parent: dir, name, entry: (view === 'volatile' ? dir.volatile : dir.durable).get(name) };
  }

  private requireFile(op: string, path: string): Inode {
    const { entry } = this.resolve(op, path);
    if (entry === undefined) throw new FsError('ENOENT', op, path);
    if (entry.kind === 'dir') throw new FsError('EISDIR', op, path);
    return entry.inode;
  }

  private requireDir(op: string, path: string): Directory {
    const { entry } = this.resolve(op, path);
    if (entry === undefined) throw new FsError('ENOENT', op, path);
    if (entry.kind === 'file') throw new FsError('ENOTDIR', op, path);
    return entry.dir;
  }

  private openOrCreate(op: string, path: string): Inode {
    const { parent, name, entry } = this.resolve(op, path);
    if (entry?.kind === 'dir') throw new FsError('EISDIR', op, path);
    if (entry !== undefined) return entry.inode;
    assert(parent !== undefined, 'only the root has no parent, and it is a directory');
    const inode = this.newInode();
    parent.volatile.set(name, { kind: 'file', inode });
    return inode;
  }

  private checkHandle(handle: HandleState, op: string, path: string): void {
    if (handle.closed || handle.bootId !== this.bootId) throw new FsError('EBADF', op, path);
  }

  private makeAppendFile(path: string, inode: Inode): AppendFile {
    const handle: HandleState = { bootId: this.bootId, closed: false };
    return {
      path,
      // Bookkeeping, not I/O (the real fs tracks it in memory): not counted, never faulted.
      size: (): number => {
        this.checkHandle(handle, 'size', path);
        return inode.volatile.sizeBytes;
      },
      append: async (data: Uint8Array): Promise<void> => {
        this.enter('append', path);
        this.checkHandle(handle, 'append', path);
        const sizeBytes = inode.volatile.sizeBytes;
        if (sizeBytes + data.byteLength > SIM_FILE_BYTES_MAX) throw new FsError('ENOSPC', 'append', path);
        inode.dirtyFromBytes = Math.min(inode.dirtyFromBytes, sizeBytes);
        inode.volatile.append(data);
      },
      sync: async (): Promise<void> => {
        this.enter('sync', path);
        this.checkHandle(handle, 'sync', path);
        syncInode(inode);
      },
      truncate: async (sizeBytes: number): Promise<void> => {
        this.enter('truncate', path);
        this.checkHandle(handle, 'truncate', path);
        assert(Number.isInteger(sizeBytes), `truncate size ${sizeBytes} is an integer`);
        inode.volatile.truncate(sizeBytes);
        inode.dirtyFromBytes = Math.min(inode.dirtyFromBytes, sizeBytes);
      },
      close: async (): Promise<void> => {
        this.enter('close', path);
        this.checkHandle(handle, 'close', path);
        handle.closed = true;
      },
    };
  }

  private makeReadFile(path: string, inode: Inode): ReadFile {
    const handle: HandleState = { bootId: this.bootId, closed: false };
    const readAt = (offset: number, length: number): Uint8Array => {
      this.enter('read', path);
      this.checkHandle(handle, 'read', path);
      assert(Number.isInteger(offset) && offset >= 0, `read offset ${offset} is a non-negative integer`);
      assert(Number.isInteger(length) && length >= 0, `read length ${length} is a non-negative integer`);
      // Reads see the inode's current bytes, as a real fd does (even after unlink or rename).
      if (offset + length > inode.volatile.sizeBytes) throw new FsError('EIO', 'read', path);
      return inode.volatile.copy(offset, offset + length);
    };
    return {
      path,
      sizeBytes: inode.volatile.sizeBytes,
      read: async (offset: number, length: number): Promise<Uint8Array> => readAt(offset, length),
      readSync: readAt,
      close: async (): Promise<void> => {
        this.enter('close', path);
        this.checkHandle(handle, 'close', path);
        handle.closed = true;
      },
    };
  }
}

/** fsync of a file: durable bytes become the volatile bytes, copying only what changed. */
function syncInode(inode: Inode): void {
  const startBytes = Math.min(inode.dirtyFromBytes, inode.volatile.sizeBytes, inode.durable.sizeBytes);
  inode.durable.truncate(startBytes);
  inode.durable.append(inode.volatile.view(startBytes, inode.volatile.sizeBytes));
  inode.dirtyFromBytes = Number.POSITIVE_INFINITY;
}

/** fsync of a directory: its durable entry table becomes a copy of the live one. */
function syncDirectory(dir: Directory): void {
  dir.durable = new Map(dir.volatile);
}

function sameEntry(a: Entry, b: Entry | undefined): boolean {
  if (b === undefined || a.kind !== b.kind) return false;
  return a.kind === 'file' ? b.kind === 'file' && a.inode === b.inode : b.kind === 'dir' && a.dir === b.dir;
}
