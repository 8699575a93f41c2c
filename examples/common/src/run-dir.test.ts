import { describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { createRunDirectory } from './run-dir.js';

describe('createRunDirectory', () => {
  it('gives every invocation its own directory, even in the same second', async () => {
    const base = mkdtempSync(join(tmpdir(), 'run-dir-'));
    const now = new Date('2026-12-06T06:15:00.123Z');
    const first = await createRunDirectory(base, 'default', now);
    writeFileSync(join(first, 'results.json'), '{"run":1}');
    const second = await createRunDirectory(base, 'default', now);
    const third = await createRunDirectory(base, 'full', now);
    expect(basename(first)).toBe('2026-12-06T061500Z-default');
    expect(basename(second)).toBe('2026-12-06T061500Z-default-2');
    expect(basename(third)).toBe('2026-12-06T061500Z-full');
    expect(dirname(first)).toBe(join(base, 'runs'));
    expect(readdirSync(join(base, 'runs')).sort()).toEqual(['2026-12-06T061500Z-default', '2026-12-06T061500Z-default-2', '2026-12-06T061500Z-full']);
    expect(existsSync(join(first, 'results.json'))).toBe(true);
    expect(existsSync(join(second, 'results.json'))).toBe(false);
  });
  it('refuses a label that is not a plain name', async () => {
    await expect(createRunDirectory(tmpdir(), '../x')).rejects.toThrow(/label must be letters, digits.*got '\.\.\/x'/);
  });
});
