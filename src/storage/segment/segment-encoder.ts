/**
 * Runs flush encoding in one shared worker thread, so a flush of hundreds of thousands of
 * events (seconds of CPU) never stalls ingest on the main thread.
 * The worker's lifecycle is util/worker-jobs.ts.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DICT_COLUMN_NAMES, type EventColumns } from '../../model/columns.ts';
import { WorkerJobs } from '../../util/worker-jobs.ts';
import { type EncodeRequest, type EncodeResult, encodeFlushSegment } from './encode-flush.ts';

// The worker file sits beside this one: .ts when running from source, .js from dist.
const jobs = new WorkerJobs<EncodeRequest, EncodeResult>(
  new URL(`./encode-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
  'segment encoding',
);

/** Copies a column set into compact buffers (views into larger buffers would clone them whole). */
function compact(c: EventColumns): EventColumns {
  const n = c.rowCount;
  const dict = (d: EventColumns['account_id']) => ({ dict: d.dict, codes: d.codes.slice(0, n) });
  return {
    rowCount: n,
    event_id: c.event_id.slice(0, n),
    kind: c.kind.slice(0, n),
    correction_original_event_id: c.correction_original_event_id.slice(0, n),
    correction_reason: c.correction_reason.slice(0, n),
    account_id: dict(c.account_id),
    subscription_id: dict(c.subscription_id),
    product_id: dict(c.product_id),
    meter_id: dict(c.meter_id),
    model_id: dict(c.model_id),
    unit: dict(c.unit),
    source: dict(c.source),
    dimensions: dict(c.dimensions),
    timestamp_ms: c.timestamp_ms.slice(0, n),
    quantity: { values: c.quantity.values.slice(0, n), big: c.quantity.big },
    ingested_at_ms: c.ingested_at_ms.slice(0, n),
  };
}

/** Encodes a flush segment in the worker thread (or inline when `inline`, e.g. tiny flushes). */
export function encodeFlush(req: EncodeRequest, options: { inline: boolean }): Promise<EncodeResult> {
  if (options.inline) return Promise.resolve().then(() => encodeFlushSegment(req));
  const columns = compact(req.columns);
  // The compact copies are this job's own: move their buffers instead of cloning them again.
  const transfer = [
    columns.kind,
    columns.timestamp_ms,
    columns.quantity.values,
    columns.ingested_at_ms,
    ...DICT_COLUMN_NAMES.map((name) => columns[name].codes),
  ].map((a) => a.buffer as ArrayBuffer);
  return jobs.run({ ...req, columns }, transfer);
}
