/**
 * Model-based deterministic simulation. fast-check generates sequences of commands (ingest of
 * new events, exact retries of any age, conflicts, corrections, retractions, late and invalid
 * events; flush; compaction by `compact()` and by `tick()`; clean restarts; crashes that drop
 * everything not fsynced and sometimes tear the last write; EIO/ENOSPC on a random call; bit
 * flips in a segment, a WAL file or a manifest generation) and runs them against a database
 * on the simulated disk and clock. After every command the public API is checked against a
 * reference model:
 * - every acknowledged event is stored exactly once (counted per id over audit walks), none
 *   is invented, each with the payload that was sent;
 * - every ingest call's counts and per-event errors (conflicts, rejections with their reason)
 *   are the expected ones;
 * - `db.query` sums and counts per (account, kind) equal the model's, and `db.events` page
 *   walks return the model's events in (timestamp_ms, event_id) order;
 * - after a bit flip, every call either fails with a corruption error or answers exactly.
 * A failing sequence shrinks to a minimal one and prints its seed and path.
 *
 * Replay: USAGEDB_SIM_SEED=<seed> USAGEDB_SIM_PATH=<path> npx vitest run test/reliability/model-sim.test.ts
 * More: USAGEDB_SIM_RUNS=<n> (sequences) or USAGEDB_SIM_SECONDS=<s> (`npm run test:long`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IngestResult, UsageDb } from '../../src/db.ts';
import { UsageDbError } from '../../src/errors.ts';
import { RECORD_HEADER_BYTES, readWalFile } from '../../src/ingest/wal.ts';
import { SimulatedCrashError } from '../../src/storage/fs/sim-file-system.ts';
import { abandonForCrashTest } from '../../src/testing.ts';
import { DAY_MS, simDb, T0, type SimDb, type WireInput } from '../support/events.ts';

const ACCOUNTS = ['a0', 'a1', 'a2', 'a3'];
const METERS = [
  { product_id: 'llm-api', meter_id: 'tokens.input', unit: 'tokens' },
  { product_id: 'llm-api', meter_id: 'tokens.output', unit: 'tokens' },
  { product_id: 'agents', meter_id: 'runtime', unit: 'seconds' },
];
/** Late events go back 40 days; the range every check reads covers them all. */
const RANGE = { from: T0 - 41 * DAY_MS, to: T0 + 5 * DAY_MS };
const PAGE = 9;
const CORRUPTION = /^USAGEDB_ERR_(SEGMENT|WAL|MANIFEST)_CORRUPT$/;
const DISK_ERROR = /^USAGEDB_ERR_(IO|NO_SPACE|WAL_WRITE)$/;

// ---------------------------------------------------------------- commands

/** One event of an ingest batch, resolved against the model when the batch runs. */
type Item =
  | {
      t: 'new';
      account: number;
      meter: number;
      day: number;
      ms: number;
      quantity: QuantitySpec;
      dims: number;
    }
  | { t: 'late'; account: number; meter: number; daysBack: number; quantity: number }
  | { t: 'retry'; pick: number }
  | { t: 'conflict'; pick: number; delta: number }
  | { t: 'correction'; pick: number; delta: number; ownDay: boolean }
  | { t: 'retraction'; pick: number }
  | { t: 'orphan'; delta: number }
  | { t: 'invalid'; which: number };

type QuantitySpec = number | 'huge';

/** Operations that may run inside a crash or fault window. */
type Inner =
  | { t: 'ingest'; items: Item[] }
  | { t: 'flush' }
  | { t: 'compact' }
  | { t: 'tick' }
  | { t: 'rollup' }
  | { t: 'rebuildRollups'; fromDay: number; days: number };

type Command =
  | Inner
  | { t: 'restart' }
  | { t: 'crash'; afterCalls: number; torn: boolean; ops: Inner[] }
  | { t: 'fault'; code: 'EIO' | 'ENOSPC'; afterCalls: number; ops: Inner[] }
  | {
      t: 'flip';
      target: 'segment' | 'rollup' | 'wal' | 'manifest';
      pick: number;
      offset: number;
      bit: number;
    }
  | { t: 'periodClose'; account: number; month: number }
  | { t: 'periodReopen'; account: number; month: number };
// Billing periods: close and reopen are commands; in the model a closed account-month refuses
// new Usage with `period_closed` (retries stay duplicates, corrections are accepted as
// adjustments), and every check reads each closed period's snapshot, which must not change.
// Rollups: builds and rebuilds are commands, and every check compares the raw, rollup and
// auto query paths with the model and asks `verify` for zero drift.

/** The months events fall in: late events reach back into March and April. */
const MONTHS = ['2026-03', '2026-04', '2026-05'];
const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

const itemArb: fc.Arbitrary<Item> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      t: fc.constant('new' as const),
      account: fc.nat(ACCOUNTS.length - 1),
      meter: fc.nat(METERS.length - 1),
      day: fc.nat(3),
      ms: fc.nat(DAY_MS - 1),
      quantity: fc.oneof(
        { weight: 9, arbitrary: fc.nat(5000) },
        { weight: 1, arbitrary: fc.constant('huge' as const) },
      ),
      dims: fc.nat(2),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('late' as const),
      account: fc.nat(ACCOUNTS.length - 1),
      meter: fc.nat(METERS.length - 1),
      daysBack: fc.integer({ min: 1, max: 40 }),
      quantity: fc.nat(5000),
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('retry' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('conflict' as const),
      pick: fc.nat(),
      delta: fc.integer({ min: 1, max: 99 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('correction' as const),
      pick: fc.nat(),
      delta: fc.integer({ min: -500, max: 500 }),
      ownDay: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('retraction' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ t: fc.constant('orphan' as const), delta: fc.integer({ min: -9, max: 9 }) }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('invalid' as const), which: fc.nat(5) }) },
);

const ingestArb = fc.record({
  t: fc.constant('ingest' as const),
  items: fc.array(itemArb, { minLength: 1, maxLength: 10 }),
});

const rollupArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ t: 'rollup' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('rebuildRollups' as const),
      fromDay: fc.integer({ min: -41, max: 4 }),
      days: fc.integer({ min: 1, max: 45 }),
    }),
  },
);

const innerArb: fc.Arbitrary<Inner> = fc.oneof(
  { weight: 6, arbitrary: ingestArb },
  { weight: 2, arbitrary: fc.constant({ t: 'flush' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'compact' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'tick' as const }) },
  { weight: 1, arbitrary: rollupArb },
);

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 12, arbitrary: ingestArb },
  { weight: 3, arbitrary: fc.constant({ t: 'flush' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'compact' as const }) },
  { weight: 2, arbitrary: fc.constant({ t: 'tick' as const }) },
  { weight: 2, arbitrary: rollupArb },
  { weight: 2, arbitrary: fc.constant({ t: 'restart' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('crash' as const),
      afterCalls: fc.nat(60),
      torn: fc.boolean(),
      ops: fc.array(innerArb, { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('fault' as const),
      code: fc.constantFrom('EIO' as const, 'ENOSPC' as const),
      afterCalls: fc.nat(40),
      ops: fc.array(innerArb, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('periodClose' as const),
      account: fc.nat(ACCOUNTS.length - 1),
      month: fc.nat(MONTHS.length - 1),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('periodReopen' as const),
      account: fc.nat(ACCOUNTS.length - 1),
      month: fc.nat(MONTHS.length - 1),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant('flip' as const),
      target: fc.constantFrom('segment' as const, 'rollup' as const, 'wal' as const, 'manifest' as const),
      pick: fc.nat(),
      offset: fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }),
      bit: fc.nat(7),
    }),
  },
);

const scenarioArb = fc.record({
  durability: fc.constantFrom('strict' as const, 'balanced' as const, 'fast' as const),
  memtableBytes: fc.integer({ min: 4096, max: 24_000 }),
  fsSeed: fc.nat(),
  commands: fc.array(commandArb, { minLength: 3, maxLength: 30 }),
});
type Scenario = typeof scenarioArb extends fc.Arbitrary<infer S> ? S : never;

// ---------------------------------------------------------------- the reference model

/**
 * Where an event stands in the model:
 * - durable: must survive any crash;
 * - acked: acknowledged in fast mode, not known to be durable (a crash may drop it, but only
 *   with everything acknowledged after it: what survives is a prefix);
 * - maybe: its call failed or was cut by a crash; stored at most once, or not at all.
 */
type Standing = 'durable' | 'acked' | 'maybe';

interface ModelEvent {
  wire: WireInput;
  standing: Standing;
  /** Acknowledgement order, for the fast-mode prefix rule. */
  seq: number;
}

/** Aggregate counters over all sequences, for the report. */
const totals = {
  sequences: 0,
  steps: 0,
  crashes: 0,
  faults: 0,
  flips: 0,
  flipsDetected: 0,
  checks: 0,
  periods: 0,
};

interface StoredCopy {
  count: number;
  wire: { kind: string; quantity: string; account_id: string; timestamp_ms: number };
}

/** A billing line of a period, as the snapshot holds it. */
interface Line {
  product_id: string;
  meter_id: string;
  model_id: string | null;
  unit: string;
  quantity: string;
  event_count: number;
}

class Model {
  readonly events = new Map<string, ModelEvent>();
  /** Closed account-months (`account|YYYY-MM`) and the lines their snapshot froze. */
  readonly closed = new Map<string, Line[]>();

  isClosed(account: string, ms: number): boolean {
    return this.closed.has(`${account}|${monthOf(ms)}`);
  }

  /** The lines of an account-month: every stored event in it, all kinds. */
  lines(account: string, month: string): Map<string, { quantity: bigint; count: number }> {
    const out = new Map<string, { quantity: bigint; count: number }>();
    for (const e of this.events.values()) {
      const w = e.wire;
      if (w.account_id !== account || monthOf(w.timestamp_ms as number) !== month) continue;
      const key = [w.product_id, w.meter_id, w.model_id ?? null, w.unit].join('|');
      const t = out.get(key) ?? { quantity: 0n, count: 0 };
      t.quantity += BigInt(w.quantity as string | number);
      t.count++;
      out.set(key, t);
    }
    return out;
  }

  private seq = 0;
  private nextId = 0;
  private uncertain = false;

  fresh(prefix: string): string {
    return `${prefix}${this.nextId++}`;
  }

  /** Ids whose outcome is certain and stored: retries, conflicts and corrections refer to them. */
  known(): string[] {
    return [...this.events.entries()].filter(([, e]) => e.standing !== 'maybe').map(([id]) => id);
  }

  add(id: string, wire: WireInput, standing: Standing): void {
    this.events.set(id, { wire, standing, seq: this.seq++ });
  }

  /** Standing of a Retraction of `originalId`: undefined when there is none. */
  retractionOf(originalId: string): Standing | undefined {
    let found: Standing | undefined;
    for (const e of this.events.values()) {
      const ref = e.wire.correction_ref as { original_event_id: string } | undefined;
      if (e.wire.kind === 'Retraction' && ref?.original_event_id === originalId) {
        if (e.standing !== 'maybe') return e.standing;
        found = 'maybe';
      }
    }
    return found;
  }

  /** Just checked, with nothing in memory: every stored event is in a committed segment. */
  allInSegments(): void {
    if (this.uncertain) return;
    for (const e of this.events.values()) e.standing = 'durable';
  }

  /** A flush or close resolved: every acknowledged event is in a committed segment. */
  committed(): void {
    if (this.uncertain) return;
    for (const e of this.events.values()) if (e.standing === 'acked') e.standing = 'durable';
  }

  /** Fast mode near a disk error: an acknowledged event may be dropped by a failed fsync. */
  setUncertain(on: boolean): void {
    this.uncertain = on;
    if (on) for (const e of this.events.values()) if (e.standing === 'acked') e.standing = 'maybe';
  }

  /** Standing of a newly acknowledged event under `durability`. */
  ackStanding(durability: string): Standing {
    if (this.uncertain) return 'maybe';
    return durability === 'fast' ? 'acked' : 'durable';
  }

  /**
   * What the database holds now is `stored` (id -> copies): check it against the model, then
   * settle every uncertain event to what was found.
   */
  settle(stored: Map<string, StoredCopy>, where: string, reopened: boolean, crashed: boolean): void {
    for (const [id, s] of stored) {
      expect(s.count, `${where}: ${id} stored ${s.count} times`).toBe(1);
      const e = this.events.get(id);
      expect(e, `${where}: invented ${id}`).toBeDefined();
      const w = (e as ModelEvent).wire;
      expect(
        [s.wire.kind, s.wire.account_id, s.wire.timestamp_ms, s.wire.quantity],
        `${where}: payload of ${id}`,
      ).toEqual([w.kind ?? 'Usage', w.account_id, w.timestamp_ms, String(w.quantity)]);
    }
    const lostAcked: number[] = [];
    let survivingAckedMax = -1;
    for (const [id, e] of [...this.events]) {
      const found = stored.has(id);
      if (e.standing === 'durable') expect(found, `${where}: durable ${id} lost`).toBe(true);
      if (e.standing === 'acked' && !crashed) expect(found, `${where}: acknowledged ${id} lost`).toBe(true);
      if (e.standing === 'acked' && !found) lostAcked.push(e.seq);
      if (e.standing === 'acked' && found) survivingAckedMax = Math.max(survivingAckedMax, e.seq);
      // Found after a reopen means on disk; found live, it keeps its standing. Not found, an
      // uncertain outcome is settled: gone for good.
      if (found && reopened) e.standing = 'durable';
      if (!found) this.events.delete(id);
    }
    // Fast mode: a crash may drop a suffix of what was acknowledged, never something before a survivor.
    for (const seq of lostAcked)
      expect(
        seq > survivingAckedMax,
        `${where}: acknowledged event #${seq} lost while a later one survived`,
      ).toBe(true);
  }

  /** Stored events of one account in audit order. */
  ofAccount(account: string): ModelEvent[] {
    return [...this.events.values()]
      .filter((e) => e.wire.account_id === account)
      .sort(
        (a, b) =>
          (a.wire.timestamp_ms as number) - (b.wire.timestamp_ms as number) ||
          ((a.wire.event_id as string) < (b.wire.event_id as string) ? -1 : 1),
      );
  }

  /** Expected `db.query` rows grouped by account and kind. */
  sums(): { account_id: string; kind: string; sum: string; count: number }[] {
    const m = new Map<string, { sum: bigint; count: number }>();
    for (const e of this.events.values()) {
      const key = `${e.wire.account_id as string}\u0000${(e.wire.kind as string | undefined) ?? 'Usage'}`;
      const t = m.get(key) ?? { sum: 0n, count: 0 };
      t.sum += BigInt(e.wire.quantity as string | number);
      t.count++;
      m.set(key, t);
    }
    return [...m.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, t]) => {
        const [account_id, kind] = k.split('\u0000');
        return { account_id, kind, sum: t.sum.toString(), count: t.count };
      });
  }
}

// ---------------------------------------------------------------- running a sequence

function baseEvent(
  id: string,
  account: number,
  meter: number,
  timestamp: number,
  quantity: number | string,
): WireInput {
  return {
    event_id: id,
    account_id: ACCOUNTS[account],
    ...METERS[meter],
    model_id: meter === 2 ? null : 'model-x',
    source: 'sim',
    timestamp_ms: timestamp,
    quantity,
  };
}

type Expect =
  | { kind: 'accepted'; id: string; wire: WireInput }
  | { kind: 'duplicate' }
  | { kind: 'conflict'; id: string }
  | { kind: 'rejected'; id: string; reason: string | null }
  | { kind: 'unsure'; id: string; wire: WireInput };

/** Builds the batch for `items` against the model: what to send and what each must get. */
function buildBatch(model: Model, items: readonly Item[]): { send: WireInput[]; expect: Expect[] } {
  const send: WireInput[] = [];
  const expects: Expect[] = [];
  const known = model.known();
  const retractedInBatch = new Set<string>();
  const pickKnown = (n: number, filter: (e: ModelEvent) => boolean): [string, ModelEvent] | null => {
    const candidates = known.filter((id) => filter(model.events.get(id) as ModelEvent));
    if (candidates.length === 0) return null;
    const id = candidates[n % candidates.length];
    return [id, model.events.get(id) as ModelEvent];
  };
  const isUsage = (e: ModelEvent) => (e.wire.kind ?? 'Usage') === 'Usage';
  for (const item of items) {
    switch (item.t) {
      case 'new':
      case 'late': {
        const id = model.fresh('e');
        const ts =
          item.t === 'new' ? T0 + item.day * DAY_MS + item.ms : T0 - item.daysBack * DAY_MS + item.quantity;
        const q =
          item.t === 'new' && item.quantity === 'huge'
            ? '99999999999999999999999999999'
            : (item.quantity as number);
        const wire = baseEvent(id, item.account, item.meter, ts, q);
        if (item.t === 'new' && item.dims > 0)
          wire.dimensions = { region: item.dims === 1 ? 'eu' : 'us', tier: 'x' };
        send.push(wire);
        if (model.isClosed(ACCOUNTS[item.account], ts))
          expects.push({ kind: 'rejected', id, reason: 'period_closed' });
        else expects.push({ kind: 'accepted', id, wire });
        break;
      }
      case 'retry': {
        const p = pickKnown(item.pick, () => true);
        if (p === null) break;
        send.push(structuredClone(p[1].wire));
        expects.push({ kind: 'duplicate' });
        break;
      }
      case 'conflict': {
        const p = pickKnown(item.pick, isUsage);
        if (p === null) break;
        send.push({
          ...p[1].wire,
          quantity: BigInt(p[1].wire.quantity as string | number) + BigInt(item.delta) + '',
        });
        expects.push({ kind: 'conflict', id: p[0] });
        break;
      }
      case 'correction': {
        const p = pickKnown(item.pick, isUsage);
        if (p === null) break;
        const id = model.fresh('c');
        const o = p[1].wire;
        const wire: WireInput = {
          ...o,
          event_id: id,
          kind: 'Correction',
          correction_ref: { original_event_id: p[0], reason: 'adjust' },
          timestamp_ms: item.ownDay ? T0 + 3 * DAY_MS + (item.delta & 0xffff) : o.timestamp_ms,
          quantity: item.delta,
        };
        delete wire.dimensions;
        send.push(wire);
        expects.push({ kind: 'accepted', id, wire });
        break;
      }
      case 'retraction': {
        const p = pickKnown(item.pick, isUsage);
        if (p === null) break;
        const standing = retractedInBatch.has(p[0]) ? 'durable' : model.retractionOf(p[0]);
        const id = model.fresh('r');
        const o = p[1].wire;
        const wire: WireInput = {
          ...o,
          event_id: id,
          kind: 'Retraction',
          correction_ref: { original_event_id: p[0], reason: 'refund' },
        };
        delete wire.quantity;
        delete wire.dimensions;
        send.push(wire);
        const stored = { ...wire, quantity: (-BigInt(o.quantity as string | number)).toString() };
        if (standing === undefined) {
          retractedInBatch.add(p[0]);
          expects.push({ kind: 'accepted', id, wire: stored });
        } else if (standing === 'maybe') expects.push({ kind: 'unsure', id, wire: stored });
        else expects.push({ kind: 'rejected', id, reason: 'already_retracted' });
        break;
      }
      case 'orphan': {
        const id = model.fresh('o');
        send.push({
          ...baseEvent(id, 0, 0, T0, item.delta),
          kind: 'Correction',
          correction_ref: { original_event_id: 'never-sent', reason: 'x' },
        });
        expects.push({ kind: 'rejected', id, reason: 'unknown_original' });
        break;
      }
      case 'invalid': {
        const id = model.fresh('bad');
        const good = baseEvent(id, 0, 0, T0, 1);
        const bad: WireInput[] = [
          { event_id: id, account_id: 'a0' },
          { ...good, quantity: 1.5 },
          { ...good, quantity: -3 },
          { ...good, timestamp_ms: -1 },
          { ...good, dimensions: Object.fromEntries(Array.from({ length: 17 }, (_, k) => [`k${k}`, 'v'])) },
          { ...good, account_id: 'a\ud800' },
        ];
        send.push(bad[item.which % bad.length]);
        expects.push({ kind: 'rejected', id, reason: null });
        break;
      }
    }
  }
  return { send, expect: expects };
}

class Run {
  db: UsageDb | null = null;
  readonly model = new Model();
  readonly sim: SimDb;
  readonly scenario: Scenario;
  /** Once a corruption was reported, the sequence ends: the data is damaged on purpose. */
  ended = false;
  /** A bit was flipped in this sequence (and not reported yet). */
  flipped = false;

  constructor(scenario: Scenario) {
    this.scenario = scenario;
    this.sim = simDb(scenario.fsSeed, {
      durability: scenario.durability,
      limits: { memtableBytesMax: scenario.memtableBytes, blockRows: 16 },
    });
  }

  /** The file system the current instance writes through; cut off when its process "dies". */
  private process: { dead: boolean } = { dead: false };

  /**
   * Opens an instance that reaches the disk through its own gate: at a crash the gate closes,
   * so work the abandoned instance still had in flight (a flush waiting for its encoder, a
   * background fsync) cannot write to the rebooted disk, as a dead process could not.
   */
  open(): Promise<UsageDb> {
    const life = { dead: false };
    this.process = life;
    const fs = this.sim.fs;
    const gated = new Proxy(fs, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (life.dead)
            return Promise.reject(new SimulatedCrashError(String(prop), String(args[0]), fs.callCount));
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    return this.sim.open({ fs: gated });
  }

  /** The current instance's process is gone: nothing it still runs reaches the disk. */
  kill(): void {
    this.process.dead = true;
  }

  get live(): UsageDb {
    if (this.db === null) throw new Error('no open database');
    return this.db;
  }

  async ingest(items: readonly Item[], where: string): Promise<void> {
    const { send, expect: wants } = buildBatch(this.model, items);
    if (send.length === 0) return;
    const pending = wants.filter((w) => w.kind === 'accepted' || w.kind === 'unsure');
    for (const w of pending) this.model.add(w.id, w.wire, 'maybe');
    // A call that throws acknowledged nothing: its new events stay 'maybe' until the next check.
    const r: IngestResult = await this.live.ingest(send);
    const unsure = wants.filter((w) => w.kind === 'unsure').length;
    const count = (k: Expect['kind']) => wants.filter((w) => w.kind === k).length;
    const got = {
      accepted: r.accepted,
      duplicates: r.duplicates,
      conflicts: r.conflicts,
      rejected: r.rejected,
    };
    expect(
      got.accepted + got.rejected - count('accepted') - count('rejected'),
      `${where}: counts ${JSON.stringify(got)}`,
    ).toBe(unsure);
    expect(
      { duplicates: got.duplicates, conflicts: got.conflicts },
      `${where}: ${JSON.stringify(r.errors)}`,
    ).toEqual({
      duplicates: count('duplicate'),
      conflicts: count('conflict'),
    });
    const errorsById = new Map(r.errors.map((e) => [e.event_id, e]));
    for (const w of wants) {
      if (w.kind === 'conflict')
        expect(errorsById.get(w.id)?.status, `${where}: conflict ${w.id}`).toBe('conflict');
      if (w.kind === 'rejected') {
        const e = errorsById.get(w.id);
        expect(e?.status, `${where}: rejected ${w.id}`).toBe('rejected');
        if (w.reason !== null) expect(e?.reason, `${where}: reason of ${w.id}`).toBe(w.reason);
      }
      if (w.kind === 'accepted') expect(errorsById.get(w.id), `${where}: ${w.id} accepted`).toBeUndefined();
    }
    const standing = this.model.ackStanding(this.scenario.durability);
    for (const w of wants) {
      if (w.kind === 'accepted') this.model.add(w.id, w.wire, standing);
      if (w.kind === 'unsure') {
        if (errorsById.has(w.id)) this.model.events.delete(w.id);
        else this.model.add(w.id, w.wire, standing);
      }
    }
  }

  /** A flush: on success everything acknowledged is committed (fast mode may report losses). */
  async flushLike(op: () => Promise<unknown>): Promise<void> {
    try {
      await op();
      this.model.committed();
    } catch (err) {
      if (
        this.scenario.durability === 'fast' &&
        (err as { code?: string }).code === 'USAGEDB_ERR_WAL_WRITE'
      ) {
        this.model.setUncertain(true);
        this.model.setUncertain(false);
        return;
      }
      throw err;
    }
  }

  async inner(op: Inner, where: string): Promise<void> {
    switch (op.t) {
      case 'ingest':
        return this.ingest(op.items, where);
      case 'flush':
        return this.flushLike(async () => {
          await this.live.flush();
          // Resolving after the machine went off is not observable: the process would be gone.
          if (this.sim.fs.halted) throw new SimulatedCrashError('flush', '', this.sim.fs.callCount);
        });
      case 'compact':
        await this.live.compact();
        return;
      case 'tick':
        // Age-based flush, the background merge policy and rollup builds.
        this.sim.clock.advance(2 * 60 * 60 * 1000);
        await this.live.tick();
        return;
      case 'rollup':
        await this.live.rollup();
        return;
      case 'rebuildRollups':
        await this.live.rebuildRollups(T0 + op.fromDay * DAY_MS, T0 + (op.fromDay + op.days) * DAY_MS);
        return;
    }
  }

  /**
   * The full check against the model, through the public API: audit walks of every account in
   * small pages (each copy counted per id, and the order kept), then the query engine.
   */
  async check(where: string, reopened: boolean, crashed = false): Promise<void> {
    totals.checks++;
    const stored = new Map<string, StoredCopy>();
    const walks = new Map<string, unknown[]>();
    for (const account of ACCOUNTS) {
      const got: unknown[] = [];
      let cursor: string | null = null;
      do {
        const page: Awaited<ReturnType<UsageDb['events']>> = await this.live.events({
          account_id: account,
          ...RANGE,
          limit: PAGE,
          ...(cursor === null ? {} : { cursor }),
        });
        expect(page.events.length).toBeLessThanOrEqual(PAGE);
        for (const e of page.events) {
          const prev = stored.get(e.event_id);
          stored.set(e.event_id, { count: (prev?.count ?? 0) + 1, wire: e });
          got.push([e.event_id, e.quantity]);
        }
        cursor = page.next_cursor;
      } while (cursor !== null);
      walks.set(account, got);
    }
    this.model.settle(stored, where, reopened, crashed);
    for (const account of ACCOUNTS) {
      const want = this.model.ofAccount(account).map((e) => [e.wire.event_id, String(e.wire.quantity)]);
      expect(walks.get(account), `${where}: audit walk of ${account}`).toEqual(want);
    }
    // The query engine, which bills: sums and counts per account and kind, on every path.
    const want = this.model.sums();
    for (const source of ['raw', 'rollup', 'auto']) {
      const q = await this.live.query({
        ...RANGE,
        source,
        group_by: ['account_id', 'kind'],
        metrics: ['sum', 'count'],
      });
      const rows = [...(q.rows as { account_id: string; kind: string; sum: string; count: number }[])]
        .filter((r) => r.count > 0)
        .sort((a, b) => (`${a.account_id}\u0000${a.kind}` < `${b.account_id}\u0000${b.kind}` ? -1 : 1));
      expect(rows, `${where}: db.query (${source}) sums per account and kind`).toEqual(want);
    }
    // Closed periods: still closed, the snapshot frozen at close unchanged.
    for (const [key, lines] of this.model.closed) {
      const [account, month] = key.split('|');
      const view = await this.live.periods.get(account, month);
      expect(view.status, `${where}: ${key} closed`).toBe('closed');
      expect(
        (view as { snapshot: { lines: Line[] } }).snapshot.lines,
        `${where}: snapshot of ${key}`,
      ).toEqual(lines);
    }
    const verified = await this.live.verify(RANGE);
    expect(verified.drift, `${where}: verify`).toEqual([]);
    expect(verified.ok).toBe(true);
    // With nothing left in memory, every stored event is in committed segments (fast mode too).
    const s = this.live.stats();
    if (s.memtableRows === 0 && s.frozenMemtables === 0) this.model.allInSegments();
  }

  async crashAndReopen(): Promise<void> {
    this.kill();
    if (this.db !== null) abandonForCrashTest(this.db);
    this.db = null;
    if (this.sim.fs.halted) this.sim.fs.restart();
    else {
      this.sim.fs.clearFaults();
      this.sim.fs.crash({ tornWrites: true });
    }
    this.db = await this.open();
  }

  async run(cmd: Command, step: number): Promise<void> {
    const where = `step ${step} (${cmd.t})`;
    totals.steps++;
    switch (cmd.t) {
      case 'ingest':
      case 'flush':
      case 'compact':
      case 'tick':
      case 'rollup':
      case 'rebuildRollups':
        await this.inner(cmd, where);
        await this.check(where, false);
        return;
      case 'restart':
        await this.flushLike(() => this.live.close());
        this.db = null;
        this.db = await this.open();
        await this.check(where, true);
        return;
      case 'crash': {
        totals.crashes++;
        this.sim.fs.crashAt(this.sim.fs.callCount + 1 + cmd.afterCalls, { tornWrites: cmd.torn });
        try {
          for (const op of cmd.ops) {
            await this.inner(op, where);
            // Returning after the machine went off is not observable: the process is gone.
            if (this.sim.fs.halted) break;
          }
        } catch (err) {
          if (!(err instanceof SimulatedCrashError) && !this.sim.fs.halted) throw err;
        }
        await this.crashAndReopen();
        await this.check(where, true, true);
        return;
      }
      case 'fault': {
        totals.faults++;
        const at = this.sim.fs.callCount + 1 + cmd.afterCalls;
        if (this.scenario.durability === 'fast') this.model.setUncertain(true);
        const remove = this.sim.fs.injectFault((c) =>
          c.callNumber === at &&
          [
            'writeFile',
            'append',
            'sync',
            'rename',
            'syncDir',
            'truncate',
            'openAppend',
            'createExclusive',
            'unlink',
          ].includes(c.op)
            ? cmd.code
            : undefined,
        );
        for (const op of cmd.ops) {
          try {
            await this.inner(op, where);
          } catch (err) {
            // Damage found by the work in the window (after a flip) ends the sequence as detected.
            if (this.flipped && err instanceof UsageDbError && CORRUPTION.test(err.code)) throw err;
            expect(err, `${where}: ${String(err)}`).toBeInstanceOf(UsageDbError);
            expect((err as UsageDbError).code, `${where}: ${String(err)}`).toMatch(DISK_ERROR);
          }
        }
        remove();
        // One clean flush settles it (fast mode: what a failed fsync dropped is reported).
        try {
          await this.live.flush();
        } catch (err) {
          expect((err as UsageDbError).code, `${where}: settling flush: ${String(err)}`).toMatch(DISK_ERROR);
          await this.live.flush();
        }
        this.model.setUncertain(false);
        await this.check(where, false);
        return;
      }
      case 'flip':
        totals.flips++;
        this.flipped = true;
        await this.flip(cmd, where);
        return;
      case 'periodClose':
      case 'periodReopen':
        totals.periods++;
        await this.period(cmd, where);
        await this.check(where, false);
        return;
    }
  }

  /** Close or reopen an account-month: a state conflict when it is already in that state. */
  async period(cmd: Extract<Command, { t: 'periodClose' | 'periodReopen' }>, where: string): Promise<void> {
    const account = ACCOUNTS[cmd.account];
    const month = MONTHS[cmd.month];
    const key = `${account}|${month}`;
    const closing = cmd.t === 'periodClose';
    if (this.model.closed.has(key) === closing) {
      const err = await (
        closing ? this.live.periods.close(account, month) : this.live.periods.reopen(account, month)
      ).catch((e: unknown) => e);
      expect((err as UsageDbError).code, `${where}: ${key} already ${closing ? 'closed' : 'open'}`).toBe(
        'USAGEDB_ERR_STATE_CONFLICT',
      );
      return;
    }
    if (!closing) {
      expect((await this.live.periods.reopen(account, month)).status, where).toBe('open');
      this.model.closed.delete(key);
      return;
    }
    // A close flushes: everything acknowledged is then in committed segments.
    const view = await this.live.periods.close(account, month);
    this.model.committed();
    expect(view.status, where).toBe('closed');
    const lines = (view as { snapshot: { lines: Line[] } }).snapshot.lines;
    const got = new Map(
      lines.map((l) => [
        [l.product_id, l.meter_id, l.model_id, l.unit].join('|'),
        { quantity: BigInt(l.quantity), count: l.event_count },
      ]),
    );
    expect(got, `${where}: snapshot of ${key} against the model`).toEqual(this.model.lines(account, month));
    this.model.closed.set(key, lines);
  }

  /** Bit rot with the process down: every answer afterwards is a corruption error or exact. */
  async flip(cmd: Extract<Command, { t: 'flip' }>, where: string): Promise<void> {
    const walFileNumber = (path: string): number => Number(/wal-(\d+)\.log$/.exec(path)?.[1]);
    await this.flushLike(() => this.live.close({ flushMemtable: cmd.target !== 'wal' }));
    this.db = null;
    const files = this.sim.fs
      .listAll()
      .filter((p) =>
        cmd.target === 'segment'
          ? /\/raw\/\d+\.useg$/.test(p)
          : cmd.target === 'rollup'
            ? /\/rollup\/\d+\.rseg$/.test(p)
            : cmd.target === 'wal'
              ? /\/wal\/wal-\d+\.log$/.test(p)
              : /\/manifest\/manifest-\d+\.json$/.test(p),
      );
    if (cmd.target === 'wal') {
      // The final record of the newest WAL file is left alone: a damaged final record is
      // indistinguishable from a torn write and is dropped as one (reported in stats().recovery).
      // A marker event (durable by itself) is usually that final record; when the marker is
      // refused (its month closed) no record is written for it, so the final record is found by
      // reading the file.
      this.db = await this.open();
      const newest = this.sim.fs
        .listAll()
        .filter((p) => /\/wal\/wal-\d+\.log$/.test(p))
        .sort()
        .at(-1) as string;
      // Two records that may be hit, then the marker.
      for (const account of [1, 2])
        await this.ingest(
          [{ t: 'new', account, meter: 1, day: 1, ms: cmd.pick % DAY_MS, quantity: 7, dims: 0 }],
          where,
        );
      await this.ingest([{ t: 'new', account: 0, meter: 0, day: 0, ms: 1, quantity: 1, dims: 0 }], where);
      await this.live.close({ flushMemtable: false });
      const newestBytes = this.sim.fs.readRaw(newest);
      const parsed = readWalFile(newest, newestBytes, walFileNumber(newest), true);
      const final = parsed.records.at(-1);
      const tailGuard =
        final === undefined
          ? 0
          : newestBytes.byteLength - (parsed.validBytes - final.length - RECORD_HEADER_BYTES);
      this.db = null;
      files.splice(0, files.length, ...this.sim.fs.listAll().filter((p) => /\/wal\/wal-\d+\.log$/.test(p)));
      files.sort();
      const last = files.at(-1) as string;
      // Half the time the newest file, where the records not yet in any segment are.
      const file = cmd.pick % 2 === 0 ? last : files[(cmd.pick >> 1) % files.length];
      const size = this.sim.fs.readRaw(file).byteLength - (file === last ? tailGuard : 0);
      if (size <= 0) {
        this.db = await this.open();
        return;
      }
      this.sim.fs.flipBit(file, Math.floor(cmd.offset * size), cmd.bit);
    } else {
      if (files.length === 0) {
        this.db = await this.open();
        return;
      }
      const file = files[cmd.pick % files.length];
      const size = this.sim.fs.readRaw(file).byteLength;
      // An empty file (a write a disk fault cut short, not yet swept) has no bit to flip.
      if (size === 0) {
        this.db = await this.open();
        return;
      }
      this.sim.fs.flipBit(file, Math.floor(cmd.offset * size), cmd.bit);
    }
    const outcome = await this.tolerant(where, () => this.open());
    if (outcome === 'corrupt') {
      this.ended = true;
      return;
    }
    this.db = outcome;
    // A flipped manifest generation rolls back to the previous one, which may predate a close
    // (a period is a manifest entry): closed periods are read back from what opened.
    if (cmd.target === 'manifest') {
      const closedNow = await this.tolerant(where, async () => {
        for (const key of [...this.model.closed.keys()]) {
          const [account, month] = key.split('|');
          if ((await this.live.periods.get(account, month)).status === 'open') this.model.closed.delete(key);
        }
        return true;
      });
      if (closedNow === 'corrupt') {
        abandonForCrashTest(this.live);
        this.db = null;
        this.ended = true;
        return;
      }
    }
    // Opened: each check either reports the corruption or is exact.
    const checked = await this.tolerant(where, async () => {
      await this.check(`${where}: after a flipped bit in a ${cmd.target}`, true);
      await this.ingest([{ t: 'retry', pick: 0 }], where);
      return true;
    });
    if (checked === 'corrupt') {
      abandonForCrashTest(this.live);
      this.db = null;
      this.ended = true;
    }
  }

  /** Runs `op`; a corruption error ends the sequence (detected), anything else is a failure. */
  async tolerant<T>(where: string, op: () => Promise<T>): Promise<T | 'corrupt'> {
    try {
      return await op();
    } catch (err) {
      if (err instanceof UsageDbError && CORRUPTION.test(err.code)) {
        totals.flipsDetected++;
        return 'corrupt';
      }
      throw new Error(`${where}: expected a corruption error or an exact answer, got ${String(err)}`, {
        cause: err,
      });
    }
  }
}

async function runScenario(scenario: Scenario): Promise<void> {
  totals.sequences++;
  const run = new Run(scenario);
  try {
    run.db = await run.open();
    for (let step = 0; step < scenario.commands.length && !run.ended; step++) {
      const cmd = scenario.commands[step];
      // After a flipped bit the damage may surface at any later step (a merge or a close reads
      // whole files and checks them): a corruption error then ends the sequence, as detection.
      if (!run.flipped || cmd.t === 'flip') {
        await run.run(cmd, step);
        continue;
      }
      const outcome = await run.tolerant(`step ${step} (${cmd.t}) after a flipped bit`, () =>
        run.run(cmd, step),
      );
      if (outcome === 'corrupt') {
        if (run.db !== null) abandonForCrashTest(run.db);
        run.db = null;
        run.ended = true;
      }
    }
    if (!run.ended) {
      await run.flushLike(() => run.live.close());
      run.db = await run.open();
      await run.check('final reopen', true);
      await run.live.close();
      run.db = null;
    }
  } finally {
    if (run.db !== null) abandonForCrashTest(run.db);
  }
}

describe('model-based simulation (fast-check, simulated disk and clock)', () => {
  const seconds = Number(process.env.USAGEDB_SIM_SECONDS ?? 0);
  const runs = Number(process.env.USAGEDB_SIM_RUNS ?? (seconds > 0 ? 1_000_000_000 : 500));
  const seed = process.env.USAGEDB_SIM_SEED === undefined ? undefined : Number(process.env.USAGEDB_SIM_SEED);
  const path = process.env.USAGEDB_SIM_PATH;
  it(`${seconds > 0 ? `${seconds} s of` : runs} sequences: acknowledged once, nothing invented, exact sums and audit pages`, async () => {
    await fc.assert(fc.asyncProperty(scenarioArb, runScenario), {
      numRuns: runs,
      ...(seconds > 0 ? { interruptAfterTimeLimit: seconds * 1000, markInterruptAsFailure: false } : {}),
      ...(seed === undefined ? {} : { seed }),
      ...(path === undefined ? {} : { path, endOnFailure: true }),
      verbose: 1,
    });
    console.log(
      `model-sim: ${totals.sequences} sequences (incl. shrinking), ${totals.steps} steps, ${totals.checks} checks, ` +
        `${totals.crashes} crashes, ${totals.faults} disk faults, ${totals.periods} period closes/reopens, ${totals.flips} bit flips ` +
        `(${totals.flipsDetected} reported as corruption, the rest answered exactly)`,
    );
    // A replay (a path given) runs the one sequence it names.
    if (path === undefined) expect(totals.sequences).toBeGreaterThanOrEqual(Math.min(runs, 500));
  }, 900_000_000);
});
