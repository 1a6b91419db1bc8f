#!/usr/bin/env -S MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=16
/**
 * Entry point of the `usagedb` binary (package.json bin -> dist/cli/main.js): checks the Node
 * version, runs the command, flushes stdout/stderr, exits with the command's code.
 */

/** package.json engines.node: the engine needs node:zlib zstd, among others. */
const NODE_MIN: readonly [number, number] = [22, 15];

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < NODE_MIN[0] || (major === NODE_MIN[0] && minor < NODE_MIN[1])) {
  // Checked before loading the engine, whose imports would fail with a stack trace.
  process.stderr.write(
    `usagedb: Node.js >= ${NODE_MIN.join('.')} is required, this is ${process.versions.node}\n`,
  );
  process.exitCode = 1;
} else {
  const { runCli } = await import('./program.ts');
  const code = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
  });
  // The command is finished: exit once output is flushed, even if a background handle of the
  // engine (a worker thread, a timer) would keep the event loop alive.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  await new Promise<void>((resolve) => process.stderr.write('', () => resolve()));
  process.exit(code);
}
