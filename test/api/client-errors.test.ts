/**
 * Errors Node's HTTP server raises before a request reaches a route (a request timeout, bytes
 * that are not HTTP), through a real listening server and a raw TCP socket: they answer in the
 * API's error shape with the catalogue's status, and nothing is ingested.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { suiteServer } from './harness.ts';
import { usageBatch } from '../support/events.ts';

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
  elapsedMs: number;
}

/** Sends `bytes` (then nothing more) and reads the answer until the server closes. */
function rawRequest(url: string, bytes: string): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const [head, ...rest] = text.split('\r\n\r\n');
      const [statusLine, ...headerLines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      const text2 = rest.join('\r\n\r\n');
      let body: unknown;
      try {
        body = JSON.parse(text2);
      } catch {
        body = text2;
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body, elapsedMs: performance.now() - t0 });
    });
    socket.write(bytes);
  });
}

function expectErrorShape(a: RawAnswer, status: number, code: string): void {
  expect(a.status, JSON.stringify(a)).toBe(status);
  expect(a.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(a.body as object)).toEqual(['error']);
  const error = (a.body as { error: Record<string, unknown> }).error;
  expect(Object.keys(error).sort()).toEqual(['code', 'message']);
  expect(error.code).toBe(code);
  expect(typeof error.message).toBe('string');
}

describe('HTTP client errors', () => {
  const s = suiteServer({ config: { requestTimeoutMs: 300 } });

  it('a request body not received within request_timeout_ms is a 408 in the error shape, and nothing is ingested', async () => {
    const body = JSON.stringify({ events: usageBatch(0, 10) });
    // Headers and half the body, then silence: the request can never complete.
    const partial =
      `POST /v1/usage/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, body.length >> 1)}`;
    const a = await rawRequest(s.url, partial);
    expectErrorShape(a, 408, 'USAGEDB_ERR_REQUEST_TIMEOUT');
    expect((a.body as { error: { message: string } }).error.message).toMatch(/300 ms/);
    expect(a.headers.connection).toBe('close');
    expect(a.elapsedMs).toBeGreaterThanOrEqual(250);
    expect(s.db.stats().memtableRows).toBe(0);
  });

  it('bytes that are not HTTP are a 400 in the error shape', async () => {
    const a = await rawRequest(s.url, 'NOT HTTP AT ALL\r\n\r\n');
    expectErrorShape(a, 400, 'USAGEDB_ERR_INVALID_ARGUMENT');
  });

  it('the server still answers after both', async () => {
    const res = await fetch(`${s.url}/health`);
    expect(res.status).toBe(200);
  });
});
