/** Server configuration: precedence, parsing, and the checks that refuse a bad setup. */
import { describe, expect, it } from 'vitest';
import { configReference, DEFAULT_SERVER_CONFIG, isLoopback, resolveConfig } from '../../src/api/config.ts';

const KEY = 'a-key-of-16-chars';

describe('resolveConfig', () => {
  it('defaults: 127.0.0.1:8080, ./data, balanced, 16 MiB bodies, 10,000-event batches, no keys', () => {
    expect(resolveConfig({})).toEqual(DEFAULT_SERVER_CONFIG);
    expect(DEFAULT_SERVER_CONFIG).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      dbRoot: './data',
      durability: 'balanced',
      bodyBytesMax: 16 * 1024 * 1024,
      batchEventsMax: 10_000,
      apiKeys: [],
    });
  });

  it('flags > environment > file', () => {
    const file = {
      path: 'c.json',
      data: { port: 1, durability: 'strict', log_level: 'debug', api_keys: [KEY] },
    };
    const env = { USAGEDB_PORT: '2', USAGEDB_DURABILITY: 'fast' };
    expect(resolveConfig({ file, env, flags: { port: '3' } })).toMatchObject({
      port: 3,
      durability: 'fast',
      logLevel: 'debug',
      apiKeys: [KEY],
    });
    expect(resolveConfig({ file, env })).toMatchObject({ port: 2 });
    expect(resolveConfig({ file })).toMatchObject({ port: 1, durability: 'strict' });
    expect(resolveConfig({ env: { USAGEDB_API_KEYS: ` ${KEY}, ${KEY}x ,` } }).apiKeys).toEqual([
      KEY,
      `${KEY}x`,
    ]);
    expect(resolveConfig({ env: { USAGEDB_INSECURE: 'true', USAGEDB_HOST: '0.0.0.0' } }).insecure).toBe(true);
  });

  it('rejection log bounds from the file, the environment or flags', () => {
    const file = { path: 'c.json', data: { rejection_log_age_max_ms: 3_600_000 } };
    const env = { USAGEDB_REJECTION_LOG_BYTES_MAX: '1048576' };
    expect(resolveConfig({ file, env })).toMatchObject({
      rejectionLogBytesMax: 1_048_576,
      rejectionLogAgeMaxMs: 3_600_000,
    });
    expect(() => resolveConfig({ env: { USAGEDB_REJECTION_LOG_BYTES_MAX: '10' } })).toThrow(
      /USAGEDB_REJECTION_LOG_BYTES_MAX/,
    );
  });

  it('names the source of a bad value', () => {
    expect(() => resolveConfig({ flags: { port: 'http' } })).toThrow(/--port must be an integer/);
    expect(() => resolveConfig({ env: { USAGEDB_BODY_BYTES_MAX: '-1' } })).toThrow(
      /environment variable USAGEDB_BODY_BYTES_MAX must be an integer/,
    );
    expect(() => resolveConfig({ file: { path: 'x.json', data: { port: '80a' } } })).toThrow(
      /config file x.json: "port"/,
    );
    expect(() => resolveConfig({ file: { path: 'x.json', data: [] } })).toThrow(/must hold a JSON object/);
    expect(() => resolveConfig({ file: { path: 'x.json', data: { api_keys: 'short' } } })).toThrow(
      /at least 16/,
    );
  });

  it('refuses a non-loopback address without keys unless insecure', () => {
    for (const host of ['0.0.0.0', '10.0.0.5', '::', 'example.com'])
      expect(() => resolveConfig({ flags: { host } })).toThrow(/refusing to listen/);
    expect(resolveConfig({ flags: { host: '0.0.0.0', insecure: true } }).host).toBe('0.0.0.0');
    expect(resolveConfig({ flags: { host: '0.0.0.0' }, env: { USAGEDB_API_KEYS: KEY } }).host).toBe(
      '0.0.0.0',
    );
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost']) expect(isLoopback(host)).toBe(true);
  });

  it('every setting has a file name, an environment variable and a default', () => {
    const ref = configReference();
    expect(ref.length).toBe(Object.keys(DEFAULT_SERVER_CONFIG).length);
    for (const r of ref) expect(r.env).toMatch(/^USAGEDB_[A-Z_]+$/);
  });
});
