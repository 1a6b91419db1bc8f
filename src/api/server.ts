/**
 * The HTTP server: a Fastify instance that registers the route table over one open `UsageDb`.
 * It owns no data: ingest and queries are the library's, the server adds transport, keys,
 * limits, request ids, logs and metrics.
 *
 * Invariants:
 * - every answer that is not 2xx is `{ "error": { "code", "message" } }` with the
 *   catalogue's status; an ingest that fails to persist is a 503 and acknowledged nothing;
 * - with keys configured, no /v1 request reaches a handler (or has its body read) without one;
 * - `close()` stops accepting, lets in-flight requests finish, then returns; the caller closes
 *   the database afterwards (the server never closes a database it was handed).
 */
import { createServer as createHttpServer, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import type { UsageDb } from '../db.ts';
import { ApiKeys } from './auth.ts';
import { parseBatchBody } from './batch-body.ts';
import type { ServerConfig } from './config.ts';
import { clientErrorAnswer, toHttpError } from './http-errors.ts';
import { ServerMetrics } from './metrics.ts';
import { openApiDocument } from './openapi.ts';
import { INGEST_URL, type RouteContext, ROUTES, type Route } from './routes.ts';

export interface CreateServerOptions {
  db: UsageDb;
  config: ServerConfig;
  /** Defaults to pino on stderr at `config.logLevel`. */
  logger?: Logger;
  /** Extra routes (tests); registered like the table's. */
  routes?: readonly Route[];
  version?: string;
}

export type UsageDbServer = FastifyInstance;

/** Fastify's default, kept when the server is built here (see serverFactory). */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

/** Routes a load balancer, a metrics scraper and a client generator reach without a key. */
const OPEN_ROUTES: ReadonlySet<string> = new Set(['/health', '/metrics', '/openapi.json']);

function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

/** A whole HTTP/1.1 answer written straight to a socket that no request owns; the connection then closes. */
function rawErrorResponse(status: number, body: object): string {
  const json = JSON.stringify(body);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`
  );
}

export async function createServer(options: CreateServerOptions): Promise<UsageDbServer> {
  const { db, config } = options;
  const routes = [...ROUTES, ...(options.routes ?? [])];
  const logger = options.logger ?? pino({ level: config.logLevel }, pino.destination(2));
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyBytesMax,
    requestTimeout: config.requestTimeoutMs,
    // Node checks request timeouts only every connectionsCheckingInterval (30 s by default): a
    // body trickling in would hold its connection far past request_timeout_ms (answered 408).
    serverFactory: (handler) => {
      const server = createHttpServer(
        {
          requestTimeout: config.requestTimeoutMs,
          connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(config.requestTimeoutMs / 4))),
        },
        handler,
      );
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      return server;
    },
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Requests arriving while closing get our own 503 (onRequest below), in the error shape.
    return503OnClosing: false,
    // Errors Node's HTTP parser raises before any route runs (a request not received within
    // request_timeout_ms, malformed HTTP, oversized headers) get the error shape too.
    clientErrorHandler(err: Error & { code?: string }, socket: Socket) {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const e = clientErrorAnswer(err.code, config);
      // As Node does for its own answer: write, then close (the request can never complete).
      if (socket.writable) socket.write(rawErrorResponse(e.status, errorBody(e.code, e.message)));
      socket.destroy();
    },
  });
  // Only JSON bodies: anything else is a 415.
  app.removeContentTypeParser('text/plain');
  app.setValidatorCompiler(TypeBoxValidatorCompiler);
  // Responses are plain JSON.stringify (fast, keeps every field); the response schemas are the
  // documented contract, held against real answers by the tests.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  const keys = new ApiKeys(config.apiKeys);
  const metrics = new ServerMetrics(db);
  const ctx: RouteContext = {
    db,
    config,
    metrics,
    startedAtMs: Date.now(),
    openApi: openApiDocument(routes, options.version ?? '0.0.0'),
  };

  // Keep-alive connections would hold close() open: once closing, every answer ends its connection.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    if (closing) {
      reply
        .code(503)
        .send(errorBody('USAGEDB_ERR_CLOSED', 'the server is shutting down; nothing was done, retry later'));
      return reply;
    }
    // Decided on the matched route, not the raw URL (which may be percent-encoded): only the
    // operational routes are open; everything else, unknown paths included, needs a key.
    if (
      keys.enabled &&
      !OPEN_ROUTES.has(req.routeOptions.url ?? '') &&
      !keys.check(req.headers.authorization)
    ) {
      reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send(
          errorBody(
            'USAGEDB_ERR_UNAUTHORIZED',
            'missing or unknown API key; send Authorization: Bearer <key>',
          ),
        );
      return reply;
    }
    return undefined;
  });
  app.addHook('onSend', async (_req, reply) => {
    if (closing) reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (req, reply) => {
    metrics.countRequest(req.method, req.routeOptions.url ?? 'unmatched', reply.statusCode);
  });

  app.setErrorHandler((err, req, reply) => {
    const e = toHttpError(err, config);
    if (e.status >= 500) req.log.error({ err }, 'request failed');
    else req.log.info({ code: e.code, message: e.message }, 'request refused');
    void reply.code(e.status).send(errorBody(e.code, e.message));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply
      .code(404)
      .send(errorBody('USAGEDB_ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  const register = (scope: FastifyInstance, route: Route) =>
    scope.route({
      method: route.method,
      url: route.url,
      schema: {
        ...(route.params ? { params: route.params } : {}),
        ...(route.querystring ? { querystring: route.querystring } : {}),
        ...(route.body ? { body: route.body } : {}),
      },
      handler: async (req, reply) => {
        const input = { params: req.params, query: req.query, body: req.body };
        const t0 = performance.now();
        try {
          const result = await route.handler(input, ctx);
          if (route.produces === 'text/plain') {
            void reply.type(route.url === '/metrics' ? metrics.contentType : 'text/plain; charset=utf-8');
            return String(result);
          }
          return result;
        } finally {
          if (route.timed === 'query') metrics.observeQuery(route.url, (performance.now() - t0) / 1000);
        }
      },
    });
  for (const route of routes) if (route.plainJson !== true) register(app, route);
  // Routes whose library call checks every field of the body itself (the ingest batch: 18% of
  // the server's time went to parsing it) read it with a bare JSON.parse, in a scope of their
  // own: Fastify's safe parser also scans the text for "__proto__" and "constructor" keys,
  // which those checks already refuse (an own "__proto__" is an unknown field, or a refused
  // dimension key). Hooks and handlers above apply to the scope too.
  app.register(async (scope) => {
    const safeJson = scope.getDefaultJsonParser('error', 'error');
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      // A batch in the common compact form is validated straight from its bytes; the ingest
      // handler passes it to db.ingest as it is.
      const scanned = req.routeOptions.url === INGEST_URL ? db.scanBatchBody(body as Buffer) : undefined;
      if (scanned !== undefined) {
        done(null, scanned);
        return;
      }
      // A large batch is parsed in pieces, never held as one string (batch-body.ts).
      const pieces = parseBatchBody(body as Buffer);
      if (pieces !== undefined) {
        done(null, pieces);
        return;
      }
      const text = (body as Buffer).toString('utf8');
      if (text.length > 0) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          // Fastify's parser answers malformed and empty bodies with its own errors.
          safeJson(req, text, done);
          return;
        }
        done(null, parsed);
        return;
      }
      safeJson(req, text, done);
    });
    for (const route of routes) if (route.plainJson === true) register(scope, route);
  });
  await app.ready();
  return app;
}

/** Time given to in-flight requests at shutdown before their connections are cut. */
export const SHUTDOWN_GRACE_MS = 30_000;

/**
 * Stops accepting, lets in-flight requests finish (their connections then close), and
 * resolves when none is left; after `graceMs`, cuts whatever is still open.
 */
export async function closeServer(app: UsageDbServer, graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
  const closed = app.close();
  // Connections that go idle after close() started would otherwise wait for their keep-alive timeout.
  const sweep = setInterval(() => app.server.closeIdleConnections(), 50);
  const cut = setTimeout(() => app.server.closeAllConnections(), graceMs);
  try {
    await closed;
  } finally {
    clearInterval(sweep);
    clearTimeout(cut);
  }
}

/** Listens on `config.host:config.port` (port 0: any free port); returns the base URL. */
export async function listen(
  app: UsageDbServer,
  config: Pick<ServerConfig, 'host' | 'port'>,
): Promise<string> {
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return `http://${host}:${port}`;
}
