/**
 * The fast path of an ingest batch body: `{"events":[...]}` bytes straight to validated
 * events, without building the parsed objects JSON.parse would (a dozen strings and two
 * objects per event) or walking them again to validate. On a server that was a fifth of the
 * main thread (docs/benchmark.md, "Round 15").
 *
 * Exactness: the scan either gives up (`undefined`; the caller then parses and validates the
 * usual way) or returns, for every event, exactly what `validateEvent(JSON.parse(body).events[i])`
 * returns, and every event then passes. It accepts only a narrow, common form and leaves the
 * rest to the full path:
 * - compact JSON (no whitespace), strings of printable ASCII without escapes (so a string's
 *   bytes are its characters, and no control character can appear), 1 to ID_BYTES_MAX bytes;
 * - Usage events only (`kind` absent, null or "Usage"; `correction_ref` absent or null), no
 *   `ingested_at_ms`, no repeated key, every required field present;
 * - `timestamp_ms` and `quantity` as plain non-negative integer literals (no sign, fraction or
 *   exponent) that are safe integers; a timestamp positive and within the future skew;
 * - `dimensions` a flat object of strings; its canonical form is computed by the full path's
 *   own check once per distinct text, and a set that check refuses makes the scan give up.
 * Anything else (a rejection included) gives up: rejecting stays the full path's job.
 *
 * Invariants:
 * - the events of a ValidatedBatch scanBatchBody made have passed validation (db.ingest takes
 *   only the batches its own scanBatchBody made, with its own limits);
 * - `rawEvent(i)` is the value JSON.parse gives for the i-th element of the body's array.
 */
import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, OPEN_BRACE, QUOTE } from './json-bytes.ts';
import { ID_BYTES_MAX, type PendingEvent, type ValidationLimits, validDimensionsJson } from './validate.ts';

/** A batch body whose every event passed validation (made by scanBatchBody). */
export class ValidatedBatch {
  readonly events: PendingEvent[];
  /** The time the events were validated against, which ingest then stamps them with. */
  readonly nowMs: number;
  readonly #body: Uint8Array;
  /** Byte range [start, end) of each event's text in the body. */
  readonly #ranges: Uint32Array;

  constructor(events: PendingEvent[], nowMs: number, body: Uint8Array, ranges: Uint32Array) {
    this.events = events;
    this.nowMs = nowMs;
    this.#body = body;
    this.#ranges = ranges;
  }

  /** The event as it was sent (for the rejection log of a conflicting copy). */
  rawEvent(index: number): unknown {
    const start = this.#ranges[2 * index];
    const end = this.#ranges[2 * index + 1];
    return JSON.parse(latin1(this.#body, start, end));
  }
}

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const PRINTABLE_FIRST = 0x20;
const PRINTABLE_LAST = 0x7e;
const FRAME_START = Buffer.from('{"events":[');
/**
 * Longest dimension set text the scan remembers: the table then holds at most ~16 MiB of
 * texts and canonical forms whatever clients send (longer sets are checked every time).
 */
const DIMENSION_SET_TEXT_CACHED_MAX = 1024;
/** Digits of the largest safe integer (2^53 − 1). */
const SAFE_DIGITS_MAX = 16;

// Fields of the fast path, one bit each.
const F_EVENT_ID = 1 << 0;
const F_KIND = 1 << 1;
const F_CORRECTION_REF = 1 << 2;
const F_ACCOUNT = 1 << 3;
const F_SUBSCRIPTION = 1 << 4;
const F_PRODUCT = 1 << 5;
const F_METER = 1 << 6;
const F_MODEL = 1 << 7;
const F_UNIT = 1 << 8;
const F_SOURCE = 1 << 9;
const F_TIMESTAMP = 1 << 10;
const F_QUANTITY = 1 << 11;
const F_DIMENSIONS = 1 << 12;
const F_REQUIRED =
  F_EVENT_ID | F_ACCOUNT | F_PRODUCT | F_METER | F_UNIT | F_SOURCE | F_TIMESTAMP | F_QUANTITY;

const FIELD_BITS: ReadonlyMap<string, number> = new Map([
  ['event_id', F_EVENT_ID],
  ['kind', F_KIND],
  ['correction_ref', F_CORRECTION_REF],
  ['account_id', F_ACCOUNT],
  ['subscription_id', F_SUBSCRIPTION],
  ['product_id', F_PRODUCT],
  ['meter_id', F_METER],
  ['model_id', F_MODEL],
  ['unit', F_UNIT],
  ['source', F_SOURCE],
  ['timestamp_ms', F_TIMESTAMP],
  ['quantity', F_QUANTITY],
  ['dimensions', F_DIMENSIONS],
]);

/**
 * Texts by their bytes: an open-addressing table of printable ASCII texts, each mapped to a
 * value (the text itself, or a dimension set's canonical JSON). Values repeat in almost every
 * event, so a hit costs a hash and a compare, and no string is made. Cleared when half full,
 * so it stays bounded whatever the input.
 */
class ByteTextTable {
  private static readonly SLOTS = 1 << 14;
  private readonly hashes = new Int32Array(ByteTextTable.SLOTS);
  private readonly texts: (string | undefined)[] = new Array<string | undefined>(ByteTextTable.SLOTS).fill(
    undefined,
  );
  private readonly values: (string | undefined)[] = new Array<string | undefined>(ByteTextTable.SLOTS).fill(
    undefined,
  );
  private size = 0;

  /** The slot of bytes [from, to) with hash h; its text is undefined when absent. */
  slotOf(b: Uint8Array, from: number, to: number, h: number): number {
    const mask = ByteTextTable.SLOTS - 1;
    const n = to - from;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const text = this.texts[i];
      if (text === undefined) return i;
      if (this.hashes[i] === h && text.length === n && sameBytes(text, b, from)) return i;
    }
  }

  valueAt(slot: number): string | undefined {
    return this.values[slot];
  }

  /** Stores a text read from bytes [from, to) with its value; may clear the table first. */
  put(b: Uint8Array, from: number, to: number, h: number, value: string): void {
    if (this.size >= ByteTextTable.SLOTS / 2) {
      this.texts.fill(undefined);
      this.values.fill(undefined);
      this.size = 0;
    }
    const slot = this.slotOf(b, from, to, h);
    this.texts[slot] = latin1(b, from, to);
    this.hashes[slot] = h;
    this.values[slot] = value;
    this.size++;
  }
}

function sameBytes(text: string, b: Uint8Array, from: number): boolean {
  for (let j = 0; j < text.length; j++) if (text.charCodeAt(j) !== b[from + j]) return false;
  return true;
}

function latin1(b: Uint8Array, from: number, to: number): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1', from, to);
}

interface FieldKey {
  /** `"name":` */
  bytes: Uint8Array;
  bit: number;
}
const FIELD_KEYS: readonly FieldKey[] = [...FIELD_BITS].map(([name, bit]) => ({
  bytes: Buffer.from(`"${name}":`),
  bit,
}));

// Shared by every scan of this thread (a scan never awaits).
/** The key met at each position of the last event: clients write every event's keys in one order. */
const keyAtPosition: (FieldKey | undefined)[] = [];
const repeatedTexts = new ByteTextTable();
const dimensionSets = new ByteTextTable();

function hashStep(h: number, c: number): number {
  return Math.imul(h ^ c, 0x01000193);
}

/** Scan state of one body: `at` is the read position. Each method says how it gives up. */
class Scanner {
  at = 0;
  /** The hash of the text textEnd last found. */
  lastHash = 0;
  readonly b: Uint8Array;
  constructor(b: Uint8Array) {
    this.b = b;
  }

  /** A string at `at` (opening quote): its end (closing quote) and hash, or -1. */
  private textEnd(): number {
    const b = this.b;
    let i = this.at + 1;
    let h = 0x811c9dc5 | 0;
    for (;;) {
      const c = b[i];
      if (c === QUOTE) break;
      if (!(c >= PRINTABLE_FIRST && c <= PRINTABLE_LAST) || c === BACKSLASH) return -1;
      h = hashStep(h, c);
      i++;
    }
    this.lastHash = h;
    return i;
  }

  /** True if the bytes at `at` begin with `bytes`. */
  private startsWith(bytes: Uint8Array): boolean {
    const b = this.b;
    const at = this.at;
    for (let j = 0; j < bytes.length; j++) if (b[at + j] !== bytes[j]) return false;
    return true;
  }

  /**
   * The field bit of the `position`-th key of an event at `at`, moving past its colon; 0 to
   * give up. Bytes equal to `"name":` are that key exactly (no escapes in the pattern).
   */
  fieldBit(position: number): number {
    const predicted = keyAtPosition[position];
    let key: FieldKey | undefined;
    if (predicted !== undefined && this.startsWith(predicted.bytes)) key = predicted;
    else {
      key = FIELD_KEYS.find((k) => this.startsWith(k.bytes));
      if (key === undefined) return 0;
      keyAtPosition[position] = key;
    }
    this.at += key.bytes.length;
    return key.bit;
  }

  /** A string value at `at`, interned; undefined to give up. */
  repeatedText(): string | undefined {
    const b = this.b;
    if (b[this.at] !== QUOTE) return undefined;
    const end = this.textEnd();
    const from = this.at + 1;
    if (end < 0 || end === from || end - from > ID_BYTES_MAX) return undefined;
    let value = repeatedTexts.valueAt(repeatedTexts.slotOf(b, from, end, this.lastHash));
    if (value === undefined) {
      value = latin1(b, from, end);
      repeatedTexts.put(b, from, end, this.lastHash, value);
    }
    this.at = end + 1;
    return value;
  }

  /** `null` or a repeated text at `at`; undefined to give up. */
  nullableText(): string | null | undefined {
    return this.isNull() ? null : this.repeatedText();
  }

  /** A string value at `at`, not interned (event ids are unique); undefined to give up. */
  uniqueText(): string | undefined {
    const b = this.b;
    if (b[this.at] !== QUOTE) return undefined;
    const end = this.textEnd();
    const from = this.at + 1;
    if (end < 0 || end === from || end - from > ID_BYTES_MAX) return undefined;
    this.at = end + 1;
    return latin1(b, from, end);
  }

  /** `null` at `at`. */
  isNull(): boolean {
    const b = this.b;
    const i = this.at;
    if (b[i] !== 0x6e || b[i + 1] !== 0x75 || b[i + 2] !== 0x6c || b[i + 3] !== 0x6c) return false;
    this.at = i + 4;
    return true;
  }

  /** A plain non-negative integer literal that is a safe integer; -1 to give up. */
  integer(): number {
    const b = this.b;
    const from = this.at;
    let i = from;
    let v = 0;
    while (b[i] >= DIGIT_0 && b[i] <= DIGIT_9) {
      v = v * 10 + (b[i] - DIGIT_0);
      i++;
    }
    const digits = i - from;
    if (digits === 0 || digits > SAFE_DIGITS_MAX || (digits > 1 && b[from] === DIGIT_0)) return -1;
    // The literal must end here (not `1.5`, `1e3`): only a separator may follow.
    if (b[i] !== COMMA && b[i] !== CLOSE_BRACE) return -1;
    if (!Number.isSafeInteger(v)) return -1;
    this.at = i;
    return v;
  }

  /** A flat object of strings at `at`: its canonical dimensions JSON; undefined to give up. */
  dimensions(): string | undefined {
    const b = this.b;
    const from = this.at;
    if (b[from] !== OPEN_BRACE) return undefined;
    let i = from + 1;
    let h = 0x811c9dc5 | 0;
    // `{}` or `{"k":"v"(,"k":"v")*}`, every string printable ASCII without escapes.
    if (b[i] !== CLOSE_BRACE) {
      for (;;) {
        for (let part = 0; part < 2; part++) {
          if (b[i] !== QUOTE) return undefined;
          i++;
          for (;;) {
            const c = b[i];
            if (c === QUOTE) break;
            if (!(c >= PRINTABLE_FIRST && c <= PRINTABLE_LAST) || c === BACKSLASH) return undefined;
            h = hashStep(h, c);
            i++;
          }
          h = hashStep(h, QUOTE);
          i++;
          if (part === 0) {
            if (b[i] !== COLON) return undefined;
            i++;
          }
        }
        if (b[i] === CLOSE_BRACE) break;
        if (b[i] !== COMMA) return undefined;
        h = hashStep(h, COMMA);
        i++;
      }
    }
    const end = i + 1;
    const cached = end - from <= DIMENSION_SET_TEXT_CACHED_MAX;
    let canonical = cached ? dimensionSets.valueAt(dimensionSets.slotOf(b, from, end, h)) : undefined;
    if (canonical === undefined) {
      // Once per distinct text: the full path's own check and canonical form.
      canonical = validDimensionsJson(JSON.parse(latin1(b, from, end)));
      if (canonical === undefined) return undefined;
      if (cached) dimensionSets.put(b, from, end, h, canonical);
    }
    this.at = end;
    return canonical;
  }
}

/**
 * The validated events of a batch body, or undefined when the body is outside the fast path
 * (then parse and validate it the usual way). `nowMs` and `limits` are validateEvent's.
 */
export function scanBatchBody(
  body: Uint8Array,
  nowMs: number,
  limits: ValidationLimits,
): ValidatedBatch | undefined {
  if (body.length < FRAME_START.length + 2) return undefined;
  for (let i = 0; i < FRAME_START.length; i++) if (body[i] !== FRAME_START[i]) return undefined;
  const s = new Scanner(body);
  s.at = FRAME_START.length;
  const events: PendingEvent[] = [];
  const ranges: number[] = [];
  if (body[s.at] !== CLOSE_BRACKET) {
    for (;;) {
      const start = s.at;
      const event = scanEvent(s, nowMs, limits);
      if (event === undefined) return undefined;
      events.push(event);
      ranges.push(start, s.at);
      const c = body[s.at++];
      if (c === CLOSE_BRACKET) break;
      if (c !== COMMA) return undefined;
    }
  } else s.at++;
  if (s.at !== body.length - 1 || body[s.at] !== CLOSE_BRACE) return undefined;
  return new ValidatedBatch(events, nowMs, body, Uint32Array.from(ranges));
}

/** One event at `s.at` (its `{`), leaving `s.at` after its `}`; undefined to give up. */
function scanEvent(s: Scanner, nowMs: number, limits: ValidationLimits): PendingEvent | undefined {
  const b = s.b;
  if (b[s.at] !== OPEN_BRACE) return undefined;
  s.at++;
  let seen = 0;
  let eventId: string | undefined;
  let account: string | undefined;
  let subscription: string | null = null;
  let product: string | undefined;
  let meter: string | undefined;
  let model: string | null = null;
  let unit: string | undefined;
  let source: string | undefined;
  let timestampMs = -1;
  let quantity = -1;
  let dimensionsJson = '{}';
  for (let position = 0; ; position++) {
    const bit = s.fieldBit(position);
    if (bit === 0 || (seen & bit) !== 0) return undefined;
    seen |= bit;
    switch (bit) {
      case F_EVENT_ID:
        if ((eventId = s.uniqueText()) === undefined) return undefined;
        break;
      case F_KIND:
        if (!s.isNull() && s.repeatedText() !== 'Usage') return undefined;
        break;
      case F_CORRECTION_REF:
        if (!s.isNull()) return undefined;
        break;
      case F_ACCOUNT:
        if ((account = s.repeatedText()) === undefined) return undefined;
        break;
      case F_SUBSCRIPTION: {
        const text = s.nullableText();
        if (text === undefined) return undefined;
        subscription = text;
        break;
      }
      case F_PRODUCT:
        if ((product = s.repeatedText()) === undefined) return undefined;
        break;
      case F_METER:
        if ((meter = s.repeatedText()) === undefined) return undefined;
        break;
      case F_MODEL: {
        const text = s.nullableText();
        if (text === undefined) return undefined;
        model = text;
        break;
      }
      case F_UNIT:
        if ((unit = s.repeatedText()) === undefined) return undefined;
        break;
      case F_SOURCE:
        if ((source = s.repeatedText()) === undefined) return undefined;
        break;
      case F_TIMESTAMP:
        timestampMs = s.integer();
        if (timestampMs <= 0 || timestampMs > nowMs + limits.futureSkewMs) return undefined;
        break;
      case F_QUANTITY:
        quantity = s.integer();
        if (quantity < 0) return undefined;
        break;
      case F_DIMENSIONS: {
        const dims = s.dimensions();
        if (dims === undefined) return undefined;
        dimensionsJson = dims;
        break;
      }
      default:
        return undefined;
    }
    const c = b[s.at++];
    if (c === CLOSE_BRACE) break;
    if (c !== COMMA) return undefined;
  }
  // The bit test covers presence; the second test only narrows the types.
  if ((seen & F_REQUIRED) !== F_REQUIRED) return undefined;
  if (
    eventId === undefined ||
    account === undefined ||
    product === undefined ||
    meter === undefined ||
    unit === undefined ||
    source === undefined
  )
    return undefined;
  return {
    event_id: eventId,
    kind: 'Usage',
    correction_ref: null,
    account_id: account,
    subscription_id: subscription,
    product_id: product,
    meter_id: meter,
    model_id: model,
    unit,
    source,
    timestamp_ms: timestampMs,
    quantity,
    dimensions_json: dimensionsJson,
  };
}
