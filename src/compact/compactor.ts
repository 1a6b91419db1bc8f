/**
 * The compactor: runs merges, one at a time. `step()` runs the next merge the policy asks for
 * (planner.ts), for `tick()`; `compactAll()` merges every raw segment into one, for an
 * operator's `compact`. Keeps the totals that give write amplification.
 *
 * Invariant: at most one merge runs at a time (a second caller waits for it, or, for `step`,
 * skips).
 */
import { type MergeContext, type MergeResult, mergeRawSegments } from './merge.ts';
import { planMerge } from './planner.ts';

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

  /** One merge the policy asks for, unless one is running; null when none is due. */
  async step(): Promise<MergeResult | null> {
    if (this.running !== null) return null;
    const inputs = planMerge(this.ctx.versions.current.raw_segments);
    if (inputs === null) return null;
    return this.run(() => mergeRawSegments(this.ctx, inputs));
  }

  /**
   * Every raw segment into one (after any merge already running), then an unchanged
   * generation, so the inputs, no longer named by the previous generation either, leave the
   * disk as soon as no reader pins them.
   */
  async compactAll(): Promise<MergeResult | null> {
    while (this.running !== null) await this.running.catch(() => undefined);
    const result = await this.run(async () => {
      const inputs = this.ctx.versions.current.raw_segments;
      return inputs.length < 2 ? null : mergeRawSegments(this.ctx, inputs);
    });
    if (result !== null) await this.ctx.versions.commit((s) => s);
    return result;
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
