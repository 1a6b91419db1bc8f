import type { ReadFile } from '../../src/storage/fs/file-system.ts';
import type { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';

/**
 * Counts the bytes read from files whose path contains `dirPart` (e.g. '/raw/'), whole-file
 * reads and reads through open files alike, from now on.
 */
export function countReads(fs: SimFileSystem, dirPart: string): { bytes: number; wholeFiles: string[] } {
  const counter = { bytes: 0, wholeFiles: [] as string[] };
  const readFile = fs.readFile.bind(fs);
  fs.readFile = async (path: string) => {
    const bytes = await readFile(path);
    if (path.includes(dirPart)) {
      counter.bytes += bytes.length;
      counter.wholeFiles.push(path);
    }
    return bytes;
  };
  const openRead = fs.openRead.bind(fs);
  fs.openRead = async (path: string): Promise<ReadFile> => {
    const file = await openRead(path);
    if (!path.includes(dirPart)) return file;
    const read = file.read.bind(file);
    const readSync = file.readSync.bind(file);
    return Object.assign(file, {
      read: async (offset: number, length: number) => {
        counter.bytes += length;
        return read(offset, length);
      },
      readSync: (offset: number, length: number) => {
        counter.bytes += length;
        return readSync(offset, length);
      },
    });
  };
  return counter;
}
