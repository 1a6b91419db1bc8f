/**
 * Which account-months are closed, for the admission chain: after a close, a new `Usage`
 * event with a timestamp in that account-month is rejected (`period_closed`).
 *
 * Invariants:
 * - mirrors the `periods` of the current manifest version: replaced in the same synchronous
 *   step a close or reopen commit installs its version, under the ingest mutex, so an
 *   admission never sees a state the manifest does not hold;
 * - an event of an account without closed periods costs one map lookup.
 */
import type { PeriodSnapshotEntry } from '../storage/manifest.ts';
import { periodRange } from './lines.ts';

interface ClosedRange {
  period: string;
  fromMs: number;
  toMs: number;
}

export class ClosedPeriods {
  /** Per account, its closed months as [fromMs, toMs) ranges: numbers compared per event. */
  private byAccount = new Map<string, ClosedRange[]>();

  constructor(periods: readonly PeriodSnapshotEntry[] = []) {
    this.reset(periods);
  }

  reset(periods: readonly PeriodSnapshotEntry[]): void {
    const byAccount = new Map<string, ClosedRange[]>();
    for (const p of periods) {
      const range = { period: p.period, ...periodRange(p.period) };
      const list = byAccount.get(p.account_id);
      if (list === undefined) byAccount.set(p.account_id, [range]);
      else list.push(range);
    }
    this.byAccount = byAccount;
  }

  /** Whether the account-month of `timestampMs` is closed. */
  isClosed(accountId: string, timestampMs: number): boolean {
    const list = this.byAccount.get(accountId);
    if (list === undefined) return false;
    for (const r of list) if (timestampMs >= r.fromMs && timestampMs < r.toMs) return true;
    return false;
  }

  /** Closed periods of an account, ascending. */
  closedOf(accountId: string): string[] {
    return (this.byAccount.get(accountId) ?? []).map((r) => r.period).sort();
  }
}
