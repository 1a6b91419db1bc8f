/**
 * Golden values of every hash, checksum and byte layout that ends up on disk (or that must
 * agree between a file written yesterday and the code reading it today). The expected values
 * are literals computed once and pasted: if one of these tests fails, the change is a format
 * change. Do not update the literal to make it pass; keep the old behaviour for old files
 * (a new format version with a reader for the old one) or revert the change.
 */
import { describe, expect, it } from 'vitest';
import { readWalFile, encodeRecord, WalWriter, walFileName } from '../../src/ingest/wal.ts';
import { decodeWalBatch, encodeWalBatch } from '../../src/ingest/wal-batch.ts';
import type { UsageEvent } from '../../src/model/event.ts';
import { hash128, hash128Into } from '../../src/model/hash.ts';
import { payloadHash } from '../../src/model/payload-hash.ts';
import { validateEvent } from '../../src/model/validate.ts';
import { BloomFilter, uint32Mod } from '../../src/storage/encoding/bloom-filter.ts';
import { crc32c } from '../../src/storage/encoding/crc32c.ts';
import { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';
import { buildIdIndex } from '../../src/storage/id-index.ts';
import { decodeManifest, encodeManifest, type ManifestState } from '../../src/storage/manifest.ts';
import { accountBucket, fnv1a32 } from '../../src/storage/partition.ts';

const utf8 = new TextEncoder();
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const words = (h: { h1: number; h2: number; h3: number; h4: number }): number[] => [h.h1, h.h2, h.h3, h.h4];

const LONG_ASCII = 'x'.repeat(256); // 256 UTF-8 bytes, the longest valid event id
const LONG_UTF8 = 'é'.repeat(128); // 256 UTF-8 bytes in 128 UTF-16 units
const NON_ASCII = 'évt-ünïcødé-事件-🚀'; // Latin-1, CJK and a surrogate pair

describe('hash128 of event ids', () => {
  // Its (h1, h2) place every id in the per-segment Bloom filters written to disk: a changed
  // hash makes old filters answer "not here" for stored ids, so their retries bill twice.
  const cases: [string, number[]][] = [
    ['evt_0001', [0x8e110dd4, 0xf41cedbc, 0xc26c2586, 0xc9881943]],
    ['gw-7f3a:1', [0xcf682078, 0x5f5fe714, 0x21bd4f07, 0x7d6e4444]],
    ['a', [0x848e4558, 0x61168fb4, 0x885b96c9, 0xb7962019]], // one unit: the odd tail alone
    ['ab', [0xd5a007c3, 0x4a3a5f75, 0x3f5c8c8a, 0xc4a2bcad]],
    ['é', [0x77f46772, 0x39ce7d9d, 0xa1e1ba0c, 0xfc074a42]],
    [NON_ASCII, [0xeb68f1e3, 0x72dcb891, 0x8f58d0a2, 0x043e388f]],
    [LONG_ASCII, [0xe11d5eb5, 0x8ae0798b, 0xbcc0504c, 0x58c19e1f]],
    [LONG_UTF8, [0xbed7302e, 0xcb93fc2b, 0x94c25699, 0xe42a75b2]],
  ];
  for (const [id, expected] of cases) {
    it(`${JSON.stringify(id.slice(0, 24))} (${utf8.encode(id).length} bytes)`, () => {
      expect(words(hash128(id))).toEqual(expected);
      const out = new Uint32Array(4);
      hash128Into(id, out);
      expect([...out]).toEqual(expected);
    });
  }
});

describe('payload hash', () => {
  // In memory only (the hot dedupe window), so not a file format; pinned so that a change to
  // which fields it covers is deliberate: a field left out would make a changed retry of a
  // recently flushed event look like a duplicate instead of a conflict.
  const BASE: UsageEvent = {
    event_id: 'gw-7f3a:2',
    kind: 'Correction',
    correction_ref: { original_event_id: 'gw-7f3a:1', reason: 'late token count' },
    account_id: 'acct_42',
    subscription_id: 'sub_9',
    product_id: 'llm-api',
    meter_id: 'tokens.output',
    model_id: 'gpt-x',
    unit: 'tokens',
    source: 'gateway',
    timestamp_ms: 1777593600000,
    quantity: 1234,
    dimensions_json: '{"region":"eu","tier":"pro"}',
  };
  const cases: [string, Partial<UsageEvent>, string][] = [
    ['base', {}, '276bc243456b82e95c104979f936be49'],
    ['event_id', { event_id: 'gw-7f3a:3' }, 'e752b258bc4c341c6b7bee4ed7a2d0fb'],
    ['kind', { kind: 'Retraction' }, '0cd5402128ad76e092ddf6b711a251c5'],
    [
      'original_event_id',
      { correction_ref: { original_event_id: 'gw-7f3a:0', reason: 'late token count' } },
      'fee6774dac666367e3ab06263f966cb2',
    ],
    [
      'reason',
      { correction_ref: { original_event_id: 'gw-7f3a:1', reason: 'late token count!' } },
      'f9da77187cb0432a19f3c8e1dd0cb92a',
    ],
    ['no correction_ref', { kind: 'Usage', correction_ref: null }, '3a4f755ed0e43aa09be40313f8c46858'],
    ['account_id', { account_id: 'acct_43' }, '451f923007a590463593e7f653deeaea'],
    ['subscription_id', { subscription_id: 'sub_8' }, '177470acadc69a26c398ac4bcadadace'],
    ['subscription_id null', { subscription_id: null }, '7cb90fe8acdca3dc71975bdd2b722e63'],
    ['product_id', { product_id: 'embeddings' }, 'e0a67130f8ecabfafb0237f2d3498cc7'],
    ['meter_id', { meter_id: 'tokens.input' }, '907a53ce006380eed5ac4dc5e868167f'],
    ['model_id', { model_id: 'gpt-y' }, 'bfa4151870758e41d95c6b9d62549dc7'],
    ['model_id null', { model_id: null }, 'ca7b47180ca876593d6103b2b53e66ab'],
    ['unit', { unit: 'token' }, 'c5609a22f7aab1ffda0fda644425f79c'],
    ['source', { source: 'batch' }, 'ba15064c8e94cbb1a9c9f5bc40a42859'],
    ['timestamp_ms', { timestamp_ms: 1777593600001 }, '049855c6c26fa4f5736606da488b81f8'],
    ['quantity', { quantity: 1235 }, 'e36d1601716543a27c61428a7819a31a'],
    ['quantity big', { quantity: 123456789012345678901234567890n }, '5322277ef3abe2fccaa16a770f9e503e'],
    ['quantity negative big', { quantity: -9007199254740993n }, 'c7bcc7ca7985d5bf3caa174ec8f8ecfd'],
    [
      'dimensions_json',
      { dimensions_json: '{"region":"us","tier":"pro"}' },
      'ae8b70f846cf56880c0a5b23f2e94612',
    ],
    ['dimensions_json empty', { dimensions_json: '{}' }, 'aa8a982c7f8dea87667acef5fd533966'],
    ['non-ASCII ids', { event_id: NON_ASCII, account_id: 'ünïcødé' }, 'dd7363d709a6c1de526910a5d617de39'],
  ];
  for (const [name, change, expected] of cases) {
    it(name, () => {
      const h = payloadHash({ ...BASE, ...change });
      expect(
        words(h)
          .map((w) => w.toString(16).padStart(8, '0'))
          .join(''),
      ).toBe(expected);
    });
  }
  it('every case above is a different hash', () => {
    expect(new Set(cases.map((c) => c[2])).size).toBe(cases.length);
  });
});

describe('account bucket', () => {
  // Persisted as the partition of every stored row: a changed bucket makes queries and
  // id lookups prune away the partition that holds an account's old events.
  const cases: [string, number, number[]][] = [
    // account, fnv1a32, buckets for bucket counts 1, 8, 64, 4096
    ['acct_42', 0x6e92ad49, [0, 1, 9, 3401]],
    ['acct_0001', 0x63aa7dec, [0, 4, 44, 3564]],
    ['a', 0xe40c292c, [0, 4, 44, 2348]],
    ['ünïcødé', 0x5b9027a0, [0, 0, 32, 1952]],
    ['org/7f3a-é', 0x0c13549e, [0, 6, 30, 1182]],
  ];
  for (const [account, fnv, buckets] of cases) {
    it(account, () => {
      expect(fnv1a32(account)).toBe(fnv);
      expect([1, 8, 64, 4096].map((n) => accountBucket(account, n))).toEqual(buckets);
    });
  }
});

describe('Bloom filter', () => {
  /** The bits a filter of `bitCount` bits sets for one id: its probe positions. */
  function probePositions(id: string, expectedKeys: number): number[] {
    const f = BloomFilter.create(expectedKeys, 8);
    const h = hash128(id);
    f.add(h.h1, h.h2);
    const bits = f.toBytes().subarray(5);
    const out: number[] = [];
    for (let i = 0; i < f.bitCount; i++) if (bits[i >> 3] & (1 << (i & 7))) out.push(i);
    return out;
  }

  it('sizing: 8 bits per key gives 6 probes and whole bytes', () => {
    // Sizing is read back from the serialized header, so it may change for new files only;
    // pinned so that a change is seen.
    const f = BloomFilter.create(1000, 8);
    expect([f.bitCount, f.hashCount]).toEqual([8000, 6]);
  });

  it('probe positions of known ids', () => {
    // Old filters were filled at these positions: probing elsewhere misses stored ids.
    expect(probePositions('evt_0001', 1000)).toEqual([2324, 2896, 3468, 4040, 4612, 5184]);
    expect(probePositions('gw-7f3a:1', 1000)).toEqual([3768, 4364, 4960, 5556, 6152, 6748]);
    expect(probePositions(NON_ASCII, 1000)).toEqual([2599, 3013, 3427, 6392, 6806, 7220]);
  });

  it('uint32Mod on both of its branches', () => {
    // The probe start and step are these residues of h1 and h2.
    expect(uint32Mod(0xdeadbeef | 0, 8000)).toBe(559);
    expect(uint32Mod(0xffffffff | 0, 1000003)).toBe(954413);
    expect(uint32Mod(-1, 64)).toBe(63);
    expect(uint32Mod(0x80000001 | 0, 2 ** 31)).toBe(1);
    expect(uint32Mod(12345, 2 ** 32 - 8)).toBe(12345);
  });

  const SMALL = '0618000000111111'; // hashCount 6, bitCount 24 (u32 LE), 3 bytes of bits
  const SMALL_KEYS = ['evt_0001', 'gw-7f3a:1', 'a'];

  it('serialized bytes of a small filter', () => {
    // Segment files hold these bytes verbatim (and their CRC in the footer).
    const f = BloomFilter.create(3, 8);
    for (const id of SMALL_KEYS) {
      const h = hash128(id);
      f.add(h.h1, h.h2);
    }
    expect(hex(f.toBytes())).toBe(SMALL);
  });

  it('a filter serialized by the old code still finds its keys', () => {
    const f = BloomFilter.fromBytes(fromHex(SMALL));
    expect([f.bitCount, f.hashCount]).toEqual([24, 6]);
    for (const id of SMALL_KEYS) {
      const h = hash128(id);
      expect(f.mayContain(h.h1, h.h2), id).toBe(true);
    }
  });
});

describe('id index hash word', () => {
  // The id index is derived (rebuilt from a file's ids at open), but the word the flush worker
  // indexes, the word a reopened file indexes and the word a lookup searches must be the same
  // one, hash128 h3: otherwise a cold retry is not found and bills twice.
  const ids = ['evt_0001', 'gw-7f3a:1', 'a', 'é', NON_ASCII];
  it('is hash128 h3, and the index sorts by it', () => {
    expect(ids.map((id) => hash128(id).h3)).toEqual([
      0xc26c2586, 0x21bd4f07, 0x885b96c9, 0xa1e1ba0c, 0x8f58d0a2,
    ]);
    const index = buildIdIndex(Uint32Array.from(ids.map((id) => hash128(id).h3)));
    expect([...index.rows]).toEqual([1, 2, 4, 3, 0]);
    expect([...index.hashes]).toEqual([0x21bd4f07, 0x885b96c9, 0x8f58d0a2, 0xa1e1ba0c, 0xc26c2586]);
  });
});

describe('CRC32C', () => {
  // Every segment chunk, footer, filter, WAL record and manifest generation carries one: a
  // changed CRC makes every existing file look corrupt.
  it('standard check value and RFC 3720 vectors', () => {
    expect(crc32c(utf8.encode('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });
  it('known strings', () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(utf8.encode('a'))).toBe(0xc1d04330);
    expect(crc32c(utf8.encode('The quick brown fox jumps over the lazy dog'))).toBe(0x22620404);
    expect(crc32c(utf8.encode(NON_ASCII))).toBe(0xd8f6e930);
  });
  it('chains', () => {
    const text = utf8.encode('The quick brown fox jumps over the lazy dog');
    expect(crc32c(text.subarray(13), crc32c(text.subarray(0, 13)))).toBe(0x22620404);
  });
});

describe('WAL', () => {
  // Acknowledged events that are not yet in a segment live only in these bytes: a reader
  // that no longer parses them refuses to open, or drops acknowledged events as a torn tail.
  it('record framing: length, masked length CRC, payload CRC, payload', () => {
    expect(hex(encodeRecord(utf8.encode('hello')))).toBe('05000000543a824c4cbb719a68656c6c6f');
  });

  it('file header: magic, version, file number, CRC', async () => {
    const fs = new SimFileSystem({ seed: 1 });
    await fs.mkdirp('/w');
    const expected: [number, string][] = [
      [1, '5557414c01000000010000001bfb59b3'],
      [7, '5557414c010000000700000069e91c77'],
      [123456, '5557414c0100000040e20100b0c87134'],
    ];
    for (const [n, header] of expected) {
      const wal = await WalWriter.create(fs, '/w', n);
      await wal.close();
      expect(hex(await fs.readFile(`/w/${walFileName(n)}`))).toBe(header);
    }
  });

  /** Format 2: written until the per-record string table; still read. */
  const BATCH_TEXT =
    '[2,1780272000123,[["gw-7f3a:1","Usage",null,null,"acct_42",null,"llm-api","tokens.output",' +
    '"gpt-x","tokens","gateway",1777593600000,"1234","{\\"region\\":\\"eu\\"}"]]]';
  const BATCH_RECORD_HEADER = 'a20000002a5f07d0689c0865';
  /** Format 3: written until the binary format; still read. */
  const BATCH_TEXT_V3 =
    '[3,1780272000123,["acct_42","llm-api","tokens.output","gpt-x","tokens","gateway",' +
    '"{\\"region\\":\\"eu\\"}"],["gw-7f3a:1"],[0,-1,1,2,3,4,5,6],[1777593600000],[1234],[]]';
  const BATCH_RECORD_HEADER_V3 = 'a300000092f5420dd6168593';
  /**
   * Format 4: what ingest writes. Header (format 4, 1 event, the stamp as f64, 69 text bytes,
   * 7 table strings, no JSON tail), timestamps, quantities, fields, UTF-16 lengths, the text.
   */
  const BATCH_HEX_V4 =
    '04000000' +
    '01000000' +
    '00b0c7ae07e87942' +
    '45000000' +
    '07000000' +
    '00000000' +
    '00000000' +
    '0000805c0dde7942' +
    '0000000000489340' +
    '00000000ffffffff' +
    '010000000200000003000000040000000500000006000000' +
    '07000000070000000d0000000500000006000000070000000f00000009000000' +
    hex(utf8.encode('acct_42llm-apitokens.outputgpt-xtokensgateway{"region":"eu"}gw-7f3a:1'));
  const BATCH_RECORD_HEADER_V4 = 'b5000000dd566320a0cda127';

  it('batch payload of one event, and its record', () => {
    const v = validateEvent(
      {
        event_id: 'gw-7f3a:1',
        account_id: 'acct_42',
        product_id: 'llm-api',
        meter_id: 'tokens.output',
        unit: 'tokens',
        source: 'gateway',
        model_id: 'gpt-x',
        timestamp_ms: 1777593600000,
        quantity: 1234,
        dimensions: { region: 'eu' },
      },
      1780272000000,
      { futureSkewMs: 86_400_000 },
    );
    if (!v.ok) throw new Error(v.message);
    const payload = encodeWalBatch([v.event as UsageEvent], 1780272000123);
    expect(hex(payload)).toBe(BATCH_HEX_V4);
    expect(hex(encodeRecord(payload))).toBe(BATCH_RECORD_HEADER_V4 + BATCH_HEX_V4);
    // The record header of format 3 (what the old code wrote) is pinned too.
    expect(hex(encodeRecord(utf8.encode(BATCH_TEXT_V3)))).toBe(
      BATCH_RECORD_HEADER_V3 + hex(utf8.encode(BATCH_TEXT_V3)),
    );
    // Every format reads back to the same event.
    const back = decodeWalBatch(payload);
    expect(back).toEqual(decodeWalBatch(utf8.encode(BATCH_TEXT)));
    expect(back).toEqual(decodeWalBatch(utf8.encode(BATCH_TEXT_V3)));
  });

  it('a WAL file written by the old code is read back', () => {
    const bytes = fromHex(
      '5557414c010000000700000069e91c77' + BATCH_RECORD_HEADER + hex(utf8.encode(BATCH_TEXT)),
    );
    const read = readWalFile('wal-000007.log', bytes, 7, true);
    expect(read.tornTail).toBe(false);
    expect(read.records.length).toBe(1);
    const [e] = decodeWalBatch(read.records[0]);
    expect(e).toMatchObject({
      event_id: 'gw-7f3a:1',
      kind: 'Usage',
      correction_ref: null,
      account_id: 'acct_42',
      subscription_id: null,
      model_id: 'gpt-x',
      timestamp_ms: 1777593600000,
      quantity: 1234,
      dimensions_json: '{"region":"eu"}',
      ingested_at_ms: 1780272000123,
    });
  });
});

describe('manifest envelope', () => {
  // The manifest lists the segment files and their CRCs: a generation the reader no longer
  // accepts makes the database refuse to open. Format 1 (written by 0.1.0) is only read, and
  // upgraded to format 2 on load; a later format must keep reading both.
  const V1_TEXT =
    '{"crc32c":"e6a36581","manifest":{"format_version":1,"generation":3,"database_id":"udb-fixed",' +
    '"bucket_count":8,"created_at_ms":1777593600000,"next_segment_id":2,"wal_start":2,"segments":' +
    '[{"id":1,"rows":10,"min_ts":1777593600000,"max_ts":1777680000000,"size_bytes":1234,' +
    '"crc32c":3808858755,"retracted":["evt_9"]}],"rollups":[],"periods":[]}}\n';
  const STATE: ManifestState = {
    format_version: 2,
    generation: 3,
    database_id: 'udb-fixed',
    bucket_count: 8,
    created_at_ms: 1777593600000,
    next_segment_id: 2,
    wal_start: 2,
    raw_segments: [
      {
        id: 1,
        rows: 10,
        min_ts: 1777593600000,
        max_ts: 1777680000000,
        size_bytes: 1234,
        crc32c: 3808858755,
        retractions: 1,
      },
    ],
    rollup_segments: [],
    periods: [],
    quarantine: [],
  };
  const V2_TEXT =
    '{"crc32c":"a013ed36","manifest":{"format_version":2,"generation":3,"database_id":"udb-fixed",' +
    '"bucket_count":8,"created_at_ms":1777593600000,"next_segment_id":2,"wal_start":2,"raw_segments":' +
    '[{"id":1,"rows":10,"min_ts":1777593600000,"max_ts":1777680000000,"size_bytes":1234,' +
    '"crc32c":3808858755,"retractions":1}],"rollup_segments":[],"periods":[],"quarantine":[]}}\n';

  it('format 1 bytes (0.1.0) still decode, upgraded to format 2 with their inline retractions', () => {
    const decoded = decodeManifest(utf8.encode(V1_TEXT), 3);
    expect(decoded.state).toEqual(STATE);
    expect(decoded.legacyRetracted).toEqual(new Map([[1, ['evt_9']]]));
  });

  it('format 2: a small state encodes to these bytes, and decodes back', () => {
    expect(new TextDecoder().decode(encodeManifest(STATE))).toBe(V2_TEXT);
    const decoded = decodeManifest(utf8.encode(V2_TEXT), 3);
    expect(decoded.state).toEqual(STATE);
    expect(decoded.legacyRetracted).toBeNull();
  });
});

describe('period snapshots in the manifest', () => {
  const period = {
    account_id: 'acme',
    period: '2026-05',
    closed_at_ms: 1_780_000_000_000,
    watermark_ms: 1_779_010_200_000,
    raw_segment_ids: [1, 4],
    rollup_segment_ids: [],
    evidence_digest: 'd3799106bc0920e4',
    lines: [
      { product_id: 'p', meter_id: 'm', model_id: null, unit: 'tokens', quantity: '-12', event_count: 3 },
    ],
  };
  const body = (extra: Record<string, unknown>) =>
    JSON.stringify({
      format_version: 2,
      generation: 4,
      database_id: 'udb-test',
      bucket_count: 8,
      created_at_ms: 1,
      next_segment_id: 5,
      wal_start: 1,
      raw_segments: [],
      rollup_segments: [],
      periods: [{ ...period, ...extra }],
      quarantine: [],
    });
  const file = (json: string) =>
    utf8.encode(
      `{"crc32c":"${crc32c(utf8.encode(json)).toString(16).padStart(8, '0')}","manifest":${json}}\n`,
    );

  it('an entry written before correction_event_ids existed loads with none', () => {
    const decoded = decodeManifest(file(body({})), 4);
    expect(decoded.state.periods[0].correction_event_ids).toEqual([]);
    expect(decoded.state.periods[0].lines[0].model_id).toBeNull();
  });

  it('an entry with correction_event_ids round-trips byte for byte', () => {
    const json = body({ correction_event_ids: ['c1', 'r2'] });
    const decoded = decodeManifest(file(json), 4);
    expect(decoded.state.periods[0].correction_event_ids).toEqual(['c1', 'r2']);
    expect(hex(encodeManifest(decoded.state))).toBe(hex(file(json)));
  });
});

describe('evidence digest canonical text', () => {
  // Stored in closed periods and recomputed by users over exports: never change it.
  it('has a fixed line format and hash', async () => {
    const { canonicalDigestLine, evidenceDigest } = await import('../../src/billing/digest.ts');
    const e = {
      event_id: 'gw-1',
      kind: 'Usage',
      product_id: 'llm-api',
      meter_id: 'tokens.input',
      model_id: 'gpt-x',
      unit: 'tokens',
      timestamp_ms: 1_779_010_200_000,
      quantity: '800',
    };
    expect(canonicalDigestLine(e)).toBe(
      '4:gw-1,Usage,7:llm-api,12:tokens.input,5:gpt-x,6:tokens,1779010200000,800\n',
    );
    expect(evidenceDigest([e])).toBe('96999d77f870d278ff02379b18c11d626b838fa5ff2653968e1d6ad453dbf637');
  });
});
