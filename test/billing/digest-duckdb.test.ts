/**
 * The evidence digest of a closed period, recomputed outside usagedb: export the
 * account-month to Parquet, run the one DuckDB query of docs/billing.md, compare the hex.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import {
  canonicalDigestLine,
  compareUtf8,
  DIGEST_DUCKDB_SQL,
  evidenceDigest,
} from '../../src/billing/digest.ts';
import { UsageDb } from '../../src/db.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { correction, ev, HOUR, JUNE, MAY } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'usagedb-digest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function duckDigest(file: string): Promise<string> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const sql = DIGEST_DUCKDB_SQL.replace('{file}', `'${file.replace(/'/g, "''")}'`);
    const reader = await conn.runAndReadAll(sql);
    return String(reader.getRows()[0][0]);
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

describe('evidence digest', () => {
  it('the canonical line is length-prefixed, null model is ~', () => {
    expect(
      canonicalDigestLine({
        event_id: 'é,1',
        kind: 'Usage',
        product_id: 'p',
        meter_id: 'm:x',
        model_id: null,
        unit: 'tokens',
        timestamp_ms: 12,
        quantity: '-5',
      }),
    ).toBe('4:é,1,Usage,1:p,3:m:x,~,6:tokens,12,-5\n');
    // UTF-8 byte order, not UTF-16: U+FF61 sorts before U+1F600 in UTF-8 only.
    expect(compareUtf8('\uff61', '\u{1f600}')).toBeLessThan(0);
    expect(evidenceDigest([])).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('one DuckDB query over the Parquet export recomputes the closed period digest', async () => {
    const db = await UsageDb.open({ dir: join(dir, 'db'), logger: silentLogger, bucketCount: 4 });
    const events = [
      ev('u1'),
      ev('u2', { quantity: '123456789012345678901234567890', model_id: null }),
      ev('ü-3', { product_id: 'prod,with,commas', meter_id: '1:2', timestamp_ms: MAY + 3 * HOUR }),
      ev('\u{1f600}', { unit: 'requests', quantity: 0 }),
      ev('\uff61', { timestamp_ms: JUNE - 1 }),
      ev('other-account', { account_id: 'zeta' }),
      ev('june', { timestamp_ms: JUNE }),
    ];
    for (let i = 0; i < 40; i++)
      events.push(ev(`bulk-${i}`, { quantity: i * 7, timestamp_ms: MAY + i * HOUR }));
    expect((await db.ingest(events)).accepted).toBe(events.length);
    await db.flush();
    expect((await db.ingest([correction('c1', 'u1', -40, { timestamp_ms: MAY + 9 })])).accepted).toBe(1);
    const closed = await db.periods.close('acme', '2026-05');
    const out = join(dir, 'may.parquet');
    await db.exportParquet(out, { account_id: 'acme', from: MAY, to: JUNE, partition: 'none' });
    const wider = join(dir, 'wider.parquet');
    await db.exportParquet(wider, { account_id: 'acme', from: MAY, to: JUNE + HOUR, partition: 'none' });
    await db.close();
    expect(await duckDigest(out)).toBe(closed.snapshot.evidence_digest);
    // One event more (June's) and the digest differs.
    expect(await duckDigest(wider)).not.toBe(closed.snapshot.evidence_digest);
  });
});
