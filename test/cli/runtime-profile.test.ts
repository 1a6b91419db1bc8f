import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUNTIME_ENV, RUNTIME_NODE_FLAGS, RUNTIME_SHEBANG } from '../../src/cli/runtime-profile.ts';

const REPO = join(import.meta.dirname, '..', '..');

describe('runtime profile', () => {
  it('is the shebang of the usagedb binary', () => {
    const firstLine = readFileSync(join(REPO, 'src', 'cli', 'main.ts'), 'utf8').split('\n')[0];
    expect(firstLine).toBe(RUNTIME_SHEBANG);
  });

  it('is how npm start and the 10M ingest script run Node', () => {
    const scripts = (
      JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
    ).scripts;
    for (const name of ['start', 'bench:scale']) {
      for (const flag of RUNTIME_NODE_FLAGS) expect(scripts[name]).toContain(flag);
      for (const [k, v] of Object.entries(RUNTIME_ENV)) expect(scripts[name]).toContain(`${k}=${v}`);
    }
  });
});
