import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageDb } from '../../src/db.ts';
import { scanAccount } from '../support/scan.ts';

async function ingestThenKill(dir: string, durability: string, ackedBatchesWanted: number): Promise<number> {
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, 'fixtures/ingest-forever.ts'), dir, durability],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let acked = -1;
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    let buffer = '';
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^acked (\d+)$/.exec(line);
        if (m) acked = Number(m[1]);
      }
      if (acked >= ackedBatchesWanted) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`child exited early (${code}): ${stderr}`));
    });
  });
  await new Promise((r) => child.once('close', r));
  return acked;
}

describe('kill -9 of an ingesting process', () => {
  for (const durability of ['strict', 'balanced']) {
    it(`${durability}: every event whose ingest resolved is there after reopen`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'usagedb-kill9-'));
      try {
        const acked = await ingestThenKill(dir, durability, 60);
        expect(acked).toBeGreaterThanOrEqual(60);
        const db = await UsageDb.open({ dir });
        const ids = new Set<string>();
        for (let a = 0; a < 5; a++)
          for (const e of await scanAccount(db, `acct_${a}`, 0, Number.MAX_SAFE_INTEGER)) ids.add(e.event_id);
        for (let i = 0; i < (acked + 1) * 50; i++) expect(ids.has(`k9_${i}`), `k9_${i}`).toBe(true);
        // Nothing invented: only ids the child generated, each once.
        for (const id of ids) expect(/^k9_\d+$/.test(id)).toBe(true);
        await db.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
