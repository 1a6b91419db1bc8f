/** A real listening server on 127.0.0.1, port 0, over a database in a temporary directory. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { DEFAULT_SERVER_CONFIG, type ServerConfig } from '../../src/api/config.ts';
import { closeServer, createServer, listen, type UsageDbServer } from '../../src/api/server.ts';
import { UsageDb, type UsageDbOptions } from '../../src/db.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { afterAll, beforeAll } from 'vitest';

export interface Running {
  url: string;
  db: UsageDb;
  app: UsageDbServer;
  config: ServerConfig;
  /** Closes the server, then the database. */
  stop(): Promise<void>;
}

export function tempDir(prefix = 'usagedb-api-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function startServer(
  options: {
    config?: Partial<ServerConfig>;
    db?: UsageDb;
    dbOptions?: Partial<UsageDbOptions>;
    dir?: string;
  } = {},
): Promise<Running> {
  const config: ServerConfig = { ...DEFAULT_SERVER_CONFIG, port: 0, logLevel: 'silent', ...options.config };
  const db =
    options.db ??
    (await UsageDb.open({
      dir: options.dir ?? config.dbRoot,
      limits: { batchEventsMax: config.batchEventsMax },
      logger: silentLogger,
      ...options.dbOptions,
    }));
  const app = await createServer({ db, config, logger: pino({ level: 'silent' }) });
  const url = await listen(app, config);
  return {
    url,
    db,
    app,
    config,
    async stop() {
      await closeServer(app);
      await db.close();
    },
  };
}

export interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

export async function call(
  url: string,
  init: {
    method?: string;
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    key?: string;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.key !== undefined) headers.authorization = `Bearer ${init.key}`;
  let body: string | undefined;
  if (init.raw !== undefined) body = init.raw;
  else if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers['content-type'] ??= 'application/json';
  }
  const r = await fetch(url, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
  const text = await r.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  return { status: r.status, headers: r.headers, body: parsed, text };
}

/**
 * The server of the suite this is called in: started by the suite's beforeAll over a fresh
 * temporary directory, stopped and removed by its afterAll. Its fields read the running server.
 */
export function suiteServer(options: { prefix?: string; config?: Partial<ServerConfig> } = {}): Running {
  const tmp = tempDir(options.prefix);
  let running: Running | null = null;
  const current = (): Running => {
    if (running === null) throw new Error('suiteServer: read before its suite started');
    return running;
  };
  beforeAll(async () => {
    running = await startServer({ dir: tmp.dir, config: options.config });
  });
  afterAll(async () => {
    await running?.stop();
    tmp.remove();
  });
  return {
    get url() {
      return current().url;
    },
    get db() {
      return current().db;
    },
    get app() {
      return current().app;
    },
    get config() {
      return current().config;
    },
    stop: () => current().stop(),
  };
}
