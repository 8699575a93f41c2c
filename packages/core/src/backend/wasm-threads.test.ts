/**
 * The threaded wasm build in Node (`wasmThreads`): bit-for-bit the results of the single-threaded
 * build, from the ESM and the CommonJS builds of @mllm/core; the process ends by itself; no temporary
 * file is left; bad values are errors naming the option. Each thread count needs a fresh process
 * (a backend starts once per thread), so the checks run `test-fixtures/wasm-threads-child.mjs`
 * against the built packages (`pnpm test` builds first).
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { initBackend, MAX_WASM_THREADS, WASM_THREADS_ENV_VARIABLE, wasmBackendThreads } from '../index.js';
import { skipOnBackend } from '../testing/index.js';

const child = fileURLToPath(new URL('../../test-fixtures/wasm-threads-child.mjs', import.meta.url));
const run = promisify(execFile);

interface ChildResult {
  format: string;
  threads: number;
  reason: string;
  hash: number;
  tensors: number;
}

/** Run the child with its own TMPDIR; returns its report and what it left in that directory. */
async function runChild(threads: string, format: 'esm' | 'cjs', unwritableTmp = false): Promise<{ result: ChildResult; leftovers: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'mllm-threads-test-'));
  try {
    // A 60 s timeout: a child kept alive by idle pthread workers fails here instead of hanging.
    const { stdout } = await run(process.execPath, [child, threads, format], {
      env: { ...process.env, TMPDIR: unwritableTmp ? join(dir, 'missing', 'dir') : dir, [WASM_THREADS_ENV_VARIABLE]: '' },
      timeout: 60_000,
    });
    const line = stdout.trim().split('\n').pop()!;
    return { result: JSON.parse(line) as ChildResult, leftovers: readdirSync(dir) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Node-process checks of the wasm build; once is enough (the wasm project).
const skip = skipOnBackend(['cpu', 'webgpu', 'tensorflow'], 'spawns its own wasm processes; run once, in the wasm project');

describe.skipIf(skip)('threaded wasm (XNNPACK on several threads in Node)', () => {
  it('1, 2 and 4 threads give the same float32 bits for products, softmax and gradients; ESM and CJS alike', async () => {
    const one = await runChild('1', 'esm');
    expect(one.result.threads).toBe(1);
    expect(one.result.reason).toMatch(/XNNPACK WebAssembly kernels, 1 thread/);
    for (const [threads, format] of [['2', 'esm'], ['4', 'esm'], ['2', 'cjs']] as const) {
      const { result, leftovers } = await runChild(threads, format);
      expect(result.format).toBe(format);
      expect(result.threads, `${threads} threads (${format})`).toBe(Number(threads));
      expect(result.reason).toMatch(new RegExp(`XNNPACK WebAssembly kernels, ${threads} threads`));
      expect(result.hash, `${threads} threads (${format}): result bits`).toBe(one.result.hash);
      expect(result.tensors).toBe(0);
      expect(leftovers, 'temporary scripts removed').toEqual([]);
    }
  });

  it('without a writable temporary directory it starts one thread, says why, and computes the same bits', async () => {
    const one = await runChild('1', 'esm');
    const { result } = await runChild('2', 'esm', true);
    expect(result.threads).toBe(1);
    expect(result.reason).toMatch(/1 thread \(the 2-thread build could not be prepared: .*mkdtemp/);
    expect(result.hash).toBe(one.result.hash);
  });

  it("'auto' uses the cores on the main thread (capped at 8); this test process runs the threaded build too", async () => {
    const { result } = await runChild('auto', 'esm');
    const { availableParallelism } = await import('node:os');
    const expected = Math.max(1, Math.min(availableParallelism(), MAX_WASM_THREADS));
    expect(result.threads).toBe(expected);
    // The wasm test project starts its backend with the default (auto) in vitest-setup, so every
    // wasm test in the suite runs on this many XNNPACK threads.
    const inherited = process.env[WASM_THREADS_ENV_VARIABLE];
    if (inherited === undefined || inherited === 'auto') expect(await wasmBackendThreads()).toBe(expected);
  });
});

describe('wasmThreads validation', () => {
  it('rejects bad values with the option name, the accepted range and the value', async () => {
    await expect(initBackend('cpu', { wasmThreads: 0 })).rejects.toThrow(/options\.wasmThreads must be 'auto' or an integer in \[1, 8\], got 0/);
    await expect(initBackend('cpu', { wasmThreads: 2.5 as number })).rejects.toThrow(/got 2\.5/);
    const previous = process.env[WASM_THREADS_ENV_VARIABLE];
    process.env[WASM_THREADS_ENV_VARIABLE] = 'lots';
    try {
      await expect(initBackend('cpu')).rejects.toThrow(/MLLM_WASM_THREADS must be 'auto' or an integer in \[1, 8\], got "lots"/);
    } finally {
      if (previous === undefined) delete process.env[WASM_THREADS_ENV_VARIABLE];
      else process.env[WASM_THREADS_ENV_VARIABLE] = previous;
    }
  });
});
