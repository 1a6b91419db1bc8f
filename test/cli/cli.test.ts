/**
 * The built `usagedb` binary, run as a user would (node dist/cli/main.js ...): ingest, export,
 * demo, and every failure path ending in one line on stderr and a non-zero exit.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageDb } from '../../src/db.ts';
import { Duck, T0, lit, usage } from '../export/fixtures.ts';
import { mountReadOnly, unprivilegedIds } from '../storage/fs/read-only-mount.ts';
import { scanAccount } from '../support/scan.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(REPO, 'dist', 'cli', 'main.js');

let root: string;
let duck: Duck;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function usagedb(args: string[], input?: string | Buffer, ids?: { uid: number; gid: number }): Run {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: root,
    input,
    encoding: 'utf8',
    timeout: 120_000,
    ...ids,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A failure: the given exit code and exactly one line on stderr, with no stack trace. */
function expectOneLineFailure(r: Run, exitCode: number, pattern: RegExp): void {
  expect(r.status, r.stderr).toBe(exitCode);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

function jsonl(events: unknown[]): string {
  return `${events.map((e) => JSON.stringify(e)).join('\n')}\n`;
}

beforeAll(() => {
  const build = spawnSync('npm', ['run', 'build'], { cwd: REPO, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed:\n${build.stdout}\n${build.stderr}`);
  root = mkdtempSync(join(tmpdir(), 'usagedb-cli-'));
  return undefined;
}, 180_000);

beforeAll(async () => {
  duck = await Duck.create();
});

afterAll(() => {
  duck?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('usagedb --help', () => {
  it('prints help for the program and each command, exit 0', () => {
    const top = usagedb(['--help']);
    expect(top.status).toBe(0);
    for (const command of ['ingest', 'export-parquet', 'demo', '--db-root', '--json'])
      expect(top.stdout).toContain(command);
    for (const command of ['ingest', 'export-parquet', 'demo']) {
      const r = usagedb([command, '--help']);
      expect(r.status).toBe(0);
      expect(r.stdout).toContain(`usagedb ${command}`);
    }
    expect(usagedb(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('refuses no command, an unknown command and a bad flag with one line', () => {
    expectOneLineFailure(usagedb([]), 2, /no command given/);
    expectOneLineFailure(usagedb(['frobnicate']), 2, /unknown command 'frobnicate'/);
    expectOneLineFailure(usagedb(['export-parquet', 'x.parquet', '--bogus']), 2, /unknown option '--bogus'/);
    expectOneLineFailure(
      usagedb(['export-parquet', 'x.parquet', '--partition', 'week']),
      2,
      /week.*none, day/,
    );
    expectOneLineFailure(usagedb(['--jsn', 'demo']), 2, /unknown option '--jsn'.*--json/);
  });
});

describe('usagedb ingest and export-parquet', () => {
  const events = Array.from({ length: 2_500 }, (_, i) =>
    usage(`cli-${i}`, {
      account_id: `acct-${i % 3}`,
      timestamp_ms: T0 + i * 60_000,
      quantity: i % 2 === 0 ? i : String(BigInt(i) * 10n ** 20n),
      dimensions: { region: i % 2 ? 'eu' : 'us' },
    }),
  );
  const total = events.reduce((sum, e) => sum + BigInt(e.quantity as number | string), 0n);
  let db: string;

  beforeAll(() => {
    db = join(root, 'db-main');
    writeFileSync(join(root, 'events.jsonl'), jsonl(events));
  });

  it('ingests a JSON Lines file in batches, then a re-run is all duplicates (exit 0)', () => {
    const first = usagedb(['ingest', 'events.jsonl', '--db-root', db, '--json']);
    expect(first.status, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({
      ok: true,
      lines: 2_500,
      accepted: 2_500,
      duplicates: 0,
      rejected: 0,
      errors: [],
    });
    const again = usagedb(['--db-root', db, 'ingest', 'events.jsonl']);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/duplicates\s+2,500/);
    expect(again.stderr).toBe('');
  });

  it('reports bad lines by number, ingests the rest, and exits non-zero with one line', () => {
    const lines = [
      JSON.stringify(usage('good-1', { account_id: 'acct-x' })),
      '{"event_id": "broken", ',
      '',
      JSON.stringify(usage('bad-quantity', { quantity: -5 })),
      JSON.stringify(usage('cli-0', { account_id: 'acct-0', timestamp_ms: T0, quantity: 999 })),
      JSON.stringify(usage('good-2', { account_id: 'acct-x' })),
    ];
    writeFileSync(join(root, 'mixed.jsonl'), `${lines.join('\n')}\n`);
    const r = usagedb(['ingest', 'mixed.jsonl', '--db-root', db, '--json']);
    expectOneLineFailure(r, 2, /"code":"USAGEDB_ERR_INVALID_ARGUMENT".*line 2 invalid_json/);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ ok: false, lines: 6, accepted: 2, duplicates: 0, conflicts: 1, rejected: 2 });
    expect(out.errors.map((e: { line: number; reason: string }) => [e.line, e.reason])).toEqual([
      [2, 'invalid_json'],
      [4, expect.stringMatching(/quantity/)],
      [5, 'conflict'],
    ]);
    const human = usagedb(['ingest', 'mixed.jsonl', '--db-root', db]);
    expectOneLineFailure(human, 2, /^usagedb: 2 line\(s\) rejected and 1 conflict\(s\).*line 2 invalid_json/);
    expect(human.stdout).toMatch(/line 2: rejected invalid_json/);
    expect(human.stdout).toMatch(/duplicates\s+2/);
  });

  it('rejects a line that is not valid UTF-8 as invalid_utf8, by number, instead of storing U+FFFD', async () => {
    const good = JSON.stringify(usage('utf8-good', { account_id: 'acct-é' }));
    const text = JSON.stringify(usage('utf8-bad', { account_id: 'acct@@' }));
    const [before, after] = text.split('@@');
    const file = Buffer.concat([
      Buffer.from(`${good}\r\n`),
      Buffer.from(before),
      Buffer.from([0xff, 0xfe]),
      Buffer.from(`${after}\r\n`),
    ]);
    writeFileSync(join(root, 'latin.jsonl'), file);
    const utf8Db = join(root, 'db-utf8');
    for (const input of ['latin.jsonl', '-']) {
      const r = usagedb(['ingest', input, '--db-root', utf8Db, '--json'], input === '-' ? file : undefined);
      expectOneLineFailure(r, 2, /line 2 invalid_utf8: byte 0xFF at byte offset \d+ is not valid UTF-8/);
      const out = JSON.parse(r.stdout);
      expect(out).toMatchObject({ lines: 2, rejected: 1 });
      expect(out.errors).toEqual([
        { line: 2, event_id: null, status: 'rejected', reason: 'invalid_utf8', message: expect.any(String) },
      ]);
    }
    const holder = await UsageDb.open({ dir: utf8Db });
    try {
      const stored = await scanAccount(holder, 'acct-é', 0, Date.now() + 86_400_000);
      expect(stored.map((e) => e.event_id)).toEqual(['utf8-good']);
      const all = await scanAccount(holder, 'acct\ufffd\ufffd', 0, Date.now() + 86_400_000);
      expect(all).toEqual([]);
    } finally {
      await holder.close();
    }
  });

  it('reads events from stdin with -', () => {
    const r = usagedb(
      ['ingest', '-', '--db-root', db, '--json'],
      jsonl([usage('stdin-1', { account_id: 'acct-x' })]),
    );
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ accepted: 1, source: '-' });
  });

  it('exports everything to one file that DuckDB reads back exactly', async () => {
    const out = join(root, 'all.parquet');
    const r = usagedb(['export-parquet', out, '--db-root', db, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    const expectedSum = total + 3n; // good-1, good-2, stdin-1 have quantity 1
    expect(result).toMatchObject({
      ok: true,
      rows: 2_503,
      quantity_sum: expectedSum.toString(),
      files: [out],
    });
    const [back] = await duck.rows(
      `SELECT count(*)::INTEGER AS n, sum(quantity)::VARCHAR AS s FROM ${lit(out)}`,
    );
    expect(back).toEqual({ n: 2_503, s: expectedSum.toString() });
    const human = usagedb(['export-parquet', join(root, 'again.parquet'), '--db-root', db]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/exported 2,503 events .* verified/s);
  });

  it('exports a half-open RFC 3339 / ms window of one account into day partitions', async () => {
    const out = join(root, 'window');
    const from = new Date(T0 + 600 * 60_000).toISOString();
    const to = String(T0 + 1_800 * 60_000);
    const r = usagedb([
      'export-parquet',
      out,
      '--db-root',
      db,
      '--from',
      from,
      '--to',
      to,
      '--account',
      'acct-1',
      '--partition',
      'day',
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const expected = events.filter((e, i) => i >= 600 && i < 1_800 && e.account_id === 'acct-1');
    const result = JSON.parse(r.stdout);
    expect(result.rows).toBe(expected.length);
    expect(result.files.length).toBeGreaterThan(1);
    const [back] = await duck.rows(
      `SELECT count(*)::INTEGER AS n, min(timestamp_ms)::BIGINT AS lo, max(timestamp_ms)::BIGINT AS hi, count(DISTINCT account_id)::INTEGER AS a
       FROM read_parquet(${lit(join(out, '*', '*.parquet'))})`,
    );
    expect(back).toEqual({
      n: expected.length,
      lo: String(expected[0].timestamp_ms),
      hi: String(expected.at(-1)?.timestamp_ms),
      a: 1,
    });
  });

  it('refuses a bad time, a reversed range and a bad row-group size before opening the database', () => {
    expectOneLineFailure(
      usagedb(['export-parquet', 'x.parquet', '--db-root', db, '--from', 'yesterday']),
      2,
      /--from "yesterday" is not a valid time/,
    );
    expectOneLineFailure(
      usagedb(['export-parquet', 'x.parquet', '--db-root', db, '--to', '2026-02-30']),
      2,
      /--to "2026-02-30".*no such day/,
    );
    expectOneLineFailure(
      usagedb(['export-parquet', 'x.parquet', '--db-root', db, '--from', '2026-05-02', '--to', '2026-05-01']),
      2,
      /after --to/,
    );
    expectOneLineFailure(
      usagedb(['export-parquet', 'x.parquet', '--db-root', db, '--row-group-rows', '0']),
      2,
      /--row-group-rows/,
    );
    const json = usagedb(['export-parquet', 'x.parquet', '--db-root', db, '--from', 'soon', '--json']);
    expectOneLineFailure(json, 2, /^\{"error":\{"code":"USAGEDB_ERR_INVALID_ARGUMENT","message":/);
  });

  it('refuses a missing database directory, an unreadable input and a non-empty partition target', () => {
    expectOneLineFailure(
      usagedb(['export-parquet', 'x.parquet', '--db-root', join(root, 'nowhere')]),
      3,
      /does not exist/,
    );
    mkdirSync(join(root, 'empty-dir'));
    expectOneLineFailure(
      usagedb(['export-parquet', 'x.parquet', '--db-root', join(root, 'empty-dir')]),
      3,
      /holds no usagedb database/,
    );
    expectOneLineFailure(
      usagedb(['ingest', 'missing.jsonl', '--db-root', db]),
      3,
      /cannot read missing.jsonl/,
    );
    expectOneLineFailure(usagedb(['ingest', '.', '--db-root', db]), 2, /is not a file/);
    expectOneLineFailure(
      usagedb(['export-parquet', root, '--db-root', db, '--partition', 'day']),
      2,
      /not empty/,
    );
  });

  it('echoes at most a bounded prefix of a huge flag value or option', () => {
    const huge = '9'.repeat(100_000);
    for (const args of [
      ['export-parquet', 'x.parquet', '--db-root', db, '--from', `x${huge}`],
      ['export-parquet', 'x.parquet', '--db-root', db, '--account', huge],
      ['export-parquet', 'x.parquet', '--db-root', db, '--row-group-rows', huge],
      ['export-parquet', 'x.parquet', '--db-root', db, `--${huge}`],
    ]) {
      const r = usagedb(args);
      expectOneLineFailure(r, 2, /USAGEDB_ERR_INVALID_ARGUMENT/);
      expect(r.stderr.length, args[4]?.slice(0, 20)).toBeLessThan(9_000);
    }
  });

  it('refuses an empty range and an account id longer than 256 bytes, as the query does', () => {
    const out = join(root, 'refused.parquet');
    expectOneLineFailure(
      usagedb(['export-parquet', out, '--db-root', db, '--from', '2026-05-01', '--to', '2026-05-01']),
      2,
      /--from \(2026-05-01\) is the same instant as --to \(2026-05-01\).*empty.*USAGEDB_ERR_INVALID_ARGUMENT/,
    );
    expectOneLineFailure(
      usagedb([
        'export-parquet',
        out,
        '--db-root',
        db,
        '--from',
        String(T0),
        '--to',
        new Date(T0).toISOString(),
      ]),
      2,
      /same instant/,
    );
    expectOneLineFailure(
      usagedb(['export-parquet', out, '--db-root', db, '--account', 'a'.repeat(300), '--json']),
      2,
      /^\{"error":\{"code":"USAGEDB_ERR_INVALID_ARGUMENT","message":"account_id must be 1-256 bytes, got 300/,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('refuses an OUT that is a symbolic link, a FIFO or (day) a file, leaving it as it was', () => {
    const target = join(root, 'link-target.parquet');
    writeFileSync(target, 'keep');
    const link = join(root, 'link.parquet');
    symlinkSync(target, link);
    expectOneLineFailure(
      usagedb(['export-parquet', link, '--db-root', db]),
      2,
      /is a symbolic link, not a regular file.*USAGEDB_ERR_INVALID_ARGUMENT/,
    );
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('keep');
    const fifo = join(root, 'fifo.parquet');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    expectOneLineFailure(usagedb(['export-parquet', fifo, '--db-root', db]), 2, /is a FIFO/);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expectOneLineFailure(
      usagedb(['export-parquet', target, '--db-root', db, '--partition', 'day']),
      2,
      /not an empty directory/,
    );
  });

  it('fails with one line when another process holds the directory lock', async () => {
    const holder = await UsageDb.open({ dir: db });
    try {
      for (const args of [
        ['export-parquet', join(root, 'locked.parquet'), '--db-root', db],
        ['ingest', 'events.jsonl', '--db-root', db],
      ]) {
        expectOneLineFailure(
          usagedb(args),
          4,
          new RegExp(`locked by process ${process.pid}.*USAGEDB_ERR_LOCKED`),
        );
      }
    } finally {
      await holder.close();
    }
  });
});

describe('the real cause of a file-system failure', () => {
  it('a read-only file system: EROFS, USAGEDB_ERR_PERMISSION, exit 5 (not ENOENT, exit 3)', (context) => {
    // Mounted here, not at collection: a filtered-out suite runs no hooks and would leak it.
    const mount = mountReadOnly();
    if ('skipped' in mount) return context.skip(mount.skipped);
    try {
      writeFileSync(join(root, 'one.jsonl'), jsonl([usage('ro-1')]));
      const db = join(mount.dir, 'db');
      expectOneLineFailure(
        usagedb(['ingest', 'one.jsonl', '--db-root', db]),
        5,
        new RegExp(
          `^usagedb: (cannot open ${db}: )?EROFS: (read-only file system, )?mkdir '${db}' \\(USAGEDB_ERR_PERMISSION\\)$`,
        ),
      );
      expectOneLineFailure(
        usagedb(['ingest', 'one.jsonl', '--db-root', db, '--json']),
        5,
        /^\{"error":\{"code":"USAGEDB_ERR_PERMISSION","message":"[^"]*EROFS: [^"]*mkdir /,
      );
    } finally {
      mount.unmount();
    }
  });

  it('permission denied: EACCES, USAGEDB_ERR_PERMISSION, exit 5 (not EIO, nor "does not exist")', () => {
    // Root ignores permission bits: run the command as nobody, who may not enter a 0o500 directory.
    const ids = unprivilegedIds() ?? undefined;
    const parent = mkdtempSync(join(tmpdir(), 'usagedb-perm-'));
    try {
      chmodSync(parent, 0o755);
      const locked = join(parent, 'locked');
      mkdirSync(locked, { mode: 0o500 });
      chmodSync(locked, 0o500);
      const input = join(parent, 'one.jsonl');
      writeFileSync(input, jsonl([usage('perm-1')]));
      chmodSync(input, 0o644);
      const db = join(locked, 'db');
      expectOneLineFailure(
        usagedb(['ingest', input, '--db-root', db], undefined, ids),
        5,
        new RegExp(
          `^usagedb: (cannot open ${db}: )?EACCES: (permission denied, )?mkdir '${db}' \\(USAGEDB_ERR_PERMISSION\\)$`,
        ),
      );
      expectOneLineFailure(
        usagedb(['export-parquet', join(parent, 'x.parquet'), '--db-root', db], undefined, ids),
        5,
        /EACCES: permission denied, stat .*USAGEDB_ERR_PERMISSION/,
      );
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe('usagedb demo', () => {
  it('generates, ingests, totals, reopens and exits 0', () => {
    // Enough events for the engine to flush in its worker thread: the process must still exit.
    const r = usagedb(['demo', '--events', '20000', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.ok).toBe(true);
    expect(out.ingest.accepted).toBeGreaterThan(15_000);
    expect(out.ingest.duplicates).toBeGreaterThan(0);
    expect(out.ingest.conflicts).toBe(1);
    expect(out.totals).toHaveLength(3);
    expect(out.reopen.identical).toBe(true);
  });

  it('uses --db-root when given and keeps it', () => {
    const dir = join(root, 'demo-db');
    const r = usagedb(['demo', '--events', '2000', '--db-root', dir]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/totals of 3 accounts identical/);
    const export_ = usagedb(['export-parquet', join(root, 'demo.parquet'), '--db-root', dir, '--json']);
    expect(export_.status, export_.stderr).toBe(0);
  });
});
