/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every segment chunk,
 * footer and file. Castagnoli rather than zlib's CRC-32 for its better error detection on
 * storage-sized messages (and it is what hardware and most storage formats use).
 *
 * Invariants:
 * - the result is an unsigned 32-bit integer;
 * - chaining holds: crc32c(b, crc32c(a)) === crc32c(concat(a, b)).
 */

const POLY_REFLECTED = 0x82f63b78;

/** Slice-by-8 tables: TABLES[t * 256 + b] is the CRC of byte b followed by t zero bytes. */
const TABLES = buildTables();

function buildTables(): Int32Array {
  const tables = new Int32Array(8 * 256);
  for (let b = 0; b < 256; b++) {
    let crc = b;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ POLY_REFLECTED : crc >>> 1;
    tables[b] = crc;
  }
  for (let b = 0; b < 256; b++) {
    let crc = tables[b];
    for (let t = 1; t < 8; t++) {
      crc = tables[crc & 0xff] ^ (crc >>> 8);
      tables[t * 256 + b] = crc;
    }
  }
  return tables;
}

export function crc32c(data: Uint8Array, initial = 0): number {
  const t = TABLES;
  let crc = ~initial | 0;
  let i = 0;
  const n = data.length;
  // Eight bytes per step: two 32-bit words folded through eight tables at once.
  const end8 = n - (n % 8);
  while (i < end8) {
    const lo = crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    crc =
      t[1792 + (lo & 0xff)] ^
      t[1536 + ((lo >>> 8) & 0xff)] ^
      t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^
      t[768 + data[i + 4]] ^
      t[512 + data[i + 5]] ^
      t[256 + data[i + 6]] ^
      t[data[i + 7]];
    i += 8;
  }
  while (i < n) {
    crc = t[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
    i++;
  }
  return ~crc >>> 0;
}
