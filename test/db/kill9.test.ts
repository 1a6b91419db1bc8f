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

/** What the child ingests as event k9_i (fixtures/ingest-forever.ts). */
const T0 = Date.UTC(2026, 4, 1);
const BATCH = 50;

describe('kill -9 of an ingesting process', () => {
  for (const durability of ['strict', 'balanced']) {
    it(`${durability}: every event whose ingest resolved is there after reopen, exactly once`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'usagedb-kill9-'));
      try {
        const acked = await ingestThenKill(dir, durability, 60);
        expect(acked).toBeGreaterThanOrEqual(60);
        const db = await UsageDb.open({ dir });
        // Count per id: a Set would let an event stored twice (billed twice) pass.
        const copies = new Map<string, number>();
        for (let a = 0; a < 5; a++) {
          for (const e of await scanAccount(db, `acct_${a}`, 0, Number.MAX_SAFE_INTEGER)) {
            copies.set(e.event_id, (copies.get(e.event_id) ?? 0) + 1);
            // Nothing invented: only events the child generated, with the payload it sent.
            const m = /^k9_(\d+)$/.exec(e.event_id);
            expect(m, e.event_id).not.toBeNull();
            const i = Number(m![1]);
            expect(e.account_id).toBe(`acct_${i % 5}`);
            expect(e.timestamp_ms).toBe(T0 + i * 1000);
            expect(e.quantity).toBe(String(i));
          }
        }
        for (const [id, n] of copies) expect(n, `copies of ${id}`).toBe(1);
        // Batches are ingested one after another, so what survived is a prefix of whole
        // batches (a batch is one WAL record): at least every acknowledged one, maybe one or
        // more whose acknowledgement was not read before the kill, never a gap.
        const stored = copies.size;
        expect(stored).toBeGreaterThanOrEqual((acked + 1) * BATCH);
        expect(stored % BATCH).toBe(0);
        for (let i = 0; i < stored; i++) expect(copies.has(`k9_${i}`), `k9_${i}`).toBe(true);
        // The query engine, which bills, sees the same events once each.
        const range = { from: T0, to: T0 + stored * 1000 + 1 };
        const totals = await db.query({ ...range, metrics: ['sum', 'count'] });
        expect(totals.rows).toEqual([{ sum: String((stored * (stored - 1)) / 2), count: stored }]);
        const perAccount = await db.query({ ...range, group_by: ['account_id'], metrics: ['count'] });
        expect(perAccount.rows).toEqual(
          Array.from({ length: 5 }, (_, a) => ({ account_id: `acct_${a}`, count: stored / 5 })),
        );
        await db.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
