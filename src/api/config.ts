/**
 * Server configuration: one table of settings, each readable from a flag, an environment
 * variable (`USAGEDB_*`) and the JSON config file (`--config FILE`). Precedence: flags >
 * environment > file > default. Every value is checked here, with an error naming where it
 * came from, so the server itself only ever sees a valid `ServerConfig`.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { Durability } from '../db.ts';
import { UsageDbError } from '../errors.ts';
import {
  DEFAULT_REJECTION_LOG_AGE_MAX_MS,
  DEFAULT_REJECTION_LOG_BYTES_MAX,
} from '../billing/rejection-log.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ServerConfig {
  host: string;
  port: number;
  dbRoot: string;
  durability: Durability;
  /** Bearer keys accepted on /v1 routes; empty = no authentication. */
  apiKeys: string[];
  /** Allows a non-loopback bind without API keys. */
  insecure: boolean;
  bodyBytesMax: number;
  batchEventsMax: number;
  /** Time allowed to receive a whole request (headers and body). */
  requestTimeoutMs: number;
  logLevel: LogLevel;
  /** How often the server runs `db.tick()` (age-based flush, hot-id eviction). */
  tickIntervalMs: number;
  /** Bounds of the rejection log (oldest entries dropped first, counted). */
  rejectionLogBytesMax: number;
  rejectionLogAgeMaxMs: number;
  /** Memtable size that triggers a flush (small values: frequent flushes and merges). */
  memtableBytesMax: number;
}

export const BODY_BYTES_MAX = 16 * 1024 * 1024;
export const BATCH_EVENTS_MAX = 10_000;

export const DEFAULT_SERVER_CONFIG: ServerConfig = {
  host: '127.0.0.1',
  port: 8080,
  dbRoot: './data',
  durability: 'balanced',
  apiKeys: [],
  insecure: false,
  bodyBytesMax: BODY_BYTES_MAX,
  batchEventsMax: BATCH_EVENTS_MAX,
  requestTimeoutMs: 30_000,
  logLevel: 'info',
  tickIntervalMs: 10_000,
  rejectionLogBytesMax: DEFAULT_REJECTION_LOG_BYTES_MAX,
  rejectionLogAgeMaxMs: DEFAULT_REJECTION_LOG_AGE_MAX_MS,
  memtableBytesMax: 64 * 1024 * 1024,
};

type Key = keyof ServerConfig;

interface Setting<K extends Key> {
  key: K;
  /** Name in the JSON config file. */
  file: string;
  env: string;
  /** The command-line flag, when there is one (API keys have none: flags show up in `ps`). */
  flag: string | null;
  /** Parses text (flags, environment) or a JSON value (file); throws a message on bad input. */
  parse(value: unknown): ServerConfig[K];
}

function fail(message: string): never {
  throw new Error(message);
}

function text(value: unknown): string {
  if (typeof value === 'string' && value.length > 0) return value;
  return fail('must be a non-empty string');
}

function integer(min: number, max: number): (value: unknown) => number {
  return (value) => {
    const n =
      typeof value === 'number'
        ? value
        : typeof value === 'string' && /^[0-9]+$/.test(value)
          ? Number(value)
          : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) fail(`must be an integer in ${min}..${max}`);
    return n;
  };
}

function bool(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0' || value === '') return false;
  return fail('must be true or false');
}

function oneOf<T extends string>(choices: readonly T[]): (value: unknown) => T {
  return (value) => {
    if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
    return fail(`must be one of ${choices.join(', ')}`);
  };
}

/** Keys: a comma-separated string (flags, environment) or an array of strings (file). */
function keyList(value: unknown): string[] {
  const items =
    typeof value === 'string'
      ? value.split(',')
      : Array.isArray(value)
        ? value
        : fail('must be a list of keys');
  const keys = items.map((k) => (typeof k === 'string' ? k.trim() : fail('every key must be a string')));
  const kept = keys.filter((k) => k.length > 0);
  // Short keys are guessable; 16 characters is a floor, not a recommendation.
  if (kept.some((k) => k.length < 16)) fail('every key must be at least 16 characters');
  return kept;
}

const SETTINGS: { [K in Key]: Setting<K> } = {
  host: { key: 'host', file: 'host', env: 'USAGEDB_HOST', flag: '--host', parse: text },
  port: { key: 'port', file: 'port', env: 'USAGEDB_PORT', flag: '--port', parse: integer(0, 65_535) },
  dbRoot: { key: 'dbRoot', file: 'db_root', env: 'USAGEDB_DB_ROOT', flag: '--db-root', parse: text },
  durability: {
    key: 'durability',
    file: 'durability',
    env: 'USAGEDB_DURABILITY',
    flag: '--durability',
    parse: oneOf<Durability>(['strict', 'balanced', 'fast']),
  },
  apiKeys: { key: 'apiKeys', file: 'api_keys', env: 'USAGEDB_API_KEYS', flag: null, parse: keyList },
  insecure: { key: 'insecure', file: 'insecure', env: 'USAGEDB_INSECURE', flag: '--insecure', parse: bool },
  bodyBytesMax: {
    key: 'bodyBytesMax',
    file: 'body_bytes_max',
    env: 'USAGEDB_BODY_BYTES_MAX',
    flag: '--body-bytes-max',
    parse: integer(1024, 1024 * 1024 * 1024),
  },
  batchEventsMax: {
    key: 'batchEventsMax',
    file: 'batch_events_max',
    env: 'USAGEDB_BATCH_EVENTS_MAX',
    flag: '--batch-events-max',
    parse: integer(1, 1_000_000),
  },
  requestTimeoutMs: {
    key: 'requestTimeoutMs',
    file: 'request_timeout_ms',
    env: 'USAGEDB_REQUEST_TIMEOUT_MS',
    flag: '--request-timeout-ms',
    parse: integer(100, 3_600_000),
  },
  logLevel: {
    key: 'logLevel',
    file: 'log_level',
    env: 'USAGEDB_LOG_LEVEL',
    flag: '--log-level',
    parse: oneOf<LogLevel>(LOG_LEVELS),
  },
  tickIntervalMs: {
    key: 'tickIntervalMs',
    file: 'tick_interval_ms',
    env: 'USAGEDB_TICK_INTERVAL_MS',
    flag: '--tick-interval-ms',
    parse: integer(10, 3_600_000),
  },
  rejectionLogBytesMax: {
    key: 'rejectionLogBytesMax',
    file: 'rejection_log_bytes_max',
    env: 'USAGEDB_REJECTION_LOG_BYTES_MAX',
    flag: '--rejection-log-bytes-max',
    parse: integer(64 * 1024, 2 ** 40),
  },
  rejectionLogAgeMaxMs: {
    key: 'rejectionLogAgeMaxMs',
    file: 'rejection_log_age_max_ms',
    env: 'USAGEDB_REJECTION_LOG_AGE_MAX_MS',
    flag: '--rejection-log-age-max-ms',
    parse: integer(60_000, 100 * 365 * 86_400_000),
  },
  memtableBytesMax: {
    key: 'memtableBytesMax',
    file: 'memtable_bytes_max',
    env: 'USAGEDB_MEMTABLE_BYTES_MAX',
    flag: '--memtable-bytes-max',
    parse: integer(4096, 64 * 1024 * 1024 * 1024),
  },
};

/** The settings, for help texts and docs: file name, environment variable, flag, default. */
export function configReference(): { file: string; env: string; flag: string | null; default: unknown }[] {
  return Object.values(SETTINGS).map((s) => ({
    file: s.file,
    env: s.env,
    flag: s.flag,
    default: DEFAULT_SERVER_CONFIG[s.key],
  }));
}

function invalid(message: string): UsageDbError {
  return new UsageDbError('USAGEDB_ERR_INVALID_ARGUMENT', message);
}

function apply<K extends Key>(out: ServerConfig, setting: Setting<K>, value: unknown, where: string): void {
  try {
    out[setting.key] = setting.parse(value);
  } catch (err) {
    throw invalid(`${where} ${err instanceof Error ? err.message : String(err)}`);
  }
}

export interface ConfigSources {
  /** Flag values by setting key, only those given on the command line. */
  flags?: Partial<Record<Key, unknown>>;
  env?: Readonly<Record<string, string | undefined>>;
  /** Parsed JSON config file and its path (for messages). */
  file?: { path: string; data: unknown };
}

/** Builds a checked configuration from the three sources (flags > environment > file). */
export function resolveConfig(sources: ConfigSources): ServerConfig {
  const out: ServerConfig = { ...DEFAULT_SERVER_CONFIG, apiKeys: [] };
  const settings = Object.values(SETTINGS) as Setting<Key>[];
  if (sources.file !== undefined) {
    const { path, data } = sources.file;
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw invalid(`config file ${path} must hold a JSON object`);
    const known = new Map(settings.map((s) => [s.file, s]));
    for (const [name, value] of Object.entries(data)) {
      const setting = known.get(name);
      if (setting === undefined)
        throw invalid(
          `config file ${path}: unknown setting "${name}"; known: ${[...known.keys()].join(', ')}`,
        );
      apply(out, setting, value, `config file ${path}: "${name}"`);
    }
  }
  const env = sources.env ?? {};
  for (const s of settings) {
    const value = env[s.env];
    if (value !== undefined) apply(out, s, value, `environment variable ${s.env}`);
  }
  for (const s of settings) {
    const value = sources.flags?.[s.key];
    if (value !== undefined) apply(out, s, value, s.flag ?? s.key);
  }
  checkExposure(out);
  return out;
}

/** Reads and parses the JSON config file. */
export async function readConfigFile(path: string): Promise<{ path: string; data: unknown }> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT')
      throw new UsageDbError('USAGEDB_ERR_NOT_FOUND', `config file ${path} does not exist`);
    throw invalid(`config file ${path} cannot be read: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return { path, data: JSON.parse(raw) as unknown };
  } catch (err) {
    throw invalid(
      `config file ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const family = isIP(host);
  if (family === 4) return host.startsWith('127.');
  if (family === 6) return host === '::1' || host.toLowerCase().startsWith('::ffff:127.');
  return false;
}

/** Refuses to expose an unauthenticated database beyond this machine unless asked to. */
function checkExposure(config: ServerConfig): void {
  if (isLoopback(config.host) || config.apiKeys.length > 0 || config.insecure) return;
  throw invalid(
    `refusing to listen on ${config.host} without API keys: set USAGEDB_API_KEYS (or api_keys in the config file), ` +
      'bind 127.0.0.1, or pass --insecure',
  );
}
