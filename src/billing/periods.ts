/**
 * Billing periods per account and UTC calendar month: the live view of an open period, the
 * frozen snapshot of a closed one with the adjustments that arrived after its close, and
 * close / reopen (docs/billing.md).
 *
 * Invariants:
 * - close and reopen run under the ingest mutex, after every acknowledged event is in a
 *   committed segment: an acknowledged Usage event of the account-month is either in the
 *   snapshot or (arriving after) rejected `period_closed`; the state change is one manifest
 *   commit, and the admission gate (ClosedPeriods) changes in the same synchronous step;
 * - a snapshot is read from one pinned version with an empty memtable, and its lines are
 *   cross-checked against the events behind its digest before it is committed;
 * - a closed period's snapshot lives in the manifest: compaction, restart and rebuilds
 *   never change it; only reopen discards it.
 */
import { assert, UsageDbError } from '../errors.ts';
import type { WireEvent } from '../model/event.ts';
import type { QueryEngine } from '../query/index.ts';
import type { Clock } from '../storage/clock.ts';
import type { PeriodSnapshotEntry } from '../storage/manifest.ts';
import { rollupWatermark } from '../rollup/roller.ts';
import type { ReadSnapshot } from '../storage/snapshot.ts';
import type { VersionSet } from '../storage/version-set.ts';
import type { ClosedPeriods } from './closed-periods.ts';
import { type DigestEvent, evidenceDigest } from './digest.ts';
import { LineSums, type PeriodLine, periodOf, periodRange, sumLines } from './lines.ts';
import { checkAccountId, collectEvents, countCorrections, readLines } from './read.ts';

export interface BillingDeps {
  clock: Clock;
  versions: VersionSet;
  engine: QueryEngine;
  /** A pinned snapshot (segments of the current version + acknowledged memtable rows). */
  pinSnapshot(): ReadSnapshot;
  closed: ClosedPeriods;
  /** Runs `work` holding the ingest mutex, once every acknowledged event is in a committed segment. */
  withIngestDrained<T>(work: () => Promise<T>): Promise<T>;
  /** Rolls up every raw segment no rollup covers yet (the rollup builder). */
  buildRollups(): Promise<void>;
}

export interface CarriedLine extends PeriodLine {
  /** The closed period the adjustment belongs to. */
  period: string;
}

export interface OpenPeriodView {
  account_id: string;
  period: string;
  status: 'open';
  lines: PeriodLine[];
  carried_adjustments: CarriedLine[];
}

export interface ClosedPeriodView {
  account_id: string;
  period: string;
  status: 'closed';
  /** The snapshot's lines (what was billed at close). */
  lines: PeriodLine[];
  snapshot: {
    lines: PeriodLine[];
    watermark_ms: number;
    segment_ids: number[];
    closed_at_ms: number;
    evidence_digest: string;
  };
  adjustments: WireEvent[];
  adjustment_lines: PeriodLine[];
  net_lines: PeriodLine[];
}

export type PeriodView = OpenPeriodView | ClosedPeriodView;

function conflict(message: string): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_STATE_CONFLICT', message);
}

export class Periods {
  private readonly deps: BillingDeps;

  constructor(deps: BillingDeps) {
    this.deps = deps;
  }

  private entryOf(accountId: string, period: string): PeriodSnapshotEntry | undefined {
    return this.deps.versions.current.periods.find((p) => p.account_id === accountId && p.period === period);
  }

  /** The period as GET /v1/accounts/{id}/periods/{YYYY-MM} shows it. */
  async get(accountId: string, period: string): Promise<PeriodView> {
    checkAccountId(accountId);
    periodRange(period);
    const snapshot = this.deps.pinSnapshot();
    try {
      const entry = this.entryOf(accountId, period);
      return entry === undefined
        ? await this.openView(snapshot, accountId, period)
        : await this.closedView(snapshot, entry);
    } finally {
      snapshot.release();
    }
  }

  private async openView(snapshot: ReadSnapshot, accountId: string, period: string): Promise<OpenPeriodView> {
    const { fromMs, toMs } = periodRange(period);
    const { lines } = await readLines(this.deps.engine, snapshot, accountId, fromMs, toMs);
    return {
      account_id: accountId,
      period,
      status: 'open',
      lines,
      carried_adjustments: await this.carriedInto(snapshot, accountId, period),
    };
  }

  /**
   * Adjustments carried into an open period: those of the closed periods whose next open
   * period it is — the run of closed months right before it (the earliest open month after a
   * closed one is where its late corrections are billed).
   */
  private async carriedInto(
    snapshot: ReadSnapshot,
    accountId: string,
    period: string,
  ): Promise<CarriedLine[]> {
    const closed = new Map(
      this.deps.versions.current.periods.filter((p) => p.account_id === accountId).map((p) => [p.period, p]),
    );
    const carried: CarriedLine[] = [];
    for (let p = periodOf(periodRange(period).fromMs - 1); ; p = periodOf(periodRange(p).fromMs - 1)) {
      const entry = closed.get(p);
      if (entry === undefined) break;
      const { lines } = await this.adjustmentsOf(snapshot, entry);
      carried.unshift(...lines.map((l) => ({ period: p, ...l })));
      if (p <= '1970-01') break;
    }
    return carried;
  }

  private async closedView(snapshot: ReadSnapshot, entry: PeriodSnapshotEntry): Promise<ClosedPeriodView> {
    const { events, lines } = await this.adjustmentsOf(snapshot, entry);
    return {
      account_id: entry.account_id,
      period: entry.period,
      status: 'closed',
      lines: entry.lines,
      snapshot: {
        lines: entry.lines,
        watermark_ms: entry.watermark_ms,
        segment_ids: entry.raw_segment_ids,
        closed_at_ms: entry.closed_at_ms,
        evidence_digest: entry.evidence_digest,
      },
      adjustments: events,
      adjustment_lines: lines,
      net_lines: sumLines(entry.lines, lines),
    };
  }

  /**
   * The Corrections and Retractions of a closed account-month that arrived after its close:
   * those not among the snapshot's. Only listed when the count says there are some.
   */
  async adjustmentsOf(
    snapshot: ReadSnapshot,
    entry: PeriodSnapshotEntry,
  ): Promise<{ events: WireEvent[]; lines: PeriodLine[] }> {
    const { fromMs, toMs } = periodRange(entry.period);
    const { engine } = this.deps;
    const count = await countCorrections(engine, snapshot, entry.account_id, fromMs, toMs);
    if (count === entry.correction_event_ids.length) return { events: [], lines: [] };
    const known = new Set(entry.correction_event_ids);
    const events = await collectEvents(engine, snapshot, entry.account_id, fromMs, toMs, (e) =>
      e.kind !== 'Usage' && !known.has(e.event_id) ? e : null,
    );
    const sums = new LineSums();
    for (const e of events) sums.add(e, e.quantity);
    return { events, lines: sums.lines() };
  }

  /** Closes a period: freezes its lines in the manifest. STATE_CONFLICT when already closed. */
  async close(accountId: string, period: string): Promise<ClosedPeriodView> {
    checkAccountId(accountId);
    const { fromMs, toMs } = periodRange(period);
    await this.deps.withIngestDrained(async () => {
      if (this.entryOf(accountId, period) !== undefined)
        throw conflict(`period ${period} of account ${accountId} is already closed`);
      // The month's lines come from rollups: build them for what the flush just wrote.
      await this.deps.buildRollups();
      const entry = await this.freeze(accountId, period, fromMs, toMs);
      await this.deps.versions.commit(
        (s) => ({ ...s, periods: [...s.periods, entry] }),
        (state) => this.deps.closed.reset(state.periods),
      );
    });
    return (await this.get(accountId, period)) as ClosedPeriodView;
  }

  /** Reads the snapshot of an account-month. Caller holds the drained ingest mutex. */
  private async freeze(
    accountId: string,
    period: string,
    fromMs: number,
    toMs: number,
  ): Promise<PeriodSnapshotEntry> {
    const { engine, clock } = this.deps;
    const snapshot = this.deps.pinSnapshot();
    const version = this.deps.versions.current;
    try {
      assert(
        snapshot.memtables.every((m) => m.rowCount === 0),
        'close reads a snapshot whose memtables are flushed',
      );
      const read = await readLines(engine, snapshot, accountId, fromMs, toMs);
      const { lines } = read;
      // Every raw file behind the lines, whether read through a rollup or not; and the pair
      // check of rollups against raw events (drift 0) before anything is frozen.
      const raw = await readLines(engine, snapshot, accountId, fromMs, toMs, 'raw');
      assert(
        JSON.stringify(raw.lines) === JSON.stringify(lines),
        `period ${period} of ${accountId}: rollup lines differ from raw lines`,
      );
      const events = await collectEvents(engine, snapshot, accountId, fromMs, toMs, (e): DigestEvent => ({
        event_id: e.event_id,
        kind: e.kind,
        product_id: e.product_id,
        meter_id: e.meter_id,
        model_id: e.model_id,
        unit: e.unit,
        timestamp_ms: e.timestamp_ms,
        quantity: e.quantity,
      }));
      // Pair check: the aggregate path and the events behind the digest agree line by line.
      const sums = new LineSums();
      for (const e of events) sums.add(e, e.quantity);
      assert(
        JSON.stringify(sums.lines()) === JSON.stringify(lines),
        `period ${period} of ${accountId}: lines differ from the events behind them`,
      );
      return {
        account_id: accountId,
        period,
        closed_at_ms: clock.nowMs(),
        watermark_ms: Math.min(toMs, rollupWatermark(version) ?? fromMs),
        raw_segment_ids: raw.rawSegmentIds,
        rollup_segment_ids: read.rollupSegmentIds,
        evidence_digest: evidenceDigest(events),
        lines,
        correction_event_ids: events.filter((e) => e.kind !== 'Usage').map((e) => e.event_id),
      };
    } finally {
      snapshot.release();
    }
  }

  /** Reopens a closed period: its snapshot is discarded. STATE_CONFLICT when it is open. */
  async reopen(accountId: string, period: string): Promise<OpenPeriodView> {
    checkAccountId(accountId);
    periodRange(period);
    await this.deps.withIngestDrained(async () => {
      if (this.entryOf(accountId, period) === undefined)
        throw conflict(`period ${period} of account ${accountId} is not closed`);
      await this.deps.versions.commit(
        (s) => ({
          ...s,
          periods: s.periods.filter((p) => !(p.account_id === accountId && p.period === period)),
        }),
        (state) => this.deps.closed.reset(state.periods),
      );
    });
    return (await this.get(accountId, period)) as OpenPeriodView;
  }
}
