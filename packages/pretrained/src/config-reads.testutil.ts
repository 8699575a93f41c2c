/** Test helper: how many times a load reads a checkpoint directory's `config.json`. */
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { vi } from 'vitest';

/**
 * Runs `load` with a spy on `node:fs/promises`' `readFile` (the real one underneath; `syncBuiltinESMExports`
 * makes every importer of the module, `@mllm/core`'s `nodeFilePromises` included, see it) and counts the
 * reads of `<dir>/config.json`.
 */
export async function countConfigReads<T>(dir: string, load: () => Promise<T>): Promise<{ result: T; reads: number }> {
  const spy = vi.spyOn(fsPromises, 'readFile');
  syncBuiltinESMExports();
  try {
    const result = await load();
    return { result, reads: spy.mock.calls.filter(([path]) => path === join(dir, 'config.json')).length };
  } finally {
    spy.mockRestore();
    syncBuiltinESMExports();
  }
}
