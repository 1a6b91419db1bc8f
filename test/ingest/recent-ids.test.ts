import { describe, expect, it } from 'vitest';
import { Memtable } from '../../src/ingest/memtable.ts';
import { RecentIds } from '../../src/ingest/recent-ids.ts';
import { packIds } from '../../src/model/packed-ids.ts';
import { validateEvent } from '../../src/model/validate.ts';
import type { UsageEvent } from '../../src/model/event.ts';
import { NOW, simDb, usage, usageBatch } from '../support/events.ts';

function event(i: number): UsageEvent {
  const v = validateEvent(usage(i), NOW, { futureSkewMs: 86_400_000 });
  if (!v.ok) throw new Error(v.message);
  return v.event as UsageEvent;
}

/** What a flush hands back for memtable `m`. */
function flushed(m: Memtable, payloadHashes = new Uint32Array(m.rowCount * 4)) {
  return { payloadHashes, eventIds: packIds(m.eventIds, m.rowCount) };
}

function fill(recent: RecentIds, m: Memtable, from: number, count: number): void {
  for (let i = from; i < from + count; i++) recent.add(`evt_${i}`, m.append(event(i), NOW));
}

describe('RecentIds', () => {
  it('finds memtable rows exactly and flushed ids by payload hash', () => {
    const recent = new RecentIds(100, 60_000);
    const a = new Memtable();
    recent.startMemtable(a);
    fill(recent, a, 0, 5);
    const b = new Memtable();
    recent.startMemtable(b);
    fill(recent, b, 5, 3);
    expect(recent.lookup('evt_6')).toMatchObject({ kind: 'memtable', memtable: b, row: 1 });
    expect(recent.lookup('evt_2')).toMatchObject({ kind: 'memtable', memtable: a, row: 2 });
    const hashes = Uint32Array.from({ length: 20 }, (_, k) => k);
    recent.markFlushed(a, flushed(a, hashes), NOW);
    expect(recent.lookup('evt_2')).toEqual({
      kind: 'flushed',
      payloadHash: { h1: 8, h2: 9, h3: 10, h4: 11 },
    });
    expect(recent.lookup('evt_7')).toMatchObject({ kind: 'memtable', memtable: b, row: 2 });
    expect(recent.lookup('evt_99')).toBeUndefined();
  });

  it('never drops memtable ids, and drops flushed generations by size and age', () => {
    const recent = new RecentIds(0, 60_000);
    const a = new Memtable();
    recent.startMemtable(a);
    fill(recent, a, 0, 4);
    const b = new Memtable();
    recent.startMemtable(b);
    fill(recent, b, 4, 4);
    expect(recent.size).toBe(8);
    recent.markFlushed(a, flushed(a), NOW); // window of 0 flushed ids: a leaves at once
    expect(recent.lookup('evt_1')).toBeUndefined();
    expect(recent.lookup('evt_5')).toMatchObject({ kind: 'memtable', memtable: b });
    expect(recent.size).toBe(4);

    const aged = new RecentIds(1_000, 60_000);
    const c = new Memtable();
    aged.startMemtable(c);
    fill(aged, c, 0, 2);
    aged.startMemtable(new Memtable());
    aged.markFlushed(c, flushed(c), NOW);
    aged.evict(NOW + 59_999);
    expect(aged.lookup('evt_1')?.kind).toBe('flushed');
    aged.evict(NOW + 60_000);
    expect(aged.lookup('evt_1')).toBeUndefined();
  });

  it('drops every id of a large flushed generation when it leaves the window', () => {
    const recent = new RecentIds(0, 60_000);
    const a = new Memtable();
    recent.startMemtable(a);
    fill(recent, a, 0, 3_000); // past the initial key capacity
    recent.startMemtable(new Memtable());
    recent.markFlushed(a, flushed(a), NOW);
    expect(recent.size).toBe(0);
    expect(recent.lookup('evt_2999')).toBeUndefined();
  });

  it('refuses an id twice and forgets removed (cut) rows', () => {
    const recent = new RecentIds(10, 1);
    const m = new Memtable();
    recent.startMemtable(m);
    fill(recent, m, 0, 2);
    expect(() => recent.add('evt_0', 2)).toThrow(/does not hold/);
    expect(() => recent.add('evt_0', m.append(event(0), NOW))).toThrow(/already held/);
    recent.remove('evt_1', 1);
    expect(recent.lookup('evt_1')).toBeUndefined();
  });
});

describe('dedupe with an empty hot window', () => {
  it('still finds memtable, frozen and flushed ids (memtable exactly, flushed through segments)', async () => {
    const { open } = simDb();
    const db = await open({ limits: { hotIdsMax: 0 } });
    await db.ingest(usageBatch(0, 100));
    expect(await db.ingest([usage(5), usage(6, { quantity: 123_456 })])).toMatchObject({
      duplicates: 1,
      conflicts: 1,
    });
    await db.flush();
    expect(await db.ingest([usage(7), usage(8, { quantity: 123_456 }), usage(100)])).toMatchObject({
      accepted: 1,
      duplicates: 1,
      conflicts: 1,
    });
    await db.close();
  });
});
