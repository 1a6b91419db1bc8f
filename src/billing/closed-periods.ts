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

export class ClosedPeriods {
  private byAccount = new Map<string, Set<string>>();

  constructor(periods: readonly PeriodSnapshotEntry[] = []) {
    this.reset(periods);
  }

  reset(periods: readonly PeriodSnapshotEntry[]): void {
    const byAccount = new Map<string, Set<string>>();
    for (const p of periods) {
      const set = byAccount.get(p.account_id);
      if (set === undefined) byAccount.set(p.account_id, new Set([p.period]));
      else set.add(p.period);
    }
    this.byAccount = byAccount;
  }

  /** Whether the account-month of `timestampMs` is closed. */
  isClosed(accountId: string, timestampMs: number): boolean {
    const set = this.byAccount.get(accountId);
    if (set === undefined) return false;
    return set.has(new Date(timestampMs).toISOString().slice(0, 7));
  }

  /** Closed periods of an account, ascending. */
  closedOf(accountId: string): string[] {
    return [...(this.byAccount.get(accountId) ?? [])].sort();
  }
}
