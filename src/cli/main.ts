#!/usr/bin/env node
/**
 * Entry point of the `usagedb` binary (package.json bin -> dist/cli/main.js). Sets the exit
 * code and lets pending output drain instead of calling process.exit.
 */

/** package.json engines.node: the engine needs node:zlib zstd, among others. */
const NODE_MIN: readonly [number, number] = [22, 15];

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < NODE_MIN[0] || (major === NODE_MIN[0] && minor < NODE_MIN[1])) {
  // Checked before loading the engine, whose imports would fail with a stack trace.
  process.stderr.write(`usagedb: Node.js >= ${NODE_MIN.join('.')} is required, this is ${process.versions.node}\n`);
  process.exitCode = 1;
} else {
  const { runCli } = await import('./program.ts');
  process.exitCode = await runCli(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
  });
}
