/**
 * A request that arrives while the server is closing gets a 503 in the API's error shape
 * (USAGEDB_ERR_CLOSED), is not ingested, and its connection is closed.
 */
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { closeServer } from '../../src/api/server.ts';
import { usage } from '../support/events.ts';
import { startServer, tempDir } from './harness.ts';

describe('a request during shutdown', () => {
  it('is answered 503 USAGEDB_ERR_CLOSED and nothing is ingested', async () => {
    const tmp = tempDir();
    const s = await startServer({ dir: tmp.dir });
    const url = new URL(s.url);
    const body = JSON.stringify({ events: [usage(1)] });
    const socket = connect(Number(url.port), url.hostname);
    await new Promise<void>((r) => socket.once('connect', () => r()));
    let answer = '';
    socket.setEncoding('utf8').on('data', (d: string) => (answer += d));
    const ended = new Promise<void>((r) => socket.once('close', () => r()));
    // Half a request: the connection is busy, so closing does not drop it as idle.
    socket.write(`POST /v1/usage/batch HTTP/1.1\r\nHost: ${url.host}\r\n`);
    await new Promise((r) => setTimeout(r, 50));
    const closed = closeServer(s.app);
    await new Promise((r) => setTimeout(r, 50));
    socket.write(
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await ended;
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 503 /);
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({
      error: { code: 'USAGEDB_ERR_CLOSED', message: expect.stringMatching(/shutting down/) },
    });
    expect((await s.db.query({ from: 0, to: 2_000_000_000_000 })).rows[0].count).toBe(0);
    await s.db.close();
    tmp.remove();
  });
});
