import { describe, expect, it, vi } from 'vitest';
import { samePayload, StoredEventFinder } from '../../src/ingest/dedupe.ts';
import { Memtable } from '../../src/ingest/memtable.ts';
import { canonicalPayload, type UsageEvent } from '../../src/model/event.ts';
import { hash128 } from '../../src/model/hash.ts';
import { payloadHash } from '../../src/model/payload-hash.ts';
import { validateEvent } from '../../src/model/validate.ts';
import { SegmentStore } from '../../src/storage/segment-store.ts';
import { NOW, simDb, usage, usageBatch } from '../support/events.ts';

function event(i: number, overrides: Record<string, unknown> = {}): UsageEvent {
  const v = validateEvent(usage(i, overrides), NOW, { futureSkewMs: 86_400_000 });
  if (!v.ok) throw new Error(v.message);
  return v.event as UsageEvent;
}

describe('cold retries answered from the stored payload hash', () => {
  it('tells duplicates from conflicts after a restart without reading the stored row', async () => {
    const { open } = simDb();
    let db = await open({ limits: { hotIdsMax: 0 } });
    // Past one id index chunk (512 entries): retries land in different chunks.
    await db.ingest(usageBatch(0, 1500));
    await db.close();
    // Reopened: nothing in memory knows these ids, so every retry goes to the files.
    db = await open({ limits: { hotIdsMax: 0 } });
    const readRow = vi.spyOn(SegmentStore.prototype, 'readRow');
    try {
      const result = await db.ingest([
        usage(3),
        usage(4, { quantity: 999_999 }),
        usage(705, { model_id: 'another-model' }),
        usage(1206, { dimensions: { region: 'ap' } }),
        usage(1499),
        usage(1500),
      ]);
      expect(result).toMatchObject({ accepted: 1, duplicates: 2, conflicts: 3 });
      expect(result.errors.map((e) => e.event_id)).toEqual(['evt_4', 'evt_705', 'evt_1206']);
      expect(readRow).not.toHaveBeenCalled();
    } finally {
      readRow.mockRestore();
      await db.close();
    }
  });
});

describe('StoredEventFinder.findPayload', () => {
  /** A store with one file holding `stored` at row 0, its index carrying `hash` or not. */
  function storeOf(stored: UsageEvent, hash: [number, number] | null) {
    const h = hash128(stored.event_id);
    // The row's columns, as the segment store returns one row.
    const readRow = vi.fn(async () => {
      const memtable = new Memtable();
      memtable.append(stored, 1);
      return memtable.columns();
    });
    const store = {
      mayBeStored: (h1: number, h2: number) => h1 === h.h1 && h2 === h.h2,
      filesMayContain: async () => [{ id: 1 }],
      idIndexHits: async (_id: number, h3: number) => (h3 === h.h3 ? [{ row: 0, payload: hash }] : []),
      readEventIdAt: async () => stored.event_id,
      readRow,
    };
    return { finder: new StoredEventFinder(store as unknown as SegmentStore), readRow };
  }

  it('gives the index hash when the file stores one, the canonical row otherwise', async () => {
    const stored = event(7);
    const p = payloadHash(stored);
    const withHash = storeOf(stored, [p.h1, p.h2]);
    const fromHash = await withHash.finder.findPayload(stored.event_id);
    expect(fromHash).toEqual({ hash: [p.h1, p.h2] });
    expect(withHash.readRow).not.toHaveBeenCalled();

    const without = storeOf(stored, null);
    const fromRow = await without.finder.findPayload(stored.event_id);
    expect(fromRow).toEqual({ canonical: canonicalPayload(stored) });
    expect(without.readRow).toHaveBeenCalledTimes(1);

    expect(await withHash.finder.findPayload('evt_unknown')).toBeNull();
    for (const found of [fromHash, fromRow]) {
      if (found === null) throw new Error('not found');
      expect(samePayload(stored, found)).toBe(true);
      expect(samePayload(event(7, { quantity: 1 }), found)).toBe(false);
      expect(samePayload(event(7, { source: 'batch' }), found)).toBe(false);
    }
  });
});
