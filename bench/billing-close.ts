/**
 * What billing costs: one account-month of N events (default 200,000) in a fresh temporary
 * directory, then the time of close (flush, rollups, lines read twice, events listed for the
 * digest, one manifest commit), of reading the closed period, of explain and of a lookup.
 * Usage: node bench/billing-close.ts [N]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageDb } from '../src/db.ts';
import { silentLogger } from '../src/util/logger.ts';

const N = Number(process.argv[2] ?? 200_000);
const MAY = Date.UTC(2026, 4, 1);
const dir = mkdtempSync(join(tmpdir(), 'usagedb-billing-bench-'));

async function timed<T>(what: string, work: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const result = await work();
  console.log(`${what}: ${(performance.now() - t0).toFixed(0)} ms`);
  return result;
}

try {
  const db = await UsageDb.open({ dir, logger: silentLogger });
  const meters = ['tokens.input', 'tokens.output', 'requests'];
  for (let start = 0; start < N; start += 10_000) {
    const batch = [];
    for (let i = start; i < Math.min(N, start + 10_000); i++) {
      batch.push({
        event_id: `gw-${i}`,
        account_id: i % 10 === 0 ? `other-${i % 7}` : 'acct_42',
        product_id: 'llm-api',
        meter_id: meters[i % 3],
        unit: i % 3 === 2 ? 'requests' : 'tokens',
        model_id: `model-${i % 4}`,
        source: 'gateway',
        timestamp_ms: MAY + Math.floor((i / N) * 30 * 86_400_000),
        quantity: (i * 37) % 5000,
      });
    }
    await db.ingest(batch);
  }
  await timed('flush', () => db.flush());
  const closed = await timed('close (flush, rollups, lines x2, events for the digest, commit)', () =>
    db.periods.close('acct_42', '2026-05'),
  );
  console.log(
    `  lines ${closed.lines.length}, events ${closed.lines.reduce((n, l) => n + l.event_count, 0)}`,
  );
  await timed('get closed period (no adjustments)', () => db.periods.get('acct_42', '2026-05'));
  await db.ingest([
    {
      event_id: 'refund-1',
      kind: 'Retraction',
      correction_ref: { original_event_id: 'gw-1', reason: 'refund' },
      account_id: 'acct_42',
      product_id: 'llm-api',
      meter_id: 'tokens.output',
      unit: 'tokens',
      model_id: 'model-1',
      source: 'gateway',
      timestamp_ms: MAY + 1,
    },
  ]);
  await timed('get closed period (one adjustment: events listed)', () =>
    db.periods.get('acct_42', '2026-05'),
  );
  await timed('explain (month)', () => db.explain({ account_id: 'acct_42', from: MAY, to: '2026-06-01' }));
  await timed('lookup (retracted, in a segment)', () => db.lookupEvent('gw-1'));
  await db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
