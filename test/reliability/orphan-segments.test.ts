/**
 * A flush or merge whose segment write or commit fails (a full disk) leaves no bytes under a
 * segment's name that no manifest generation names (an empty file keeps the id taken). Found on a full tmpfs: each retry of a failing flush
 * left one more `raw/NNNNNNNN.useg` (partial, or complete when the manifest write failed)
 * until the next open, eating the space the disk got back.
 */
import { describe, expect, it } from 'vitest';
import type { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';
import { DAY_MS, simDb, T0, usage } from '../support/events.ts';

/** Non-empty segment files in raw/ that no manifest generation on disk names. */
function unnamedSegments(fs: SimFileSystem): string[] {
  const named = new Set<number>();
  for (const p of fs.listAll().filter((f) => /\/manifest\/manifest-\d+\.json$/.test(f))) {
    const doc = JSON.parse(new TextDecoder().decode(fs.readRaw(p))) as {
      manifest: { raw_segments: { id: number }[]; quarantine: { id: number }[] };
    };
    for (const e of [...doc.manifest.raw_segments, ...doc.manifest.quarantine]) named.add(e.id);
  }
  return fs
    .listAll()
    .filter((p) => /\/raw\/\d+\.(useg|rtx)$/.test(p) && fs.readRaw(p).byteLength > 0)
    .filter((p) => !named.has(Number(/(\d+)\.\w+$/.exec(p)?.[1])));
}

describe('a failed segment write leaves nothing under a segment name', () => {
  for (const op of ['flush', 'compact'] as const) {
    for (const [errno, where] of [
      ['ENOSPC', 'raw'],
      ['EIO', 'raw'],
      ['ENOSPC', 'manifest'],
    ] as const) {
      it(`${op}: ${errno} ${where === 'raw' ? 'when raw/ is synced' : 'when the manifest is written'}, three times in a row`, async () => {
        const sim = simDb(7, { bucketCount: 2 });
        const db = await sim.open();
        let n = 0;
        const batch = () =>
          Array.from({ length: 10 }, () => usage(n++, { timestamp_ms: T0 + (n % 3) * DAY_MS + n }));
        // A Retraction, so the merged segment has a side file too.
        const first = batch();
        await db.ingest(first);
        await db.ingest([
          {
            ...first[0],
            event_id: 'r1',
            kind: 'Retraction',
            quantity: undefined,
            correction_ref: { original_event_id: first[0].event_id, reason: 'x' },
          },
        ]);
        await db.flush();
        await db.ingest(batch());
        if (op === 'compact') await db.flush();
        // raw: the segment's bytes are written (and fsynced), its directory entry is not;
        // manifest: the segment is complete, the generation naming it cannot be written.
        const remove = sim.fs.injectFault((c) =>
          where === 'raw'
            ? c.op === 'syncDir' && c.path.endsWith('/raw')
              ? errno
              : undefined
            : c.op === 'writeFile' && c.path.includes('/manifest/manifest-')
              ? errno
              : undefined,
        );
        for (let attempt = 0; attempt < 3; attempt++) {
          await expect(op === 'flush' ? db.flush() : db.compact()).rejects.toMatchObject({
            code: errno === 'ENOSPC' ? 'USAGEDB_ERR_NO_SPACE' : 'USAGEDB_ERR_IO',
          });
          expect(unnamedSegments(sim.fs), `after failed ${op} #${attempt + 1}`).toEqual([]);
        }
        remove();
        if (op === 'flush') await db.flush();
        else expect(await db.compact()).toMatchObject({ inputSegments: 2 });
        const range = { from: T0 - DAY_MS, to: T0 + 10 * DAY_MS, metrics: ['count'] };
        expect((await db.query(range)).rows).toEqual([{ count: n + 1 }]);
        await db.close();
      });
    }
  }
});
