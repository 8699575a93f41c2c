import { createRequire } from 'node:module';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { describeBackendChoice, initBackend, BACKEND_PREFERENCE, type BackendName } from '../index.js';
import { expectClose, testBackend, backendTolerance } from '../testing/index.js';
import { activateBackend } from './activate-backend.js';
import { ensureGradients, gradientsRegistered } from './gradients.js';
import { loadTensorflowPackage } from './tensorflow-backend.js';
import { nodeWasmDirectory } from './wasm-backend.js';
import { summarizeAdapter } from './webgpu-backend.js';
import { notInstalled } from './start-result.js';

// This file switches backends; every test project gets its own backend back afterwards.
afterAll(async () => {
  await initBackend(testBackend());
});

const tfjsNodeAvailable = (await loadTensorflowPackage()).ok;
const SWITCHABLE: BackendName[] = ['cpu', 'wasm', 'webgpu'];

/** Deterministic values in [-1, 1) (LCG), independent of tfjs. */
function values(seed: number, n: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length: n }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.fround((state / 2 ** 32) * 2 - 1);
  });
}

/** [M, K]·[K, N] in float64. */
function matMul64(a: number[], b: number[], M: number, K: number, N: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
    let sum = 0;
    for (let k = 0; k < K; k++) sum += a[i * K + k]! * b[k * N + j]!;
    out[i * N + j] = sum;
  }
  return out;
}

/** Row-wise softmax of [R, C] in float64. */
function softmax64(x: number[], R: number, C: number): Float64Array {
  const out = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    const row = x.slice(r * C, (r + 1) * C);
    const max = Math.max(...row);
    const exps = row.map((v) => Math.exp(v - max));
    const z = exps.reduce((s, v) => s + v, 0);
    exps.forEach((v, c) => (out[r * C + c] = v / z));
  }
  return out;
}

describe('initBackend by name', () => {
  it.each(SWITCHABLE)('starts %s, reports it, and it computes', async (name) => {
    const choice = await initBackend(name);
    expect(choice.backend).toBe(name);
    expect(choice.requested).toBe(name);
    expect(choice.requestSource).toBe('argument');
    expect(tf.getBackend()).toBe(name);
    expect(choice.tried).toEqual([{ name, available: true, why: expect.any(String) }]);
    expect(choice.reason).toContain(`${name} requested`);
    const product = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5], [6]]));
    expect(Array.from(product.dataSync())).toEqual([17, 39]);
    tf.dispose(product);
  });

  it('webgpu runs on a real WebGPU device (Dawn in Node, SwiftShader without a GPU)', async () => {
    const choice = await initBackend('webgpu');
    expect(choice.webgpuAdapter).toBeDefined();
    const backend = tf.backend() as unknown as { device?: unknown; adapterInfo?: unknown };
    expect(backend.device).toBeDefined();
    expect(choice.reason).toMatch(/Dawn/);
    // A tensor large enough to stay on the GPU (tfjs forwards tiny CPU-resident ops to the CPU).
    const a = tf.tensor2d(values(1, 48 * 40), [48, 40]);
    const b = tf.tensor2d(values(2, 40 * 32), [40, 32]);
    const product = tf.matMul(a, b);
    expect((tf.engine() as unknown as { state: { tensorInfo: WeakMap<object, { backend: unknown }> } }).state.tensorInfo.get(product.dataId)!.backend)
      .toBe(tf.backend());
    const synchronous = product.dataSync();
    expectClose(synchronous, matMul64(values(1, 48 * 40), values(2, 40 * 32), 48, 40, 32), backendTolerance('webgpu'));
    // Synchronous reads of int32 and bool results, produced on the GPU.
    const big = tf.range(0, 2000, 1, 'int32');
    const plusOne = tf.add(big, tf.scalar(1, 'int32'));
    const isEven = tf.equal(tf.mod(big, 2), tf.scalar(0, 'int32'));
    expect(Array.from(plusOne.dataSync().slice(0, 3))).toEqual([1, 2, 3]);
    expect(plusOne.dtype).toBe('int32');
    expect(Array.from(isEven.dataSync().slice(0, 4))).toEqual([1, 0, 1, 0]);
    tf.dispose([a, b, product, big, plusOne, isEven]);
  });

  // With tfjs-node installed, tensorflow starts (tensorflow.test.ts covers it) and this case needs another absent backend.
  it.skipIf(tfjsNodeAvailable)('a backend that cannot start throws a clear error and leaves the active backend in place', async () => {
    await initBackend('cpu');
    await expect(initBackend('tensorflow')).rejects.toThrow(
      /initBackend\('tensorflow'\): the tensorflow backend cannot start: tfjs-node is not importable.*The active backend is still cpu/,
    );
    expect(tf.getBackend()).toBe('cpu');
  });

  it('activateBackend checks setBackend’s result and restores the previous backend on failure', async () => {
    await initBackend('cpu');
    tf.registerBackend('mllm-broken-for-test', async () => {
      throw new Error('factory exploded on purpose');
    });
    try {
      const result = await activateBackend('mllm-broken-for-test');
      expect(result.ok).toBe(false);
      expect(result.why).toMatch(/factory exploded on purpose/);
      expect(tf.getBackend()).toBe('cpu');
      const sum = tf.add(tf.scalar(2), tf.scalar(3));
      expect(sum.dataSync()[0]).toBe(5);
      sum.dispose();
      expect((await activateBackend('not-registered-anywhere')).why).toMatch(/not registered/);
    } finally {
      tf.removeBackend('mllm-broken-for-test');
    }
  });
});

describe('initBackend auto', () => {
  it('prefers tensorflow > webgpu > wasm > cpu and says why each better one was passed over', async () => {
    const choice = await initBackend('auto');
    expect(choice.requested).toBe('auto');
    const names = choice.tried.map((t) => t.name);
    expect(names).toEqual(BACKEND_PREFERENCE.slice(0, names.length));
    expect(choice.tried.at(-1)).toMatchObject({ name: choice.backend, available: true });
    for (const attempt of choice.tried.slice(0, -1)) {
      expect(attempt.available).toBe(false);
      expect(attempt.why.length).toBeGreaterThan(10);
      expect(choice.reason).toContain(`${attempt.name} (${attempt.why})`);
    }
    expect(tf.getBackend()).toBe(choice.backend);
    if (!tfjsNodeAvailable) {
      expect(choice.tried[0]).toMatchObject({ name: 'tensorflow', available: false, why: expect.stringMatching(/tfjs-node/) });
    }
    if (choice.webgpuAdapter?.isFallbackAdapter) {
      // A software adapter (SwiftShader here) is slower than wasm: auto must pass over it.
      expect(choice.backend).not.toBe('webgpu');
      expect(choice.tried.find((t) => t.name === 'webgpu')!.why).toMatch(/software adapter.*slower than wasm/);
    }
    if (!tfjsNodeAvailable && choice.webgpuAdapter?.isFallbackAdapter) expect(choice.backend).toBe('wasm');
    const text = describeBackendChoice(choice);
    expect(text.split('\n')[0]).toBe(`@mllm backend: ${choice.backend} (requested auto, argument)`);
    for (const attempt of choice.tried) expect(text).toContain(`${attempt.available ? '✓' : '✗'} ${attempt.name}: ${attempt.why}`);
  });

  it('with allowFallbackAdapter, auto takes a software WebGPU adapter over wasm', async () => {
    const choice = await initBackend('auto', { allowFallbackAdapter: true });
    if (tfjsNodeAvailable) expect(choice.backend).toBe('tensorflow');
    else if (choice.webgpuAdapter) expect(choice.backend).toBe('webgpu');
    else expect(choice.backend).not.toBe('webgpu');
  });
});

describe('initBackend names and MLLM_BACKEND', () => {
  const saved = process.env.MLLM_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.MLLM_BACKEND;
    else process.env.MLLM_BACKEND = saved;
  });

  it('rejects an unknown name, naming the accepted ones and the value', async () => {
    // Type-level check (run by `pnpm typecheck`): a typo does not compile; if `name` were widened to
    // `string` again these @ts-expect-error lines would be unused, which tsc reports as an error.
    // @ts-expect-error 'webgl' is not a BackendRequest
    await expect(initBackend('webgl')).rejects.toThrow(
      'initBackend: unknown backend name "webgl"; expected one of auto, cpu, wasm, webgpu, tensorflow',
    );
    // @ts-expect-error '' is not a BackendRequest
    await expect(initBackend('')).rejects.toThrow(/unknown backend name ""/);
  });

  it('accepts names case-insensitively', async () => {
    // Plain JavaScript callers (or a value read from a config file) may pass any spelling at run time.
    // @ts-expect-error ' CPU ' is not a BackendRequest in the types
    expect((await initBackend(' CPU ')).backend).toBe('cpu');
  });

  it('reads MLLM_BACKEND when no name is given; an explicit name wins', async () => {
    process.env.MLLM_BACKEND = 'cpu';
    const fromEnvironment = await initBackend();
    expect(fromEnvironment).toMatchObject({ backend: 'cpu', requested: 'cpu', requestSource: 'MLLM_BACKEND' });
    expect(fromEnvironment.reason).toContain('cpu requested (from MLLM_BACKEND)');
    const explicit = await initBackend('wasm');
    expect(explicit).toMatchObject({ backend: 'wasm', requestSource: 'argument' });
    process.env.MLLM_BACKEND = 'tpu';
    await expect(initBackend()).rejects.toThrow('initBackend: unknown backend MLLM_BACKEND "tpu"');
    delete process.env.MLLM_BACKEND;
    expect((await initBackend()).requestSource).toBe('default');
  });
});

describe('backends agree', () => {
  const M = 5, K = 7, N = 6;
  const a = values(11, M * K);
  const b = values(12, K * N);
  const logits = values(13, 4 * 9).map((v) => 4 * v);
  const expectedProduct = matMul64(a, b, M, K, N);
  const expectedSoftmax = softmax64(logits, 4, 9);

  it('matMul, softmax and the matMul gradient match float64 and each other on cpu, wasm and webgpu', async () => {
    const results = new Map<BackendName, { product: Float32Array; softmax: Float32Array; gradient: Float32Array }>();
    for (const name of SWITCHABLE) {
      await initBackend(name);
      const result = tf.tidy(() => {
        const A = tf.tensor2d(a, [M, K]);
        const B = tf.tensor2d(b, [K, N]);
        // d/dA sum(A·B) = 1·Bᵀ: every row of the gradient is the row sums of B.
        const gradient = tf.grad((x: tf.Tensor) => tf.sum(tf.matMul(x as tf.Tensor2D, B)))(A);
        return {
          product: tf.matMul(A, B).dataSync() as Float32Array,
          softmax: tf.softmax(tf.tensor2d(logits, [4, 9])).dataSync() as Float32Array,
          gradient: gradient.dataSync() as Float32Array,
        };
      });
      const tolerance = backendTolerance(name);
      expectClose(result.product, expectedProduct, { ...tolerance, label: `${name} matMul` });
      expectClose(result.softmax, expectedSoftmax, { ...tolerance, label: `${name} softmax` });
      const rowSums = Array.from({ length: K }, (_, k) => b.slice(k * N, (k + 1) * N).reduce((s, v) => s + v, 0));
      expectClose(result.gradient, Array.from({ length: M }, () => rowSums).flat(), { ...tolerance, label: `${name} gradient` });
      results.set(name, result);
    }
    const cpu = results.get('cpu')!;
    for (const name of ['wasm', 'webgpu'] as const) {
      expectClose(results.get(name)!.product, cpu.product, { rtol: 1e-5, atol: 1e-5, label: `${name} vs cpu matMul` });
      expectClose(results.get(name)!.softmax, cpu.softmax, { rtol: 1e-5, atol: 1e-6, label: `${name} vs cpu softmax` });
    }
  });
});

describe('gradients and wasm binaries', () => {
  it('gradients are registered (tfjs-core alone has none)', async () => {
    expect(gradientsRegistered()).toBe(true);
    expect(await ensureGradients()).toBe('already registered');
    expect(tf.getGradient('BatchMatMul')).toBeDefined();
  });

  it('the wasm binaries resolve from node_modules (absolute directory, no network)', async () => {
    const fs = await import('node:fs');
    const path = await import('node:path');
    const directory = await nodeWasmDirectory();
    expect(directory).toMatch(/tfjs-backend-wasm[\\/]dist[\\/]$/);
    expect(path.isAbsolute(directory!)).toBe(true);
    for (const file of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) {
      expect(fs.existsSync(path.join(directory!, file))).toBe(true);
    }
    const choice = await initBackend('wasm');
    expect(choice.tried[0]!.why).toMatch(/XNNPACK/);
  });
});

describe('WebGPU adapter classification', () => {
  it('detects software fallback adapters from info.isFallbackAdapter, the old adapter flag, or the name', async () => {
    expect((await summarizeAdapter({ info: { vendor: 'google', architecture: 'swiftshader', isFallbackAdapter: true } })).isFallbackAdapter).toBe(true);
    expect((await summarizeAdapter({ info: { vendor: 'google', architecture: 'swiftshader' } })).isFallbackAdapter).toBe(true);
    expect((await summarizeAdapter({ isFallbackAdapter: true, info: { vendor: 'x' } })).isFallbackAdapter).toBe(true);
    expect((await summarizeAdapter({ info: { vendor: 'mesa', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' } })).isFallbackAdapter).toBe(true);
    const hardware = await summarizeAdapter({ info: { vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100', isFallbackAdapter: false } });
    expect(hardware).toEqual({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H100', isFallbackAdapter: false });
    const legacy = await summarizeAdapter({ requestAdapterInfo: async () => ({ vendor: 'intel', architecture: 'gen-12lp' }) });
    expect(legacy).toMatchObject({ vendor: 'intel', architecture: 'gen-12lp', isFallbackAdapter: false });
  });
});

describe('a backend package that is not installed', () => {
  // tfjs-node is not a dependency of this workspace; where someone installed it this case is skipped.
  it.skipIf(resolvesTfjsNode())('names the npm install command to run, pinned to the tfjs-core version', async () => {
    const before = tf.getBackend();
    await expect(initBackend('tensorflow')).rejects.toThrow(
      `tfjs-node is not importable: run \`npm install @tensorflow/tfjs-node@${tf.version_core}\``,
    );
    expect(tf.getBackend()).toBe(before); // the active backend stays
  });
  it('formats the reason for any package the same way', () => {
    expect(notInstalled('@tensorflow/tfjs-backend-wasm', 'Cannot find package', '4.22.0')).toBe(
      "@tensorflow/tfjs-backend-wasm is not installed: run `npm install @tensorflow/tfjs-backend-wasm@4.22.0` (Cannot find package)",
    );
    expect(notInstalled('webgpu', 'e')).toBe('webgpu is not installed: run `npm install webgpu` (e)');
  });
});

function resolvesTfjsNode(): boolean {
  for (const name of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
    try {
      createRequire(import.meta.url).resolve(name);
      return true;
    } catch {
      // not installed
    }
  }
  return false;
}
