/**
 * Merging raw segments: the inputs (each checksum verified whole, as compaction must) become
 * one new sorted segment without exact duplicates that slipped past ingest; conflicting copies
 * (same id, other payload) go to quarantine segments, reported and never counted. The output
 * replaces its inputs in one manifest commit; the version set deletes the inputs once no
 * pinned reader and no kept generation uses them.
 *
 * Invariants:
 * - output rows + duplicates dropped + quarantined rows = input rows (merge-job.ts);
 * - of several copies of one event id, the first in input order (oldest segment first) is kept;
 * - nothing is visible before the commit, and a crash anywhere leaves either the inputs or the
 *   output live (unreferenced files are removed at the next open);
 * - the decoding, deduplication and encoding run in a worker thread (above
 *   INLINE_MERGE_ROWS_MAX rows), so ingest goes on while a merge runs.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { assert } from '../errors.ts';
import type { Clock } from '../storage/clock.ts';
import { flushColumns, SEGMENT_BLOOM_BITS_PER_KEY, writeEncodedSegment } from '../storage/flush.ts';
import type { FileSystem } from '../storage/fs/file-system.ts';
import { segmentPath } from '../storage/layout.ts';
import type { QuarantineEntry, RawSegmentEntry, RollupSegmentEntry } from '../storage/manifest.ts';
import type { RetractedOriginals } from '../storage/retractions.ts';
import type { SegmentStore } from '../storage/segment-store.ts';
import type { VersionSet } from '../storage/version-set.ts';
import { WorkerJobs } from '../util/worker-jobs.ts';
import { type MergeInput, type MergeOutput, type MergeRequest, runMerge } from './merge-job.ts';

/** Smaller merges run inline: a worker round trip would cost more than it saves. */
export const INLINE_MERGE_ROWS_MAX = 20_000;

const jobs = new WorkerJobs<MergeRequest, MergeOutput>(
  new URL(`./merge-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
  'segment merge',
  { exitWhenIdle: true },
);

export interface MergeContext {
  fs: FileSystem;
  root: string;
  clock: Clock;
  blockRows: number;
  versions: VersionSet;
  segments: SegmentStore;
  retracted: RetractedOriginals;
  /** Builds the rollup files of a merge output (given its bytes), committed with it. */
  rollups?: (output: RawSegmentEntry, bytes: Uint8Array) => Promise<RollupSegmentEntry[]>;
  /** Deletes built rollup files the commit did not take. */
  discardRollups?: (entries: readonly RollupSegmentEntry[]) => Promise<void>;
}

export interface MergeResult {
  inputSegments: number;
  inputRows: number;
  outputRows: number;
  duplicatesDropped: number;
  quarantinedRows: number;
  bytesRead: number;
  /** Output and quarantine bytes written. */
  bytesWritten: number;
}

/** Merges `inputs` (live raw segments, oldest first) into one segment, in one commit. */
export async function mergeRawSegments(
  ctx: MergeContext,
  inputs: readonly RawSegmentEntry[],
): Promise<MergeResult> {
  assert(inputs.length >= 2, 'a merge takes at least two segments');
  const files: MergeInput[] = [];
  for (const e of inputs) {
    files.push({
      id: e.id,
      bytes: await ctx.fs.readFile(segmentPath(ctx.root, e.id)),
      sizeBytes: e.size_bytes,
      crc32c: e.crc32c,
    });
  }
  const request: MergeRequest = {
    inputs: files,
    outputId: ctx.versions.allocateSegmentId(),
    bucketCount: ctx.versions.current.bucket_count,
    blockRows: ctx.blockRows,
    createdAtMs: ctx.clock.nowMs(),
    bloomBitsPerKey: SEGMENT_BLOOM_BITS_PER_KEY,
  };
  const rows = inputs.reduce((n, e) => n + e.rows, 0);
  const merged =
    rows <= INLINE_MERGE_ROWS_MAX
      ? runMerge(request)
      : await jobs.run(
          request,
          files.map((f) => f.bytes.buffer as ArrayBuffer),
        );
  const output = await writeEncodedSegment(ctx.fs, ctx.root, request.outputId, merged.encoded);
  // No ids to add to the database id filter: the output's ids are its inputs'.
  await ctx.segments.prepare(output);
  try {
    return await commitMerge(ctx, inputs, merged, output, request.bucketCount);
  } catch (err) {
    ctx.segments.discard(output.id);
    throw err;
  }
}

async function commitMerge(
  ctx: MergeContext,
  inputs: readonly RawSegmentEntry[],
  merged: MergeOutput,
  output: RawSegmentEntry,
  bucketCount: number,
): Promise<MergeResult> {
  const quarantine: QuarantineEntry[] = [];
  for (const columns of merged.quarantined) {
    const { segment } = await flushColumns(columns, {
      fs: ctx.fs,
      root: ctx.root,
      clock: ctx.clock,
      bucketCount,
      segmentId: ctx.versions.allocateSegmentId(),
      blockRows: ctx.blockRows,
    });
    quarantine.push({
      id: segment.id,
      rows: segment.rows,
      size_bytes: segment.size_bytes,
      crc32c: segment.crc32c,
      reason: 'conflicting copy of a stored event id (same id, other payload)',
    });
  }
  if (output.retractions > 0) await ctx.retracted.addSegment(output.id, output.retractions);
  // The output's rollups replace its inputs' in the same commit: coverage never lapses.
  const rollups = ctx.rollups === undefined ? [] : await ctx.rollups(output, merged.encoded.bytes);
  const inputIds = new Set(inputs.map((e) => e.id));
  // Every input row is in the output: a rollup covering all the inputs still holds exactly
  // the output's sums, so it keeps covering the output instead of being rebuilt.
  const sameRows = merged.duplicatesDropped === 0 && quarantine.length === 0;
  let unusedRollups: RollupSegmentEntry[] = [];
  await ctx.versions.commit(
    (s) => {
      for (const id of inputIds)
        assert(
          s.raw_segments.some((e) => e.id === id),
          `segment ${id} is no longer live`,
        );
      const raw = s.raw_segments.filter((e) => !inputIds.has(e.id));
      // Keep the oldest-first order: the output takes the place of its first input.
      raw.splice(
        s.raw_segments.findIndex((e) => inputIds.has(e.id)),
        0,
        output,
      );
      const next = replaceRollups(s.rollup_segments, inputIds, output.id, rollups, sameRows);
      unusedRollups = next.unused;
      return {
        ...s,
        raw_segments: raw,
        rollup_segments: next.rollups,
        quarantine: [...s.quarantine, ...quarantine],
      };
    },
    () => {
      ctx.retracted.removeSegments(inputIds);
      ctx.segments.idFilter.noteMerge(output.id, inputIds);
    },
  );
  if (unusedRollups.length > 0) await ctx.discardRollups?.(unusedRollups);
  const quarantinedRows = quarantine.reduce((n, q) => n + q.rows, 0);
  return {
    inputSegments: inputs.length,
    inputRows: merged.inputRows,
    outputRows: output.rows,
    duplicatesDropped: merged.duplicatesDropped,
    quarantinedRows,
    bytesRead: inputs.reduce((n, e) => n + e.size_bytes, 0),
    bytesWritten: quarantine.reduce((n, q) => n + q.size_bytes, output.size_bytes),
  };
}

/**
 * The rollups after a merge of `inputIds` into `outputId`, per level: when every input was
 * covered by one same rollup and no row was dropped, that rollup covers the output in their
 * place (its sums are the output's); otherwise the rollups touching an input go (segments they
 * also covered are built again by the builder) and the output's own rollup of that level is
 * taken. Returns the rollups and the built ones not taken.
 */
export function replaceRollups(
  current: readonly RollupSegmentEntry[],
  inputIds: ReadonlySet<number>,
  outputId: number,
  built: readonly RollupSegmentEntry[],
  sameRows: boolean,
): { rollups: RollupSegmentEntry[]; unused: RollupSegmentEntry[] } {
  const out: RollupSegmentEntry[] = [];
  const unused: RollupSegmentEntry[] = [];
  const levels = new Set([...current.map((r) => r.level), ...built.map((r) => r.level)]);
  for (const level of levels) {
    const mine = current.filter((r) => r.level === level);
    const touching = mine.filter((r) => r.covers.some((id) => inputIds.has(id)));
    const own = built.filter((r) => r.level === level);
    const one = touching.length === 1 ? touching[0] : null;
    if (sameRows && one !== null && [...inputIds].every((id) => one.covers.includes(id))) {
      out.push(...mine.filter((r) => r !== one));
      out.push({
        ...one,
        covers: [...one.covers.filter((id) => !inputIds.has(id)), outputId].sort((a, b) => a - b),
      });
      unused.push(...own);
    } else {
      out.push(...mine.filter((r) => !touching.includes(r)), ...own);
    }
  }
  return { rollups: out, unused };
}
