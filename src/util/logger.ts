/**
 * What the library says about itself outside return values: recovery events an operator must
 * know of (a torn WAL tail dropped at open, a flush that keeps failing). The shape is pino's
 * (`logger.warn(fields, message)`), so a server passes its own logger as is.
 */
export type LogFields = Record<string, unknown>;

export interface UsageDbLogger {
  warn(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
}

/** The default: one JSON line per entry on stderr. */
export const stderrLogger: UsageDbLogger = {
  warn: (fields, message) => writeLine('warn', fields, message),
  info: (fields, message) => writeLine('info', fields, message),
};

function writeLine(level: string, fields: LogFields, message: string): void {
  process.stderr.write(`${JSON.stringify({ level, name: 'usagedb', msg: message, ...fields })}\n`);
}

/** Drops everything (tests that expect warnings pass their own logger). */
export const silentLogger: UsageDbLogger = { warn: () => undefined, info: () => undefined };
