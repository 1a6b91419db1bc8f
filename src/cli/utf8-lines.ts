/**
 * Lines of a byte stream, each checked as UTF-8 on its own. `readline` decodes with
 * replacement, so an invalid byte became U+FFFD and the line was accepted with altered text
 * (an account `acct\xff` stored as `acct\ufffd`); here such a line is reported instead.
 *
 * Invariants:
 * - lines end at "\n"; one "\r" before it is dropped ("\r\n" files); the last line needs no
 *   "\n"; an empty input has no lines, and "a\n" has one;
 * - a line is a string exactly when its bytes are valid UTF-8 (strict: no overlong forms, no
 *   encoded surrogates, nothing above U+10FFFF), else an InvalidLine with the first bad byte;
 * - line order and count are the input's, whatever the chunk boundaries.
 *
 * Speed: a chunk's complete lines are checked with one native isUtf8 call and decoded with one
 * toString; only a chunk holding an invalid byte is checked line by line.
 */
import { isUtf8 } from 'node:buffer';
import type { Readable } from 'node:stream';

const LF = 0x0a;
const CR = 0x0d;

export interface InvalidLine {
  /** Offset in the line of the first byte that is not valid UTF-8. */
  byteOffset: number;
  byte: number;
}

export type Line = string | InvalidLine;

/** Offset of the first byte where `bytes` stops being valid UTF-8 (RFC 3629), or -1. */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i];
    if (lead < 0x80) {
      i++;
      continue;
    }
    let more: number;
    let low = 0x80;
    let high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) more = 1;
    else if (lead >= 0xe0 && lead <= 0xef) {
      more = 2;
      if (lead === 0xe0) low = 0xa0; // overlong
      if (lead === 0xed) high = 0x9f; // UTF-16 surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      more = 3;
      if (lead === 0xf0) low = 0x90; // overlong
      if (lead === 0xf4) high = 0x8f; // above U+10FFFF
    } else return i;
    if (i + more >= bytes.length) return i; // cut short by the end of the line
    const second = bytes[i + 1];
    if (second < low || second > high) return i;
    for (let k = 2; k <= more; k++) if ((bytes[i + k] & 0xc0) !== 0x80) return i;
    i += more + 1;
  }
  return -1;
}

function lineOf(bytes: Uint8Array): Line {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
  const content = bytes.subarray(0, end);
  const bad = invalidUtf8Offset(content);
  if (bad >= 0) return { byteOffset: bad, byte: content[bad] };
  return Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('utf8');
}

function stripCr(text: string): string {
  return text.length > 0 && text.charCodeAt(text.length - 1) === CR ? text.slice(0, -1) : text;
}

/** The complete lines of `bytes`, which ends with "\n" (that last "\n" ends the last line). */
function completeLines(bytes: Buffer): Line[] {
  if (isUtf8(bytes)) {
    const lines: Line[] = bytes.toString('utf8', 0, bytes.length - 1).split('\n');
    for (let i = 0; i < lines.length; i++) lines[i] = stripCr(lines[i] as string);
    return lines;
  }
  const lines: Line[] = [];
  let start = 0;
  while (start < bytes.length) {
    const end = bytes.indexOf(LF, start);
    lines.push(lineOf(bytes.subarray(start, end)));
    start = end + 1;
  }
  return lines;
}

/**
 * The lines of `input`, a chunk's worth at a time (a line longer than a chunk waits for its
 * end). String chunks (a stream with an encoding set) are taken as their UTF-8 bytes.
 */
export async function* utf8Lines(input: Readable): AsyncGenerator<Line[]> {
  // The start of a line whose end has not arrived yet, as the chunks it spans.
  let pending: Buffer[] = [];
  for await (const data of input as AsyncIterable<Buffer | string>) {
    const chunk = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const lastLf = chunk.lastIndexOf(LF);
    if (lastLf < 0) {
      if (chunk.length > 0) pending.push(chunk);
      continue;
    }
    let lines: Line[];
    if (pending.length === 0) lines = completeLines(chunk.subarray(0, lastLf + 1));
    else {
      // Only the line that spans chunks is copied together, not the rest of this chunk.
      const firstLf = chunk.indexOf(LF);
      lines = [lineOf(Buffer.concat([...pending, chunk.subarray(0, firstLf)]))];
      if (firstLf < lastLf) lines = lines.concat(completeLines(chunk.subarray(firstLf + 1, lastLf + 1)));
    }
    pending = lastLf + 1 < chunk.length ? [chunk.subarray(lastLf + 1)] : [];
    yield lines;
  }
  if (pending.length > 0) yield [lineOf(Buffer.concat(pending))];
}
