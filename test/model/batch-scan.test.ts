import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanBatchBody, ValidatedBatch } from '../../src/model/batch-scan.ts';
import { validateEvent } from '../../src/model/validate.ts';
import { NOW, simDb, usage, usageBatch } from '../support/events.ts';

const LIMITS = { futureSkewMs: 24 * 3600 * 1000 };

function body(events: unknown[], space?: number): Buffer {
  return Buffer.from(JSON.stringify({ events }, null, space));
}

/** What the full path makes of a body: every event's validation result. */
function fullPath(text: Buffer) {
  const parsed = JSON.parse(text.toString('utf8')) as { events: unknown[] };
  return parsed.events.map((e) => validateEvent(e, NOW, LIMITS));
}

/** Texts the fast path must refuse or read exactly: escapes, non-ASCII, empty, long, controls. */
const awkwardText = fc.oneof(
  fc.constantFrom('', 'a"b', 'a\\b', 'tab\there', 'é', '\u0085', '\u007f', 'x'.repeat(256), 'x'.repeat(257)),
  fc.string({ maxLength: 8 }),
);
const plainText = fc.stringMatching(/^[a-z0-9._-]{1,12}$/);
const textValue = fc.oneof({ weight: 4, arbitrary: plainText }, { weight: 1, arbitrary: awkwardText });
const numberValue = fc.oneof(
  fc.integer({ min: 0, max: 1_000_000 }),
  fc.constantFrom(0, -1, 1.5, 2 ** 53, 2 ** 53 - 1, 1e21, -0, NOW + 2 * 24 * 3600 * 1000),
  fc.constant('123'),
);
const dimensionsValue = fc.oneof(
  fc.dictionary(plainText, plainText, { maxKeys: 4 }),
  fc.dictionary(textValue, fc.oneof(textValue, fc.integer()), { maxKeys: 3 }),
  fc.dictionary(plainText, plainText, { minKeys: 17, maxKeys: 17 }),
  fc.constantFrom(null, 'x', [], {}),
);

/** An event near the common form, with any of its fields changed, dropped or added. */
const wireEvent = fc
  .record({
    i: fc.nat(10_000),
    changes: fc.dictionary(
      fc.constantFrom(
        'event_id',
        'kind',
        'correction_ref',
        'account_id',
        'subscription_id',
        'model_id',
        'unit',
        'timestamp_ms',
        'quantity',
        'dimensions',
        'ingested_at_ms',
        'extra',
        '__proto__',
      ),
      fc.oneof(
        textValue,
        numberValue,
        dimensionsValue,
        fc.constantFrom(null, undefined, 'Usage', 'Correction', { original_event_id: 'e', reason: 'r' }),
      ),
      { maxKeys: 2 },
    ),
  })
  .map(({ i, changes }) => ({ ...usage(i), timestamp_ms: NOW - i * 1000, ...changes }));

describe('scanBatchBody', () => {
  it('reads a compact batch of common events exactly as JSON.parse and validateEvent do', () => {
    const events = usageBatch(0, 300, { subscription_id: 'sub_1' });
    const text = body(events);
    const batch = scanBatchBody(text, NOW, LIMITS);
    expect(batch).toBeDefined();
    const want = fullPath(text);
    expect(batch?.events).toEqual(want.map((r) => (r.ok ? r.event : r)));
    expect(batch?.nowMs).toBe(NOW);
    events.forEach((e, i) => expect(batch?.rawEvent(i)).toEqual(JSON.parse(JSON.stringify(e))));
  });

  it('either gives up or gives every event validateEvent accepts, for any body', () => {
    let scanned = 0;
    fc.assert(
      fc.property(fc.array(wireEvent, { maxLength: 6 }), fc.boolean(), (events, spaced) => {
        const text = body(events, spaced ? 1 : undefined);
        const batch = scanBatchBody(text, NOW, LIMITS);
        if (batch === undefined) return;
        scanned++;
        const want = fullPath(text);
        expect(want.every((r) => r.ok)).toBe(true);
        expect(batch.events).toEqual(want.map((r) => (r.ok ? r.event : null)));
        const parsed = JSON.parse(text.toString('utf8')) as { events: unknown[] };
        parsed.events.forEach((e, i) => expect(batch.rawEvent(i)).toEqual(e));
      }),
      { numRuns: 2000 },
    );
    // The generator reaches the fast path often enough to test it.
    expect(scanned).toBeGreaterThan(200);
  });

  it('reads a dimension set too long to remember as the full path does, every time', () => {
    const dimensions = Object.fromEntries(
      Array.from({ length: 16 }, (_, k) => [`key${k}`, 'v'.repeat(100 + k)]),
    );
    const events = usageBatch(0, 3, { dimensions });
    const text = body(events);
    for (let round = 0; round < 2; round++) {
      const batch = scanBatchBody(text, NOW, LIMITS);
      expect(batch?.events).toEqual(fullPath(text).map((r) => (r.ok ? r.event : r)));
    }
    expect(JSON.stringify(dimensions).length).toBeGreaterThan(1024);
  });

  it('gives up on what only the full path can decide', () => {
    const ok = JSON.stringify(usage(1)).slice(1, -1);
    const cases = [
      '{"events":[{' + ok + ',"quantity":5}]}', // a repeated key: JSON.parse keeps the last
      '{"events":[{' + ok + '}]} ', // trailing space
      '{"events":[{' + ok + '}],"more":1}',
      '{"events":[{' + ok + ',"kind":"Retraction"}]}',
      '{"events":[{' + ok.replace('"quantity":37', '"quantity":37.0') + '}]}',
      '{"events":[{' + ok.replace('"quantity":37', '"quantity":037') + '}]}',
      '{"events":[{' + ok.replace('"quantity":37', '"quantity":-37') + '}]}',
      '{"events":[{' + ok.replace('"quantity":37', '"quantity":3e1') + '}]}',
      '{"events":[{' + ok.replace('"source":"gateway"', '"source":"gate\\u0077ay"') + '}]}',
      '{"events":[{' + ok.replace('"source":"gateway"', '"source":null') + '}]}',
      '{"events":[{' + ok + '}]',
      '{"events":[{' + ok + '},]}',
      '{"events":[' + ok + ']}',
    ];
    expect(ok).toContain('"quantity":37');
    for (const text of cases) expect(scanBatchBody(Buffer.from(text), NOW, LIMITS), text).toBeUndefined();
    expect(scanBatchBody(Buffer.from('{"events":[]}'), NOW, LIMITS)?.events).toEqual([]);
  });

  it('db.ingest takes only batches its own scanBatchBody made', async () => {
    const db = await simDb().open();
    const other = await simDb(2).open();
    const forged = Object.assign(Object.create(ValidatedBatch.prototype) as ValidatedBatch, {
      events: [{ event_id: 'x' }],
      nowMs: NOW,
    });
    const made = new ValidatedBatch([], NOW, Buffer.from('{"events":[]}'), new Uint32Array(0));
    const others = other.scanBatchBody(body(usageBatch(0, 2)));
    for (const batch of [forged, made, others]) {
      expect(batch).toBeInstanceOf(ValidatedBatch);
      await expect(db.ingest(batch as ValidatedBatch)).rejects.toMatchObject({
        code: 'USAGEDB_ERR_INVALID_ARGUMENT',
      });
    }
    const own = db.scanBatchBody(body(usageBatch(0, 2)));
    expect((await db.ingest(own as ValidatedBatch)).accepted).toBe(2);
    await db.close();
    await other.close();
  });

  it('through db.ingest: the same answers, stored events and rejection log as the full path', async () => {
    const first = usageBatch(0, 50);
    const second = [...usageBatch(40, 20), usage(3, { quantity: 999_999 })];
    const answers = [];
    for (const scanned of [true, false]) {
      const db = await simDb().open();
      const ingest = async (events: unknown[]) => {
        const batch = scanned ? db.scanBatchBody(body(events)) : undefined;
        expect(batch !== undefined).toBe(scanned);
        return db.ingest(batch ?? (JSON.parse(JSON.stringify(events)) as unknown[]));
      };
      const results = [await ingest(first), await ingest(second)];
      const stored = await db.query({
        from: NOW - 400 * 24 * 3600 * 1000,
        to: NOW + 1,
        group_by: ['account_id'],
      });
      const log = await db.rejections({ limit: 100 });
      answers.push({ results, stored, log: log.rejections.map((r) => ({ ...r, received_at_ms: 0 })) });
      await db.close();
    }
    expect(answers[0].stored.rows.length).toBe(7);
    expect(answers[0].results[1]).toMatchObject({ accepted: 10, duplicates: 10, conflicts: 1 });
    expect(answers[0].log[0]).toMatchObject({
      status: 'conflict',
      event: JSON.parse(JSON.stringify(usage(3, { quantity: 999_999 }))),
    });
    expect(answers[0]).toEqual(answers[1]);
  });
});
