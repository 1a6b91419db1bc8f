/**
 * A zstd frame decoder (RFC 8878) for the small streams of segment chunks. node:zlib builds a
 * stream object and a native decompression context for every zstdDecompressSync call (~20 µs
 * of fixed cost), which dominated first-touch queries over thousands of small chunks; this
 * decoder has no per-call setup beyond its output buffer.
 *
 * Scope: one frame with a declared content size and no dictionary (what zstdCompress writes).
 * Anything else returns null so the caller can use node:zlib instead. The content checksum,
 * when present, is skipped: chunk bytes are CRC32C-checked (alone, or with their whole file)
 * before their streams are decoded.
 *
 * Invariants:
 * - the output is exactly the frame content size, every byte written, or the call throws;
 * - no write outside the output, and no read outside `src` is ever used: every length is
 *   checked (a bit reader may look past a table description's end, then rejects it);
 * - module scratch (literal buffer, Huffman and FSE tables) is used only inside one
 *   synchronous call.
 */

/** Largest block content (Block_Maximum_Size). */
const BLOCK_SIZE_MAX = 128 * 1024;
const HUF_LOG_MAX = 11;

class ZstdFormatError extends Error {}

function fail(what: string): never {
  throw new ZstdFormatError(`zstd: ${what}`);
}

// ---- code tables (RFC 8878 §3.1.1.3.2.1) -----------------------------------------------

// prettier-ignore
const LL_BASE = Int32Array.of(
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 28, 32, 40, 48, 64,
  128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
);
// prettier-ignore
const LL_BITS = Uint8Array.of(
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11,
  12, 13, 14, 15, 16,
);
// prettier-ignore
const ML_BASE = Int32Array.of(
  3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
  29, 30, 31, 32, 33, 34, 35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027, 2051,
  4099, 8195, 16387, 32771, 65539,
);
// prettier-ignore
const ML_BITS = Uint8Array.of(
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
);
const LL_MAX_SYMBOL = 35;
const ML_MAX_SYMBOL = 52;
const OF_MAX_SYMBOL = 31;
const LL_LOG_MAX = 9;
const ML_LOG_MAX = 9;
const OF_LOG_MAX = 8;

// ---- FSE tables (RFC 8878 §4.1) -----------------------------------------------------------

interface FseTable {
  log: number;
  symbol: Uint8Array;
  bits: Uint8Array;
  base: Uint16Array;
}

function highBit(v: number): number {
  return 31 - Math.clz32(v);
}

/** The decoding table of a normalised distribution (-1 = "less than one"), built into `t`. */
function buildFse(counts: Int16Array, symbols: number, log: number, t: FseTable): FseTable {
  const size = 1 << log;
  const { symbol, bits, base } = t;
  const next = fseNext;
  let high = size - 1;
  for (let s = 0; s < symbols; s++) {
    if (counts[s] === -1) {
      symbol[high--] = s;
      next[s] = 1;
    } else next[s] = counts[s];
  }
  const step = (size >> 1) + (size >> 3) + 3;
  const mask = size - 1;
  let position = 0;
  for (let s = 0; s < symbols; s++) {
    for (let i = 0; i < counts[s]; i++) {
      symbol[position] = s;
      do position = (position + step) & mask;
      while (position > high);
    }
  }
  if (position !== 0) fail('FSE distribution does not fill its table');
  for (let u = 0; u < size; u++) {
    const s = symbol[u];
    const state = next[s]++;
    const nb = log - highBit(state);
    bits[u] = nb;
    base[u] = (state << nb) - size;
  }
  t.log = log;
  return t;
}

function fseStorage(log: number): FseTable {
  const size = 1 << log;
  return { log, symbol: new Uint8Array(size), bits: new Uint8Array(size), base: new Uint16Array(size) };
}

const fseNext = new Uint16Array(256);
const fseCounts = new Int16Array(256);
/** Tables read from a frame: one live per kind (a later block may only repeat the last one). */
const LL_TABLE = fseStorage(LL_LOG_MAX);
const OF_TABLE = fseStorage(OF_LOG_MAX);
const ML_TABLE = fseStorage(ML_LOG_MAX);
const WEIGHT_TABLE = fseStorage(6);

function rleFse(s: number): FseTable {
  return { log: 0, symbol: Uint8Array.of(s), bits: Uint8Array.of(0), base: Uint16Array.of(0) };
}

function predefined(dist: readonly number[], log: number): FseTable {
  return buildFse(Int16Array.from(dist), dist.length, log, fseStorage(log));
}

// prettier-ignore
const LL_DEFAULT = predefined([
  4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
  -1, -1, -1, -1,
], 6);
// prettier-ignore
const ML_DEFAULT = predefined([
  1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
], 6);
// prettier-ignore
const OF_DEFAULT = predefined([
  1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
], 5);

/** Forward bit position (bits are read least significant first) of readFse. */
let fwdPos = 0;

/** n <= 16 bits forward; bytes past the array read as zero (the caller checks the end). */
function readForward(src: Uint8Array, n: number): number {
  const at = fwdPos >> 3;
  const v = (src[at] | (src[at + 1] << 8) | (src[at + 2] << 16) | (src[at + 3] << 24)) >>> (fwdPos & 7);
  fwdPos += n;
  return v & ((1 << n) - 1);
}

/** Reads an FSE table description at `pos` into `t`; returns the position after it. */
function readFse(
  src: Uint8Array,
  pos: number,
  end: number,
  maxSymbol: number,
  maxLog: number,
  t: FseTable,
): number {
  fwdPos = pos * 8;
  const log = readForward(src, 4) + 5;
  if (log > maxLog) fail(`FSE accuracy log ${log} above ${maxLog}`);
  const counts = fseCounts;
  counts.fill(0, 0, maxSymbol + 1);
  let remaining = (1 << log) + 1;
  let threshold = 1 << log;
  let nbBits = log + 1;
  let s = 0;
  let previousZero = false;
  while (remaining > 1 && s <= maxSymbol) {
    if (previousZero) {
      let n0 = s;
      for (;;) {
        const flag = readForward(src, 2);
        n0 += flag;
        if (flag !== 3) break;
        if (fwdPos > end * 8) fail('corrupt FSE distribution');
      }
      if (n0 > maxSymbol) fail('FSE distribution has too many symbols');
      s = n0;
    }
    const max = 2 * threshold - 1 - remaining;
    const low = readForward(src, nbBits - 1);
    let count: number;
    if (low < max) count = low;
    else {
      fwdPos -= nbBits - 1;
      count = readForward(src, nbBits);
      if (count >= threshold) count -= max;
    }
    count--;
    remaining -= count < 0 ? -count : count;
    counts[s++] = count;
    previousZero = count === 0;
    while (remaining < threshold) {
      nbBits--;
      threshold >>= 1;
    }
  }
  if (remaining !== 1 || fwdPos > end * 8) fail('corrupt FSE distribution');
  buildFse(counts, s, log, t);
  return (fwdPos + 7) >> 3;
}

// ---- backward bit stream -----------------------------------------------------------------

/**
 * Reads bits from the end of [start, end) towards its start, most significant first, after
 * the end marker (the highest set bit of the last byte). Past the start it reads zeros, and
 * `left()` goes negative (the format's overflow condition).
 */
const EMPTY_BYTES = new Uint8Array(0);

class BackBits {
  private src: Uint8Array = EMPTY_BYTES;
  private start = 0;
  /** Next byte to load (loaded downwards). */
  private next = 0;
  /** Low `count` bits of `bits` are unread. */
  private bits = 0;
  private count = 0;

  init(src: Uint8Array, start: number, end: number): void {
    if (end <= start) fail('empty bit stream');
    const last = src[end - 1];
    if (last === 0) fail('bit stream without end marker');
    this.src = src;
    this.start = start;
    this.next = end - 1;
    this.bits = last;
    this.count = highBit(last);
    this.refill();
  }

  /** Drops the reference to the last stream (a scratch reader must not pin a segment image). */
  release(): void {
    this.src = EMPTY_BYTES;
  }

  private refill(): void {
    while (this.count <= 24 && this.next > this.start) {
      this.bits = ((this.bits << 8) | this.src[--this.next]) >>> 0;
      this.count += 8;
    }
  }

  /** Unread bits; negative once reads went past the start. */
  left(): number {
    return this.count + (this.next - this.start) * 8;
  }

  /** n <= 24 bits. */
  read(n: number): number {
    if (n === 0) return 0;
    if (this.count < n) this.refill();
    let v: number;
    if (this.count >= n) v = (this.bits >>> (this.count - n)) & ((1 << n) - 1);
    else if (this.count > 0) v = (this.bits << (n - this.count)) & ((1 << n) - 1);
    else v = 0;
    this.count -= n;
    return v;
  }

  /** Any n <= 31. */
  readLong(n: number): number {
    if (n <= 24) return this.read(n);
    const hi = this.read(n - 24);
    return hi * 0x1000000 + this.read(24);
  }

  /** The next n <= 24 bits without consuming them. */
  peek(n: number): number {
    if (this.count < n) this.refill();
    if (this.count >= n) return (this.bits >>> (this.count - n)) & ((1 << n) - 1);
    if (this.count > 0) return (this.bits << (n - this.count)) & ((1 << n) - 1);
    return 0;
  }

  skip(n: number): void {
    this.count -= n;
  }
}

const bitsA = new BackBits();

// ---- Huffman literals (RFC 8878 §4.2) ----------------------------------------------------

/** The live Huffman table (one per frame at a time): entry = symbol | bits << 8. */
const hufTable = new Uint16Array(1 << HUF_LOG_MAX);
const hufWeights = new Uint8Array(256);
const hufRank = new Int32Array(HUF_LOG_MAX + 2);

/** Reads a Huffman tree description at `pos` into hufTable; returns [table log, position after]. */
function readHuffman(src: Uint8Array, pos: number, end: number): [number, number] {
  if (pos >= end) fail('truncated Huffman tree');
  const header = src[pos++];
  const weights = hufWeights;
  let count: number;
  if (header >= 128) {
    count = header - 127;
    const bytes = (count + 1) >> 1;
    if (pos + bytes > end) fail('truncated Huffman weights');
    for (let i = 0; i < count; i++) {
      const b = src[pos + (i >> 1)];
      weights[i] = (i & 1) === 0 ? b >> 4 : b & 15;
    }
    pos += bytes;
  } else {
    const stop = pos + header;
    if (stop > end) fail('truncated Huffman weights');
    const table = WEIGHT_TABLE;
    const at = readFse(src, pos, stop, HUF_LOG_MAX + 1, 6, table);
    const br = bitsA;
    br.init(src, at, stop);
    let s1 = br.read(table.log);
    let s2 = br.read(table.log);
    count = 0;
    // Two interleaved states share the table, until the stream overflows (RFC 8878 §4.2.1.2).
    for (;;) {
      if (count > 253) fail('too many Huffman weights');
      weights[count++] = table.symbol[s1];
      s1 = table.base[s1] + br.read(table.bits[s1]);
      if (br.left() < 0) {
        weights[count++] = table.symbol[s2];
        break;
      }
      weights[count++] = table.symbol[s2];
      s2 = table.base[s2] + br.read(table.bits[s2]);
      if (br.left() < 0) {
        weights[count++] = table.symbol[s1];
        break;
      }
    }
    pos = stop;
  }
  let total = 0;
  for (let i = 0; i < count; i++) {
    const w = weights[i];
    if (w > HUF_LOG_MAX) fail(`Huffman weight ${w}`);
    if (w > 0) total += 1 << (w - 1);
  }
  if (total === 0) fail('Huffman weights are all zero');
  const log = highBit(total) + 1;
  if (log > HUF_LOG_MAX) fail(`Huffman table log ${log}`);
  const rest = (1 << log) - total;
  if ((rest & (rest - 1)) !== 0) fail('Huffman weights do not complete a tree');
  weights[count] = highBit(rest) + 1;
  const symbols = count + 1;
  const rank = hufRank;
  rank.fill(0);
  for (let i = 0; i < symbols; i++) if (weights[i] > 0) rank[weights[i]] += 1 << (weights[i] - 1);
  let at = 0;
  for (let w = 1; w <= log; w++) {
    const n = rank[w];
    rank[w] = at;
    at += n;
  }
  const table = hufTable;
  for (let s = 0; s < symbols; s++) {
    const w = weights[s];
    if (w === 0) continue;
    const from = rank[w];
    const to = from + (1 << (w - 1));
    const e = s | ((log + 1 - w) << 8);
    for (let u = from; u < to; u++) table[u] = e;
    rank[w] = to;
  }
  return [log, pos];
}

/** Decodes one Huffman stream [start, end) into out[at, at + n) with hufTable. */
function decodeHuffmanStream(
  log: number,
  src: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  at: number,
  n: number,
): void {
  if (end <= start) fail('empty Huffman stream');
  const lastByte = src[end - 1];
  if (lastByte === 0) fail('Huffman stream without end marker');
  const table = hufTable;
  const mask = (1 << log) - 1;
  // The reader of BackBits, inlined: `count` unread bits at the bottom of `bits`.
  let next = end - 1;
  let bits = lastByte;
  let count = highBit(lastByte);
  let i = at;
  const stop = at + n;
  while (i < stop) {
    while (count <= 24 && next > start) {
      bits = (bits << 8) | src[--next];
      count += 8;
    }
    if (count >= log) {
      let e = table[(bits >>> (count - log)) & mask];
      out[i++] = e;
      count -= e >> 8;
      if (count >= log && i < stop) {
        e = table[(bits >>> (count - log)) & mask];
        out[i++] = e;
        count -= e >> 8;
      }
    } else {
      // The last bits of the stream: the missing low bits read as zero.
      const e = table[count > 0 ? (bits << (log - count)) & mask : 0];
      out[i++] = e;
      count -= e >> 8;
    }
  }
  if (count !== 0 || next !== start) fail('Huffman stream not consumed exactly');
}

// ---- frame and blocks ------------------------------------------------------------------

/** Decoder state that carries over between the blocks of a frame. */
interface FrameState {
  out: Uint8Array;
  op: number;
  rep1: number;
  rep2: number;
  rep3: number;
  /** Log of the live Huffman table (hufTable), 0 before the first tree. */
  hufLog: number;
  ll: FseTable | null;
  of: FseTable | null;
  ml: FseTable | null;
}

/** Scratch for decoded literals (at most one block's worth). */
const literalScratch = new Uint8Array(BLOCK_SIZE_MAX);

/** Every byte is written before a frame is accepted (op === size): no zeroing needed. */
function allocOutput(size: number): Uint8Array {
  return Buffer.allocUnsafe(size);
}

/**
 * Decodes one magicless zstd frame that declares its content size. Returns null when the
 * frame uses what this decoder leaves to node:zlib (dictionary, unknown size, size above
 * `maxOutput`); throws on malformed input. `alloc` supplies the output buffer (its every
 * byte is overwritten).
 */
export function decodeZstdFrame(
  src: Uint8Array,
  maxOutput: number,
  alloc: (size: number) => Uint8Array = allocOutput,
): Uint8Array | null {
  const n = src.length;
  if (n < 1) fail('empty frame');
  const fhd = src[0];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if ((fhd & 8) !== 0) fail('reserved frame header bit set');
  const checksum = (fhd >> 2) & 1;
  if ((fhd & 3) !== 0) return null;
  let pos = single === 1 ? 1 : 2;
  const fcsBytes = fcsFlag === 0 ? single : 1 << fcsFlag;
  if (fcsBytes === 0) return null;
  if (pos + fcsBytes > n) fail('truncated frame header');
  let size: number;
  if (fcsBytes === 1) size = src[pos];
  else if (fcsBytes === 2) size = (src[pos] | (src[pos + 1] << 8)) + 256;
  else {
    size = (src[pos] | (src[pos + 1] << 8) | (src[pos + 2] << 16)) + src[pos + 3] * 0x1000000;
    if (fcsBytes === 8) {
      const high = (src[pos + 4] | (src[pos + 5] << 8) | (src[pos + 6] << 16)) + src[pos + 7] * 0x1000000;
      if (high !== 0) return null;
    }
  }
  pos += fcsBytes;
  if (size > maxOutput) return null;
  const st: FrameState = {
    out: alloc(size),
    op: 0,
    rep1: 1,
    rep2: 4,
    rep3: 8,
    hufLog: 0,
    ll: null,
    of: null,
    ml: null,
  };
  for (;;) {
    if (pos + 3 > n) fail('truncated block header');
    const h = src[pos] | (src[pos + 1] << 8) | (src[pos + 2] << 16);
    pos += 3;
    const last = h & 1;
    const type = (h >> 1) & 3;
    const blockSize = h >>> 3;
    if (blockSize > BLOCK_SIZE_MAX) fail(`block of ${blockSize} bytes`);
    if (type === 0) {
      if (pos + blockSize > n || st.op + blockSize > size) fail('raw block overruns');
      st.out.set(src.subarray(pos, pos + blockSize), st.op);
      st.op += blockSize;
      pos += blockSize;
    } else if (type === 1) {
      if (pos + 1 > n || st.op + blockSize > size) fail('RLE block overruns');
      st.out.fill(src[pos], st.op, st.op + blockSize);
      st.op += blockSize;
      pos += 1;
    } else if (type === 2) {
      if (pos + blockSize > n) fail('compressed block overruns');
      try {
        decodeBlock(st, src, pos, pos + blockSize);
      } finally {
        bitsA.release();
      }
      pos += blockSize;
    } else fail('reserved block type');
    if (last === 1) break;
  }
  if (checksum === 1) pos += 4;
  if (pos !== n) fail('bytes after the frame');
  if (st.op !== size) fail(`frame holds ${st.op} bytes, header says ${size}`);
  return st.out;
}

function decodeBlock(st: FrameState, src: Uint8Array, pos: number, end: number): void {
  // Literals section.
  const b0 = src[pos];
  const litType = b0 & 3;
  const sizeFormat = (b0 >> 2) & 3;
  let literals: Uint8Array;
  let litStart = 0;
  let litSize: number;
  if (litType <= 1) {
    let header: number;
    if ((sizeFormat & 1) === 0) {
      litSize = b0 >> 3;
      header = 1;
    } else if (sizeFormat === 1) {
      if (pos + 2 > end) fail('truncated literals header');
      litSize = (b0 >> 4) | (src[pos + 1] << 4);
      header = 2;
    } else {
      if (pos + 3 > end) fail('truncated literals header');
      litSize = (b0 >> 4) | (src[pos + 1] << 4) | (src[pos + 2] << 12);
      header = 3;
    }
    if (litSize > BLOCK_SIZE_MAX) fail('literals larger than a block');
    pos += header;
    if (litType === 0) {
      if (pos + litSize > end) fail('raw literals overrun');
      literals = src;
      litStart = pos;
      pos += litSize;
    } else {
      if (pos + 1 > end) fail('truncated RLE literals');
      literals = literalScratch;
      literals.fill(src[pos], 0, litSize);
      pos += 1;
    }
  } else {
    let header: number;
    let compressed: number;
    if (sizeFormat <= 1) {
      if (pos + 3 > end) fail('truncated literals header');
      litSize = (b0 >> 4) | ((src[pos + 1] & 0x3f) << 4);
      compressed = (src[pos + 1] >> 6) | (src[pos + 2] << 2);
      header = 3;
    } else if (sizeFormat === 2) {
      if (pos + 4 > end) fail('truncated literals header');
      litSize = (b0 >> 4) | (src[pos + 1] << 4) | ((src[pos + 2] & 3) << 12);
      compressed = (src[pos + 2] >> 2) | (src[pos + 3] << 6);
      header = 4;
    } else {
      if (pos + 5 > end) fail('truncated literals header');
      litSize = (b0 >> 4) | (src[pos + 1] << 4) | ((src[pos + 2] & 0x3f) << 12);
      compressed = (src[pos + 2] >> 6) | (src[pos + 3] << 2) | (src[pos + 4] << 10);
      header = 5;
    }
    if (litSize > BLOCK_SIZE_MAX) fail('literals larger than a block');
    pos += header;
    const stop = pos + compressed;
    if (stop > end) fail('compressed literals overrun');
    if (litType === 2) {
      const [log, at] = readHuffman(src, pos, stop);
      st.hufLog = log;
      pos = at;
    } else if (st.hufLog === 0) fail('treeless literals without a previous tree');
    const table = st.hufLog;
    literals = literalScratch;
    if (sizeFormat === 0) {
      decodeHuffmanStream(table, src, pos, stop, literals, 0, litSize);
    } else {
      if (pos + 6 > stop) fail('truncated jump table');
      const s1 = src[pos] | (src[pos + 1] << 8);
      const s2 = src[pos + 2] | (src[pos + 3] << 8);
      const s3 = src[pos + 4] | (src[pos + 5] << 8);
      const p1 = pos + 6;
      const p2 = p1 + s1;
      const p3 = p2 + s2;
      const p4 = p3 + s3;
      if (p4 > stop) fail('jump table overruns');
      const part = (litSize + 3) >> 2;
      const lastPart = litSize - 3 * part;
      if (lastPart < 0) fail('literals too short for four streams');
      decodeHuffmanStream(table, src, p1, p2, literals, 0, part);
      decodeHuffmanStream(table, src, p2, p3, literals, part, part);
      decodeHuffmanStream(table, src, p3, p4, literals, 2 * part, part);
      decodeHuffmanStream(table, src, p4, stop, literals, 3 * part, lastPart);
    }
    pos = stop;
  }

  // Sequences section.
  if (pos >= end) fail('missing sequences section');
  let nbSeq = src[pos++];
  if (nbSeq >= 128) {
    if (nbSeq === 255) {
      if (pos + 2 > end) fail('truncated sequence count');
      nbSeq = src[pos] + (src[pos + 1] << 8) + 0x7f00;
      pos += 2;
    } else {
      if (pos + 1 > end) fail('truncated sequence count');
      nbSeq = ((nbSeq - 128) << 8) + src[pos];
      pos += 1;
    }
  }
  const out = st.out;
  const size = out.length;
  if (nbSeq === 0) {
    if (pos !== end) fail('bytes after an empty sequences section');
    if (st.op + litSize > size) fail('literals overrun the frame');
    out.set(literals.subarray(litStart, litStart + litSize), st.op);
    st.op += litSize;
    return;
  }
  if (pos >= end) fail('missing compression modes');
  const modes = src[pos++];
  if ((modes & 3) !== 0) fail('reserved compression mode bits');
  const table = (
    mode: number,
    prev: FseTable | null,
    dflt: FseTable,
    maxSymbol: number,
    maxLog: number,
    storage: FseTable,
  ): FseTable => {
    if (mode === 0) return dflt;
    if (mode === 1) {
      if (pos >= end) fail('truncated RLE symbol');
      const s = src[pos++];
      if (s > maxSymbol) fail('RLE symbol out of range');
      return rleFse(s);
    }
    if (mode === 2) {
      pos = readFse(src, pos, end, maxSymbol, maxLog, storage);
      return storage;
    }
    if (prev === null) fail('repeated FSE table without a previous one');
    return prev;
  };
  const ll = table(modes >> 6, st.ll, LL_DEFAULT, LL_MAX_SYMBOL, LL_LOG_MAX, LL_TABLE);
  const of = table((modes >> 4) & 3, st.of, OF_DEFAULT, OF_MAX_SYMBOL, OF_LOG_MAX, OF_TABLE);
  const ml = table((modes >> 2) & 3, st.ml, ML_DEFAULT, ML_MAX_SYMBOL, ML_LOG_MAX, ML_TABLE);
  st.ll = ll;
  st.of = of;
  st.ml = ml;

  const br = bitsA;
  br.init(src, pos, end);
  let llState = br.read(ll.log);
  let ofState = br.read(of.log);
  let mlState = br.read(ml.log);
  let op = st.op;
  let lp = litStart;
  const litEnd = litStart + litSize;
  let { rep1, rep2, rep3 } = st;
  for (let i = 0; i < nbSeq; i++) {
    const llCode = ll.symbol[llState];
    const ofCode = of.symbol[ofState];
    const mlCode = ml.symbol[mlState];
    if (llCode > LL_MAX_SYMBOL || mlCode > ML_MAX_SYMBOL || ofCode > OF_MAX_SYMBOL) fail('bad sequence code');
    const offsetValue = (ofCode < 31 ? 1 << ofCode : 0x80000000) + br.readLong(ofCode);
    const matchLength = ML_BASE[mlCode] + br.read(ML_BITS[mlCode]);
    const literalLength = LL_BASE[llCode] + br.read(LL_BITS[llCode]);
    let offset: number;
    if (offsetValue > 3) {
      offset = offsetValue - 3;
      rep3 = rep2;
      rep2 = rep1;
      rep1 = offset;
    } else {
      const index = offsetValue - 1 + (literalLength === 0 ? 1 : 0);
      if (index === 0) offset = rep1;
      else if (index === 1) {
        offset = rep2;
        rep2 = rep1;
        rep1 = offset;
      } else if (index === 2) {
        offset = rep3;
        rep3 = rep2;
        rep2 = rep1;
        rep1 = offset;
      } else {
        offset = rep1 - 1;
        rep3 = rep2;
        rep2 = rep1;
        rep1 = offset;
      }
    }
    if (i + 1 < nbSeq) {
      llState = ll.base[llState] + br.read(ll.bits[llState]);
      mlState = ml.base[mlState] + br.read(ml.bits[mlState]);
      ofState = of.base[ofState] + br.read(of.bits[ofState]);
    }
    // Execute: literals, then the match.
    if (lp + literalLength > litEnd) fail('sequence uses more literals than decoded');
    if (op + literalLength + matchLength > size) fail('sequence overruns the frame');
    // Short copies in a loop: a builtin call (and a subarray) costs more than ~32 byte moves.
    if (literalLength > 32) out.set(literals.subarray(lp, lp + literalLength), op);
    else for (let k = 0; k < literalLength; k++) out[op + k] = literals[lp + k];
    op += literalLength;
    lp += literalLength;
    if (offset < 1 || offset > op) fail(`match offset ${offset} at ${op}`);
    const from = op - offset;
    if (matchLength <= 32) for (let k = 0; k < matchLength; k++) out[op + k] = out[from + k];
    else {
      // An overlapping match repeats its first `offset` bytes: copy spans that double.
      for (let done = 0, span = offset; done < matchLength;) {
        const n = Math.min(span, matchLength - done);
        out.copyWithin(op + done, from, from + n);
        done += n;
        span += n;
      }
    }
    op += matchLength;
  }
  if (br.left() !== 0) fail('sequence stream not consumed exactly');
  const rest = litEnd - lp;
  if (op + rest > size) fail('literals overrun the frame');
  out.set(literals.subarray(lp, litEnd), op);
  st.op = op + rest;
  st.rep1 = rep1;
  st.rep2 = rep2;
  st.rep3 = rep3;
}
