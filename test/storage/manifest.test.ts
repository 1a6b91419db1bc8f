import { describe, expect, it } from 'vitest';
import { SimFileSystem } from '../../src/storage/fs/sim-file-system.ts';
import {
  decodeManifest,
  encodeManifest,
  type ManifestState,
  ManifestStore,
  manifestFileName,
} from '../../src/storage/manifest.ts';

function state(generation: number): ManifestState {
  return {
    format_version: 2,
    generation,
    database_id: 'd',
    bucket_count: 64,
    created_at_ms: 1,
    next_segment_id: generation,
    wal_start: 1,
    raw_segments: [],
    rollup_segments: [],
    periods: [],
    quarantine: [],
  };
}

describe('manifest', () => {
  it('encodes and verifies a generation', () => {
    expect(decodeManifest(encodeManifest(state(3)), 3).state).toEqual(state(3));
    expect(() => decodeManifest(encodeManifest(state(3)), 4)).toThrow(/file name/);
  });

  it('detects a flipped bit anywhere', () => {
    const bytes = encodeManifest(state(5));
    for (let i = 0; i < bytes.length; i += 7) {
      const copy = new Uint8Array(bytes);
      copy[i] ^= 0x04;
      expect(() => decodeManifest(copy, 5)).toThrow();
    }
  });

  it('loads the newest valid generation and rolls back past a corrupt one', async () => {
    const fs = new SimFileSystem();
    await fs.mkdirp('/m');
    const store = new ManifestStore(fs, '/m');
    for (let g = 1; g <= 3; g++) await store.commit(state(g));
    expect((await store.load())?.state.generation).toBe(3);
    fs.flipBit(`/m/${manifestFileName(3)}`, 20, 1);
    const loaded = await store.load();
    expect(loaded?.state.generation).toBe(2);
    expect(loaded?.skippedGenerations).toEqual([3]);
  });

  it('refuses to load when no generation is valid', async () => {
    const fs = new SimFileSystem();
    await fs.mkdirp('/m');
    const store = new ManifestStore(fs, '/m');
    await store.commit(state(1));
    fs.flipBit(`/m/${manifestFileName(1)}`, 30, 0);
    await expect(store.load()).rejects.toThrow(/no valid manifest/);
  });

  it('commit is atomic across a crash at every step', async () => {
    for (let step = 1; step <= 12; step++) {
      const fs = new SimFileSystem();
      await fs.mkdirp('/m');
      fs.markAllDurable();
      const store = new ManifestStore(fs, '/m');
      await store.commit(state(1));
      fs.crashAt(fs.callCount + step);
      await store.commit(state(2)).catch(() => undefined);
      if (fs.halted) fs.restart();
      else fs.clearFaults();
      const g = (await new ManifestStore(fs, '/m').load())?.state.generation;
      expect([1, 2]).toContain(g);
    }
  });

  it('keeps only the last 10 generations', async () => {
    const fs = new SimFileSystem();
    await fs.mkdirp('/m');
    const store = new ManifestStore(fs, '/m');
    for (let g = 1; g <= 14; g++) await store.commit(state(g));
    await store.prune(14);
    const names = (await fs.readdir('/m')).filter((n) => n.startsWith('manifest-'));
    expect(names.length).toBe(10);
    expect(names[0]).toBe(manifestFileName(5));
  });
});
