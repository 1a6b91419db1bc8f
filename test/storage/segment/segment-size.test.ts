import { describe, expect, it } from 'vitest';
import { realisticRows } from './generate-columns.ts';
import { measureSize } from './measure-segment.ts';

/**
 * The storage budget (docs/segment-format.md): realistic segments stay within 24 bytes per
 * event, plus the stored id index (~3 bytes per event at 5,000 rows) with its payload hashes
 * (8 bytes per event, format 3).
 */
const ID_INDEX_BYTES_PER_EVENT_MAX = 3.1 + 8;
const BYTES_PER_EVENT_MAX = 24 + ID_INDEX_BYTES_PER_EVENT_MAX;

describe('segment size on realistic data', () => {
  it('a 5,000-row segment stays within the per-event budget', () => {
    for (const seed of [42, 43]) {
      const report = measureSize(realisticRows({ rows: 5000, seed }));
      console.log(
        `5000 rows (seed ${seed}): ${report.bytesPerEvent.toFixed(3)} bytes/event`,
        report.perEvent,
      );
      expect(report.bytesPerEvent).toBeLessThanOrEqual(BYTES_PER_EVENT_MAX);
      // Random ids (evt_ + 20 base62) carry ~14.9 bytes of entropy: 15 bytes is the floor we hit.
      expect(report.perEvent.event_id).toBeLessThan(15.1);
      // Rice-coded hash deltas (~10.5 bits) and 13-bit rows, then the payload hashes.
      expect(report.perEvent.id_index).toBeLessThan(ID_INDEX_BYTES_PER_EVENT_MAX);
    }
  });

  it('a 500-row segment pays for its own dictionaries but stays close', () => {
    const report = measureSize(realisticRows({ rows: 500, seed: 42 }));
    console.log(`500 rows: ${report.bytesPerEvent.toFixed(3)} bytes/event`, report.perEvent);
    expect(report.bytesPerEvent).toBeLessThanOrEqual(BYTES_PER_EVENT_MAX + 3);
  });
});
