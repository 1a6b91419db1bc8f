/** The HTTP server of usagedb: `createServer({ db, config })`, `listen`, configuration. */
export { closeServer, createServer, listen, type CreateServerOptions, type UsageDbServer } from './server.ts';
export {
  DEFAULT_SERVER_CONFIG,
  readConfigFile,
  resolveConfig,
  configReference,
  isLoopback,
  type ServerConfig,
} from './config.ts';
export { ROUTES, defineRoute, type Route, type RouteContext } from './routes.ts';
export { openApiDocument } from './openapi.ts';
