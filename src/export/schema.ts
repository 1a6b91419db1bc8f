/**
 * The Parquet export schema (docs/export.md, a contract): flat, one row per stored event.
 *
 * Invariants (persisted in every export — never reorder, rename or retype):
 * - columns appear in exactly the order of EXPORT_FIELDS;
 * - only correction_original_event_id, correction_reason, subscription_id and model_id are
 *   nullable (Parquet OPTIONAL); every other column is REQUIRED;
 * - timestamp_ms and ingested_at_ms are int64, quantity is Decimal128(38,0), the rest strings.
 */
import { Decimal, Field, Int64, Schema, Utf8 } from 'apache-arrow';

export const QUANTITY_PRECISION = 38;
export const QUANTITY_SCALE = 0;

export type ExportColumnKind = 'string' | 'int64' | 'decimal';

export interface ExportColumn {
  name: string;
  kind: ExportColumnKind;
  nullable: boolean;
}

export const EXPORT_COLUMNS: readonly ExportColumn[] = [
  { name: 'event_id', kind: 'string', nullable: false },
  { name: 'kind', kind: 'string', nullable: false },
  { name: 'correction_original_event_id', kind: 'string', nullable: true },
  { name: 'correction_reason', kind: 'string', nullable: true },
  { name: 'account_id', kind: 'string', nullable: false },
  { name: 'subscription_id', kind: 'string', nullable: true },
  { name: 'product_id', kind: 'string', nullable: false },
  { name: 'meter_id', kind: 'string', nullable: false },
  { name: 'model_id', kind: 'string', nullable: true },
  { name: 'timestamp_ms', kind: 'int64', nullable: false },
  { name: 'quantity', kind: 'decimal', nullable: false },
  { name: 'unit', kind: 'string', nullable: false },
  { name: 'source', kind: 'string', nullable: false },
  { name: 'dimensions_canonical', kind: 'string', nullable: false },
  { name: 'ingested_at_ms', kind: 'int64', nullable: false },
];

export const EXPORT_COLUMN_NAMES: readonly string[] = EXPORT_COLUMNS.map((c) => c.name);

function arrowType(kind: ExportColumnKind): Utf8 | Int64 | Decimal {
  if (kind === 'string') return new Utf8();
  if (kind === 'int64') return new Int64();
  return new Decimal(QUANTITY_SCALE, QUANTITY_PRECISION, 128);
}

/** The Arrow schema every exported RecordBatch carries. */
export const EXPORT_SCHEMA = new Schema(
  EXPORT_COLUMNS.map((c) => new Field(c.name, arrowType(c.kind), c.nullable)),
);
