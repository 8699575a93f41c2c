/**
 * The threaded wasm build in Node (`wasmThreads`): bit-for-bit the results of the single-threaded
 * build, from the ESM and the CommonJS builds of @mllm/core; the process ends by itself; no temporary
 * file is left; bad values are errors naming the option. Each thread count needs a fresh process
 * (a backend starts once per thread), so the checks run `test-fixtures/wasm-threads-child.mjs`
 * against the built packages (`pnpm test` builds first).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { initBackend, MAX_WASM_THREADS, THREADED_START_TIMEOUT_ENV_VARIABLE, WASM_THREADS_ENV_VARIABLE, wasmBackendThreads } from '../index.js';
import { skipOnBackend } from '../testing/index.js';
import { cgroupCpuQuota, prepareThreadedWasm, type ThreadedWasmStart } from './wasm-threads.js';

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
async function runChild(
  threads: string,
  format: 'esm' | 'cjs',
  unwritableTmp = false,
  sabotage?: { worker: 'exit' | 'silent'; timeoutMs?: number },
): Promise<{ result: ChildResult; leftovers: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'mllm-threads-test-'));
  try {
    // A 60 s timeout: a child kept alive by idle pthread workers fails here instead of hanging.
    const { stdout } = await run(process.execPath, [child, threads, format, ...(sabotage ? [sabotage.worker] : [])], {
      env: {
        ...process.env,
        TMPDIR: unwritableTmp ? join(dir, 'missing', 'dir') : dir,
        [WASM_THREADS_ENV_VARIABLE]: '',
        [THREADED_START_TIMEOUT_ENV_VARIABLE]: sabotage?.timeoutMs === undefined ? '' : String(sabotage.timeoutMs),
      },
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

  it('a pthread worker that ends before loading makes the start fall back to one thread at once (not wait forever)', async () => {
    const one = await runChild('1', 'esm');
    const started = Date.now();
    const { result, leftovers } = await runChild('4', 'esm', false, { worker: 'exit' });
    expect(result.threads).toBe(1);
    expect(result.reason).toMatch(/1 thread \(the 4-thread build failed: pthread worker 0 exited \(code \d+\) before it loaded the module\)/);
    expect(result.hash).toBe(one.result.hash);
    expect(result.tensors).toBe(0);
    expect(leftovers, 'temporary scripts removed').toEqual([]);
    expect(Date.now() - started, 'no start timeout was needed').toBeLessThan(30_000);
  });

  it('a start that never completes is given up after MLLM_WASM_THREADS_START_TIMEOUT_MS; one thread, same bits, the process ends', async () => {
    const one = await runChild('1', 'esm');
    const { result, leftovers } = await runChild('2', 'cjs', false, { worker: 'silent', timeoutMs: 3000 });
    expect(result.threads).toBe(1);
    expect(result.reason).toMatch(/1 thread \(the 2-thread build failed: it did not start within 3000 ms\)/);
    expect(result.hash).toBe(one.result.hash);
    expect(result.tensors).toBe(0);
    expect(leftovers, 'temporary scripts removed').toEqual([]);
  });

  it("'auto' uses the cores on the main thread (capped at 8); this test process runs the threaded build too", async () => {
    const { result } = await runChild('auto', 'esm');
    const { availableParallelism } = await import('node:os');
    const quota = cgroupCpuQuota((file) => readFileSync(file, 'utf8')) ?? Number.POSITIVE_INFINITY;
    const expected = Math.max(1, Math.min(availableParallelism(), quota, MAX_WASM_THREADS));
    expect(result.threads).toBe(expected);
    // The wasm test project starts its backend with the default (auto) in vitest-setup, so every
    // wasm test in the suite runs on this many XNNPACK threads.
    const inherited = process.env[WASM_THREADS_ENV_VARIABLE];
    if (inherited === undefined || inherited === 'auto') expect(await wasmBackendThreads()).toBe(expected);
  });
});

describe('cgroupCpuQuota (auto threads inside a container with --cpus)', () => {
  const reader = (files: Record<string, string>) => (file: string) => {
    const text = files[file];
    if (text === undefined) throw new Error(`ENOENT: ${file}`);
    return text;
  };
  it('reads cgroup v2 cpu.max, rounding up; "max" or no file means no quota', () => {
    expect(cgroupCpuQuota(reader({ '/sys/fs/cgroup/cpu.max': '200000 100000\n' }))).toBe(2);
    expect(cgroupCpuQuota(reader({ '/sys/fs/cgroup/cpu.max': '150000 100000' }))).toBe(2);
    expect(cgroupCpuQuota(reader({ '/sys/fs/cgroup/cpu.max': '50000 100000' }))).toBe(1);
    expect(cgroupCpuQuota(reader({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' }))).toBeUndefined();
    expect(cgroupCpuQuota(reader({}))).toBeUndefined();
  });
  it('falls back to cgroup v1 cfs quota/period (-1: no quota); unreadable or malformed means no quota', () => {
    const v1 = (quota: string) => reader({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': quota, '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n' });
    expect(cgroupCpuQuota(v1('400000\n'))).toBe(4);
    expect(cgroupCpuQuota(v1('-1\n'))).toBeUndefined();
    expect(cgroupCpuQuota(v1('garbage'))).toBeUndefined();
    expect(cgroupCpuQuota(reader({ '/sys/fs/cgroup/cpu.max': 'nonsense', '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '300000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' }))).toBe(3);
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

  it('rejects a bad MLLM_WASM_THREADS_START_TIMEOUT_MS with its name and value', async () => {
    const previous = process.env[THREADED_START_TIMEOUT_ENV_VARIABLE];
    try {
      for (const bad of ['soon', '0', '-5', '1.5']) {
        process.env[THREADED_START_TIMEOUT_ENV_VARIABLE] = bad;
        await expect(initBackend('cpu')).rejects.toThrow(
          new RegExp(`MLLM_WASM_THREADS_START_TIMEOUT_MS must be a positive integer \\(milliseconds\\), got "${bad.replace('.', '\\.')}"`),
        );
      }
    } finally {
      if (previous === undefined) delete process.env[THREADED_START_TIMEOUT_ENV_VARIABLE];
      else process.env[THREADED_START_TIMEOUT_ENV_VARIABLE] = previous;
    }
  });
});

// In-process checks of the start's bookkeeping (no wasm module is started; once is enough).
const skipBookkeeping = skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'patches process globals; run once, in the cpu project');

describe.skipIf(skipBookkeeping)('prepareThreadedWasm bookkeeping', () => {
  const workerText = `${'/* WasmBackendModuleThreadedSimd(Module) */'}\nrequire('worker_threads').parentPort.postMessage({ cmd: 'loaded' });`;
  const fakeModule = { setThreadsCount: (_threads: number) => {} };

  async function withStart<T>(body: (start: ThreadedWasmStart, wt: typeof import('node:worker_threads')) => Promise<T>): Promise<T> {
    await import('@tensorflow/tfjs-backend-wasm'); // registers the flag the start sets
    const flag = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    const wt = (await import('node:worker_threads')).default as unknown as typeof import('node:worker_threads');
    const start = await prepareThreadedWasm(fakeModule, 2);
    try {
      return await body(start, wt);
    } finally {
      start.abandon();
      start.restore();
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', flag);
    }
  }

  it('writes the worker script once, however often its URL is asked for, and restore() puts every global back', async () => {
    const originals = { Blob: globalThis.Blob, createObjectURL: URL.createObjectURL, Worker: (await import('node:worker_threads')).default.Worker };
    const os = (await import('node:os')).default;
    const originalCpus = os.cpus;
    let scriptPath = '';
    await withStart(async () => {
      expect(os.cpus()).toHaveLength(4); // the C++ side halves it: 2 threads
      scriptPath = URL.createObjectURL(new Blob([workerText]));
      expect(readFileSync(scriptPath, 'utf8')).toContain(workerText);
      // A starting worker may be reading the file now: asking again must not rewrite it.
      writeFileSync(scriptPath, 'MARKER');
      for (let i = 0; i < 7; i++) expect(URL.createObjectURL(new Blob([workerText]))).toBe(scriptPath);
      expect(readFileSync(scriptPath, 'utf8')).toBe('MARKER');
    });
    expect(globalThis.Blob).toBe(originals.Blob);
    expect(URL.createObjectURL).toBe(originals.createObjectURL);
    expect((await import('node:worker_threads')).default.Worker).toBe(originals.Worker);
    expect(os.cpus).toBe(originalCpus);
    expect(existsSync(scriptPath), 'temporary scripts removed').toBe(false);
  });

  it("'failed' rejects when a pthread worker ends before it loaded; a loaded worker's exit does not count", async () => {
    await withStart(async (start, wt) => {
      const loaded = new wt.Worker(`require('worker_threads').parentPort.postMessage({ cmd: 'loaded' });`, { eval: true });
      await new Promise((resolve) => loaded.once('exit', resolve));
      new wt.Worker('process.exit(3)', { eval: true }); // eslint-disable-line no-new
      await expect(start.failed).rejects.toThrow('pthread worker 1 exited (code 3) before it loaded the module');
    });
  });

  it("a worker error while starting fails the start instead of throwing from emscripten's handler; after settle() it reaches that handler", async () => {
    await withStart(async (start, wt) => {
      const handled: string[] = [];
      const failing = new wt.Worker(`throw new Error('broken script')`, { eval: true });
      failing.on('error', (error: Error) => {
        handled.push(error.message);
        throw error; // what emscripten's onerror does
      });
      await expect(start.failed).rejects.toThrow('pthread worker failed while starting: broken script');
      expect(handled).toEqual([]);
      start.settle();
      const later = new wt.Worker(`throw new Error('after start')`, { eval: true });
      later.on('error', (error: Error) => handled.push(error.message));
      await new Promise((resolve) => later.once('exit', resolve));
      expect(handled).toEqual(['after start']);
    });
  });
});
