/**
 * Multi-threaded XNNPACK for the wasm backend in Node.
 *
 * `@tensorflow/tfjs-backend-wasm` ships a threaded SIMD build (`tfjs-backend-wasm-threaded-simd.wasm`,
 * emscripten pthreads) but never uses it in Node, for three reasons, each worked around here for the
 * duration of `tf.setBackend('wasm')` only:
 *
 * 1. Its `WASM_HAS_MULTITHREAD_SUPPORT` flag answers false whenever `IS_NODE` (tfjs issue #3830).
 *    → The flag is set to true.
 * 2. It hands emscripten the pthread worker script and the main script as `Blob`s / `blob:` URLs,
 *    which Node's `worker_threads` cannot start (`ERR_WORKER_PATH`), and the main script is the
 *    factory's `toString()`, which refers to module-scope names of the bundle it came from
 *    (`require$$0`…, `commonjsGlobal`). → While the backend starts, the Blobs tfjs creates are
 *    recorded, both scripts are written to a private temporary directory (removed at exit), the
 *    worker script gets a prologue defining those names and pointing its script loader at the file.
 * 3. The C++ side caps the thread pool at `emscripten_num_logical_cores() / 2` (it assumes two
 *    hyper-threads per core), i.e. one thread on a 2-core machine. → `os.cpus()` reports `2·threads`
 *    entries while the module initializes.
 *
 * XNNPACK splits each operator's output into tiles computed by the pool's threads; every output
 * element is still the same dot product, so results equal the single-threaded build (the tests
 * compare a module's forward and gradients bit for bit across processes).
 */
import * as tf from '@tensorflow/tfjs-core';
import { isNodeRuntime, resolvePackageEntry } from './runtime.js';

/** What the threaded start needs from `@tensorflow/tfjs-backend-wasm`. */
export interface ThreadableWasmModule {
  setThreadsCount?(threads: number): void;
  getThreadsCount?(): number;
}

/** XNNPACK's thread pool holds at most this many threads (tfjs pre-creates 8 pthread workers). */
export const MAX_WASM_THREADS = 8;

/** Prefixes of the two scripts tfjs puts in Blobs (tfjs-backend-wasm 4.x). */
const MAIN_SCRIPT_PREFIX = 'var WasmBackendModuleThreadedSimd';
const WORKER_SCRIPT_MARKER = 'WasmBackendModuleThreadedSimd(Module)';

/** tfjs-backend-wasm versions whose internals this was written against and tested with (`auto` uses threads only there). */
export const TESTED_TFJS_WASM_VERSIONS = /^4\.22\./;

/**
 * Threads the wasm backend uses with `wasmThreads: 'auto'`: the cores (up to 8) on Node's main thread
 * when the installed tfjs-backend-wasm is a tested version and ships the threaded binary; otherwise 1.
 */
export async function autoWasmThreads(): Promise<number> {
  if (!isNodeRuntime()) return 1;
  if (!(await threadedBuildAvailable(true))) return 1;
  const os = (await import(/* @vite-ignore */ 'node:os' as string)) as typeof import('node:os');
  const workerThreads = (await import(/* @vite-ignore */ 'node:worker_threads' as string)) as typeof import('node:worker_threads');
  if (!workerThreads.isMainThread) return 1; // a worker thread is usually one of several already
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cores, MAX_WASM_THREADS));
}

/**
 * Whether the installed `@tensorflow/tfjs-backend-wasm` ships the threaded SIMD binary (and, with
 * `testedOnly`, is a version this was tested with). Node only.
 */
export async function threadedBuildAvailable(testedOnly: boolean): Promise<boolean> {
  const entry = await resolvePackageEntry('@tensorflow/tfjs-backend-wasm');
  if (entry === undefined) return false;
  const fs = (await import(/* @vite-ignore */ 'node:fs' as string)) as typeof import('node:fs');
  const path = (await import(/* @vite-ignore */ 'node:path' as string)) as typeof import('node:path');
  const dist = path.dirname(entry);
  if (!fs.existsSync(path.join(dist, 'tfjs-backend-wasm-threaded-simd.wasm'))) return false;
  if (!testedOnly) return true;
  try {
    const manifest = JSON.parse(fs.readFileSync(path.join(dist, '..', 'package.json'), 'utf8')) as { version?: string };
    return TESTED_TFJS_WASM_VERSIONS.test(manifest.version ?? '');
  } catch {
    return false;
  }
}

/**
 * Prepare the next `tf.setBackend('wasm')` to start the threaded build with `threads` threads.
 * Returns `restore`, to be called once the backend has started (or failed): it puts back every
 * global it patched. Throws when the installed package lacks what this needs.
 */
export async function prepareThreadedWasm(wasm: ThreadableWasmModule, threads: number): Promise<() => void> {
  if (!isNodeRuntime()) throw new Error('threaded wasm: only in Node (browsers use tfjs\' own cross-origin-isolated path)');
  if (typeof wasm.setThreadsCount !== 'function') {
    throw new Error('threaded wasm: this @tensorflow/tfjs-backend-wasm has no setThreadsCount (needs 4.x)');
  }
  const fs = (await import(/* @vite-ignore */ 'node:fs' as string)) as typeof import('node:fs');
  // The CommonJS module object (the one emscripten's glue calls `cpus()` on), not the ESM namespace.
  const osModule = (await import(/* @vite-ignore */ 'node:os' as string)) as { default?: typeof import('node:os') } & typeof import('node:os');
  const os = osModule.default ?? osModule;
  const path = (await import(/* @vite-ignore */ 'node:path' as string)) as typeof import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mllm-wasm-threads-'));
  const cleanup = () => fs.rmSync(dir, { recursive: true, force: true });
  const mainScript = path.join(dir, 'tfjs-backend-wasm-threaded-simd.js');
  const workerScript = path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js');

  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const originalCpus = os.cpus;
  const recorded = new WeakMap<object, string>();
  class RecordingBlob extends OriginalBlob {
    constructor(parts?: BlobPart[], options?: BlobPropertyBag) {
      super(parts, options);
      if (parts && parts.every((p) => typeof p === 'string')) {
        const text = (parts as string[]).join('');
        recorded.set(this, text);
        if (text.startsWith(MAIN_SCRIPT_PREFIX)) fs.writeFileSync(mainScript, text);
      }
    }
  }
  // The worker's prologue: the bundle-scope names the main script refers to, and a script loader
  // that reads our file instead of a blob: URL.
  const prologue = [
    "Object.assign(globalThis, { require$$0: require('fs'), require$$1: require('path'), require$$2: require('worker_threads'),",
    "  require$$3: require('perf_hooks'), require$$4: require('os'), commonjsGlobal: globalThis });",
    `URL.createObjectURL = () => ${JSON.stringify(mainScript)};`,
    'URL.revokeObjectURL = () => {};',
    '',
  ].join('\n');
  (globalThis as { Blob: typeof Blob }).Blob = RecordingBlob as typeof Blob;
  URL.createObjectURL = (object: Blob | MediaSource) => {
    const text = recorded.get(object);
    if (text !== undefined && text.includes(WORKER_SCRIPT_MARKER) && !text.startsWith(MAIN_SCRIPT_PREFIX)) {
      fs.writeFileSync(workerScript, prologue + text);
      return workerScript;
    }
    return originalCreateObjectURL(object as Blob);
  };
  // C++: threads = min(requested, cores / 2).
  os.cpus = () => {
    const cpus = originalCpus();
    return Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]!);
  };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  return () => {
    (globalThis as { Blob: typeof Blob }).Blob = OriginalBlob;
    URL.createObjectURL = originalCreateObjectURL;
    os.cpus = originalCpus;
    // Every pthread worker has read both scripts by the time the module is ready (emscripten loads
    // its whole pool before running), so the files can go now.
    cleanup();
  };
}

interface EmscriptenThreads {
  PThread?: { unusedWorkers?: Array<{ unref?(): void }>; runningWorkers?: Array<{ unref?(): void }> };
}

/**
 * Let the process exit while XNNPACK's pthread workers idle: emscripten's Node workers are
 * referenced, so without this a script that finished its work would never end.
 */
export function unrefWasmThreads(): void {
  const backend = tf.findBackend('wasm') as unknown as { wasm?: EmscriptenThreads } | null;
  const pthreads = backend?.wasm?.PThread;
  for (const worker of [...(pthreads?.unusedWorkers ?? []), ...(pthreads?.runningWorkers ?? [])]) worker.unref?.();
}
