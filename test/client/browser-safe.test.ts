/**
 * The client's built files (dist/client, run `npm run build` first) import nothing but each
 * other: no `node:*` module, no package, so they load in browsers and edge runtimes.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CLIENT_DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'client');

/** Every module specifier of an ES module's static imports, re-exports and dynamic imports. */
function specifiers(source: string): string[] {
  const out: string[] = [];
  const patterns = [
    /\bimport\s+(?:[^'"()]*?\sfrom\s+)?['"]([^'"]+)['"]/g,
    /\bexport\s+[^'"]*?\sfrom\s+['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const p of patterns) for (const m of source.matchAll(p)) out.push(m[1]);
  return out;
}

describe('usagedb/client build', () => {
  it('imports only its own relative files', () => {
    const files = readdirSync(CLIENT_DIST).filter((f) => f.endsWith('.js'));
    expect(files).toContain('index.js');
    for (const f of files) {
      const source = readFileSync(join(CLIENT_DIST, f), 'utf8');
      for (const spec of specifiers(source)) {
        expect(spec, `${f} imports ${spec}`).toMatch(/^\.\/[A-Za-z0-9_-]+\.js$/);
        expect(files, `${f} imports ${spec}`).toContain(spec.slice(2));
      }
      expect(source).not.toMatch(/\bprocess\.|\bBuffer\b|__dirname/);
    }
  });

  it('the package exports usagedb/client from dist', () => {
    const pkg = JSON.parse(readFileSync(join(CLIENT_DIST, '..', '..', 'package.json'), 'utf8')) as {
      exports: Record<string, { default: string }>;
    };
    expect(pkg.exports['./client'].default).toBe('./dist/client/index.js');
  });
});
