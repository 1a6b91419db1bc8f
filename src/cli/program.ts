/**
 * The `usagedb` command-line program (docs/cli.md): global options, one module per command
 * under commands/, and the single place that prints results and turns failures into one line
 * and an exit code.
 *
 * Invariants:
 * - stdout carries only the result (one JSON object with --json); progress and errors go to
 *   stderr;
 * - any failure — bad flag, bad time, missing or locked directory, unreadable file, engine
 *   error — ends with exactly one line on stderr and the catalogue's non-zero exit code.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { UsageDbError } from '../errors.ts';
import { registerAdmin, registerLookup } from './commands/admin.ts';
import { registerBench } from './commands/bench.ts';
import { registerDemo } from './commands/demo.ts';
import { registerExportParquet } from './commands/export-parquet.ts';
import { registerIngest } from './commands/ingest.ts';
import { registerQuery } from './commands/query.ts';
import { registerServe } from './commands/serve.ts';
import type { CliContext, CliIo, CommandOutcome, GlobalOptions } from './context.ts';
import { formatFailure, toFailure } from './failure.ts';

export const DEFAULT_DB_ROOT = './data';

function packageVersion(): string {
  try {
    // src/cli and dist/cli both sit two levels below the package root.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

interface RawGlobals {
  dbRoot: string;
  json?: boolean;
}

export function createProgram(ctx: CliContext): Command {
  const program = new Command('usagedb')
    .description('usagedb: a database for usage-based billing of AI products')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('--db-root <dir>', 'data directory', DEFAULT_DB_ROOT)
    .option('--json', 'print the result as one JSON object (errors as {"error":{code,message}} on stderr)')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => ctx.io.stdout.write(text),
      // Help after an error and commander's own messages are replaced by our one-line failure.
      writeErr: () => undefined,
      outputError: () => undefined,
    });
  registerIngest(program, ctx);
  registerExportParquet(program, ctx);
  registerDemo(program, ctx);
  registerServe(program, ctx);
  registerQuery(program, ctx);
  registerAdmin(program, ctx);
  registerLookup(program, ctx);
  registerBench(program, ctx);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs the CLI with `argv` (without node and script); returns the process exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let outcome: CommandOutcome | null = null;
  let program: Command | null = null;
  const jsonRequested = argv.includes('--json');
  const ctx: CliContext = {
    io,
    globals(command: Command): GlobalOptions {
      const raw = command.optsWithGlobals<RawGlobals>();
      const source = program?.getOptionValueSource('dbRoot');
      return {
        dbRoot: raw.dbRoot,
        dbRootGiven: source === 'cli' || source === 'env',
        json: raw.json === true,
      };
    },
    finish(result) {
      outcome = result;
    },
    progressEnabled(command: Command) {
      return io.stderr.isTTY === true && command.optsWithGlobals<RawGlobals>().json !== true;
    },
  };
  program = createProgram(ctx);
  try {
    if (argv.length === 0) {
      throw new UsageDbError(
        'USAGEDB_ERR_INVALID_ARGUMENT',
        'no command given; run usagedb --help for the commands',
      );
    }
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (
      err instanceof CommanderError &&
      (err.code === 'commander.helpDisplayed' || err.code === 'commander.version')
    )
      return 0;
    const failure = toFailure(err);
    io.stderr.write(formatFailure(failure, jsonRequested));
    return failure.exitCode;
  }
  const done = outcome as CommandOutcome | null;
  if (done === null) {
    // A command always calls finish(); reaching here means a program bug, reported like any failure.
    io.stderr.write(
      formatFailure(
        toFailure(new UsageDbError('USAGEDB_ERR_INTERNAL', 'the command produced no result')),
        jsonRequested,
      ),
    );
    return 1;
  }
  const json = program.opts<RawGlobals>().json === true;
  io.stdout.write(
    json ? `${JSON.stringify({ ok: done.failure === undefined, ...done.data })}\n` : done.human,
  );
  if (done.failure !== undefined) {
    const failure = toFailure(done.failure);
    io.stderr.write(formatFailure(failure, json));
    return failure.exitCode;
  }
  return 0;
}
