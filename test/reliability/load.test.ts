/**
 * A short run of the load test (`npm run test:load` runs it for longer): concurrent ingest
 * and queries against the built server for a few seconds, then the proof of the total.
 */
import { describe, expect, it } from 'vitest';
import { describeReport, proven, runLoad } from '../../bench/load.ts';

describe('bounded load on loopback (short)', () => {
  it('sustained ingest with concurrent queries: every acknowledged event once, totals exact', async () => {
    const report = await runLoad({
      seconds: Number(process.env.USAGEDB_LOAD_SECONDS ?? 4),
      ingestClients: 3,
      queryClients: 2,
      batch: 100,
      durability: 'balanced',
      memtableBytesMax: 256 * 1024,
    });
    console.log(describeReport(report));
    expect(report.failures).toEqual([]);
    expect(report.proof).toMatchObject({
      lost: 0,
      doubled: 0,
      invented: 0,
      countMatches: true,
      sumMatches: true,
    });
    expect(proven(report)).toBe(true);
    expect(report.proof.acknowledged).toBeGreaterThan(0);
    expect(report.query.requests).toBeGreaterThan(0);
  }, 120_000);
});
