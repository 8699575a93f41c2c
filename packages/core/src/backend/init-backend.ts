/**
 * `initBackend`: choose and start the TensorFlow.js backend @mllm computes on, and say why.
 *
 * `auto` prefers, in order:
 * 1. `tensorflow`: native libtensorflow through `@tensorflow/tfjs-node-gpu`, then `@tensorflow/tfjs-node` (Node);
 * 2. `webgpu`: a hardware WebGPU adapter (browser `navigator.gpu`; Node: Dawn from the `webgpu` package).
 *    A software adapter (SwiftShader…) is slower than wasm and is passed over;
 * 3. `wasm`: XNNPACK WebAssembly kernels;
 * 4. `cpu`: plain JavaScript.
 * For each better backend that did not start, the result says why.
 *
 * Backend packages are optional peer dependencies, imported dynamically only when tried, so a user
 * with only `@tensorflow/tfjs-backend-cpu` (or `@tensorflow/tfjs`) can still use `cpu`.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  BACKEND_ENV_VARIABLE,
  BACKEND_PREFERENCE,
  parseBackendRequest,
  type BackendName,
  type BackendRequest,
} from './backend-names.js';
import { activateBackend, currentBackendName } from './activate-backend.js';
import { startCpuBackend } from './cpu-backend.js';
import { ensureGradients } from './gradients.js';
import { readEnvironment } from './runtime.js';
import type { StartResult } from './start-result.js';
import { startTensorflowBackend } from './tensorflow-backend.js';
import { parseWasmThreads, startWasmBackend, type WasmPaths, type WasmThreads } from './wasm-backend.js';
import { threadedStartTimeoutMs } from './wasm-threads.js';
import { startWebGpuBackend } from './webgpu-backend.js';
import type { WebGpuAdapterSummary } from './webgpu-types.js';

/** Options of `initBackend`. */
export interface InitBackendOptions {
  /** Browser: where the wasm binaries are served (URL prefix ending in `/`, or a per-file map). */
  wasmPaths?: WasmPaths;
  /**
   * Node: XNNPACK threads of the wasm backend (`MLLM_WASM_THREADS` when absent). `auto` (default):
   * the machine's cores (up to 8) on the main thread, 1 inside a worker thread; 1 = the
   * single-threaded build. More than 1 starts tfjs' threaded SIMD build, which tfjs itself never
   * uses in Node (see `backend/wasm-threads.ts`); results are the same, bit for bit.
   * Fixed once the backend has started in this thread.
   */
  wasmThreads?: WasmThreads;
  /** Let `auto` use a software WebGPU adapter (default false: it is slower than wasm). */
  allowFallbackAdapter?: boolean;
  /** Print tfjs' own initialization warnings instead of only collecting them (default false). */
  verbose?: boolean;
  /**
   * Node only: options for Dawn (`create()` of the `webgpu` package), used when `initBackend`
   * creates `navigator.gpu`, e.g. `['enable-dawn-features=disable_workgroup_init']` (skips zeroing
   * workgroup memory; about 2× faster on SwiftShader). Default none.
   */
  dawnOptions?: string[];
  /** Skip the post-start check that a 2×2 matMul computes the right numbers (default false). */
  skipSelfTest?: boolean;
  /**
   * cpu: replace tfjs-cpu's float32 broadcasting Add/Sub/Multiply/RealDiv kernels with ones that give
   * bitwise the same values ~20× faster (`[577, 1024]·[577, 1]`: 38.8 → 1.7 ms). Default false: tfjs'
   * kernel registry is process-wide, so this changes the kernels of any other tfjs code in the process
   * too; `uninstallFastCpuBroadcast()` puts tfjs' own back.
   */
  fastCpuKernels?: boolean;
}

/** One backend that was tried. */
export interface BackendAttempt {
  name: BackendName;
  /** Whether it started (and passed the self-test). */
  available: boolean;
  /** What it runs on, or why it is not available. */
  why: string;
}

/** What `initBackend` chose. */
export interface BackendChoice {
  /** The active tfjs backend now. */
  backend: BackendName;
  /** What was asked for (after reading `MLLM_BACKEND`). */
  requested: BackendRequest;
  /** Where the request came from. */
  requestSource: 'argument' | 'MLLM_BACKEND' | 'default';
  /** One sentence explaining the choice. */
  reason: string;
  /** Every backend tried, in order, with why each was or was not available. */
  tried: BackendAttempt[];
  /** The WebGPU adapter found, when webgpu was tried and one was found. */
  webgpuAdapter?: WebGpuAdapterSummary;
  /** How gradients are available (tfjs-core alone registers none). */
  gradients: string;
}

type Starter = (options: InitBackendOptions, byName: boolean) => Promise<StartResult & { adapter?: WebGpuAdapterSummary }>;

const STARTERS: Record<BackendName, Starter> = {
  tensorflow: (o) => startTensorflowBackend(o.verbose ?? false),
  webgpu: (o, byName) =>
    startWebGpuBackend({
      allowFallbackAdapter: byName || (o.allowFallbackAdapter ?? false),
      verbose: o.verbose ?? false,
      dawnOptions: o.dawnOptions,
    }),
  wasm: (o) => startWasmBackend({ wasmPaths: o.wasmPaths, verbose: o.verbose ?? false, threads: wasmThreadsOption(o) }),
  cpu: (o) => startCpuBackend(o.verbose ?? false, o.fastCpuKernels ?? false),
};

/**
 * Computes `[[1,2],[3,4]]·[[1,2],[3,4]]` and checks it equals `[[7,10],[15,22]]`, proving the
 * backend really computes (a backend can register and still be broken). Keeps no tensors.
 */
export async function selfTestBackend(): Promise<string | undefined> {
  const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
  const product = tf.matMul(a, a);
  try {
    const values = Array.from(await product.data());
    const expected = [7, 10, 15, 22];
    return values.every((v, i) => v === expected[i])
      ? undefined
      : `self-test matMul gave [${values.join(', ')}], expected [${expected.join(', ')}]`;
  } catch (error) {
    return `self-test failed: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    a.dispose();
    product.dispose();
  }
}

/** Environment variable read when `wasmThreads` is not given: `auto` or a count. */
export const WASM_THREADS_ENV_VARIABLE = 'MLLM_WASM_THREADS';

function wasmThreadsOption(o: InitBackendOptions): WasmThreads {
  if (o.wasmThreads !== undefined) return parseWasmThreads(o.wasmThreads, 'initBackend: options.wasmThreads');
  const fromEnvironment = readEnvironment(WASM_THREADS_ENV_VARIABLE);
  return fromEnvironment === undefined ? 'auto' : parseWasmThreads(fromEnvironment, WASM_THREADS_ENV_VARIABLE);
}

async function tryStart(name: BackendName, options: InitBackendOptions, byName: boolean): Promise<BackendAttempt & { adapter?: WebGpuAdapterSummary }> {
  let result: StartResult & { adapter?: WebGpuAdapterSummary };
  const previous = currentBackendName();
  try {
    result = await STARTERS[name](options, byName);
  } catch (error) {
    result = { ok: false, why: error instanceof Error ? error.message : String(error) };
  }
  if (result.ok && !options.skipSelfTest) {
    const failure = await selfTestBackend();
    if (failure !== undefined) {
      result = { ok: false, why: `${name} started but ${failure}`, adapter: result.adapter };
      if (previous !== undefined && previous !== name) await activateBackend(previous, options.verbose ?? false);
    }
  }
  return { name, available: result.ok, why: result.why, adapter: result.adapter };
}

/**
 * Chooses and starts a tfjs backend.
 *
 * @param name `auto` (default), or a backend to use; when omitted, Node's `MLLM_BACKEND`
 *   environment variable is read, then `auto`.
 * @returns the chosen backend, a reason, and every backend tried with why it was (not) available.
 *   Nothing is printed; use `describeBackendChoice(result)` to get a printable summary.
 * @throws when `name` (or `MLLM_BACKEND`) is not a known backend, when a backend asked for by name
 *   cannot start (the previously active backend stays active), or when not even cpu starts.
 */
export async function initBackend(name?: BackendRequest, options: InitBackendOptions = {}): Promise<BackendChoice> {
  const fromEnvironment = name === undefined ? readEnvironment(BACKEND_ENV_VARIABLE) : undefined;
  const requestSource: BackendChoice['requestSource'] =
    name !== undefined ? 'argument' : fromEnvironment !== undefined ? 'MLLM_BACKEND' : 'default';
  const requested =
    name !== undefined
      ? parseBackendRequest(name, 'name')
      : fromEnvironment !== undefined
        ? parseBackendRequest(fromEnvironment, BACKEND_ENV_VARIABLE)
        : 'auto';
  wasmThreadsOption(options); // a bad wasmThreads / MLLM_WASM_THREADS is an error, not an unavailable backend
  threadedStartTimeoutMs(); // so is a bad MLLM_WASM_THREADS_START_TIMEOUT_MS
  const gradients = await ensureGradients();
  const candidates: readonly BackendName[] = requested === 'auto' ? BACKEND_PREFERENCE : [requested];
  const tried: BackendAttempt[] = [];
  let webgpuAdapter: WebGpuAdapterSummary | undefined;
  for (const candidate of candidates) {
    const attempt = await tryStart(candidate, options, requested !== 'auto');
    if (attempt.adapter) webgpuAdapter = attempt.adapter;
    tried.push({ name: attempt.name, available: attempt.available, why: attempt.why });
    if (attempt.available) {
      const source = requestSource === 'MLLM_BACKEND' ? ` (from ${BACKEND_ENV_VARIABLE})` : '';
      const skipped = tried.filter((t) => !t.available);
      const reason =
        requested === 'auto'
          ? `auto chose ${candidate}: ${attempt.why}` +
            (skipped.length ? `; passed over ${skipped.map((t) => `${t.name} (${t.why})`).join(', ')}` : '')
          : `${candidate} requested${source}: ${attempt.why}`;
      return { backend: candidate, requested, requestSource, reason, tried, webgpuAdapter, gradients };
    }
  }
  if (requested === 'auto') {
    throw new Error(`initBackend('auto'): no backend could start: ${tried.map((t) => `${t.name}: ${t.why}`).join('; ')}`);
  }
  const source = requestSource === 'MLLM_BACKEND' ? ` (from ${BACKEND_ENV_VARIABLE})` : '';
  const active = tf.getBackend();
  throw new Error(
    `initBackend('${requested}')${source}: the ${requested} backend cannot start: ${tried[0]!.why}. ` +
      `The active backend is still ${active ?? 'none'}.`,
  );
}

/** A multi-line, printable account of `initBackend`'s choice. */
export function describeBackendChoice(choice: BackendChoice): string {
  const lines = [`@mllm backend: ${choice.backend} (requested ${choice.requested}, ${choice.requestSource})`, `  ${choice.reason}`];
  for (const attempt of choice.tried) {
    lines.push(`  ${attempt.available ? '✓' : '✗'} ${attempt.name}: ${attempt.why}`);
  }
  lines.push(`  gradients: ${choice.gradients}`);
  return lines.join('\n');
}
