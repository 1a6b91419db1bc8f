/** A ReadFile over bytes in memory that counts reads (for footer-only reading tests). */

import { FsError, type ReadFile } from '../../../src/storage/fs/file-system.ts';

export class MemoryReadFile implements ReadFile {
  readonly path: string;
  readonly sizeBytes: number;
  readonly reads: { offset: number; length: number }[] = [];
  private readonly bytes: Uint8Array;

  constructor(bytes: Uint8Array, path = 'mem.useg') {
    this.bytes = bytes;
    this.path = path;
    this.sizeBytes = bytes.length;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.readSync(offset, length);
  }

  readSync(offset: number, length: number): Uint8Array {
    this.reads.push({ offset, length });
    if (offset < 0 || offset + length > this.bytes.length) throw new FsError('EIO', 'read', this.path);
    return this.bytes.slice(offset, offset + length);
  }

  async close(): Promise<void> {}
}
