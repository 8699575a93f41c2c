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
import { isNodeRuntime, readEnvironment, resolvePackageEntry } from './runtime.js';

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
 * Threads the wasm backend uses with `wasmThreads: 'auto'`: the cores (up to 8, and no more than a
 * cgroup CPU quota allows) on Node's main thread
 * when the installed tfjs-backend-wasm is a tested version and ships the threaded binary; otherwise 1.
 */
export async function autoWasmThreads(): Promise<number> {
  if (!isNodeRuntime()) return 1;
  if (!(await threadedBuildAvailable(true))) return 1;
  const os = (await import(/* @vite-ignore */ 'node:os' as string)) as typeof import('node:os');
  const workerThreads = (await import(/* @vite-ignore */ 'node:worker_threads' as string)) as typeof import('node:worker_threads');
  if (!workerThreads.isMainThread) return 1; // a worker thread is usually one of several already
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const fs = (await import(/* @vite-ignore */ 'node:fs' as string)) as typeof import('node:fs');
  const quota = cgroupCpuQuota((file) => fs.readFileSync(file, 'utf8'));
  return Math.max(1, Math.min(cores, quota ?? Number.POSITIVE_INFINITY, MAX_WASM_THREADS));
}

/**
 * The CPUs a Linux cgroup CPU quota allows (rounded up), or undefined when there is none or it
 * cannot be read. Node's `availableParallelism()` sees the machine's cores, not a container's
 * `--cpus` quota, and XNNPACK threads beyond the quota spin against each other (measured: 8 threads
 * on 2 CPUs made the wasm test project ~4× slower). Reads cgroup v2 `cpu.max` ("max 100000" or
 * "200000 100000"), else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1: no quota).
 */
export function cgroupCpuQuota(read: (file: string) => string): number | undefined {
  const attempt = (f: () => number | undefined): number | undefined => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  const cpus = (quota: number, period: number) => (quota > 0 && period > 0 ? Math.max(1, Math.ceil(quota / period)) : undefined);
  const v2 = attempt(() => {
    const [quota, period] = read('/sys/fs/cgroup/cpu.max').trim().split(/\s+/);
    return quota === 'max' ? undefined : cpus(Number(quota), Number(period));
  });
  if (v2 !== undefined) return v2;
  return attempt(() =>
    cpus(Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').trim()), Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us').trim())),
  );
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

/** How long the threaded build may take to start before it is abandoned for one thread (ms). */
export const DEFAULT_THREADED_START_TIMEOUT_MS = 60_000;

/** Environment variable overriding `DEFAULT_THREADED_START_TIMEOUT_MS` (a positive integer, ms). */
export const THREADED_START_TIMEOUT_ENV_VARIABLE = 'MLLM_WASM_THREADS_START_TIMEOUT_MS';

/** The threaded start prepared by `prepareThreadedWasm`. */
export interface ThreadedWasmStart {
  /**
   * Rejects (with the reason) as soon as one of emscripten's pthread workers exits or fails before
   * it has loaded the module: emscripten would otherwise wait for it forever. Never resolves.
   */
  readonly failed: Promise<never>;
  /** Stop watching: the backend started (worker errors go to emscripten's handlers again). */
  settle(): void;
  /** Give the start up: terminate every pthread worker it created. */
  abandon(): void;
  /** Put back every global the start patched and remove the temporary scripts. Idempotent. */
  restore(): void;
}

type WorkerClass = typeof import('node:worker_threads').Worker;

/**
 * Writes `text` to `file` through a temporary name and a rename, so a reader never sees a partial file.
 * Synchronous (it runs inside emscripten's synchronous `new Blob(…)`), hence not io's async
 * `writeFileAtomically`; `write-file-atomic`'s sync form would do the same, but @mllm/core keeps no
 * runtime dependency besides its tfjs peers, and these files live only in a private temp directory.
 */
function writeFileAtomically(fs: typeof import('node:fs'), file: string, text: string): void {
  const partial = `${file}.partial`;
  fs.writeFileSync(partial, text);
  fs.renameSync(partial, file);
}

/**
 * Prepare the next `tf.setBackend('wasm')` to start the threaded build with `threads` threads.
 * The returned start's `restore` must be called once the backend has started (or failed). Throws
 * when the installed package lacks what this needs.
 *
 * Each script is written once, through a rename: emscripten asks for the worker script's URL once
 * per pthread worker (8 times) while the workers it already created are starting, and rewriting
 * the file in place could let a starting worker read it empty or partial. (A start that hung in CI
 * had lost one of its 8 workers before loading; that this race was the cause is plausible, not
 * shown. The watch below turns any such loss into a fallback to one thread.)
 */
export async function prepareThreadedWasm(wasm: ThreadableWasmModule, threads: number): Promise<ThreadedWasmStart> {
  if (!isNodeRuntime()) throw new Error('threaded wasm: only in Node (browsers use tfjs\' own cross-origin-isolated path)');
  if (typeof wasm.setThreadsCount !== 'function') {
    throw new Error('threaded wasm: this @tensorflow/tfjs-backend-wasm has no setThreadsCount (needs 4.x)');
  }
  const fs = (await import(/* @vite-ignore */ 'node:fs' as string)) as typeof import('node:fs');
  // The CommonJS module objects (the ones emscripten's glue reads `cpus` and `Worker` from), not the ESM namespaces.
  const osModule = (await import(/* @vite-ignore */ 'node:os' as string)) as { default?: typeof import('node:os') } & typeof import('node:os');
  const os = osModule.default ?? osModule;
  const threadsModule = (await import(/* @vite-ignore */ 'node:worker_threads' as string)) as {
    default?: { Worker: WorkerClass };
  } & { Worker: WorkerClass };
  const workerThreads = threadsModule.default ?? threadsModule;
  const path = (await import(/* @vite-ignore */ 'node:path' as string)) as typeof import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mllm-wasm-threads-'));
  const mainScript = path.join(dir, 'tfjs-backend-wasm-threaded-simd.js');
  const workerScript = path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js');

  const OriginalBlob = globalThis.Blob;
  const originalCreateObjectURL = URL.createObjectURL;
  const originalCpus = os.cpus;
  const OriginalWorker = workerThreads.Worker;
  const recorded = new WeakMap<object, string>();
  let mainWritten = false;
  let workerWritten = false;
  class RecordingBlob extends OriginalBlob {
    constructor(parts?: BlobPart[], options?: BlobPropertyBag) {
      super(parts, options);
      if (parts && parts.every((p) => typeof p === 'string')) {
        const text = (parts as string[]).join('');
        recorded.set(this, text);
        if (!mainWritten && text.startsWith(MAIN_SCRIPT_PREFIX)) {
          writeFileAtomically(fs, mainScript, text);
          mainWritten = true;
        }
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
      if (!workerWritten) {
        writeFileAtomically(fs, workerScript, prologue + text);
        workerWritten = true;
      }
      return workerScript;
    }
    return originalCreateObjectURL(object as Blob);
  };
  // C++: threads = min(requested, cores / 2).
  os.cpus = () => {
    const cpus = originalCpus();
    return Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]!);
  };

  // Watch emscripten's pthread workers while the module starts: one that ends or fails before it
  // has loaded would leave the start waiting forever (emscripten only counts 'loaded' answers).
  const workers: Array<InstanceType<WorkerClass>> = [];
  let watching = true;
  let fail: (error: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = (error) => {
      if (!watching) return;
      watching = false;
      reject(error);
    };
  });
  failed.catch(() => {}); // observed by the caller's race; never an unhandled rejection
  class WatchedWorker extends OriginalWorker {
    constructor(...args: ConstructorParameters<WorkerClass>) {
      super(...args);
      const index = workers.push(this) - 1;
      let loaded = false;
      this.on('message', (message: { cmd?: unknown } | null) => {
        if (message?.cmd === 'loaded') loaded = true;
      });
      this.once('exit', (code: number) => {
        if (!loaded) fail(new Error(`pthread worker ${index} exited (code ${code}) before it loaded the module`));
      });
    }

    // emscripten's 'error' listener rethrows (an uncaught exception); while the start is watched,
    // a worker error fails the start instead, and the caller falls back to one thread.
    override on(event: string | symbol, listener: (...args: any[]) => void): this {
      if (event !== 'error') return super.on(event, listener);
      return super.on(event, (error: unknown) => {
        if (watching) fail(new Error(`pthread worker failed while starting: ${error instanceof Error ? error.message : String(error)}`));
        else listener(error);
      });
    }
  }
  workerThreads.Worker = WatchedWorker as unknown as WorkerClass;

  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  let restored = false;
  return {
    failed,
    settle: () => {
      watching = false;
    },
    abandon: () => {
      watching = false;
      for (const worker of workers) void worker.terminate();
    },
    restore: () => {
      if (restored) return;
      restored = true;
      (globalThis as { Blob: typeof Blob }).Blob = OriginalBlob;
      URL.createObjectURL = originalCreateObjectURL;
      os.cpus = originalCpus;
      if (workerThreads.Worker === (WatchedWorker as unknown as WorkerClass)) workerThreads.Worker = OriginalWorker;
      // Every pthread worker has read both scripts by the time the module is ready (emscripten loads
      // its whole pool before running), so the files can go now.
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `MLLM_WASM_THREADS_START_TIMEOUT_MS` if set (validated), else the default. */
export function threadedStartTimeoutMs(): number {
  const raw = readEnvironment(THREADED_START_TIMEOUT_ENV_VARIABLE);
  if (raw === undefined) return DEFAULT_THREADED_START_TIMEOUT_MS; // readEnvironment maps '' to undefined
  const value = /^\d+$/.test(raw.trim()) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${THREADED_START_TIMEOUT_ENV_VARIABLE} must be a positive integer (milliseconds), got ${JSON.stringify(raw)}`);
  }
  return value;
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
