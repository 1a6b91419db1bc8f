/**
 * What every CLI command gets: the process streams (injectable for tests), the global options,
 * and one shape for what it produces, so printing and exit codes live in one place.
 */
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { UsageDbError } from '../errors.ts';

export type TextSink = NodeJS.WritableStream & { isTTY?: boolean };

export interface CliIo {
  stdout: TextSink;
  stderr: TextSink;
  stdin: Readable;
}

export interface GlobalOptions {
  dbRoot: string;
  /** True when --db-root was given (the demo otherwise uses a fresh temporary directory). */
  dbRootGiven: boolean;
  json: boolean;
}

/**
 * A finished command: `data` is printed as one JSON object with --json, `human` on a TTY or
 * without --json. A `failure` still prints the result, then exits non-zero with one line.
 */
export interface CommandOutcome {
  data: Record<string, unknown>;
  human: string;
  failure?: UsageDbError;
}

export interface CliContext {
  io: CliIo;
  /** Called by an action with its own Command; reads the global options wherever they were given. */
  globals(command: Command): GlobalOptions;
  /** Records the outcome of the action that ran. */
  finish(outcome: CommandOutcome): void;
  /** Progress bars go to stderr, only on a TTY and never with --json. */
  progressEnabled(command: Command): boolean;
}
