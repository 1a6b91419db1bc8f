/**
 * Merging raw segments: reads every row of the input files (each file's checksum verified
 * whole, as compaction must), drops exact duplicates that slipped past ingest, sets
 * conflicting copies (same id, other payload) aside in a quarantine segment, and writes the
 * rest as one new sorted segment. The output replaces its inputs in one manifest commit; the
 * inputs are deleted by the version set once no pinned reader and no kept generation uses them.
 *
 * Invariants:
 * - output rows + duplicates dropped + quarantined rows = input rows;
 * - of several copies of one event id, the first one in input order (oldest segment first) is
 *   kept; the others are duplicates (same payload) or quarantined (other payload);
 * - nothing is visible before the commit, and a crash anywhere leaves either the inputs or the
 *   output live (unreferenced files are removed at the next open).
 */
import { assert } from '../errors.ts';
import { Memtable } from '../ingest/memtable.ts';
import { COLUMN_NAMES, type EventColumns } from '../model/columns.ts';
import { canonicalPayload, eventOfRow } from '../model/event.ts';
import type { Clock } from '../storage/clock.ts';
import { flushColumns } from '../storage/flush.ts';
import type { FileSystem } from '../storage/fs/file-system.ts';
import type { QuarantineEntry, RawSegmentEntry } from '../storage/manifest.ts';
import type { RetractedOriginals } from '../storage/retractions.ts';
import type { SegmentStore } from '../storage/segment-store.ts';
import type { VersionSet } from '../storage/version-set.ts';

export interface MergeContext {
  fs: FileSystem;
  root: string;
  clock: Clock;
  blockRows: number;
  versions: VersionSet;
  segments: SegmentStore;
  retracted: RetractedOriginals;
}

export interface MergeResult {
  inputSegments: number;
  inputRows: number;
  outputRows: number;
  duplicatesDropped: number;
  quarantinedRows: number;
  /** Bytes written (output + quarantine) over bytes of the inputs. */
  bytesWritten: number;
  bytesRead: number;
}

/** Merges `inputs` (live raw segments, oldest first) into one segment, in one commit. */
export async function mergeRawSegments(
  ctx: MergeContext,
  inputs: readonly RawSegmentEntry[],
): Promise<MergeResult> {
  assert(inputs.length >= 2, 'a merge takes at least two segments');
  const kept = new Memtable();
  // A segment holds an id once: a second conflicting copy of one id goes to the next one.
  const quarantined: { rows: Memtable; ids: Set<string> }[] = [];
  const payloadOf = new Map<string, string>();
  let inputRows = 0;
  let duplicatesDropped = 0;
  for (const entry of inputs) {
    const reader = await ctx.segments.scanFileReader(entry.id);
    const blocks = Array.from({ length: reader.meta.blocks.length }, (_, i) => i);
    const columns = ctx.segments.decodeBlocks(entry.id, reader, COLUMN_NAMES, blocks) as EventColumns;
    inputRows += columns.rowCount;
    for (let row = 0; row < columns.rowCount; row++) {
      const event = eventOfRow(columns, row);
      const payload = canonicalPayload(event);
      const seen = payloadOf.get(event.event_id);
      if (seen === undefined) {
        payloadOf.set(event.event_id, payload);
        kept.append(event, event.ingested_at_ms);
      } else if (seen === payload) {
        duplicatesDropped++;
      } else {
        let q = quarantined.find((m) => !m.ids.has(event.event_id));
        if (q === undefined) quarantined.push((q = { rows: new Memtable(), ids: new Set() }));
        q.ids.add(event.event_id);
        q.rows.append(event, event.ingested_at_ms);
      }
    }
  }
  const quarantinedRows = quarantined.reduce((n, q) => n + q.rows.rowCount, 0);
  assert(kept.rowCount + duplicatesDropped + quarantinedRows === inputRows, 'merge lost or invented rows');
  const output = await writeSegment(ctx, kept);
  const quarantine: QuarantineEntry[] = [];
  for (const q of quarantined) {
    const written = await writeSegment(ctx, q.rows);
    quarantine.push({
      id: written.id,
      rows: written.rows,
      size_bytes: written.size_bytes,
      crc32c: written.crc32c,
      reason: 'conflicting copy of a stored event id (same id, other payload)',
    });
  }
  if (output.retractions > 0) await ctx.retracted.addSegment(output.id, output.retractions);
  const inputIds = new Set(inputs.map((e) => e.id));
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
      return { ...s, raw_segments: raw, quarantine: [...s.quarantine, ...quarantine] };
    },
    () => ctx.retracted.removeSegments(inputIds),
  );
  return {
    inputSegments: inputs.length,
    inputRows,
    outputRows: kept.rowCount,
    duplicatesDropped,
    quarantinedRows,
    bytesWritten: quarantine.reduce((n, q) => n + q.size_bytes, output.size_bytes),
    bytesRead: inputs.reduce((n, e) => n + e.size_bytes, 0),
  };
}

async function writeSegment(ctx: MergeContext, rows: Memtable): Promise<RawSegmentEntry> {
  const { segment, idIndex } = await flushColumns(rows.columns(), {
    fs: ctx.fs,
    root: ctx.root,
    clock: ctx.clock,
    bucketCount: ctx.versions.current.bucket_count,
    segmentId: ctx.versions.allocateSegmentId(),
    blockRows: ctx.blockRows,
  });
  await ctx.segments.prepare(segment, idIndex);
  return segment;
}
