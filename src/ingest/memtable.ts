/**
 * The memtable: events acknowledged (or about to be) but not yet in segments, held as
 * growable columns so queries and flushes read them without copying.
 *
 * Invariants:
 * - rows are in append (WAL) order; the caller keeps event ids unique (RecentIds);
 * - rows [0, rowCount) never change once appended, except that `truncate` may cut rows that
 *   were never acknowledged (a failed WAL write); snapshots only cover acknowledged rows;
 * - dictionaries only grow, so codes in old snapshots stay valid; a value may be in a
 *   dictionary without a row using it (segment dictionaries keep only the values used).
 */

import { assert } from '../errors.ts';
import {
  type DictColumn,
  type EventColumns,
  KIND_NAMES,
  NULL_CODE,
  type QuantityColumn,
} from '../model/columns.ts';
import type { UsageEvent } from '../model/event.ts';

const INITIAL_CAPACITY = 1024;
/** A capacity hint is capped: a memtable is flushed well before this many rows. */
const CAPACITY_HINT_MAX = 1 << 22;
/** Dictionary-coded fields per event in `codeFields` (account … dimensions). */
export const FIELD_DICTS = 8;
/** Fixed heap cost of a row beyond its strings (its RecentIds entry, column slots), measured ~150 bytes: the flush trigger then tracks real memory. */
const ROW_OVERHEAD_BYTES = 150;

class GrowableF64 {
  data: Float64Array;
  constructor(capacity = INITIAL_CAPACITY) {
    this.data = new Float64Array(capacity);
  }
  push(row: number, v: number): void {
    if (row >= this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[row] = v;
  }
}

/** A Uint32Array that doubles as rows are pushed (`data` may be longer than the rows). */
export class GrowableU32 {
  data: Uint32Array;
  constructor(capacity = INITIAL_CAPACITY) {
    this.data = new Uint32Array(capacity);
  }
  push(row: number, v: number): void {
    if (row >= this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[row] = v;
  }
}

class GrowableU8 {
  data: Uint8Array;
  constructor(capacity = INITIAL_CAPACITY) {
    this.data = new Uint8Array(capacity);
  }
  push(row: number, v: number): void {
    if (row >= this.data.length) {
      const next = new Uint8Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[row] = v;
  }
}

class DictBuilder {
  private readonly index = new Map<string, number>();
  readonly dict: string[] = [];
  readonly codes: GrowableU32;

  constructor(capacity: number) {
    this.codes = new GrowableU32(capacity);
  }

  push(row: number, value: string | null): void {
    this.codes.push(row, this.code(value));
  }

  /** The code of `value` (added to the dictionary if new); NULL_CODE for null. */
  code(value: string | null): number {
    if (value === null) return NULL_CODE;
    let code = this.index.get(value);
    if (code === undefined) {
      code = this.dict.length;
      this.dict.push(value);
      this.index.set(value, code);
    }
    return code;
  }

  view(rowCount: number): DictColumn {
    return { dict: this.dict, codes: this.codes.data.subarray(0, rowCount) };
  }
}

export class Memtable {
  private rows = 0;
  private bytes = 0;
  private readonly eventId: string[] = [];
  private readonly kind: GrowableU8;
  private readonly originalId: (string | null)[] = [];
  private readonly reason: (string | null)[] = [];
  private readonly account: DictBuilder;
  private readonly subscription: DictBuilder;
  private readonly product: DictBuilder;
  private readonly meter: DictBuilder;
  private readonly model: DictBuilder;
  private readonly unit: DictBuilder;
  private readonly source: DictBuilder;
  private readonly dimensions: DictBuilder;
  private readonly timestamp: GrowableF64;
  private readonly quantity: GrowableF64;
  private big: Map<number, bigint> | null = null;
  private readonly ingestedAt: GrowableF64;
  /** Original event ids retracted by a Retraction in this memtable. */
  readonly retractedOriginals = new Set<string>();
  minTimestampMs = Number.POSITIVE_INFINITY;
  maxTimestampMs = Number.NEGATIVE_INFINITY;

  /**
   * `expectedRows`: the rows this memtable will likely hold (the previous one's count), so its
   * columns are allocated once: doubling from 1,024 rows to a full memtable's ~250k copied
   * every column eight times, and each copy touched fresh pages (a page fault per 4 KiB).
   */
  constructor(expectedRows = INITIAL_CAPACITY) {
    const capacity = Math.max(INITIAL_CAPACITY, Math.min(CAPACITY_HINT_MAX, Math.ceil(expectedRows)));
    this.kind = new GrowableU8(capacity);
    this.account = new DictBuilder(capacity);
    this.subscription = new DictBuilder(capacity);
    this.product = new DictBuilder(capacity);
    this.meter = new DictBuilder(capacity);
    this.model = new DictBuilder(capacity);
    this.unit = new DictBuilder(capacity);
    this.source = new DictBuilder(capacity);
    this.dimensions = new DictBuilder(capacity);
    this.timestamp = new GrowableF64(capacity);
    this.quantity = new GrowableF64(capacity);
    this.ingestedAt = new GrowableF64(capacity);
  }

  get rowCount(): number {
    return this.rows;
  }

  /** Approximate memory held, for the flush trigger. */
  get approxBytes(): number {
    return this.bytes;
  }

  /** Event id per row (the caller keeps ids unique: see ingest/recent-ids.ts). */
  get eventIds(): readonly string[] {
    return this.eventId;
  }

  /**
   * The dictionary codes of the repeating fields of `events`, FIELD_DICTS per event in the
   * order of `fieldDicts` (NULL_CODE for null), adding new values to the dictionaries: the WAL
   * record (wal-batch.ts) and `appendCoded` then share one lookup per field. Values of events
   * that are never appended stay in the dictionaries, unused (harmless: see the invariants).
   */
  codeFields(events: readonly UsageEvent[]): Uint32Array {
    const codes = new Uint32Array(events.length * FIELD_DICTS);
    for (let i = 0; i < events.length; i++) {
      const e = events[i];
      const o = i * FIELD_DICTS;
      codes[o] = this.account.code(e.account_id);
      codes[o + 1] = this.subscription.code(e.subscription_id);
      codes[o + 2] = this.product.code(e.product_id);
      codes[o + 3] = this.meter.code(e.meter_id);
      codes[o + 4] = this.model.code(e.model_id);
      codes[o + 5] = this.unit.code(e.unit);
      codes[o + 6] = this.source.code(e.source);
      codes[o + 7] = this.dimensions.code(e.dimensions_json);
    }
    return codes;
  }

  /** The dictionaries `codeFields` codes into, in its order. */
  get fieldDicts(): readonly (readonly string[])[] {
    return [
      this.account.dict,
      this.subscription.dict,
      this.product.dict,
      this.meter.dict,
      this.model.dict,
      this.unit.dict,
      this.source.dict,
      this.dimensions.dict,
    ];
  }

  append(e: UsageEvent, ingestedAtMs: number): number {
    const row = this.rows;
    this.account.push(row, e.account_id);
    this.subscription.push(row, e.subscription_id);
    this.product.push(row, e.product_id);
    this.meter.push(row, e.meter_id);
    this.model.push(row, e.model_id);
    this.unit.push(row, e.unit);
    this.source.push(row, e.source);
    this.dimensions.push(row, e.dimensions_json);
    return this.appendRest(e, ingestedAtMs, row);
  }

  /** `append` with the field codes `codeFields` returned (`at`: the event's first code). */
  appendCoded(e: UsageEvent, ingestedAtMs: number, codes: Uint32Array, at: number): number {
    const row = this.rows;
    this.account.codes.push(row, codes[at]);
    this.subscription.codes.push(row, codes[at + 1]);
    this.product.codes.push(row, codes[at + 2]);
    this.meter.codes.push(row, codes[at + 3]);
    this.model.codes.push(row, codes[at + 4]);
    this.unit.codes.push(row, codes[at + 5]);
    this.source.codes.push(row, codes[at + 6]);
    this.dimensions.codes.push(row, codes[at + 7]);
    return this.appendRest(e, ingestedAtMs, row);
  }

  private appendRest(e: UsageEvent, ingestedAtMs: number, row: number): number {
    this.eventId[row] = e.event_id;
    this.kind.push(row, KIND_NAMES.indexOf(e.kind));
    this.originalId[row] = e.correction_ref?.original_event_id ?? null;
    this.reason[row] = e.correction_ref?.reason ?? null;
    this.timestamp.push(row, e.timestamp_ms);
    if (typeof e.quantity === 'number') {
      this.quantity.push(row, e.quantity);
    } else {
      this.quantity.push(row, Number.NaN);
      this.big ??= new Map();
      this.big.set(row, e.quantity);
    }
    this.ingestedAt.push(row, ingestedAtMs);
    if (e.kind === 'Retraction' && e.correction_ref)
      this.retractedOriginals.add(e.correction_ref.original_event_id);
    if (e.timestamp_ms < this.minTimestampMs) this.minTimestampMs = e.timestamp_ms;
    if (e.timestamp_ms > this.maxTimestampMs) this.maxTimestampMs = e.timestamp_ms;
    this.bytes +=
      ROW_OVERHEAD_BYTES + 2 * (e.event_id.length + e.account_id.length + e.dimensions_json.length);
    this.rows = row + 1;
    return row;
  }

  /** Cuts rows [rowCount, end): only for rows that were never acknowledged. */
  truncate(rowCount: number): void {
    assert(rowCount <= this.rows, 'memtable truncate beyond end');
    for (let row = rowCount; row < this.rows; row++) {
      this.big?.delete(row);
      const original = this.originalId[row];
      if (this.kind.data[row] === 2 && original !== null) this.retractedOriginals.delete(original);
    }
    this.eventId.length = rowCount;
    this.originalId.length = rowCount;
    this.reason.length = rowCount;
    this.rows = rowCount;
  }

  /** Zero-copy columns of rows [0, rowCount). */
  columns(rowCount = this.rows): EventColumns {
    assert(rowCount <= this.rows, 'memtable snapshot beyond end');
    const quantity: QuantityColumn = {
      values: this.quantity.data.subarray(0, rowCount),
      big: this.big,
    };
    return {
      rowCount,
      event_id: this.eventId,
      kind: this.kind.data.subarray(0, rowCount),
      correction_original_event_id: this.originalId,
      correction_reason: this.reason,
      account_id: this.account.view(rowCount),
      subscription_id: this.subscription.view(rowCount),
      product_id: this.product.view(rowCount),
      meter_id: this.meter.view(rowCount),
      model_id: this.model.view(rowCount),
      unit: this.unit.view(rowCount),
      source: this.source.view(rowCount),
      dimensions: this.dimensions.view(rowCount),
      timestamp_ms: this.timestamp.data.subarray(0, rowCount),
      quantity,
      ingested_at_ms: this.ingestedAt.data.subarray(0, rowCount),
    };
  }
}
