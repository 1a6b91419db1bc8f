/**
 * Manifest commit cost as the segment list grows: `node bench/manifest-commit.ts [ENTRIES] [DIR]`.
 * Commits generations of a state holding ENTRIES raw segment entries on the real disk and
 * prints the median and p95 commit time (encode + write + fsync + rename + CURRENT).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFileSystem } from '../src/storage/fs/node-file-system.ts';
import { encodeManifest, type ManifestState, ManifestStore } from '../src/storage/manifest.ts';

const entries = Number(process.argv[2] ?? 10_000);
const dir = process.argv[3] ?? mkdtempSync(join(tmpdir(), 'usagedb-manifest-'));
const fs = new NodeFileSystem();
await fs.mkdirp(dir);
const store = new ManifestStore(fs, dir);
const state: ManifestState = {
  format_version: 2,
  generation: 1,
  database_id: 'udb-bench',
  bucket_count: 64,
  created_at_ms: 1,
  next_segment_id: entries + 1,
  wal_start: 1,
  raw_segments: Array.from({ length: entries }, (_, i) => ({
    id: i + 1,
    rows: 250_000,
    min_ts: 1_777_593_600_000 + i * 1000,
    max_ts: 1_777_593_600_000 + i * 1000 + 86_400_000,
    size_bytes: 5_600_000,
    crc32c: (i * 2_654_435_761) >>> 0,
    retractions: i % 7,
  })),
  rollup_segments: [],
  periods: [],
  quarantine: [],
};
const times: number[] = [];
for (let g = 1; g <= 30; g++) {
  const t = performance.now();
  await store.commit({ ...state, generation: g });
  times.push(performance.now() - t);
  await store.prune(g);
}
times.sort((a, b) => a - b);
const bytes = encodeManifest(state).length;
console.log(
  `${entries} entries: ${(bytes / 1024).toFixed(0)} KiB per generation, commit median ${times[15].toFixed(1)} ms, p95 ${times[28].toFixed(1)} ms`,
);
if (process.argv[3] === undefined) rmSync(dir, { recursive: true, force: true });
