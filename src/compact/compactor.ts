/**
 * The compactor: runs merges, one at a time. `step()` runs the next background merge the
 * policy asks for (planner.ts), for `tick()`; `compactAll()` merges until nothing more can
 * merge under the explicit cap, for an operator's `compact`. Keeps the totals that give write
 * amplification.
 *
 * Invariant: at most one merge runs at a time (a second caller waits for it, or, for `step`,
 * skips).
 */
import { type MergeContext, type MergeResult, mergeRawSegments } from './merge.ts';
import { BACKGROUND_MERGE_ROWS_MAX, COMPACT_MERGE_ROWS_MAX, planCompaction, planMerge } from './planner.ts';

export interface CompactionStats {
  merges: number;
  running: boolean;
  segmentsMerged: number;
  duplicatesDropped: number;
  quarantinedRows: number;
  bytesRead: number;
  bytesWritten: number;
}

export class Compactor {
  private readonly ctx: MergeContext;
  private running: Promise<MergeResult | null> | null = null;
  private readonly totals: Omit<CompactionStats, 'running'> = {
    merges: 0,
    segmentsMerged: 0,
    duplicatesDropped: 0,
    quarantinedRows: 0,
    bytesRead: 0,
    bytesWritten: 0,
  };

  constructor(ctx: MergeContext) {
    this.ctx = ctx;
  }

  get stats(): CompactionStats {
    return { ...this.totals, running: this.running !== null };
  }

  /** One background merge the policy asks for, unless one is running; null when none is due. */
  async step(): Promise<MergeResult | null> {
    if (this.running !== null) return null;
    const inputs = planMerge(this.ctx.versions.current.raw_segments, BACKGROUND_MERGE_ROWS_MAX);
    if (inputs === null) return null;
    return this.run(() => mergeRawSegments(this.ctx, inputs));
  }

  /**
   * Merges (after any merge already running) until nothing more can merge under
   * COMPACT_MERGE_ROWS_MAX rows, then commits an unchanged generation, so the inputs, no longer
   * named by the previous generation either, leave the disk once no reader pins them. Returns
   * the totals of its merges, or null when nothing merged.
   */
  async compactAll(): Promise<MergeResult | null> {
    while (this.running !== null) await this.running.catch(() => undefined);
    let total: MergeResult | null = null;
    for (;;) {
      const inputs = planCompaction(this.ctx.versions.current.raw_segments, COMPACT_MERGE_ROWS_MAX);
      if (inputs === null) break;
      const r = await this.run(() => mergeRawSegments(this.ctx, inputs));
      if (r === null) break;
      total = total === null ? r : addResults(total, r);
    }
    if (total !== null) await this.ctx.versions.commit((s) => s);
    return total;
  }

  private async run(merge: () => Promise<MergeResult | null>): Promise<MergeResult | null> {
    this.running = merge().finally(() => {
      this.running = null;
    });
    const result = await this.running;
    if (result !== null) {
      this.totals.merges++;
      this.totals.segmentsMerged += result.inputSegments;
      this.totals.duplicatesDropped += result.duplicatesDropped;
      this.totals.quarantinedRows += result.quarantinedRows;
      this.totals.bytesRead += result.bytesRead;
      this.totals.bytesWritten += result.bytesWritten;
    }
    return result;
  }
}

function addResults(a: MergeResult, b: MergeResult): MergeResult {
  return {
    inputSegments: a.inputSegments + b.inputSegments,
    inputRows: a.inputRows + b.inputRows,
    outputRows: a.outputRows + b.outputRows,
    duplicatesDropped: a.duplicatesDropped + b.duplicatesDropped,
    quarantinedRows: a.quarantinedRows + b.quarantinedRows,
    bytesRead: a.bytesRead + b.bytesRead,
    bytesWritten: a.bytesWritten + b.bytesWritten,
  };
}
