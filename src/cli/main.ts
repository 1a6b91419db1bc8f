#!/usr/bin/env node
/**
 * Entry point of the `usagedb` binary (package.json bin -> dist/cli/main.js). Sets the exit
 * code and lets pending output drain instead of calling process.exit.
 */
import { runCli } from './program.ts';

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
});
