/**
 * `usagedb ingest FILE.jsonl|-`: bulk load, one JSON event per line, in batches of
 * INGEST_BATCH_LINES.
 *
 * Invariants:
 * - every valid line is ingested (durably, balanced) even when other lines are bad; a bad line
 *   (not JSON, or an invalid event) is rejected with its line number, a conflict reported;
 * - the command exits 0 only when no line was rejected and none conflicted (duplicates are a
 *   success: re-running a file is idempotent); otherwise it prints the summary and exits
 *   non-zero (USAGEDB_ERR_INVALID_ARGUMENT) with one line naming the first bad line;
 * - a line that is not valid UTF-8 is rejected (`invalid_utf8`), never decoded with U+FFFD;
 * - at most INGEST_BATCH_LINES events, plus one input chunk's lines, are held in memory.
 */
import { createReadStream, type ReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { IngestResult, UsageDb } from '../../db.ts';
import { UsageDbError } from '../../errors.ts';
import { echoText } from '../../model/echo.ts';
import { isFsErrorCode } from '../../storage/fs/file-system.ts';
import { ioErrorCode } from '../../storage/fs/io-error.ts';
import type { CliContext, CommandOutcome } from '../context.ts';
import { count, seconds } from '../format.ts';
import { openOrCreateDb } from '../open-db.ts';
import { startProgress } from '../progress.ts';
import { utf8Lines } from '../utf8-lines.ts';

export const INGEST_BATCH_LINES = 1_000;
/** Problems listed in the summary (all are counted). */
export const INGEST_REPORTED_ERRORS_MAX = 10;

export interface LineError {
  line: number;
  event_id: string | null;
  status: 'rejected' | 'conflict';
  reason: string;
  message: string;
}

interface IngestTotals {
  lines: number;
  accepted: number;
  duplicates: number;
  conflicts: number;
  rejected: number;
  errors: LineError[];
}

function noteError(totals: IngestTotals, error: LineError): void {
  if (totals.errors.length < INGEST_REPORTED_ERRORS_MAX) totals.errors.push(error);
}

async function openInput(file: string, stdin: Readable): Promise<{ stream: Readable; sizeBytes: number }> {
  if (file === '-') return { stream: stdin, sizeBytes: 0 };
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(file);
  } catch (err) {
    throw new UsageDbError('USAGEDB_ERR_NOT_FOUND', `cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!info.isFile()) throw new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', `${file} is not a file`);
  const stream = createReadStream(file);
  // Surface "permission denied" now, as one clear error, rather than mid-read.
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (err: NodeJS.ErrnoException) => {
      const code = ioErrorCode(err.code !== undefined && isFsErrorCode(err.code) ? err.code : 'EIO');
      reject(new UsageDbError(code, `cannot read ${file}: ${err.message}`, { cause: err }));
    });
  });
  return { stream, sizeBytes: info.size };
}

async function sendBatch(
  db: UsageDb,
  events: unknown[],
  lineNumbers: number[],
  totals: IngestTotals,
): Promise<void> {
  if (events.length === 0) return;
  const r: IngestResult = await db.ingest(events);
  totals.accepted += r.accepted;
  totals.duplicates += r.duplicates;
  totals.conflicts += r.conflicts;
  totals.rejected += r.rejected;
  for (const e of r.errors) {
    noteError(totals, {
      line: lineNumbers[e.index],
      event_id: e.event_id,
      status: e.status,
      reason: e.reason,
      message: e.message,
    });
  }
}

/** Reads lines, batches parsed events, ingests each batch; bad JSON is rejected by line. */
async function ingestLines(db: UsageDb, input: Readable, onBatch: () => void): Promise<IngestTotals> {
  const totals: IngestTotals = {
    lines: 0,
    accepted: 0,
    duplicates: 0,
    conflicts: 0,
    rejected: 0,
    errors: [],
  };
  let events: unknown[] = [];
  let lineNumbers: number[] = [];
  const reject = (reason: string, message: string) => {
    totals.rejected++;
    noteError(totals, { line: totals.lines, event_id: null, status: 'rejected', reason, message });
  };
  for await (const chunkLines of utf8Lines(input)) {
    for (const line of chunkLines) {
      totals.lines++;
      if (typeof line !== 'string') {
        const byte = line.byte.toString(16).toUpperCase().padStart(2, '0');
        reject('invalid_utf8', `byte 0x${byte} at byte offset ${line.byteOffset} is not valid UTF-8`);
        continue;
      }
      if (line.trim().length === 0) continue;
      try {
        events.push(JSON.parse(line));
        lineNumbers.push(totals.lines);
      } catch (err) {
        reject('invalid_json', echoText((err as Error).message));
      }
      if (events.length >= INGEST_BATCH_LINES) {
        await sendBatch(db, events, lineNumbers, totals);
        events = [];
        lineNumbers = [];
        onBatch();
      }
    }
  }
  await sendBatch(db, events, lineNumbers, totals);
  totals.errors.sort((a, b) => a.line - b.line);
  return totals;
}

function humanSummary(source: string, t: IngestTotals, elapsedMs: number): string {
  const out = [
    `ingested ${source}: ${count(t.lines)} lines in ${seconds(elapsedMs)}`,
    `  accepted   ${count(t.accepted)}`,
    `  duplicates ${count(t.duplicates)}`,
    `  conflicts  ${count(t.conflicts)}`,
    `  rejected   ${count(t.rejected)}`,
  ];
  if (t.errors.length > 0) {
    const more = t.rejected + t.conflicts - t.errors.length;
    out.push(`first problems${more > 0 ? ` (${count(more)} more not shown)` : ''}:`);
    for (const e of t.errors)
      out.push(
        `  line ${e.line}: ${e.status} ${e.reason}${e.event_id ? ` (${e.event_id})` : ''}: ${e.message}`,
      );
  }
  return `${out.join('\n')}\n`;
}

function failureOf(t: IngestTotals): UsageDbError | undefined {
  if (t.rejected === 0 && t.conflicts === 0) return undefined;
  const first = t.errors[0];
  const where = first ? `; first: line ${first.line} ${first.reason}: ${first.message}` : '';
  return new UsageDbError(
    'USAGEDB_ERR_INVALID_ARGUMENT',
    `${count(t.rejected)} line(s) rejected and ${count(t.conflicts)} conflict(s); the other lines were ingested${where}`,
  );
}

export function registerIngest(program: Command, ctx: CliContext): void {
  program
    .command('ingest')
    .description(
      `bulk-load usage events from a JSON Lines file (one event per line; - reads stdin), ${INGEST_BATCH_LINES} lines per batch`,
    )
    .argument('<file>', 'FILE.jsonl, or - for standard input')
    .action(async (file: string, _options: unknown, command: Command) => {
      const g = ctx.globals(command);
      const { stream, sizeBytes } = await openInput(file, ctx.io.stdin);
      const started = performance.now();
      const db = await openOrCreateDb(g.dbRoot);
      let totals: IngestTotals;
      try {
        const bar = startProgress(
          ctx.progressEnabled(command) && sizeBytes > 0,
          ctx.io.stderr,
          'ingest',
          sizeBytes,
          'bytes',
        );
        totals = await ingestLines(db, stream, () => bar.update((stream as ReadStream).bytesRead ?? 0));
        bar.stop();
        // Close drains the memtable into segments and releases the lock before we report.
        await db.close();
      } catch (err) {
        await db.close().catch(() => undefined);
        throw err;
      } finally {
        stream.destroy();
      }
      const elapsedMs = performance.now() - started;
      const outcome: CommandOutcome = {
        data: { db_root: g.dbRoot, source: file, ...totals, seconds: elapsedMs / 1000 },
        human: humanSummary(file === '-' ? 'stdin' : file, totals, elapsedMs),
        failure: failureOf(totals),
      };
      ctx.finish(outcome);
    });
}
