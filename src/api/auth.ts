/**
 * API keys: `Authorization: Bearer <key>` on every /v1 route when keys are configured.
 * Keys are compared as SHA-256 digests with `timingSafeEqual`, against every configured key
 * without stopping at a match, so the time taken says nothing about any key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }

  get enabled(): boolean {
    return this.digests.length > 0;
  }

  /** True when `header` is `Bearer <key>` with a configured key. */
  check(header: string | undefined): boolean {
    if (header === undefined) return false;
    const m = /^Bearer +(\S+)\s*$/i.exec(header);
    if (m === null) return false;
    const presented = digest(m[1]);
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, presented) || ok;
    return ok;
  }
}
