/** One output directory per invocation, so no run's `results.json` is ever overwritten by another. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Create `<base>/runs/<UTC time>-<label>` (with `-2`, `-3`, … when that exists already; the directory
 * is created exclusively, so two runs started in the same second still get different ones) and return
 * its path. `now` is for tests.
 */
export async function createRunDirectory(base: string, label: string, now: Date = new Date()): Promise<string> {
  if (!/^[A-Za-z0-9._-]+$/.test(label)) throw new Error(`createRunDirectory: label must be letters, digits, '.', '_' or '-', got '${label}'`);
  const stamp = now.toISOString().replace(/[:]/g, '').replace(/\.\d+Z$/, 'Z'); // 2026-12-06T061500Z
  await mkdir(join(base, 'runs'), { recursive: true });
  for (let n = 1; ; n++) {
    const dir = join(base, 'runs', `${stamp}-${label}${n === 1 ? '' : `-${n}`}`);
    try {
      await mkdir(dir); // not recursive: fails with EEXIST instead of reusing another run's directory
      return dir;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
}
