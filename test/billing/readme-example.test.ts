/**
 * The README's worked example, "A month from ingest to close", run step by step: every
 * result line the README prints (`// → ...`) must be what these steps produce.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ClosedPeriodView, OpenPeriodView } from '../../src/db.ts';
import { simDb } from '../support/events.ts';

const README = join(resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), 'README.md');

const event = (event_id: string, meter_id: string, timestamp: string, quantity: number) => ({
  event_id,
  account_id: 'acct_42',
  product_id: 'llm-api',
  meter_id,
  unit: 'tokens',
  model_id: 'gpt-x',
  source: 'gateway',
  timestamp_ms: Date.parse(timestamp),
  quantity,
});

/** What the README shows after `// → `: compact JSON. */
const shown = (v: unknown) => `// → ${JSON.stringify(v)}`;

describe('README: a month from ingest to close', () => {
  it('prints exactly what the README says', async () => {
    const sim = simDb();
    sim.clock.set(Date.parse('2026-06-05T00:00:00Z'));
    const db = await sim.open();
    const lines: string[] = [];

    // 1. May's usage.
    const may = await db.ingest([
      event('gw-1001', 'tokens.input', '2026-05-03T10:00:00Z', 1200),
      event('gw-1002', 'tokens.input', '2026-05-17T09:30:00Z', 800),
      event('gw-1003', 'tokens.output', '2026-05-17T09:30:00Z', 450),
    ]);
    lines.push(shown({ accepted: may.accepted, rejected: may.rejected }));

    // 2. Close May.
    const closed = await db.periods.close('acct_42', '2026-05');
    const { snapshot } = closed;
    lines.push(shown(snapshot.lines.map((l) => [l.meter_id, l.quantity, l.event_count])));
    lines.push(shown({ watermark_ms: snapshot.watermark_ms, digest: snapshot.evidence_digest.slice(0, 16) }));

    // 3. A late Usage event for May is refused; a refund of gw-1002 is accepted.
    const late = await db.ingest([event('gw-1004', 'tokens.input', '2026-05-30T12:00:00Z', 300)]);
    lines.push(shown(late.errors.map((e) => [e.event_id, e.reason])));
    const refund = await db.ingest([
      {
        ...event('gw-1002-refund', 'tokens.input', '2026-05-17T09:30:00Z', 0),
        kind: 'Retraction',
        quantity: undefined,
        correction_ref: { original_event_id: 'gw-1002', reason: 'customer refund' },
      },
    ]);
    lines.push(shown({ accepted: refund.accepted }));

    // 4. May, closed: the snapshot unchanged, the refund as an adjustment.
    const mayView = (await db.periods.get('acct_42', '2026-05')) as ClosedPeriodView;
    expect(mayView.snapshot).toEqual(snapshot);
    lines.push(shown(mayView.adjustment_lines.map((l) => [l.meter_id, l.quantity, l.event_count])));
    lines.push(shown(mayView.net_lines.map((l) => [l.meter_id, l.quantity, l.event_count])));

    // 5. June: its own usage, and May's refund carried over.
    await db.ingest([event('gw-2001', 'tokens.input', '2026-06-02T08:00:00Z', 500)]);
    const june = (await db.periods.get('acct_42', '2026-06')) as OpenPeriodView;
    lines.push(shown(june.lines.map((l) => [l.meter_id, l.quantity, l.event_count])));
    lines.push(shown(june.carried_adjustments.map((l) => [l.period, l.meter_id, l.quantity])));

    // 6. Why gw-1002 is not billed, and why gw-1004 is not stored.
    const why = await db.lookupEvent('gw-1002');
    lines.push(
      shown({
        status: why.status,
        retracted_by: why.retracted_by?.event_id,
        period_closed: why.period_closed,
      }),
    );
    const refused = await db.lookupEvent('gw-1004');
    lines.push(shown({ status: refused.status, reason: refused.reason }));
    await db.close();

    // The numbers themselves, so a change of the README cannot hide a change of behaviour.
    expect(lines).toEqual([
      '// → {"accepted":3,"rejected":0}',
      '// → [["tokens.input","2000",2],["tokens.output","450",1]]',
      `// → {"watermark_ms":${Date.parse('2026-05-17T10:00:00Z')},"digest":"${snapshot.evidence_digest.slice(0, 16)}"}`,
      '// → [["gw-1004","period_closed"]]',
      '// → {"accepted":1}',
      '// → [["tokens.input","-800",1]]',
      '// → [["tokens.input","1200",3],["tokens.output","450",1]]',
      '// → [["tokens.input","500",1]]',
      '// → [["2026-05","tokens.input","-800"]]',
      '// → {"status":"retracted","retracted_by":"gw-1002-refund","period_closed":true}',
      '// → {"status":"rejected","reason":"period_closed"}',
    ]);
    const readme = readFileSync(README, 'utf8');
    const section = readme.slice(readme.indexOf('## A month from ingest to close'));
    const printed = section
      .split('\n')
      .filter((l) => l.trimStart().startsWith('// → '))
      .map((l) => l.trim());
    expect(printed).toEqual(lines);
  });
});
