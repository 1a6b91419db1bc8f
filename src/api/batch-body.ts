/**
 * Parses an ingest batch body, `{"events":[...]}`, without ever holding it as one string.
 *
 * Why: V8 gives every string over 128 KiB fresh pages of its own, and on a virtual machine
 * the first touch of each page is a costly fault: decoding a 283 KB body of 1,000 events took
 * 1.1 ms, more than JSON.parse of it (docs/benchmark.md, "where HTTP ingest's CPU goes"). So
 * the events array is cut into pieces of about PIECE_BYTES, each decoded and parsed on its
 * own as array content, and their elements joined.
 *
 * Exactness: the answer is the value JSON.parse of the whole body gives, or `undefined`, and
 * the caller then parses the body whole (malformed bodies get the usual error). The frame
 * `{ "events" : [` ... `] }` is matched byte for byte; the array's content is cut after a `}`
 * and before a `,{` (where one event ends and the next starts, in the compact form clients
 * send). A cut may fall inside a string that holds `},{`; then a piece does not parse and the
 * body goes whole. When every piece parses, the content is valid and its value is the
 * pieces' elements in order: values are self-delimiting, so `[a,b]` parses to a's elements
 * then b's whenever `[a]` and `[b]` parse. Cuts fall on ASCII bytes, so each piece decodes as
 * it would inside the whole body.
 */

import { CLOSE_BRACE, CLOSE_BRACKET, COLON, OPEN_BRACE, OPEN_BRACKET } from '../model/json-bytes.ts';

/** Target size of a piece: well under V8's 128 KiB limit for ordinary heap objects. */
const PIECE_BYTES = 48 * 1024;
/** Bodies smaller than this are parsed whole: a string under the limit costs nothing extra. */
const SMALL_BODY_BYTES = 96 * 1024;

const EVENTS_KEY = Buffer.from('"events"');
const CUT = Buffer.from('},{');

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** `{ "events" : [`: the index after the bracket, or -1. */
function contentStart(b: Buffer): number {
  let i = 0;
  while (isSpace(b[i])) i++;
  if (b[i] !== OPEN_BRACE) return -1;
  i++;
  while (isSpace(b[i])) i++;
  if (!EVENTS_KEY.equals(b.subarray(i, i + EVENTS_KEY.length))) return -1;
  i += EVENTS_KEY.length;
  while (isSpace(b[i])) i++;
  if (b[i] !== COLON) return -1;
  i++;
  while (isSpace(b[i])) i++;
  return b[i] === OPEN_BRACKET ? i + 1 : -1;
}

/** `] }` at the end: the index of the bracket, or -1. */
function contentEnd(b: Buffer, from: number): number {
  let i = b.length - 1;
  while (i >= from && isSpace(b[i])) i--;
  if (i < from || b[i] !== CLOSE_BRACE) return -1;
  i--;
  while (i >= from && isSpace(b[i])) i--;
  return i >= from && b[i] === CLOSE_BRACKET ? i : -1;
}

/**
 * The parsed body, or undefined when it must be parsed whole (see the module comment). The
 * sizes are lowered only by tests, to cut small bodies many times.
 */
export function parseBatchBody(
  body: Buffer,
  sizes = { pieceBytes: PIECE_BYTES, smallBodyBytes: SMALL_BODY_BYTES },
): { events: unknown[] } | undefined {
  if (body.length < sizes.smallBodyBytes) return undefined;
  const start = contentStart(body);
  if (start < 0) return undefined;
  const end = contentEnd(body, start);
  if (end < 0) return undefined;
  const events: unknown[] = [];
  let from = start;
  while (from < end) {
    const at = end - from > sizes.pieceBytes ? body.indexOf(CUT, from + sizes.pieceBytes) : -1;
    // The piece ends after the `}`; the next starts after the `,`.
    const to = at >= 0 && at < end ? at + 1 : end;
    if (!appendPiece(body, from, to, events)) return undefined;
    from = to === end ? end : to + 1;
  }
  // `{"events":[]}` and bodies whose content is only whitespace parse to no events.
  return { events };
}

/** Parses bytes [from, to) as array content and appends its elements; false if they do not parse. */
function appendPiece(body: Buffer, from: number, to: number, out: unknown[]): boolean {
  let parsed: unknown[];
  try {
    parsed = JSON.parse(`[${body.toString('utf8', from, to)}]`) as unknown[];
  } catch {
    return false;
  }
  for (const v of parsed) out.push(v);
  return true;
}
