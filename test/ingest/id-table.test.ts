import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdSeqTable } from '../../src/ingest/id-table.ts';

/** The seqs of every entry with fingerprint h1, in probe order. */
function seqsOf(table: IdSeqTable, h1: number): number[] {
  const seqs: number[] = [];
  for (let slot = table.firstSlot(h1); slot >= 0; slot = table.nextSlot(slot, h1))
    seqs.push(table.seqAt(slot));
  return seqs;
}

describe('IdSeqTable', () => {
  it('matches a Map under random inserts and deletes, with colliding fingerprints', () => {
    // Few distinct h1 values and masks force long clusters, wrap-around and backward shifts.
    const op = fc.record({
      del: fc.boolean(),
      h1: fc.integer({ min: 0, max: 40 }).map((x) => (x * 4093) >>> 0),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 3000 }), (ops) => {
        const table = new IdSeqTable();
        const model = new Map<number, number>(); // seq -> fingerprint
        let nextSeq = 0;
        for (const o of ops) {
          const key = o.h1;
          if (o.del) {
            const victim = [...model].find(([, k]) => k === key);
            if (victim) {
              expect(table.delete(o.h1, victim[0])).toBe(true);
              model.delete(victim[0]);
            } else expect(table.delete(o.h1, 999_999)).toBe(false);
          } else {
            table.insert(o.h1, nextSeq);
            model.set(nextSeq++, key);
          }
        }
        expect(table.size).toBe(model.size);
        for (const h1 of new Set(model.values())) {
          const want = [...model].filter(([, k]) => k === h1).map(([seq]) => seq);
          expect(seqsOf(table, h1).sort((a, b) => a - b)).toEqual(want.sort((a, b) => a - b));
        }
        expect(seqsOf(table, 7)).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });
});
