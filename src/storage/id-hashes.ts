/**
 * The event-id hashes (hash128 words h1, h2) of a run of event_id chunks: what the database
 * id filter is built from when it reads stored ids (a rebuild, an open). A large file's ids
 * are hashed in a worker thread (id-hash-worker.ts): decoding and hashing millions of ids is
 * seconds of CPU that would otherwise stall ingest on the main thread.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hash128BytesInto } from '../model/hash.ts';
import type { PackedIds } from '../model/packed-ids.ts';
import { WorkerJobs } from '../util/worker-jobs.ts';
import { crc32c } from './encoding/crc32c.ts';
import type { IdHashes } from './id-filter.ts';
import { decodeEventIdBytes } from './segment/column-chunk.ts';

/** One event_id chunk of a span: where it sits in the span's bytes, its CRC and row count. */
export interface IdChunkPart {
  at: number;
  length: number;
  crc: number;
  rows: number;
}

export interface IdHashRequest {
  /** Consecutive chunks of one file, as read in one go. */
  bytes: Uint8Array;
  parts: IdChunkPart[];
}

/** Files with fewer rows hash inline: a worker round trip would cost more than it saves. */
export const INLINE_ID_HASH_ROWS_MAX = 20_000;

const jobs = new WorkerJobs<IdHashRequest, IdHashes>(
  new URL(`./id-hash-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url),
  'event id hashing',
  { exitWhenIdle: true },
);

/** One chunk of a span, checked against its CRC, decoded to its ids' UTF-8 bytes. */
export function decodeEventIdChunk(bytes: Uint8Array, part: IdChunkPart): PackedIds {
  const chunk = bytes.subarray(part.at, part.at + part.length);
  if (chunk.length !== part.length || crc32c(chunk) !== part.crc)
    throw new Error(`event_id chunk at byte ${part.at} of the span: checksum mismatch`);
  return decodeEventIdBytes(chunk, part.rows);
}

/** Each chunk checked against its CRC, decoded, and every id hashed, in order. */
export function hashEventIdChunks(request: IdHashRequest): IdHashes {
  let total = 0;
  for (const p of request.parts) total += p.rows;
  const h1 = new Uint32Array(total);
  const h2 = new Uint32Array(total);
  const h = new Uint32Array(4);
  let row = 0;
  for (const p of request.parts) {
    const ids = decodeEventIdChunk(request.bytes, p);
    let start = 0;
    for (let i = 0; i < p.rows; i++) {
      hash128BytesInto(ids.bytes, start, ids.ends[i], h);
      start = ids.ends[i];
      h1[row] = h[0];
      h2[row++] = h[1];
    }
  }
  return { h1, h2 };
}

/** hashEventIdChunks inline, or in the worker thread (the request's bytes are moved there). */
export function hashEventIds(request: IdHashRequest, options: { inline: boolean }): Promise<IdHashes> {
  if (options.inline) return Promise.resolve().then(() => hashEventIdChunks(request));
  // Only a buffer of its own can move; a view of a larger one is copied first.
  const bytes =
    request.bytes.byteOffset === 0 && request.bytes.byteLength === request.bytes.buffer.byteLength
      ? request.bytes
      : request.bytes.slice();
  return jobs.run({ bytes, parts: request.parts }, [bytes.buffer as ArrayBuffer]);
}

/**
 * Keeps the worker between the files of a run (a filter rebuild reads every file's ids) until
 * the returned release is called.
 */
export function holdIdHashing(): () => void {
  return jobs.hold();
}
