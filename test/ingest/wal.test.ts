import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readWalFile, WalCorruptError, WalWriter, walFileName } from '../../src/ingest/wal.ts';
import { Memtable } from '../../src/ingest/memtable.ts';
import { decodeWalBatch, encodeWalBatch } from '../../src/ingest/wal-batch.ts';
import { payloadTuple, type UsageEvent } from '../../src/model/event.ts';
import { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';

const enc = new TextEncoder();

async function walWith(records: string[]): Promise<{ fs: SimFileSystem; path: string }> {
  const fs = new SimFileSystem({ seed: 7 });
  await fs.mkdirp('/db/wal');
  const wal = await WalWriter.create(fs, '/db/wal', 3);
  for (const r of records) await wal.append(enc.encode(r));
  await wal.syncTo(wal.sizeBytes);
  await wal.close();
  return { fs, path: `/db/wal/${walFileName(3)}` };
}

describe('WAL', () => {
  it('round-trips records in order', async () => {
    const { fs, path } = await walWith(['a', 'bb', 'ccc']);
    const read = readWalFile(path, await fs.readFile(path), 3, true);
    expect(read.records.map((r) => new TextDecoder().decode(r))).toEqual(['a', 'bb', 'ccc']);
    expect(read.tornTail).toBe(false);
  });

  it('treats a cut-off final record as a torn tail, only in the newest file', async () => {
    const { fs, path } = await walWith(['first', 'second-record']);
    const bytes = await fs.readFile(path);
    for (let cut = 1; cut < 12 + 'second-record'.length; cut++) {
      const torn = bytes.subarray(0, bytes.length - cut);
      const read = readWalFile(path, torn, 3, true);
      expect(read.records.length).toBe(1);
      expect(read.tornTail).toBe(true);
      expect(() => readWalFile(path, torn, 3, false)).toThrow(WalCorruptError);
    }
  });

  it('refuses a flipped bit in a record that has data after it', async () => {
    const { fs, path } = await walWith(['first-record', 'second']);
    const bytes = new Uint8Array(await fs.readFile(path));
    bytes[16 + 12 + 3] ^= 0x10; // inside the first payload
    expect(() => readWalFile(path, bytes, 3, true)).toThrow(/corrupt/);
    const header = new Uint8Array(await fs.readFile(path));
    header[16] ^= 0x01; // the first record's length
    expect(() => readWalFile(path, header, 3, true)).toThrow(/length checksum/);
  });

  it('refuses a file whose header names another file number', async () => {
    const { fs, path } = await walWith(['x']);
    expect(() => readWalFile(path, fs.readRaw(path), 4, true)).toThrow(/file number/);
  });

  it('group commit: concurrent waiters share fsyncs', async () => {
    const fs = new SimFileSystem();
    await fs.mkdirp('/w');
    const wal = await WalWriter.create(fs, '/w', 1);
    const before = fs.callCount;
    const offsets = [];
    for (let i = 0; i < 20; i++) offsets.push(await wal.append(enc.encode(`r${i}`)));
    await Promise.all(offsets.map((o) => wal.syncTo(o)));
    const syncs = fs.callCount - before - 20;
    expect(syncs).toBeLessThanOrEqual(2);
    expect(wal.durableOffset).toBe(wal.sizeBytes);
  });

  it('a failed sync poisons the writer until cut back to the durable prefix', async () => {
    const fs = new SimFileSystem();
    await fs.mkdirp('/w');
    const wal = await WalWriter.create(fs, '/w', 1);
    const ok = await wal.append(enc.encode('durable'));
    await wal.syncTo(ok);
    const lost = await wal.append(enc.encode('lost'));
    fs.injectFault((c) => (c.op === 'sync' ? 'EIO' : undefined));
    await expect(wal.syncTo(lost)).rejects.toThrow();
    fs.clearFaults();
    expect(wal.failed).toBe(true);
    await expect(wal.append(enc.encode('x'))).rejects.toThrow(/needs repair/);
    await wal.cutToDurable();
    expect(wal.failed).toBe(false);
    expect(wal.sizeBytes).toBe(ok);
    const read = readWalFile('/w/wal-000001.log', await fs.readFile('/w/wal-000001.log'), 1, true);
    expect(read.records.length).toBe(1);
  });

  it('batch codec refuses a binary payload whose sections do not add up', () => {
    const e: UsageEvent = {
      event_id: 'évt-1',
      kind: 'Usage',
      correction_ref: null,
      account_id: 'a',
      subscription_id: null,
      product_id: 'p',
      meter_id: 'm',
      model_id: null,
      unit: 'u',
      source: 's',
      timestamp_ms: 1_700_000_000_000,
      quantity: 5,
      dimensions_json: '{}',
    };
    const payload = encodeWalBatch([e, { ...e, event_id: 'e2' }], 9);
    expect(decodeWalBatch(payload).map((x) => x.event_id)).toEqual(['évt-1', 'e2']);
    expect(() => decodeWalBatch(payload.subarray(0, payload.length - 1))).toThrow(/differ in length/);
    expect(() => decodeWalBatch(payload.subarray(0, 20))).toThrow(/shorter than its header/);
    // The first id's UTF-16 length sits just before the text: one more unit misplaces every cut.
    const bad = new Uint8Array(payload);
    const textBytes = new DataView(bad.buffer).getUint32(16, true);
    const lengthsEnd = bad.length - textBytes;
    new DataView(bad.buffer).setUint32(lengthsEnd - 8, 6, true);
    expect(() => decodeWalBatch(bad)).toThrow(/lengths do not match/);
  });

  it('batch codec round-trips events including big quantities', () => {
    const e: UsageEvent = {
      event_id: 'e1',
      kind: 'Correction',
      correction_ref: { original_event_id: 'o', reason: 'fix' },
      account_id: 'a',
      subscription_id: null,
      product_id: 'p',
      meter_id: 'm',
      model_id: 'gpt',
      unit: 'tokens',
      source: 's',
      timestamp_ms: 1_700_000_000_000,
      quantity: -(10n ** 38n - 1n),
      dimensions_json: '{"a":"b"}',
    };
    const [back] = decodeWalBatch(encodeWalBatch([e], 123));
    expect(back).toEqual({ ...e, ingested_at_ms: 123 });
  });

  it('batch codec: any batch reads back as written, and as the older tuple format reads it', () => {
    const text = fc.oneof(
      fc.constantFrom('a', 'b', 'acct_1', '{"k":"v"}', 'é"\\'),
      fc.string({ minLength: 1 }),
    );
    const nullable = fc.option(text, { nil: null });
    const quantity = fc.oneof(
      fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
      fc
        .bigInt({ min: -(10n ** 38n - 1n), max: 10n ** 38n - 1n })
        .map((q) =>
          q >= BigInt(Number.MIN_SAFE_INTEGER) && q <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(q) : q,
        ),
    );
    const event: fc.Arbitrary<UsageEvent> = fc.record({
      event_id: text,
      kind: fc.constantFrom('Usage' as const, 'Correction' as const, 'Retraction' as const),
      correction_ref: fc.option(fc.record({ original_event_id: text, reason: text }), { nil: null }),
      account_id: text,
      subscription_id: nullable,
      product_id: text,
      meter_id: text,
      model_id: nullable,
      unit: text,
      source: text,
      timestamp_ms: fc.integer({ min: 1, max: 2 ** 45 }),
      quantity,
      dimensions_json: text,
    });
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 20 }), fc.nat(), (events, stamp) => {
        const back = decodeWalBatch(encodeWalBatch(events, stamp));
        expect(back).toEqual(events.map((e) => ({ ...e, ingested_at_ms: stamp })));
        const v2 = enc.encode(JSON.stringify([2, stamp, events.map(payloadTuple)]));
        expect(decodeWalBatch(v2)).toEqual(back);
        // Coded against a memtable's dictionaries (what ingest writes), already holding values.
        const memtable = new Memtable();
        memtable.codeFields([...events].reverse());
        const coded = { codes: memtable.codeFields(events), dicts: memtable.fieldDicts };
        expect(decodeWalBatch(encodeWalBatch(events, stamp, coded))).toEqual(back);
      }),
      { numRuns: 300 },
    );
  });
});
