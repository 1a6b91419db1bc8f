/** The operator commands, run as a user would: the built binary on a real directory. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageDb } from '../../src/db.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { usageBatch } from '../support/events.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(REPO, 'dist', 'cli', 'main.js');
let root: string;

function usagedb(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'usagedb-admin-'));
  const db = await UsageDb.open({ dir: join(root, 'db'), logger: silentLogger });
  for (let f = 0; f < 3; f++) {
    await db.ingest(usageBatch(f * 100, 100));
    await db.flush();
  }
  await db.close();
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('admin commands', () => {
  it('check lists every segment; --deep verifies every byte', () => {
    const r = usagedb(['check', '--deep', '--db-root', 'db', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      deep: boolean;
      segments: { id: number; ok: boolean }[];
    };
    expect(report.ok).toBe(true);
    expect(report.deep).toBe(true);
    expect(report.segments.map((s) => s.id)).toEqual([1, 2, 3]);
    const human = usagedb(['check', '--db-root', 'db']);
    expect(human.status).toBe(0);
    expect(human.stdout).toMatch(/3 segments, 0 quarantined, shallow check/);
    expect(human.stdout).toMatch(/rejection log: 0 entries, \d+ bytes, 0 dropped/);
  });

  it('lookup tells where an event is stored, or that it is unknown', () => {
    const r = usagedb(['lookup', 'evt_5', '--db-root', 'db', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      event_id: 'evt_5',
      status: 'stored',
      location: 'segment',
      segment_id: 1,
    });
    const human = usagedb(['lookup', 'evt_5', '--db-root', 'db']);
    expect(human.stdout).toMatch(/^evt_5: stored\nstored in segment 1; period 2026-05 \(open\)/);
    const unknown = usagedb(['lookup', 'nope', '--db-root', 'db', '--json']);
    expect(unknown.status).toBe(0);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ status: 'unknown' });
  });

  it('inspect-segment prints a footer; an unknown id fails with one line', () => {
    const r = usagedb(['inspect-segment', '2', '--db-root', 'db', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { segment: { rows: number } }).segment.rows).toBe(100);
    const missing = usagedb(['inspect-segment', '99', '--db-root', 'db']);
    expect(missing.status).toBe(3);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/USAGEDB_ERR_NOT_FOUND/);
  });

  it('compact merges; then check still passes and lists one segment', () => {
    const r = usagedb(['compact', '--db-root', 'db', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { merged: { inputSegments: number } }).merged.inputSegments).toBe(3);
    const check = JSON.parse(usagedb(['check', '--deep', '--db-root', 'db', '--json']).stdout) as {
      ok: boolean;
      segments: { kind: string }[];
    };
    expect(check.ok).toBe(true);
    // One raw segment, and its rollups (hour, day, month, meter_day, meter_month) built in the
    // same commit.
    expect(check.segments.filter((s) => s.kind === 'raw')).toHaveLength(1);
    expect(check.segments.filter((s) => s.kind === 'rollup')).toHaveLength(5);
  });

  it('rollup, verify-period and rebuild-rollups', () => {
    const built = usagedb(['rollup', '--db-root', 'db', '--json']);
    expect(built.status, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout)).toMatchObject({ segments: 0 });
    const range = ['--from', '2020-01-01', '--to', '2030-01-01'];
    const verify = usagedb(['verify-period', ...range, '--db-root', 'db', '--json']);
    expect(verify.status, verify.stderr).toBe(0);
    const v = JSON.parse(verify.stdout) as { ok: boolean; drift: unknown[]; rollup_segments_read: number };
    expect(v).toMatchObject({ ok: true, drift: [] });
    expect(v.rollup_segments_read).toBeGreaterThan(0);
    const rebuilt = usagedb(['rebuild-rollups', ...range, '--db-root', 'db', '--json']);
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
    expect(JSON.parse(rebuilt.stdout)).toMatchObject({ segments: 1 });
    const bad = usagedb(['rebuild-rollups', '--from', 'soon', '--to', '2030-01-01', '--db-root', 'db']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/USAGEDB_ERR_INVALID/);
  });

  it('bench runs a quick embedded benchmark on a temporary directory', () => {
    const r = usagedb(['bench', '--events', '5000', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      events: number;
      ingest_events_per_second: number;
      bytes_per_event: number;
    };
    expect(out.events).toBeGreaterThanOrEqual(5_000);
    expect(out.ingest_events_per_second).toBeGreaterThan(0);
    expect(out.bytes_per_event).toBeGreaterThan(0);
    const bad = usagedb(['bench', '--events', 'lots']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/USAGEDB_ERR_INVALID_ARGUMENT/);
  });

  it('refuses to run while a server holds the lock', async () => {
    const server = spawn(process.execPath, [BIN, 'serve', '--db-root', 'db', '--port', '0'], { cwd: root });
    try {
      await new Promise<void>((resolveReady, reject) => {
        let out = '';
        server.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (/listening|http:\/\//i.test(out)) resolveReady();
        });
        server.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
        setTimeout(() => reject(new Error(`server did not start: ${out}`)), 30_000);
      });
      for (const args of [['compact'], ['check'], ['inspect-segment', '1']]) {
        const r = usagedb([...args, '--db-root', 'db']);
        expect(r.status, args.join(' ')).toBe(4);
        expect(r.stderr).toMatch(/USAGEDB_ERR_LOCKED/);
      }
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
  });
});
