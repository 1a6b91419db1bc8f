/** The package entry: the library API and its result types. Test hooks are not exported. */
export type {
  CheckReport,
  CheckResult,
  ClosedPeriodView,
  Durability,
  EventLookup,
  Explanation,
  ExplainParams,
  IngestError,
  IngestResult,
  IngestStatus,
  MergeResult,
  OpenPeriodView,
  PeriodView,
  RejectionLogReport,
  RejectionsPage,
  RejectionsParams,
  SegmentInspection,
  UsageDbLimits,
  UsageDbOptions,
  UsageDbStats,
} from './db.ts';
export { DEFAULT_LIMITS, UsageDb } from './db.ts';
export { DIGEST_DUCKDB_SQL } from './billing/digest.ts';
export type { ErrorCode } from './errors.ts';
export { ERROR_CATALOGUE, UsageDbError } from './errors.ts';
export type { ExportParquetOptions, ExportParquetResult } from './export/parquet.ts';
export type { StoredEvent, UsageEvent, WireEvent } from './model/event.ts';
export type { ValidatedBatch } from './model/batch-scan.ts';
export type {
  EventsPage,
  EventsParams,
  JsonQuery,
  QueryResult,
  QueryRow,
  QueryStats,
  SqlResult,
} from './query/index.ts';
export type { Clock } from './storage/clock.ts';
export { ManualClock, systemClock } from './storage/clock.ts';
export type { FileSystem } from './storage/fs/file-system.ts';
export { NodeFileSystem } from './storage/fs/node-file-system.ts';
export { SimFileSystem } from './storage/fs/sim-file-system.ts';
export type { LogFields, UsageDbLogger } from './util/logger.ts';
