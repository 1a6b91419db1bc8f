/**
 * Parquet export, read back with DuckDB: schema, compression, exact sums, every row, day
 * partitions, half-open time filter, account filter, memtable rows, atomic publication.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReadSnapshot, UsageDb } from '../../src/db.ts';
import { UsageDbError } from '../../src/errors.ts';
import { PARTITION_FILE_NAME, exportParquet } from '../../src/export/parquet.ts';
import { EXPORT_COLUMNS } from '../../src/export/schema.ts';
import type { WireEvent } from '../../src/model/event.ts';
import type { SegmentStore } from '../../src/storage/segment-store.ts';
import type { SegmentReader } from '../../src/storage/segment/segment-reader.ts';
import {
  ACCOUNTS,
  DAY_MS,
  Duck,
  MAX,
  T0,
  expectedRow,
  firstBatch,
  lit,
  secondBatch,
  storedEvents,
  sumOf,
  usage,
} from './fixtures.ts';
import { readSnapshot } from '../../src/testing.ts';

let root: string;
let db: UsageDb;
let duck: Duck;
let events: Map<string, WireEvent>;
let outDir: string;
let outCounter = 0;

function outPath(name: string): string {
  outCounter++;
  return join(outDir, `${outCounter}-${name}`);
}

function utcDayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

async function exportedRows(files: readonly string[]): Promise<Map<string, Record<string, unknown>>> {
  const list = files.map(lit).join(',');
  const rows = await duck.rows(
    `SELECT * REPLACE (quantity::VARCHAR AS quantity, timestamp_ms::VARCHAR AS timestamp_ms, ingested_at_ms::VARCHAR AS ingested_at_ms)
     FROM read_parquet([${list}], hive_partitioning = false)`,
  );
  const byId = new Map<string, Record<string, unknown>>();
  for (const row of rows) {
    expect(byId.has(String(row.event_id))).toBe(false);
    byId.set(String(row.event_id), row);
  }
  return byId;
}

/** Every row equals the database's event, and exactly the expected events are present. */
async function expectExactly(files: readonly string[], expected: readonly WireEvent[]): Promise<void> {
  const rows = await exportedRows(files);
  expect([...rows.keys()].sort()).toEqual(expected.map((e) => e.event_id).sort());
  for (const e of expected) expect(rows.get(e.event_id)).toEqual(expectedRow(e));
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'usagedb-export-'));
  outDir = join(root, 'out');
  mkdirSync(outDir);
  db = await UsageDb.open({ dir: join(root, 'db') });
  const first = await db.ingest(firstBatch());
  expect(first.errors).toEqual([]);
  await db.flush();
  // Corrections land in the memtable: the export must include acknowledged memtable rows.
  const second = await db.ingest(secondBatch());
  expect(second.errors).toEqual([]);
  expect(second.accepted).toBe(3);
  events = await storedEvents(db);
  expect(events.size).toBe(firstBatch().length + secondBatch().length);
  duck = await Duck.create();
});

afterAll(async () => {
  duck?.close();
  await db?.close();
  rmSync(root, { recursive: true, force: true });
});

describe('exportParquet: one file', () => {
  let file: string;
  let result: Awaited<ReturnType<typeof exportParquet>>;

  beforeAll(async () => {
    file = outPath('all.parquet');
    result = await exportParquet(readSnapshot(db), file, { rowGroupRows: 100 });
  });

  it('reports the rows, exact sum, file and size', () => {
    expect(result.rows).toBe(events.size);
    expect(result.quantitySum).toBe(sumOf(events.values()));
    expect(result.files).toEqual([file]);
    expect(result.bytes).toBeGreaterThan(0);
    expect(readdirSync(outDir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('has exactly the contract schema: names, order, types, nullability', async () => {
    const described = await duck.rows(`DESCRIBE SELECT * FROM ${lit(file)}`);
    expect(described.map((r) => r.column_name)).toEqual(EXPORT_COLUMNS.map((c) => c.name));
    const duckType = { string: 'VARCHAR', int64: 'BIGINT', decimal: 'DECIMAL(38,0)' };
    expect(described.map((r) => r.column_type)).toEqual(EXPORT_COLUMNS.map((c) => duckType[c.kind]));

    const schema = await duck.rows(
      `SELECT name, type, logical_type, repetition_type, precision, scale FROM parquet_schema(${lit(file)}) WHERE num_children IS NULL OR num_children = 0`,
    );
    expect(schema.map((r) => r.name)).toEqual(EXPORT_COLUMNS.map((c) => c.name));
    for (const [i, c] of EXPORT_COLUMNS.entries()) {
      const s = schema[i];
      expect(s.repetition_type, c.name).toBe(c.nullable ? 'OPTIONAL' : 'REQUIRED');
      if (c.kind === 'string') {
        expect(s.type, c.name).toBe('BYTE_ARRAY');
        expect(String(s.logical_type), c.name).toContain('StringType');
      } else if (c.kind === 'int64') {
        expect(s.type, c.name).toBe('INT64');
      } else {
        expect(s.type, c.name).toBe('FIXED_LEN_BYTE_ARRAY');
        expect(String(s.logical_type)).toContain('DecimalType(scale=0, precision=38)');
        expect([s.precision, s.scale]).toEqual(['38', '0']);
      }
    }
  });

  it('compresses every column chunk with zstd and bounds row groups', async () => {
    const chunks = await duck.rows(
      `SELECT row_group_id, row_group_num_rows, path_in_schema, compression FROM parquet_metadata(${lit(file)})`,
    );
    const groups = new Map<string, number>();
    for (const c of chunks) groups.set(String(c.row_group_id), Number(c.row_group_num_rows));
    expect(groups.size).toBe(Math.ceil(events.size / 100));
    for (const rows of groups.values()) expect(rows).toBeLessThanOrEqual(100);
    expect(chunks.length).toBe(groups.size * EXPORT_COLUMNS.length);
    expect(new Set(chunks.map((c) => c.compression))).toEqual(new Set(['ZSTD']));
  });

  it('has the exact row count, SUM(quantity) and SUM per account, beyond 2^63 and at ±(10^38 − 1)', async () => {
    const [totals] = await duck.rows(
      `SELECT count(*)::VARCHAR AS n, sum(quantity)::VARCHAR AS s FROM ${lit(file)}`,
    );
    expect(totals).toEqual({ n: String(events.size), s: sumOf(events.values()) });
    const perAccount = await duck.rows(
      `SELECT account_id, sum(quantity)::VARCHAR AS s, count(*)::INTEGER AS n FROM ${lit(file)} GROUP BY account_id ORDER BY account_id`,
    );
    const expected = [...ACCOUNTS].sort().map((account) => {
      const mine = [...events.values()].filter((e) => e.account_id === account);
      return { account_id: account, s: sumOf(mine), n: mine.length };
    });
    expect(perAccount).toEqual(expected);
    const [extremes] = await duck.rows(
      `SELECT max(quantity)::VARCHAR AS hi, min(quantity)::VARCHAR AS lo FROM ${lit(file)}`,
    );
    expect(extremes).toEqual({ hi: MAX, lo: `-${MAX}` });
  });

  it('holds every row exactly as the database has it (kinds, corrections, nulls, dimensions)', async () => {
    await expectExactly([file], [...events.values()]);
    const rows = await exportedRows([file]);
    expect(rows.get('retract')).toMatchObject({ kind: 'Retraction', quantity: '-18446744073709551999' });
    expect(rows.get('dims')?.dimensions_canonical).toBe('{"10":"ten","a":"1","b":"ü","region":"eu"}');
    expect(rows.get('null-dims')?.dimensions_canonical).toBe('{}');
    expect(rows.get('null-dims')?.model_id).toBeNull();
  });
});

describe('exportParquet: partitions and filters', () => {
  it("writes one date=YYYY-MM-DD/ partition per UTC day, each holding exactly its day's rows", async () => {
    const dir = outPath('by-day');
    const result = await exportParquet(readSnapshot(db), dir, { partition: 'day', rowGroupRows: 64 });
    const days = [...new Set([...events.values()].map((e) => utcDayOf(e.timestamp_ms)))].sort();
    expect(readdirSync(dir).sort()).toEqual(days.map((d) => `date=${d}`));
    expect(result.files).toEqual(days.map((d) => join(dir, `date=${d}`, PARTITION_FILE_NAME)));
    for (const [i, day] of days.entries()) {
      expect(readdirSync(join(dir, `date=${day}`))).toEqual([PARTITION_FILE_NAME]);
      await expectExactly(
        [result.files[i]],
        [...events.values()].filter((e) => utcDayOf(e.timestamp_ms) === day),
      );
    }
    const hive = await duck.rows(
      `SELECT date::VARCHAR AS date, count(*)::INTEGER AS n, sum(quantity)::VARCHAR AS s
       FROM read_parquet(${lit(join(dir, '*', '*.parquet'))}, hive_partitioning = true) GROUP BY ALL ORDER BY 1`,
    );
    expect(hive).toEqual(
      days.map((day) => {
        const mine = [...events.values()].filter((e) => utcDayOf(e.timestamp_ms) === day);
        return { date: day, n: mine.length, s: sumOf(mine) };
      }),
    );
    expect(result.rows).toBe(events.size);
    expect(result.quantitySum).toBe(sumOf(events.values()));
  });

  it('filters time half-open: an event exactly at `from` is in, one exactly at `to` is out', async () => {
    const from = T0 + DAY_MS - 1;
    const to = T0 + 2 * DAY_MS;
    const atFrom = [...events.values()].filter((e) => e.timestamp_ms === from);
    const atTo = [...events.values()].filter((e) => e.timestamp_ms === to);
    expect(atFrom.length).toBeGreaterThan(0);
    expect(atTo.length).toBeGreaterThan(0);
    const expected = [...events.values()].filter((e) => e.timestamp_ms >= from && e.timestamp_ms < to);
    for (const partition of ['none', 'day'] as const) {
      const result = await exportParquet(readSnapshot(db), outPath(`window-${partition}`), {
        from,
        to,
        partition,
      });
      expect(result.rows).toBe(expected.length);
      expect(result.quantitySum).toBe(sumOf(expected));
      await expectExactly(result.files, expected);
    }
  });

  it('filters by account, alone and with a time range', async () => {
    for (const account of ACCOUNTS) {
      const expected = [...events.values()].filter((e) => e.account_id === account);
      const result = await exportParquet(readSnapshot(db), outPath(`acct-${account}.parquet`), {
        account_id: account,
      });
      expect(result.rows).toBe(expected.length);
      await expectExactly(result.files, expected);
    }
    // Day partitions of one account: a directory only for the days where it has rows.
    const mine = [...events.values()].filter(
      (e) => e.account_id === 'acct-c' && e.timestamp_ms < T0 + DAY_MS + 5_000,
    );
    const dir = outPath('acct-c-by-day');
    const byDay = await exportParquet(readSnapshot(db), dir, {
      account_id: 'acct-c',
      to: T0 + DAY_MS + 5_000,
      partition: 'day',
    });
    expect(readdirSync(dir).sort()).toEqual(
      [...new Set(mine.map((e) => `date=${utcDayOf(e.timestamp_ms)}`))].sort(),
    );
    await expectExactly(byDay.files, mine);

    const from = T0 + 3_600_000;
    const to = T0 + DAY_MS;
    const expected = [...events.values()].filter(
      (e) => e.account_id === 'acct-a' && e.timestamp_ms >= from && e.timestamp_ms < to,
    );
    const result = await exportParquet(readSnapshot(db), outPath('acct-window.parquet'), {
      account_id: 'acct-a',
      from,
      to,
    });
    await expectExactly(result.files, expected);
    expect(result.quantitySum).toBe(sumOf(expected));
  });

  it('writes a valid empty file (schema, zero rows) when nothing matches, and no partitions in day mode', async () => {
    const file = outPath('nobody.parquet');
    const result = await exportParquet(readSnapshot(db), file, { account_id: 'nobody' });
    expect(result).toMatchObject({ rows: 0, quantitySum: '0', files: [file] });
    const [n] = await duck.rows(`SELECT count(*)::INTEGER AS n FROM ${lit(file)}`);
    expect(n.n).toBe(0);
    expect((await duck.rows(`DESCRIBE SELECT * FROM ${lit(file)}`)).length).toBe(EXPORT_COLUMNS.length);
    const dir = outPath('nobody-dir');
    const byDay = await exportParquet(readSnapshot(db), dir, { account_id: 'nobody', partition: 'day' });
    expect(byDay.files).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('includes memtable rows acknowledged before the snapshot, and not those after it', async () => {
    const snapshot = readSnapshot(db);
    const late = await db.ingest([usage('late', { account_id: 'acct-c', timestamp_ms: T0 + 5 })]);
    expect(late.accepted).toBe(1);
    const before = await exportParquet(snapshot, outPath('before-late.parquet'));
    expect(before.rows).toBe(events.size);
    const after = await exportParquet(readSnapshot(db), outPath('after-late.parquet'));
    expect(after.rows).toBe(events.size + 1);
    const rows = await exportedRows(after.files);
    expect(rows.get('late')?.quantity).toBe('1');
  });
});

describe('exportParquet: publication is atomic', () => {
  it('replaces an existing file in one step', async () => {
    const file = outPath('replace.parquet');
    writeFileSync(file, 'old');
    const result = await exportParquet(readSnapshot(db), file, { account_id: 'acct-b' });
    const [n] = await duck.rows(`SELECT count(*)::INTEGER AS n FROM ${lit(file)}`);
    expect(n.n).toBe(result.rows);
  });

  it('refuses bad options and targets with INVALID_ARGUMENT', async () => {
    const snap = readSnapshot(db);
    const bad: [string, Parameters<typeof exportParquet>[2]][] = [
      [outPath('x.parquet'), { from: 10, to: 5 }],
      [outPath('x.parquet'), { from: 1.5 }],
      [outPath('x.parquet'), { rowGroupRows: 0 }],
      [outPath('x.parquet'), { account_id: '' }],
      [join(outDir, 'missing-parent', 'x.parquet'), {}],
      [outDir, { partition: 'none' }],
      [outDir, { partition: 'day' }],
    ];
    for (const [path, options] of bad) {
      const err = await exportParquet(snap, path, options).catch((e: unknown) => e);
      expect(err, JSON.stringify(options)).toBeInstanceOf(UsageDbError);
      expect((err as UsageDbError).code).toBe('USAGEDB_ERR_INVALID_ARGUMENT');
    }
  });

  it('leaves nothing behind when reading fails mid-export (no truncated file that looks complete)', async () => {
    const snap = readSnapshot(db);
    const simulated = () => new UsageDbError('USAGEDB_ERR_SEGMENT_CORRUPT', 'simulated corrupt segment');
    // A segment file that cannot be read: on the first read for one file, the third for days.
    let reads = 0;
    let failAt = 0;
    const failOnRead = (read: (segmentId: number) => Promise<SegmentReader>) => async (segmentId: number) => {
      if (++reads === failAt) throw simulated();
      return read(segmentId);
    };
    const failingStore = {
      fileReader: failOnRead((id) => snap.store.fileReader(id)),
      scanFileReader: failOnRead((id) => snap.store.scanFileReader(id)),
      decodeBlocks: snap.store.decodeBlocks.bind(snap.store),
      decodeEventIdBytes: snap.store.decodeEventIdBytes.bind(snap.store),
    } as unknown as SegmentStore;
    // Memtable rows that cannot be read: they come after the segment rows, so row groups have
    // already been written when this fails.
    expect(snap.memtables.some((m) => m.rowCount > 0)).toBe(true);
    const failingMemtables = snap.memtables.map((m) =>
      Object.defineProperty({ ...m }, 'event_id', {
        get: () => {
          throw simulated();
        },
      }),
    );
    expect(snap.segments.length).toBeGreaterThan(3);
    const cases: [string, ReadSnapshot, number][] = [
      ['store-none', { ...snap, store: failingStore }, 1],
      ['store-day', { ...snap, store: failingStore }, 3],
      ['memtable-none', { ...snap, memtables: failingMemtables }, 0],
      ['memtable-day', { ...snap, memtables: failingMemtables }, 0],
    ];
    for (const [name, broken, at] of cases) {
      reads = 0;
      failAt = at;
      const partition = name.endsWith('day') ? 'day' : 'none';
      const target = outPath(`broken-${name}`);
      const err = await exportParquet(broken, target, { partition, rowGroupRows: 10 }).catch(
        (e: unknown) => e,
      );
      expect((err as UsageDbError).code, name).toBe('USAGEDB_ERR_SEGMENT_CORRUPT');
      expect(existsSync(target)).toBe(false);
      expect(readdirSync(outDir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    }
  });
});

// Last: db.exportParquet flushes the memtable, which the tests above need unflushed.
describe('exportParquet: what may stand at OUT, and which requests are refused', () => {
  /** The export's error for `target`, checking nothing at `target` changed. */
  async function refused(target: string, partition: 'none' | 'day'): Promise<UsageDbError> {
    const before = lstatSync(target);
    const err = await exportParquet(readSnapshot(db), target, { partition }).catch((e: unknown) => e);
    expect(err, target).toBeInstanceOf(UsageDbError);
    const after = lstatSync(target);
    expect([after.ino, after.mode, after.size]).toEqual([before.ino, before.mode, before.size]);
    expect(readdirSync(outDir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    return err as UsageDbError;
  }

  it('refuses a symbolic link (to a file, to a directory, dangling), leaving it and its target alone', async () => {
    const file = outPath('link-target.parquet');
    writeFileSync(file, 'target');
    const dir = outPath('link-target-dir');
    mkdirSync(dir);
    for (const [name, to] of [
      ['to-file', file],
      ['to-dir', dir],
      ['dangling', join(outDir, 'missing')],
    ]) {
      const link = outPath(`link-${name}`);
      symlinkSync(to, link);
      for (const partition of ['none', 'day'] as const) {
        const err = await refused(link, partition);
        expect(err.code).toBe('USAGEDB_ERR_INVALID_ARGUMENT');
        expect(err.message).toMatch(/is a symbolic link/);
        expect(readlinkSync(link)).toBe(to);
      }
    }
    expect(readFileSync(file, 'utf8')).toBe('target');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a FIFO', async () => {
    const fifo = outPath('fifo');
    const made = spawnSync('mkfifo', [fifo]);
    expect(made.status, String(made.stderr)).toBe(0);
    for (const partition of ['none', 'day'] as const) {
      const err = await refused(fifo, partition);
      expect(err.code).toBe('USAGEDB_ERR_INVALID_ARGUMENT');
      expect(err.message).toMatch(/is a FIFO/);
    }
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('refuses a character device', async (context) => {
    const device = outPath('null-device');
    // mknod needs CAP_MKNOD (CI runs as root); without it there is no device to test with.
    const mknod = spawnSync('mknod', [device, 'c', '1', '3'], { encoding: 'utf8' });
    if (mknod.status !== 0) context.skip(`mknod failed (needs root): ${mknod.stderr}`);
    for (const partition of ['none', 'day'] as const) {
      const err = await refused(device, partition);
      expect(err.code).toBe('USAGEDB_ERR_INVALID_ARGUMENT');
      expect(err.message).toMatch(/is a character device/);
    }
    expect(lstatSync(device).isCharacterDevice()).toBe(true);
  });

  it("refuses a directory for 'none', a non-empty directory or a file for 'day'", async () => {
    const dir = outPath('a-dir');
    mkdirSync(dir);
    expect((await refused(dir, 'none')).message).toMatch(/is a directory/);
    writeFileSync(join(dir, 'keep.txt'), 'keep');
    expect((await refused(dir, 'day')).message).toMatch(/not empty/);
    expect(readFileSync(join(dir, 'keep.txt'), 'utf8')).toBe('keep');
    const file = outPath('a-file');
    writeFileSync(file, 'keep');
    expect((await refused(file, 'day')).message).toMatch(/is not a regular file|not an empty directory/);
    expect(readFileSync(file, 'utf8')).toBe('keep');
  });

  it("still replaces a regular file ('none') and fills an empty directory ('day')", async () => {
    const file = outPath('regular.parquet');
    writeFileSync(file, 'old');
    const one = await exportParquet(readSnapshot(db), file, {});
    expect(lstatSync(file).isFile()).toBe(true);
    expect(one.rows).toBeGreaterThan(0);
    const dir = outPath('empty-dir');
    mkdirSync(dir);
    const days = await exportParquet(readSnapshot(db), dir, { partition: 'day' });
    expect(days.files.length).toBeGreaterThan(1);
    expect(days.rows).toBe(one.rows);
  });

  it('refuses an empty range and an account id the query would refuse, through db.exportParquet too', async () => {
    const bad: Parameters<typeof exportParquet>[2][] = [
      { from: T0, to: T0 },
      { from: T0 + 1, to: T0 },
      { from: -1 },
      { to: -5 },
      { account_id: 'a'.repeat(300) },
      { account_id: 'é'.repeat(129) },
    ];
    for (const options of bad) {
      for (const run of [
        () => exportParquet(readSnapshot(db), outPath('refused.parquet'), options),
        () => db.exportParquet(outPath('refused.parquet'), options),
      ]) {
        const err = await run().catch((e: unknown) => e);
        expect(err, JSON.stringify(options)).toBeInstanceOf(UsageDbError);
        expect((err as UsageDbError).code).toBe('USAGEDB_ERR_INVALID_ARGUMENT');
        expect((err as UsageDbError).message.length).toBeLessThan(400);
      }
    }
    expect(readdirSync(outDir).filter((n) => n.includes('refused'))).toEqual([]);
    // The bounds themselves are fine: one ms, and an account of exactly 256 bytes.
    const one = await exportParquet(readSnapshot(db), outPath('one-ms.parquet'), { from: T0, to: T0 + 1 });
    expect(one.files).toHaveLength(1);
    const longest = await exportParquet(readSnapshot(db), outPath('long-account.parquet'), {
      account_id: 'a'.repeat(256),
    });
    expect(longest.rows).toBe(0);
  });
});
