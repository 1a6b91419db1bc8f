/**
 * A disk that fills up on a real file system: an 8 MiB tmpfs (CI runs as root; elsewhere the
 * test is skipped with the reason). A real HTTP server ingests from two clients while a filler
 * file takes the remaining space:
 * - every answer is 200 or 503 (never another 5xx), and a 503 acknowledges nothing;
 * - flush, compaction and export on the full disk fail with a clean error and leave nothing
 *   that looks complete (no export file, no segment the manifest does not name after reopen);
 * - once space is freed, the same process ingests again without a restart;
 * - after a reopen, every acknowledged event is stored exactly once and nothing is invented.
 */
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageDb } from '../../src/db.ts';
import { UsageDbError } from '../../src/errors.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { startServer } from '../api/harness.ts';

const T0 = Date.UTC(2026, 4, 1);
const ACCOUNTS = 4;

function tryMount(): { dir: string; error: null } | { dir: null; error: string } {
  if (process.getuid?.() !== 0) return { dir: null, error: 'not root: cannot mount a tmpfs' };
  const dir = mkdtempSync(join(tmpdir(), 'usagedb-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir], { stdio: 'ignore' });
    return { dir, error: null };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { dir: null, error: `mount -t tmpfs failed: ${String(err)}` };
  }
}

function eventOf(n: number): Record<string, unknown> {
  return {
    event_id: `full_${n}`,
    account_id: `acct_${n % ACCOUNTS}`,
    product_id: 'llm-api',
    meter_id: 'tokens.output',
    unit: 'tokens',
    source: 'disk-full',
    timestamp_ms: T0 + (n % 9) * 86_400_000 + n,
    quantity: n % 1000,
    // Some bulk, so the disk fills within a few hundred batches.
    dimensions: { note: `padding-${'x'.repeat(100)}-${n}` },
  };
}

async function post(url: string, events: Record<string, unknown>[]) {
  const r = await fetch(`${url}/v1/usage/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** Fills the file system: appends to `path` until ENOSPC. */
function fill(path: string): void {
  const chunk = Buffer.alloc(64 * 1024, 1);
  for (;;) {
    try {
      appendFileSync(path, chunk);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOSPC') break;
      throw err;
    }
  }
  // The last partial page too.
  for (const size of [4096, 512, 64, 1]) {
    try {
      for (;;) appendFileSync(path, Buffer.alloc(size, 1));
    } catch {
      // full at this granularity
    }
  }
}

/** Non-empty segment and side files in raw/ that no manifest generation on disk names. */
function unnamedSegments(dir: string): string[] {
  const named = new Set<number>();
  for (const f of readdirSync(join(dir, 'manifest')).filter((n) => /^manifest-\d+\.json$/.test(n))) {
    const doc = JSON.parse(readFileSync(join(dir, 'manifest', f), 'utf8')) as {
      manifest: { raw_segments: { id: number }[]; quarantine: { id: number }[] };
    };
    for (const e of [...doc.manifest.raw_segments, ...doc.manifest.quarantine]) named.add(e.id);
  }
  return readdirSync(join(dir, 'raw')).filter(
    (f) =>
      /^\d+\.(useg|rtx)$/.test(f) &&
      !named.has(Number(f.slice(0, 8))) &&
      statSync(join(dir, 'raw', f)).size > 0,
  );
}

const mount = tryMount();

describe(`disk full on a real 8 MiB tmpfs${mount.error === null ? '' : ` (skipped: ${mount.error})`}`, () => {
  afterAll(() => {
    if (mount.dir !== null) {
      execFileSync('umount', ['-l', mount.dir]);
      rmSync(mount.dir, { recursive: true, force: true });
    }
  });

  it.skipIf(mount.dir === null)(
    '503 with nothing acknowledged; flush, compaction and export fail cleanly; recovery without restart',
    async () => {
      const root = mount.dir as string;
      const dir = join(root, 'db');
      const filler = join(root, 'filler');
      const running = await startServer({
        dir,
        config: { durability: 'strict' },
        dbOptions: { durability: 'strict', limits: { memtableBytesMax: 64 * 1024 } },
      });
      const { url, db } = running;
      const acked = new Set<number>();
      const refused: number[][] = [];
      const statuses = new Map<number, number>();
      let next = 0;
      let full = false;
      let stop = false;
      const sender = async () => {
        while (!stop) {
          const batch = Array.from({ length: 20 }, () => next++);
          const r = await post(url, batch.map(eventOf));
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status === 200) {
            expect(r.body).toMatchObject({ accepted: 20 });
            for (const n of batch) acked.add(n);
          } else {
            // Cannot persist: 503, the error shape, nothing acknowledged.
            expect(r.status, JSON.stringify(r.body)).toBe(503);
            expect((r.body.error as { code: string }).code).toMatch(/^USAGEDB_ERR_(NO_SPACE|WAL_WRITE|IO)$/);
            refused.push(batch);
            if (full && refused.length >= 10) return;
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        }
      };
      const senders = [sender(), sender()];
      while (acked.size < 400) await new Promise((resolve) => setTimeout(resolve, 5));
      fill(filler);
      full = true;
      await Promise.all(senders);
      stop = true;
      expect(refused.length).toBeGreaterThanOrEqual(10);
      expect([...statuses.keys()].sort()).toEqual([200, 503]);
      const ackedWhileFull = acked.size;

      // Flush, compaction and export on the full disk: a clean error, nothing that looks complete.
      const flushError = await db.flush().then(
        () => null,
        (err: unknown) => err,
      );
      if (flushError !== null) {
        expect(flushError).toBeInstanceOf(UsageDbError);
        expect((flushError as UsageDbError).code).toMatch(/^USAGEDB_ERR_(NO_SPACE|IO)$/);
      }
      const compactError = await db.compact().then(
        () => null,
        (err: unknown) => err,
      );
      if (compactError !== null) {
        expect(compactError).toBeInstanceOf(UsageDbError);
        expect((compactError as UsageDbError).code).toMatch(/^USAGEDB_ERR_(NO_SPACE|IO)$/);
      }
      expect(unnamedSegments(dir), 'segment files no manifest generation names').toEqual([]);
      const out = join(root, 'export.parquet');
      const exportError = await db.exportParquet(out).then(
        () => null,
        (err: unknown) => err,
      );
      expect(exportError, 'an export cannot succeed on a full disk').toBeInstanceOf(UsageDbError);
      expect((exportError as UsageDbError).code).toMatch(/^USAGEDB_ERR_(NO_SPACE|IO)$/);
      expect(existsSync(out), 'no export file after a failed export').toBe(false);
      expect(
        readdirSync(root).filter((f) => f.startsWith('export.parquet')),
        'no export leftovers',
      ).toEqual([]);
      // Reads still answer while the disk is full, with exactly the acknowledged events.
      const during = await db.query({ from: 0, to: 2_000_000_000_000, metrics: ['count'] });
      expect((during.rows[0] as { count: number }).count).toBeGreaterThanOrEqual(ackedWhileFull);

      // Space comes back: the same process recovers without a restart.
      rmSync(filler);
      const retried = refused.splice(0);
      let recovered = false;
      for (let i = 0; i < 100 && !recovered; i++) {
        const r = await post(url, retried[0].map(eventOf));
        if (r.status === 200) recovered = true;
        else {
          expect(r.status).toBe(503);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      expect(recovered, 'ingest works again once space is freed').toBe(true);
      // Every refused batch, resent: new or duplicate (a refused call acknowledged nothing, but a
      // WAL record it wrote may have survived), never a conflict.
      for (const batch of retried) {
        const r = await post(url, batch.map(eventOf));
        expect(r.status).toBe(200);
        expect((r.body.accepted as number) + (r.body.duplicates as number)).toBe(batch.length);
        for (const n of batch) acked.add(n);
      }
      await db.flush();
      await db.compact();
      const out2 = join(root, 'export2.parquet');
      const exported = await db.exportParquet(out2);
      expect(exported).toMatchObject({ rows: acked.size });
      rmSync(out2, { recursive: true, force: true });
      await running.stop();

      const reopened = await UsageDb.open({ dir, logger: silentLogger });
      try {
        const report = await reopened.check({ deep: true });
        expect(report.ok, report.problems.join('; ')).toBe(true);
        const counts = new Map<string, number>();
        for (let a = 0; a < ACCOUNTS; a++) {
          let cursor: string | null = null;
          do {
            const page: Awaited<ReturnType<UsageDb['events']>> = await reopened.events({
              account_id: `acct_${a}`,
              from: 0,
              to: 2_000_000_000_000,
              limit: 5000,
              cursor,
            });
            for (const e of page.events) counts.set(e.event_id, (counts.get(e.event_id) ?? 0) + 1);
            cursor = page.next_cursor;
          } while (cursor !== null);
        }
        for (const n of acked) expect(counts.get(`full_${n}`), `full_${n}`).toBe(1);
        for (const [id, c] of counts) {
          expect(c, `${id} stored ${c} times`).toBe(1);
          expect(Number(id.slice(5)) < next, `invented ${id}`).toBe(true);
        }
        // Segment files are exactly those the manifest names (no orphan that looks complete).
        const named = new Set(report.segments.map((s: { id: number }) => s.id));
        const onDisk = readdirSync(join(dir, 'raw')).filter((f) => f.endsWith('.useg'));
        expect(onDisk.map((f) => Number(f.slice(0, 8))).filter((id) => !named.has(id))).toEqual([]);
        console.log(
          `disk-full: ${acked.size} acknowledged (${ackedWhileFull} before the disk filled), ` +
            `${statuses.get(503) ?? 0} answers 503, stored ${counts.size}, lost 0, doubled 0`,
        );
      } finally {
        await reopened.close();
      }
      writeFileSync(join(root, 'done'), '');
    },
    120_000,
  );
});
