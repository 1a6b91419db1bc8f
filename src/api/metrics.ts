/**
 * Prometheus metrics of one server (its own registry, so several servers in one process, as
 * in tests, never share counters). Gauges of the engine are read from `db.stats()` at scrape
 * time: nothing is polled in the background.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { IngestResult, UsageDb } from '../db.ts';

/** Seconds: group commit answers in a few ms, a cold query or a full disk in seconds. */
const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly ingestEvents: Counter<'outcome'>;
  private readonly ingestBatches: Counter<'result'>;
  private readonly batchSeconds: Histogram;
  private readonly querySeconds: Histogram<'route'>;
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;

  constructor(db: UsageDb) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'usagedb_' });
    this.ingestEvents = new Counter({
      name: 'usagedb_ingest_events_total',
      help: 'Events received by POST /v1/usage/batch, by outcome (accepted, duplicate, conflict, rejected)',
      labelNames: ['outcome'],
      registers,
    });
    this.ingestBatches = new Counter({
      name: 'usagedb_ingest_batches_total',
      help: 'Ingest calls, by result (ok, or the error code when nothing was acknowledged)',
      labelNames: ['result'],
      registers,
    });
    this.batchSeconds = new Histogram({
      name: 'usagedb_ingest_batch_duration_seconds',
      help: 'Time of one ingest call, from validation to durable acknowledgement',
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.querySeconds = new Histogram({
      name: 'usagedb_query_duration_seconds',
      help: 'Time of one query route call, by route',
      labelNames: ['route'],
      buckets: LATENCY_BUCKETS_S,
      registers,
    });
    this.httpRequests = new Counter({
      name: 'usagedb_http_requests_total',
      help: 'HTTP requests answered, by method, route and status code',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    type Stats = ReturnType<UsageDb['stats']>;
    const stat = (name: string, help: string, read: (s: Stats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(db.stats()));
        },
      });
    // Totals kept by the library, exposed as counters: set to the library's value at scrape time.
    const total = (name: string, help: string, read: (s: Stats) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read(db.stats()));
        },
      });
    stat('usagedb_memtable_rows', 'Rows in the current memtable', (s) => s.memtableRows);
    stat(
      'usagedb_memtable_bytes',
      'Estimated heap of the current and frozen memtables',
      (s) => s.memtableBytes,
    );
    total('usagedb_wal_fsyncs_total', 'WAL fsyncs since open', (s) => s.walFsync.count);
    total(
      'usagedb_wal_fsync_seconds_total',
      'Time spent in WAL fsyncs since open',
      (s) => s.walFsync.totalMs / 1000,
    );
    stat('usagedb_wal_fsync_max_seconds', 'Longest WAL fsync since open', (s) => s.walFsync.maxMs / 1000);
    stat(
      'usagedb_quarantine_segments',
      'Segments of conflicting copies set aside by compaction',
      (s) => s.quarantineSegments,
    );
    stat('usagedb_flush_failing', '1 while flushes keep failing (see /health for the error), else 0', (s) =>
      s.flushError === null ? 0 : 1,
    );
    stat('usagedb_compaction_running', '1 while a merge runs', (s) => (s.compaction.running ? 1 : 0));
    stat(
      'usagedb_wal_torn_tail_bytes',
      'Bytes of torn WAL tail dropped by the last open (no acknowledged event)',
      (s) => s.recovery.walTornTail.bytes,
    );
    total('usagedb_compaction_merges_total', 'Merges run', (s) => s.compaction.merges);
    total(
      'usagedb_compaction_segments_merged_total',
      'Segments merged away',
      (s) => s.compaction.segmentsMerged,
    );
    total(
      'usagedb_compaction_duplicates_dropped_total',
      'Exact duplicate rows dropped by merges',
      (s) => s.compaction.duplicatesDropped,
    );
    total(
      'usagedb_compaction_quarantined_rows_total',
      'Conflicting rows moved to quarantine',
      (s) => s.compaction.quarantinedRows,
    );
    total('usagedb_compaction_read_bytes_total', 'Bytes read by merges', (s) => s.compaction.bytesRead);
    total(
      'usagedb_compaction_written_bytes_total',
      'Bytes written by merges',
      (s) => s.compaction.bytesWritten,
    );
    stat('usagedb_frozen_memtables', 'Memtables waiting for their flush', (s) => s.frozenMemtables);
    stat('usagedb_segments', 'Committed segment files', (s) => s.segments);
    stat('usagedb_manifest_generation', 'Current manifest generation', (s) => s.manifestGeneration);
    stat('usagedb_wal_file', 'Number of the WAL file being appended', (s) => s.walFile);
  }

  /** Runs one ingest call, counting its events by outcome and timing it. */
  async timeIngest(run: () => Promise<IngestResult>): Promise<IngestResult> {
    const end = this.batchSeconds.startTimer();
    try {
      const r = await run();
      this.ingestEvents.inc({ outcome: 'accepted' }, r.accepted);
      this.ingestEvents.inc({ outcome: 'duplicate' }, r.duplicates);
      this.ingestEvents.inc({ outcome: 'conflict' }, r.conflicts);
      this.ingestEvents.inc({ outcome: 'rejected' }, r.rejected);
      this.ingestBatches.inc({ result: 'ok' });
      return r;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      this.ingestBatches.inc({ result: typeof code === 'string' ? code : 'error' });
      throw err;
    } finally {
      end();
    }
  }

  observeQuery(route: string, seconds: number): void {
    this.querySeconds.observe({ route }, seconds);
  }

  countRequest(method: string, route: string, status: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
