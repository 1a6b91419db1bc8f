import { describe, expect, it } from 'vitest';
import { UsageDbError } from '../../src/errors.ts';
import { simDb, T0, usage, usageBatch } from '../support/events.ts';
import { readSnapshot } from '../../src/testing.ts';
import { scanAccount } from '../support/scan.ts';

describe('UsageDb ingest and idempotency', () => {
  it('accepts, then counts exact retries as duplicates and changed payloads as conflicts', async () => {
    const { open } = simDb();
    const db = await open();
    const r1 = await db.ingest(usageBatch(0, 50));
    expect(r1).toMatchObject({ accepted: 50, duplicates: 0, conflicts: 0, rejected: 0, errors: [] });
    const r2 = await db.ingest([usage(3), usage(4, { quantity: 999_999 }), usage(4, { quantity: '999999' })]);
    expect(r2.duplicates).toBe(1);
    expect(r2.conflicts).toBe(2);
    expect(r2.errors.map((e) => [e.index, e.status, e.reason])).toEqual([
      [1, 'conflict', 'conflict'],
      [2, 'conflict', 'conflict'],
    ]);
    await db.close();
  });

  it('dedupes within one batch', async () => {
    const { open } = simDb();
    const db = await open();
    const r = await db.ingest([usage(1), usage(1), usage(1, { quantity: 5 }), usage(2)]);
    expect(r).toMatchObject({ accepted: 2, duplicates: 1, conflicts: 1 });
    await db.close();
  });

  it('stays idempotent after flush, restart and for a retry with a changed timestamp (other partition)', async () => {
    const sim = simDb();
    let db = await sim.open();
    await db.ingest(usageBatch(0, 200));
    await db.flush();
    expect((await db.ingest([usage(10)])).duplicates).toBe(1); // hot cache
    await db.close();
    db = await sim.open();
    const r = await db.ingest([
      usage(11),
      usage(12, { quantity: 1 }),
      usage(13, { timestamp_ms: T0 + 29 * 86_400_000 + 5 }),
      usage(14, { account_id: 'acct_other' }),
      usage(9999),
    ]);
    expect(r).toMatchObject({ accepted: 1, duplicates: 1, conflicts: 3 });
    await db.close();
  });

  it('rejects bad events one by one and stores the rest', async () => {
    const { open } = simDb();
    const db = await open();
    const r = await db.ingest([usage(1), { nope: true }, usage(2, { quantity: -5 }), usage(3)]);
    expect(r.accepted).toBe(2);
    expect(r.rejected).toBe(2);
    expect(r.errors.map((e) => e.reason)).toEqual(['unknown_field', 'negative_quantity']);
    const events = await scanAccount(db, 'acct_1', 0, Number.MAX_SAFE_INTEGER);
    expect(events.map((e) => e.event_id)).toEqual(['evt_1']);
    await db.close();
  });

  it('refuses an oversized batch as a whole', async () => {
    const { open } = simDb();
    const db = await open({ limits: { batchEventsMax: 10 } });
    await expect(db.ingest(usageBatch(0, 11))).rejects.toMatchObject({ code: 'USAGEDB_ERR_BATCH_TOO_LARGE' });
    await db.close();
  });

  it('handles corrections and retractions against their originals, at any age', async () => {
    const sim = simDb();
    let db = await sim.open();
    await db.ingest([usage(1, { quantity: 100 }), usage(2, { quantity: 7 })]);
    await db.flush();
    await db.close();
    db = await sim.open();
    const ref = (id: string) => ({ original_event_id: id, reason: 'fix' });
    const base = usage(1);
    const r = await db.ingest([
      { ...base, event_id: 'c1', kind: 'Correction', quantity: -10, correction_ref: ref('evt_1') },
      { ...base, event_id: 'c2', kind: 'Correction', quantity: 1, correction_ref: ref('missing') },
      {
        ...base,
        event_id: 'c3',
        kind: 'Correction',
        quantity: 1,
        meter_id: 'other',
        correction_ref: ref('evt_1'),
      },
      { ...base, event_id: 'r1', kind: 'Retraction', quantity: undefined, correction_ref: ref('evt_1') },
      { ...base, event_id: 'r2', kind: 'Retraction', quantity: undefined, correction_ref: ref('evt_1') },
      { ...usage(2), event_id: 'r3', kind: 'Retraction', quantity: 5, correction_ref: ref('evt_2') },
    ]);
    expect(r.accepted).toBe(2);
    expect(r.errors.map((e) => [e.event_id, e.reason])).toEqual([
      ['c2', 'unknown_original'],
      ['c3', 'correction_mismatch'],
      ['r2', 'already_retracted'],
      ['r3', 'retraction_quantity_mismatch'],
    ]);
    // A retry of the accepted Retraction is a duplicate, not "already retracted".
    const retry = await db.ingest([
      { ...base, event_id: 'r1', kind: 'Retraction', quantity: undefined, correction_ref: ref('evt_1') },
    ]);
    expect(retry.duplicates).toBe(1);
    await db.flush();
    await db.close();
    db = await sim.open();
    const again = await db.ingest([
      { ...base, event_id: 'r9', kind: 'Retraction', quantity: '-100', correction_ref: ref('evt_1') },
    ]);
    expect(again.errors[0]?.reason).toBe('already_retracted');
    const events = await scanAccount(db, base.account_id as string, 0, Number.MAX_SAFE_INTEGER);
    const r1 = events.find((e) => e.event_id === 'r1');
    expect(r1?.quantity).toBe('-100');
    await db.close();
  });

  it('scan reads segments and memtable, half-open', async () => {
    const { open } = simDb();
    const db = await open();
    await db.ingest([usage(1, { timestamp_ms: T0 }), usage(8, { timestamp_ms: T0 + 10 })]);
    await db.flush();
    await db.ingest([usage(15, { timestamp_ms: T0 + 20 })]);
    const ids = (await scanAccount(db, 'acct_1', T0, T0 + 20)).map((e) => e.event_id);
    expect(ids).toEqual(['evt_1', 'evt_8']);
    expect((await scanAccount(db, 'acct_1', T0, T0 + 21)).length).toBe(3);
    await db.close();
  });

  it('two close calls at once close once: both resolve and the data reopens whole', async () => {
    const { open } = simDb();
    const db = await open();
    await db.ingest(usageBatch(0, 20));
    await Promise.all([db.close(), db.close()]);
    await db.close();
    const again = await open();
    expect((await again.ingest(usageBatch(0, 20))).duplicates).toBe(20);
    await again.close();
  });

  it('a second open of the same directory fails with a clear error', async () => {
    const sim = simDb();
    const db = await sim.open();
    const second = sim.open().catch((err: unknown) => err);
    const err = await second;
    expect(err).toBeInstanceOf(UsageDbError);
    expect((err as UsageDbError).code).toBe('USAGEDB_ERR_LOCKED');
    expect((err as Error).message).toMatch(/locked by process/);
    await db.close();
    const reopened = await sim.open();
    await reopened.close();
  });
});

describe('flush in the encoder worker', () => {
  it('a flush above the inline limit encodes in the worker thread and reads back exactly', async () => {
    const { open } = simDb();
    const db = await open();
    const total = 25_000;
    for (let i = 0; i < total; i += 5000) await db.ingest(usageBatch(i, 5000));
    await db.flush();
    expect(db.stats().segments).toBe(1);
    let seen = 0;
    let sum = 0;
    for (let a = 0; a < 7; a++) {
      for (const e of await scanAccount(db, `acct_${a}`, 0, Number.MAX_SAFE_INTEGER)) {
        seen++;
        sum += Number(e.quantity);
      }
    }
    expect(seen).toBe(total);
    let expected = 0;
    for (let i = 0; i < total; i++) expected += (i * 37) % 1000;
    expect(sum).toBe(expected);
    await db.close();
  });
});

describe('flush under concurrent ingest', () => {
  it('freezes a full memtable once, not its successor for every call that saw it full', async () => {
    const { open } = simDb();
    // ~80 events fill this memtable (150 bytes of overhead + strings per row).
    const db = await open({ limits: { memtableBytesMax: 16_000 } });
    // Four calls in flight at all times, as a server under load has them.
    const inflight = new Set<Promise<unknown>>();
    let accepted = 0;
    for (let k = 0; k < 20; k++) {
      const p: Promise<unknown> = db.ingest(usageBatch(k * 20, 20)).then((r) => {
        accepted += r.accepted;
        inflight.delete(p);
      });
      inflight.add(p);
      if (inflight.size >= 4) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    expect(accepted).toBe(400);
    await db.flush();
    const rowsPerSegment = new Map<number, number>();
    for (const slice of readSnapshot(db).segments)
      rowsPerSegment.set(slice.segment_id, (rowsPerSegment.get(slice.segment_id) ?? 0) + slice.rows);
    const sizes = [...rowsPerSegment.entries()].sort((a, b) => a[0] - b[0]).map(([, rows]) => rows);
    // Every flush but the final one wrote a full memtable, none a sliver of one.
    expect(sizes.slice(0, -1).every((rows) => rows >= 60)).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(400);
    await db.close();
  });
});

describe('backpressure', () => {
  it('lets ingest go on once the oldest frozen memtable is flushed, not all of them', async () => {
    const sim = simDb();
    // Segment writes wait at a gate the test opens one at a time.
    const gates: { entered: Promise<void>; enter: () => void; open: () => void; opened: Promise<void> }[] =
      [];
    const gateFor = (n: number) => {
      while (gates.length <= n) {
        const entered = Promise.withResolvers<void>();
        const opened = Promise.withResolvers<void>();
        gates.push({
          entered: entered.promise,
          enter: entered.resolve,
          open: opened.resolve,
          opened: opened.promise,
        });
      }
      return gates[n];
    };
    let segmentWrites = 0;
    const fs = new Proxy(sim.fs, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (prop !== 'writeFile' || typeof value !== 'function')
          return typeof value === 'function' ? value.bind(target) : value;
        return async (path: string, data: Uint8Array, options?: { sync?: boolean }) => {
          if (path.includes('/raw/')) {
            const gate = gateFor(segmentWrites++);
            gate.enter();
            await gate.opened;
          }
          return target.writeFile(path, data, options);
        };
      },
    });
    const db = await sim.open({ fs, limits: { memtableBytesMax: 16_000 } });
    let next = 0;
    const batch = () => usageBatch((next += 20) - 20, 20);
    while (db.stats().frozenMemtables < 2) await db.ingest(batch());
    await gateFor(0).entered;
    const blocked = db.ingest(batch()).then(() => 'resumed');
    gateFor(0).open();
    // The second frozen memtable's segment write is still held at its gate.
    await gateFor(1).entered;
    const outcome = await Promise.race([blocked, new Promise((r) => setTimeout(() => r('stalled'), 2_000))]);
    expect(outcome).toBe('resumed');
    expect(db.stats().frozenMemtables).toBe(1);
    gateFor(1).open();
    gateFor(2).open();
    gateFor(3).open();
    await db.flush();
    await db.close();
  });
});

describe('hot window', () => {
  it('tells duplicates from conflicts for flushed ids, non-ASCII ids included', async () => {
    const { open, fs } = simDb();
    const db = await open();
    const ids = ['évt-1', 'イベント-2', 'evt-😀-3', 'evt-4'];
    const events = ids.map((event_id, i) => usage(i, { event_id }));
    expect((await db.ingest(events)).accepted).toBe(4);
    await db.flush();
    // The ids now live only in the hot window (packed as UTF-8), not in a memtable: it answers
    // without reading a segment.
    const segmentReads: string[] = [];
    fs.injectFault((call) => {
      if (call.path.includes('/raw/')) segmentReads.push(call.op);
      return undefined;
    });
    const r = await db.ingest([...events, usage(9, { event_id: 'évt-1' }), usage(0, { event_id: 'évt-1x' })]);
    expect(segmentReads).toEqual([]);
    expect(r).toMatchObject({ accepted: 1, duplicates: 4, conflicts: 1 });
    expect(r.errors.map((e) => e.index)).toEqual([4]);
    await db.close();
  });
});
