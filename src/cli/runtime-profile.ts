/**
 * How a usagedb process runs Node: the `usagedb` binary's shebang (src/cli/main.ts), `npm start`
 * and the benchmark's child processes all use these settings. An application embedding the
 * library chooses its own; docs/decisions.md explains both:
 * - `--max-semi-space-size=16`: on a large machine V8 sizes the young generation at 128 MiB;
 *   ingest runs as fast with 16 MiB semi-spaces, and peak RSS drops by ~100 MiB.
 * - `MALLOC_ARENA_MAX=2`: glibc's per-thread malloc arenas (main thread, encoder worker, libuv
 *   pool) each keep freed buffers; two arenas cut ~50 MiB of peak RSS at 3M events.
 * - `MALLOC_MMAP_THRESHOLD_=131072`: buffers of 128 KiB and more (segment files, spans of
 *   chunks, encode buffers) get their own mappings, returned whole when freed; glibc otherwise
 *   raises the threshold after the first large free and serves them from the arenas, whose
 *   holes RSS keeps: ~110 MiB less at 1–2M events.
 */
export const RUNTIME_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=16'];
export const RUNTIME_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
};

/** The shebang line of the `usagedb` binary that applies the profile. */
export const RUNTIME_SHEBANG = `#!/usr/bin/env -S ${Object.entries(RUNTIME_ENV)
  .map(([k, v]) => `${k}=${v}`)
  .join(' ')} node ${RUNTIME_NODE_FLAGS.join(' ')}`;
