/**
 * The payload of one WAL record: the events a single ingest call accepted, with the stamp they
 * share.
 *
 * Invariants (persisted — never change a format; add one):
 * - format 4 (written), binary, little-endian, by column: a 32-byte header [u32 4, u32 n,
 *   f64 ingested_at_ms, u32 text bytes, u32 string count, u32 extra bytes, u32 0], then
 *   f64 timestamps[n], f64 quantities[n] (NaN where the quantity is not a safe integer),
 *   i32 fields[8n] (indexes into the string table per event: account, subscription, product,
 *   meter, model, unit, source, dimensions JSON; -1 = null), u32 lengths[strings + n] (UTF-16
 *   code units of each table string, then of each event id), the UTF-8 text of the table
 *   strings then the event ids, all concatenated, and an optional JSON tail
 *   [big quantities as flat pairs [index, decimal], corrections as flat quadruples
 *   [index, kind, original id, reason]]. Against format 3 it costs ~45% less to encode (no
 *   number formatting, most of JSON.stringify's time: one UTF-8 write of the text and
 *   typed-array stores) for ~8% more bytes (95 against 88 per event of the bench workload).
 *   Strings are well-formed (validation refuses lone surrogates), so UTF-16 lengths cut the
 *   decoded text exactly;
 * - format 3 (still read), JSON by column: [3, ingested_at_ms, strings, event_ids, fields,
 *   timestamps, quantities, corrections], the same columns as text;
 * - format 2 (still read): [2, ingested_at_ms, PayloadTuple[]] (model/event.ts).
 */
import { type EventKind, NULL_CODE } from '../model/columns.ts';
import { type PayloadTuple, type StoredEvent, type UsageEvent, eventOfPayloadTuple } from '../model/event.ts';
import { parseQuantityString, type Quantity } from '../model/quantity.ts';

const BATCH_FORMAT_BINARY = 4;
const BATCH_FORMAT = 3;
const BATCH_FORMAT_TUPLES = 2;
/** Indexes into `strings` per event in formats 3 and 4. */
const FIELDS = 8;
const HEADER_BYTES = 32;
/** A JSON format starts with "[". */
const JSON_FIRST_BYTE = 0x5b;
const decoder = new TextDecoder('utf-8', { fatal: true });
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/**
 * The repeating fields of a batch already coded against dictionaries (the memtable's:
 * memtable.ts codeFields): FIELDS codes per event, NULL_CODE for null, field f coded in
 * `dicts[f]`. The record's string table is then built from codes, with no string lookup.
 */
export interface CodedFields {
  codes: Uint32Array;
  dicts: readonly (readonly string[])[];
}

export function encodeWalBatch(
  events: readonly UsageEvent[],
  ingestedAtMs: number,
  coded?: CodedFields,
): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error('the WAL batch format needs a little-endian machine');
  const n = events.length;
  const strings: string[] = [];
  const fields = coded ? tableOfCodes(coded, n, strings) : tableOfValues(events, strings);
  const timestamps = new Float64Array(n);
  const quantities = new Float64Array(n);
  const idLengths = new Uint32Array(n);
  let extra: (number | string | null)[][] | null = null;
  let text = '';
  for (let i = 0; i < n; i++) {
    const e = events[i];
    timestamps[i] = e.timestamp_ms;
    idLengths[i] = e.event_id.length;
    text += e.event_id;
    const q = e.quantity;
    if (typeof q === 'number') quantities[i] = q;
    else {
      quantities[i] = Number.NaN;
      (extra ??= [[], []])[0].push(i, q.toString());
    }
    const ref = e.correction_ref;
    if (e.kind !== 'Usage' || ref !== null) {
      (extra ??= [[], []])[1].push(i, e.kind, ref?.original_event_id ?? null, ref?.reason ?? null);
    }
  }
  const tableText = strings.join('');
  const stringCount = strings.length;
  const extraText = extra === null ? '' : JSON.stringify(extra);
  const textOffset = HEADER_BYTES + 16 * n + 4 * FIELDS * n + 4 * (stringCount + n);
  // Sized exactly rather than for the worst case (3 bytes per UTF-16 unit): a batch of 1,000
  // events then needs ~95 KB instead of ~170 KB, under the 128 KiB above which the runtime
  // profile's malloc maps fresh pages for every buffer (a page fault per 4 KiB touched).
  const textBytes = Buffer.byteLength(tableText, 'utf8') + Buffer.byteLength(text, 'utf8');
  const extraBytes = extraText.length === 0 ? 0 : Buffer.byteLength(extraText, 'utf8');
  const out = Buffer.allocUnsafe(textOffset + textBytes + extraBytes);
  let pos = textOffset;
  pos += out.write(tableText, pos, 'utf8');
  pos += out.write(text, pos, 'utf8');
  if (pos !== textOffset + textBytes) throw new Error('WAL batch: text length changed while written');
  if (extraBytes > 0) pos += out.write(extraText, pos, 'utf8');
  if (pos !== out.length) throw new Error('WAL batch: extra length changed while written');
  const view = new DataView(out.buffer, out.byteOffset, HEADER_BYTES);
  view.setUint32(0, BATCH_FORMAT_BINARY, true);
  view.setUint32(4, n, true);
  view.setFloat64(8, ingestedAtMs, true);
  view.setUint32(16, textBytes, true);
  view.setUint32(20, stringCount, true);
  view.setUint32(24, extraBytes, true);
  view.setUint32(28, 0, true);
  let at = HEADER_BYTES;
  const put = (a: Float64Array | Int32Array | Uint32Array): void => {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), at);
    at += a.byteLength;
  };
  put(timestamps);
  put(quantities);
  put(fields);
  const tableLengths = new Uint32Array(stringCount);
  for (let c = 0; c < stringCount; c++) tableLengths[c] = strings[c].length;
  put(tableLengths);
  put(idLengths);
  return out;
}

export function decodeWalBatch(payload: Uint8Array): StoredEvent[] {
  if (payload[0] !== JSON_FIRST_BYTE) return decodeBinaryBatch(payload);
  const batch = JSON.parse(decoder.decode(payload)) as unknown[];
  const [format, ingestedAtMs] = batch as [number, number];
  if (format === BATCH_FORMAT_TUPLES) {
    const tuples = batch[2] as PayloadTuple[];
    return tuples.map((t) => ({ ...eventOfPayloadTuple(t), ingested_at_ms: ingestedAtMs }));
  }
  if (format !== BATCH_FORMAT) throw new Error(`unsupported WAL batch format ${format}`);
  const [, , strings, ids, fields, timestamps, quantities, corrections] = batch as [
    number,
    number,
    string[],
    string[],
    number[],
    number[],
    (number | string)[],
    (number | string | null)[],
  ];
  const n = ids.length;
  if (fields.length !== n * FIELDS || timestamps.length !== n || quantities.length !== n)
    throw new Error('WAL batch columns differ in length');
  const text = (c: number): string => {
    const s = strings[c];
    if (typeof s !== 'string') throw new Error(`WAL batch string ${c} is missing`);
    return s;
  };
  const events: StoredEvent[] = new Array<StoredEvent>(n);
  for (let i = 0; i < n; i++)
    events[i] = usageEventOf(
      ids[i],
      fields,
      i * FIELDS,
      text,
      timestamps[i],
      quantityOf(quantities[i]),
      ingestedAtMs,
    );
  applyCorrections(events, corrections);
  return events;
}

/** Applies the flat [index, kind, original id, reason] quadruples of formats 3 and 4. */
function applyCorrections(events: StoredEvent[], corrections: readonly (number | string | null)[]): void {
  for (let j = 0; j < corrections.length; j += 4) {
    const e = events[corrections[j] as number];
    if (e === undefined) throw new Error(`WAL batch correction of event ${corrections[j]} is out of range`);
    e.kind = corrections[j + 1] as EventKind;
    const original = corrections[j + 2] as string | null;
    e.correction_ref =
      original === null
        ? null
        : { original_event_id: original, reason: (corrections[j + 3] as string | null) ?? '' };
  }
}

function quantityOf(q: number | string): Quantity {
  return typeof q === 'number' ? q : parseQuantityString(q);
}

/** The fields column of format 4, coding each distinct value once into `strings`. */
function tableOfValues(events: readonly UsageEvent[], strings: string[]): Int32Array {
  const codes = new Map<string, number>();
  const code = (value: string | null): number => {
    if (value === null) return -1;
    let c = codes.get(value);
    if (c === undefined) {
      c = strings.length;
      strings.push(value);
      codes.set(value, c);
    }
    return c;
  };
  const fields = new Int32Array(events.length * FIELDS);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    const o = i * FIELDS;
    fields[o] = code(e.account_id);
    fields[o + 1] = code(e.subscription_id);
    fields[o + 2] = code(e.product_id);
    fields[o + 3] = code(e.meter_id);
    fields[o + 4] = code(e.model_id);
    fields[o + 5] = code(e.unit);
    fields[o + 6] = code(e.source);
    fields[o + 7] = code(e.dimensions_json);
  }
  return fields;
}

/** The fields column of format 4 from dictionary codes: a value used once gets one entry. */
function tableOfCodes(coded: CodedFields, n: number, strings: string[]): Int32Array {
  const { codes, dicts } = coded;
  if (codes.length !== n * FIELDS || dicts.length !== FIELDS)
    throw new Error('WAL batch: coded fields do not match the events');
  // Per field: dictionary code -> index in `strings` + 1 (0 = not in the table yet).
  const local = dicts.map((d) => new Uint32Array(d.length));
  const fields = new Int32Array(n * FIELDS);
  for (let o = 0; o < fields.length; o += FIELDS) {
    for (let f = 0; f < FIELDS; f++) {
      const c = codes[o + f];
      if (c === NULL_CODE) {
        fields[o + f] = -1;
        continue;
      }
      let l = local[f][c];
      if (l === 0) {
        const value = dicts[f][c];
        if (value === undefined) throw new Error(`WAL batch: code ${c} is outside its dictionary`);
        l = strings.push(value);
        local[f][c] = l;
      }
      fields[o + f] = l - 1;
    }
  }
  return fields;
}

/** Format 4 (see the top of this file). A malformed payload throws. */
function decodeBinaryBatch(payload: Uint8Array): StoredEvent[] {
  if (!LITTLE_ENDIAN) throw new Error('the WAL batch format needs a little-endian machine');
  if (payload.length < HEADER_BYTES) throw new Error('WAL batch shorter than its header');
  // A copy at offset 0, so the typed-array views below are aligned.
  const bytes = new Uint8Array(payload);
  const view = new DataView(bytes.buffer, 0, HEADER_BYTES);
  const format = view.getUint32(0, true);
  if (format !== BATCH_FORMAT_BINARY) throw new Error(`unsupported WAL batch format ${format}`);
  const n = view.getUint32(4, true);
  const ingestedAtMs = view.getFloat64(8, true);
  const textBytes = view.getUint32(16, true);
  const stringCount = view.getUint32(20, true);
  const extraBytes = view.getUint32(24, true);
  const textOffset = HEADER_BYTES + 16 * n + 4 * FIELDS * n + 4 * (stringCount + n);
  if (textOffset + textBytes + extraBytes !== bytes.length)
    throw new Error('WAL batch sections differ in length');
  let at = HEADER_BYTES;
  const timestamps = new Float64Array(bytes.buffer, at, n);
  at += 8 * n;
  const quantities = new Float64Array(bytes.buffer, at, n);
  at += 8 * n;
  const fields = new Int32Array(bytes.buffer, at, FIELDS * n);
  at += 4 * FIELDS * n;
  const lengths = new Uint32Array(bytes.buffer, at, stringCount + n);
  const text = decoder.decode(bytes.subarray(textOffset, textOffset + textBytes));
  const pieces = new Array<string>(stringCount + n);
  let cut = 0;
  for (let k = 0; k < pieces.length; k++) {
    pieces[k] = text.slice(cut, cut + lengths[k]);
    cut += lengths[k];
  }
  if (cut !== text.length) throw new Error('WAL batch string lengths do not match its text');
  const textAt = (c: number): string => {
    if (!(c >= 0 && c < stringCount)) throw new Error(`WAL batch string ${c} is missing`);
    return pieces[c];
  };
  const events: StoredEvent[] = new Array<StoredEvent>(n);
  for (let i = 0; i < n; i++)
    events[i] = usageEventOf(
      pieces[stringCount + i],
      fields,
      i * FIELDS,
      textAt,
      timestamps[i],
      quantities[i],
      ingestedAtMs,
    );
  if (extraBytes > 0) {
    const extraStart = textOffset + textBytes;
    const [bigs, corrections] = JSON.parse(decoder.decode(bytes.subarray(extraStart))) as [
      (number | string)[],
      (number | string | null)[],
    ];
    for (let j = 0; j < bigs.length; j += 2) {
      const e = events[bigs[j] as number];
      if (e === undefined) throw new Error(`WAL batch quantity of event ${bigs[j]} is out of range`);
      e.quantity = parseQuantityString(bigs[j + 1] as string);
    }
    applyCorrections(events, corrections);
  }
  for (const e of events)
    if (Number.isNaN(e.quantity)) throw new Error(`WAL batch event ${e.event_id} has no quantity`);
  return events;
}

/**
 * A usage event of a decoded batch (formats 3 and 4): its FIELDS dictionary codes start at
 * `fields[o]` (account, subscription, product, meter, model, unit, source, dimensions; -1 is
 * null where a field may be null), resolved through `text`.
 */
function usageEventOf(
  eventId: string,
  fields: ArrayLike<number>,
  o: number,
  text: (code: number) => string,
  timestampMs: number,
  quantity: Quantity,
  ingestedAtMs: number,
): StoredEvent {
  return {
    event_id: eventId,
    kind: 'Usage',
    correction_ref: null,
    account_id: text(fields[o]),
    subscription_id: fields[o + 1] === -1 ? null : text(fields[o + 1]),
    product_id: text(fields[o + 2]),
    meter_id: text(fields[o + 3]),
    model_id: fields[o + 4] === -1 ? null : text(fields[o + 4]),
    unit: text(fields[o + 5]),
    source: text(fields[o + 6]),
    timestamp_ms: timestampMs,
    quantity,
    dimensions_json: text(fields[o + 7]),
    ingested_at_ms: ingestedAtMs,
  };
}
