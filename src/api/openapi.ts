/**
 * The OpenAPI 3.1 document of the server, generated from the route table: each route's
 * TypeBox schemas are the JSON Schemas (2020-12) OpenAPI 3.1 embeds, so what is documented is
 * what is validated.
 */
import type { TSchema } from 'typebox';
import type { Route } from './routes.ts';
import { ErrorBody, UsageEvent } from './schemas.ts';

type Json = Record<string, unknown>;

/** TypeBox schemas carry symbol keys; a JSON round trip leaves the plain JSON Schema. */
function plain(schema: TSchema): Json {
  return JSON.parse(JSON.stringify(schema)) as Json;
}

/** Fastify's `/a/:id` as OpenAPI's `/a/{id}`. */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function parameters(schema: TSchema | undefined, where: 'path' | 'query'): Json[] {
  if (schema === undefined) return [];
  const s = plain(schema) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(s.properties ?? {}).map(([name, p]) => {
    const { description, ...rest } = p;
    return {
      name,
      in: where,
      required: where === 'path' || (s.required ?? []).includes(name),
      ...(description === undefined ? {} : { description }),
      schema: rest,
    };
  });
}

const ERROR_REF = { $ref: '#/components/schemas/Error' };

function errorResponses(route: Route): Record<string, Json> {
  const out: Record<string, Json> = {};
  const add = (status: number, description: string) => {
    out[String(status)] = { description, content: { 'application/json': { schema: ERROR_REF } } };
  };
  if (route.params || route.querystring || route.body) add(400, 'malformed request or invalid query');
  if (route.url.startsWith('/v1/')) add(401, 'missing or unknown API key (when keys are configured)');
  if (route.stateConflict) add(409, 'already in the requested state');
  if (route.body) {
    add(413, 'body or batch too large');
    add(415, 'content type other than application/json');
    add(408, 'the request was not received within request_timeout_ms: nothing was ingested');
  }
  add(503, 'cannot persist or the database is closing: nothing was acknowledged');
  return out;
}

export function openApiDocument(routes: readonly Route[], version: string): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const route of routes) {
    const path = openApiPath(route.url);
    const operation: Json = {
      operationId: `${route.method.toLowerCase()}${path.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: route.summary,
      parameters: [...parameters(route.params, 'path'), ...parameters(route.querystring, 'query')],
      responses: {
        200: {
          description: 'OK',
          content: { [route.produces ?? 'application/json']: { schema: plain(route.response) } },
        },
        ...errorResponses(route),
      },
    };
    if (route.body) {
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: plain(route.body) } },
      };
    }
    if (route.url.startsWith('/v1/')) operation.security = [{ bearer: [] }];
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'usagedb',
      version,
      description:
        'Usage-based billing database for AI products: idempotent ingest, usage totals, raw audit, queries.',
    },
    servers: [{ url: '/' }],
    paths,
    components: {
      schemas: { Error: plain(ErrorBody), UsageEvent: plain(UsageEvent) },
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
  };
}
