/**
 * Stored bytes per column of every raw segment file in a database directory, summed, per
 * stored event: `node bench/segment-sizes.ts DIR` (run it on a closed database). Also the
 * id filter file and the rollup files, reported apart from the raw segments.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SegmentReader } from '../src/storage/segment/segment-reader.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: node bench/segment-sizes.ts DIR');
const totals = new Map<string, number>();
let rows = 0;
let files = 0;
for (const name of readdirSync(join(dir, 'raw'))) {
  if (!name.endsWith('.useg')) continue;
  const reader = SegmentReader.fromBytes(readFileSync(join(dir, 'raw', name)));
  rows += reader.meta.rowCount;
  files++;
  for (const [k, v] of Object.entries(reader.sizeBreakdown())) totals.set(k, (totals.get(k) ?? 0) + v);
}
const dirBytes = (sub: string): number => {
  let n = 0;
  const walk = (p: string): void => {
    for (const e of readdirSync(p)) {
      const q = join(p, e);
      const s = statSync(q);
      n += s.isDirectory() ? (walk(q), 0) : s.size;
    }
  };
  try {
    walk(join(dir, sub));
  } catch {
    return 0;
  }
  return n;
};
const raw = [...totals.values()].reduce((a, b) => a + b, 0);
console.log(`${files} raw segment files, ${rows} rows, ${(raw / rows).toFixed(2)} bytes/row`);
for (const [k, v] of [...totals].sort((a, b) => b[1] - a[1]))
  console.log(`  ${k.padEnd(30)} ${(v / rows).toFixed(3)} B/row  ${((v / raw) * 100).toFixed(1)}%`);
for (const sub of ['idfilter', 'rollup', 'wal', 'manifest', 'rejections'])
  console.log(`${sub}: ${(dirBytes(sub) / rows).toFixed(2)} B/row`);
