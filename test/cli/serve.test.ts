/**
 * `usagedb serve` and `usagedb query`, run from the built binary as a user would: the
 * `npm start` path (serve --demo on a fresh directory, the printed curl commands run as
 * printed), configuration errors, the lock, and queries from the command line.
 */
import { execFile, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageDb } from '../../src/db.ts';
import { tempDir } from '../api/harness.ts';
import { BIN, REPO, startServe } from '../api/serve-process.ts';
import { usageBatch } from '../support/events.ts';

const run = promisify(execFile);

function usagedb(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function expectOneLine(r: { status: number | null; stderr: string }, exit: number, pattern: RegExp): void {
  expect(r.status, r.stderr).toBe(exit);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

describe('usagedb serve --demo (what npm start runs)', () => {
  const tmp = tempDir('usagedb-serve-demo-');
  afterAll(() => tmp.remove());

  it('loads the demo month into a fresh directory and prints curl commands that work as printed', async () => {
    const dir = join(tmp.dir, 'data');
    const p = await startServe(['--demo', '--db-root', dir, '--log-level', 'warn']);
    try {
      expect(p.stdout()).toMatch(/loaded the demo month: [0-9,]+ events/);
      const curls = p
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('curl '));
      expect(curls).toHaveLength(3);
      const answers = [];
      for (const line of curls) {
        const { stdout } = await run('sh', ['-c', line]);
        answers.push(JSON.parse(stdout) as Record<string, unknown>);
      }
      const [ingest, usage, sql] = answers;
      expect(ingest).toEqual({ accepted: 1, duplicates: 0, conflicts: 0, rejected: 0, errors: [] });
      const lines = usage.lines as { meter_id: string; quantity: string; event_count: number }[];
      expect(usage.account_id).toBe('acme-corp');
      expect(lines.length).toBeGreaterThan(5);
      expect(lines.some((l) => l.meter_id === 'tokens.output')).toBe(true);
      expect(sql.columns).toEqual(['meter_id', 'unit', 'total', 'events']);
      const rows = sql.rows as [string, string, string, number][];
      const sqlOutput = rows.find((r) => r[0] === 'tokens.output');
      const linesOutput = lines.filter((l) => l.meter_id === 'tokens.output');
      expect(sqlOutput?.[2]).toBe(String(linesOutput.reduce((a, l) => a + BigInt(l.quantity), 0n)));
      // The same command again is a duplicate, not a second charge.
      expect(JSON.parse((await run('sh', ['-c', curls[0]])).stdout)).toMatchObject({
        accepted: 0,
        duplicates: 1,
      });

      // One process owns the directory: a second server or a query fails with the lock...
      expectOneLine(usagedb(['serve', '--port', '0', '--db-root', dir]), 4, /USAGEDB_ERR_LOCKED/);
      expectOneLine(usagedb(['query', '--sql', 'SELECT 1', '--db-root', dir]), 4, /USAGEDB_ERR_LOCKED/);
      // ...and a query asks the server instead.
      const sqlText = (
        JSON.parse(
          curls[2]
            .slice(curls[2].indexOf('-d ') + 3)
            .replace(/^"|"$/g, '')
            .replace(/\\"/g, '"'),
        ) as { query: string }
      ).query;
      const remote = usagedb(['query', '--url', p.url, '--sql', sqlText, '--json']);
      expect(remote.status, remote.stderr).toBe(0);
      expect(JSON.parse(remote.stdout)).toMatchObject({
        ok: true,
        url: p.url,
        columns: sql.columns,
        rows: sql.rows,
      });
      expectOneLine(
        usagedb(['query', '--url', p.url, '--sql', 'SELECT nonsense']),
        2,
        /USAGEDB_ERR_UNSUPPORTED_SQL/,
      );
      expectOneLine(usagedb(['query', '--url', 'http://127.0.0.1:1', '--sql', sqlText]), 5, /cannot reach/);
    } finally {
      p.child.kill('SIGINT');
    }
    expect(await p.exited).toBe(0);
    expect(p.stdout()).toMatch(/stopped on SIGINT/);

    // A second start on the same (no longer empty) directory loads nothing more.
    const again = await startServe(['--demo', '--db-root', dir, '--log-level', 'warn']);
    again.child.kill('SIGTERM');
    expect(await again.exited).toBe(0);
    expect(again.stdout()).not.toMatch(/loaded the demo month/);
    expect(again.stdout()).toMatch(/^curl /m);
  });
});

describe('usagedb serve: configuration', () => {
  const tmp = tempDir('usagedb-serve-config-');
  afterAll(() => tmp.remove());

  it('refuses a non-loopback address without keys, a bad value, an unknown setting, a missing file', () => {
    const dir = join(tmp.dir, 'db');
    expectOneLine(
      usagedb(['serve', '--host', '0.0.0.0', '--db-root', dir]),
      2,
      /refusing to listen on 0\.0\.0\.0 without API keys/,
    );
    expectOneLine(
      usagedb(['serve', '--db-root', dir], { USAGEDB_HOST: '0.0.0.0' }),
      2,
      /refusing to listen on 0\.0\.0\.0/,
    );
    expectOneLine(
      usagedb(['serve', '--port', '99999', '--db-root', dir]),
      2,
      /--port must be an integer in 0\.\.65535/,
    );
    expectOneLine(
      usagedb(['serve', '--db-root', dir], { USAGEDB_DURABILITY: 'sometimes' }),
      2,
      /environment variable USAGEDB_DURABILITY must be one of strict, balanced, fast/,
    );
    const file = join(tmp.dir, 'config.json');
    writeFileSync(file, JSON.stringify({ port: 8080, colour: 'blue' }));
    expectOneLine(usagedb(['serve', '--config', file, '--db-root', dir]), 2, /unknown setting "colour"/);
    writeFileSync(file, '{ nope');
    expectOneLine(usagedb(['serve', '--config', file, '--db-root', dir]), 2, /is not valid JSON/);
    expectOneLine(
      usagedb(['serve', '--config', join(tmp.dir, 'missing.json'), '--db-root', dir]),
      3,
      /does not exist/,
    );
    expectOneLine(
      usagedb(['serve', '--db-root', dir], { USAGEDB_API_KEYS: 'short' }),
      2,
      /at least 16 characters/,
    );
  });

  it('flags beat the environment, which beats the file; keys from the environment protect /v1', async () => {
    const dir = join(tmp.dir, 'db2');
    const file = join(tmp.dir, 'serve.json');
    writeFileSync(
      file,
      JSON.stringify({ host: '0.0.0.0', batch_events_max: 5, api_keys: ['file-key-0123456789'] }),
    );
    const key = 'env-key-0123456789';
    const p = await startServe(
      ['--config', file, '--db-root', dir, '--log-level', 'warn', '--host', '127.0.0.1'],
      {
        env: { USAGEDB_API_KEYS: key, USAGEDB_BATCH_EVENTS_MAX: '3' },
      },
    );
    try {
      expect(p.url).toMatch(/^http:\/\/127\.0\.0\.1:/);
      const post = (events: unknown[], k: string) =>
        fetch(`${p.url}/v1/usage/batch`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${k}` },
          body: JSON.stringify({ events }),
        });
      expect((await post(usageBatch(0, 1), 'file-key-0123456789')).status).toBe(401);
      expect((await post(usageBatch(0, 3), key)).status).toBe(200);
      expect((await post(usageBatch(0, 4), key)).status).toBe(413);
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited).toBe(0);
  });
});

describe('usagedb query', () => {
  const tmp = tempDir('usagedb-query-');
  afterAll(() => tmp.remove());

  it('runs --sql and --json queries, as a table or one JSON object; bad queries fail in one line', async () => {
    const dir = join(tmp.dir, 'db');
    const db = await UsageDb.open({ dir });
    await db.ingest(usageBatch(0, 100));
    await db.close();
    const sql =
      "SELECT meter_id, SUM(quantity) AS total, COUNT(*) AS n FROM usage_events WHERE timestamp_ms >= '2026-05-01' AND timestamp_ms < '2026-06-01' GROUP BY meter_id ORDER BY meter_id";
    const human = usagedb(['query', '--sql', sql, '--db-root', dir]);
    expect(human.status, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^meter_id\s+total\s+n\n/);
    expect(human.stdout).toMatch(/requests\s+/);
    expect(human.stdout).toMatch(/\(3 rows\)/);

    const asJson = usagedb(['query', '--sql', sql, '--json', '--db-root', dir]);
    expect(asJson.status, asJson.stderr).toBe(0);
    const parsed = JSON.parse(asJson.stdout) as { ok: boolean; columns: string[]; rows: unknown[][] };
    expect(parsed).toMatchObject({ ok: true, columns: ['meter_id', 'total', 'n'] });
    expect(parsed.rows.reduce((a, r) => a + (r[2] as number), 0)).toBe(100);

    const q = JSON.stringify({ from: '2026-05-01', to: '2026-06-01', group_by: ['account_id'] });
    const j = usagedb(['query', '--json', q, '--db-root', dir]);
    expect(j.status, j.stderr).toBe(0);
    const rows = (JSON.parse(j.stdout) as { rows: { account_id: string; count: number }[] }).rows;
    expect(rows).toHaveLength(7);
    expect(rows.reduce((a, r) => a + r.count, 0)).toBe(100);

    expectOneLine(usagedb(['query', '--db-root', dir]), 2, /exactly one of --sql/);
    expectOneLine(usagedb(['query', '--sql', 'SELECT 1', '--db-root', dir]), 2, /USAGEDB_ERR_/);
    expectOneLine(
      usagedb([
        'query',
        '--sql',
        `${sql.replace('ORDER BY meter_id', '')} HAVING COUNT(*) > 1`,
        '--db-root',
        dir,
      ]),
      2,
      /USAGEDB_ERR_UNSUPPORTED_SQL/,
    );
    expectOneLine(usagedb(['query', '--json', '{nope', '--db-root', dir]), 2, /not valid JSON/);
    expectOneLine(
      usagedb(['query', '--sql', sql, '--db-root', join(tmp.dir, 'none')]),
      3,
      /USAGEDB_ERR_NOT_FOUND/,
    );
  });
});
