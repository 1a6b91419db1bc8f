import { describe, expect, it } from 'vitest';
import { type EventColumns, NULL_CODE } from '../../../src/model/columns.ts';
import { hash128 } from '../../../src/model/hash.ts';
import { encodeSegment } from '../../../src/storage/segment/segment-writer.ts';
import { realisticRows, rowsToColumns, sortRows } from './generate-columns.ts';

const INFO = { segmentId: 1, day: '2026-05-14', bucket: 0, createdAtMs: 1 };

function columns(n = 50): EventColumns {
  return rowsToColumns(realisticRows({ rows: n, seed: 21 }));
}

describe('encodeSegment preconditions', () => {
  it('rejects rows out of segment order, naming the rows', () => {
    const rows = realisticRows({ rows: 50, seed: 21 });
    const swapped = [...rows];
    [swapped[10], swapped[40]] = [swapped[40], swapped[10]];
    expect(() => encodeSegment(rowsToColumns(swapped), INFO)).toThrow(
      /rows \d+ and \d+ are not sorted by \(account_id, product_id, meter_id, model_id, timestamp_ms\)/,
    );
    const reversedTime = sortRows(rows).map((r, i) => (i === 1 ? { ...r, timestamp_ms: 1 } : r));
    const sameKeys =
      reversedTime[0].account_id === reversedTime[1].account_id &&
      reversedTime[0].meter_id === reversedTime[1].meter_id;
    if (sameKeys) expect(() => encodeSegment(rowsToColumns(reversedTime), INFO)).toThrow(/not sorted/);
  });

  it('compares string values, not input dictionary codes, and puts a null model first', () => {
    const rows = realisticRows({ rows: 3, seed: 2 }).map((r, i) => ({
      ...r,
      account_id: 'acct',
      product_id: 'p',
      meter_id: 'm',
      model_id: [null, 'a', 'b'][i],
      timestamp_ms: 100 - i, // later models may be earlier in time
    }));
    const cols = rowsToColumns(rows);
    // Reverse the model dictionary: codes now descend while the values ascend.
    cols.model_id = { dict: ['b', 'a'], codes: Uint32Array.of(NULL_CODE, 1, 0) };
    expect(() => encodeSegment(cols, INFO)).not.toThrow();
    const modelFirstNotNull = rowsToColumns([rows[1], rows[0], rows[2]]);
    expect(() => encodeSegment(modelFirstNotNull, INFO)).toThrow(/not sorted/);
  });

  it('rejects an empty segment, duplicate event ids and ragged columns', () => {
    const empty = rowsToColumns([]);
    expect(() => encodeSegment(empty, INFO)).toThrow(/rowCount 0/);
    const dup = columns();
    dup.event_id[7] = dup.event_id[3];
    expect(() => encodeSegment(dup, INFO)).toThrow(/appears twice/);
    const ragged = columns();
    ragged.timestamp_ms = ragged.timestamp_ms.subarray(1);
    expect(() => encodeSegment(ragged, INFO)).toThrow(/timestamp_ms has 49 rows, expected 50/);
  });

  it('tells two ids whose index hashes collide from one id written twice', () => {
    // Two ids with the same 32-bit index hash (word h3), found by a birthday search.
    const byHash = new Map<number, string>();
    let pair: [string, string] | null = null;
    for (let i = 0; pair === null; i++) {
      const id = `collide-${i}`;
      const h3 = hash128(id).h3;
      const other = byHash.get(h3);
      if (other !== undefined) pair = [other, id];
      byHash.set(h3, id);
    }
    const twoIds = columns(3);
    [twoIds.event_id[0], twoIds.event_id[2]] = pair;
    expect(() => encodeSegment(twoIds, INFO)).not.toThrow();
    twoIds.event_id[1] = pair[0];
    expect(() => encodeSegment(twoIds, INFO)).toThrow(/"collide-\d+" appears twice/);
  });

  it('rejects values outside the data model', () => {
    const nullAccount = columns();
    nullAccount.account_id.codes[0] = NULL_CODE;
    expect(() => encodeSegment(nullAccount, INFO)).toThrow(/account_id is required/);
    const badCode = columns();
    badCode.meter_id.codes[0] = 999;
    expect(() => encodeSegment(badCode, INFO)).toThrow(/outside its dictionary/);
    const badKind = columns();
    badKind.kind[0] = 3;
    expect(() => encodeSegment(badKind, INFO)).toThrow(/kind code 3/);
    const badTs = columns();
    badTs.timestamp_ms[0] = 1.5;
    expect(() => encodeSegment(badTs, INFO)).toThrow(/timestamp_ms/);
    const badQuantity = columns();
    badQuantity.quantity.values[0] = 0.5;
    expect(() => encodeSegment(badQuantity, INFO)).toThrow(/quantity/);
    const surrogate = columns();
    surrogate.event_id[0] = 'evt_\uD800';
    expect(() => encodeSegment(surrogate, INFO)).toThrow(/lone surrogate/);
  });

  it('rejects bad segment info and options', () => {
    expect(() => encodeSegment(columns(), { ...INFO, day: '2026-02-30' })).toThrow(/YYYY-MM-DD/);
    expect(() => encodeSegment(columns(), { ...INFO, bucket: -1 })).toThrow(/bucket/);
    expect(() => encodeSegment(columns(), INFO, { blockRows: 0 })).toThrow(/blockRows/);
    expect(() => encodeSegment(columns(), INFO, { zstdLevel: 0 })).toThrow(/zstdLevel/);
    expect(() => encodeSegment(columns(), INFO, { bloomBitsPerKey: 0 })).toThrow(/bloomBitsPerKey/);
  });

  it('is deterministic: the same input gives the same bytes', () => {
    const a = encodeSegment(columns(500), INFO);
    const b = encodeSegment(columns(500), INFO);
    expect(a.bytes).toEqual(b.bytes);
    expect(a.checksum).toBe(b.checksum);
  });
});
