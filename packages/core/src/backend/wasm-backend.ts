/**
 * The WebAssembly backend (`@tensorflow/tfjs-backend-wasm`, XNNPACK kernels).
 *
 * Where the `.wasm` binaries come from:
 * - Node: from the installed package itself. The package entry is resolved
 *   (`require.resolve('@tensorflow/tfjs-backend-wasm')` → `…/dist/tf-backend-wasm.node.js`) and its
 *   directory, as an absolute path with a trailing slash, is passed to `setWasmPaths`. With tfjs
 *   4.22 under Node both that path and the equivalent `file://` URL load the binaries; a wrong
 *   prefix fails with ENOENT. No network is used.
 * - Browser: the bundler/server must serve the binaries; pass `wasmPaths` (a URL prefix ending in
 *   `/`, or a `{ 'tfjs-backend-wasm.wasm': url, … }` map) to `initBackend`.
 *
 * Threads: in Node, `threads` > 1 starts tfjs' threaded SIMD build (see `wasm-threads.ts`); results
 * are bitwise those of the single-threaded build.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activateBackend, type ActivationResult } from './activate-backend.js';
import { importOptional, isNodeRuntime, resolvePackageEntry } from './runtime.js';
import { notInstalled, type StartResult } from './start-result.js';
import { installZeroCopyWasmIdentity } from './wasm-identity.js';
import {
  autoWasmThreads,
  MAX_WASM_THREADS,
  prepareThreadedWasm,
  threadedBuildAvailable,
  threadedStartTimeoutMs,
  unrefWasmThreads,
  type ThreadableWasmModule,
  type ThreadedWasmStart,
} from './wasm-threads.js';

/** A URL/path prefix ending in `/`, or one entry per wasm binary name. */
export type WasmPaths = string | Record<string, string>;

interface WasmModule extends ThreadableWasmModule {
  setWasmPaths(prefixOrFileMap: WasmPaths, usePlatformFetch?: boolean): void;
}

/** XNNPACK threads: a count, or `auto` (Node main thread: the cores, up to 8; elsewhere 1). */
export type WasmThreads = number | 'auto';

/** Validate a `wasmThreads` value (from options or `MLLM_WASM_THREADS`). */
export function parseWasmThreads(value: unknown, source: string): WasmThreads {
  if (value === 'auto') return 'auto';
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= MAX_WASM_THREADS) return n;
  throw new Error(`${source} must be 'auto' or an integer in [1, ${MAX_WASM_THREADS}], got ${JSON.stringify(value)}`);
}

/**
 * Directory (absolute path, trailing `/`) holding the installed wasm binaries, in Node;
 * `undefined` in browsers or when the package cannot be resolved.
 */
export async function nodeWasmDirectory(): Promise<string | undefined> {
  if (!isNodeRuntime()) return undefined;
  const entry = await resolvePackageEntry('@tensorflow/tfjs-backend-wasm');
  if (entry === undefined) return undefined;
  const path = await import(/* @vite-ignore */ 'node:path' as string) as typeof import('node:path');
  return `${path.dirname(entry)}/`;
}

/** Registers and starts the wasm backend (`threads` > 1: the threaded build, Node only). */
export async function startWasmBackend(options: { wasmPaths?: WasmPaths; verbose: boolean; threads?: WasmThreads }): Promise<StartResult> {
  const imported = await importOptional<WasmModule>('@tensorflow/tfjs-backend-wasm');
  if (!imported.ok && tf.findBackendFactory('wasm') == null) {
    return { ok: false, why: notInstalled('@tensorflow/tfjs-backend-wasm', imported.error, tf.version_core) };
  }
  const alreadyInitialized = isInitialized('wasm');
  let source = 'already initialized';
  if (!alreadyInitialized && imported.ok) {
    const paths = options.wasmPaths ?? (await nodeWasmDirectory());
    if (paths !== undefined) {
      imported.module.setWasmPaths(paths);
      source = typeof paths === 'string' ? `binaries from ${paths}` : 'binaries from the given file map';
    } else {
      source = 'binaries located by tfjs (next to the bundled script)';
    }
  }
  let threads = 1;
  let start: ThreadedWasmStart | null = null;
  let fallback = '';
  if (!alreadyInitialized && imported.ok && isNodeRuntime()) {
    threads = options.threads === undefined || options.threads === 'auto' ? await autoWasmThreads() : options.threads;
    if (threads > 1 && !(await threadedBuildAvailable(false))) {
      return { ok: false, why: `${threads} wasm threads asked for, but this @tensorflow/tfjs-backend-wasm has no tfjs-backend-wasm-threaded-simd.wasm` };
    }
    if (threads > 1) {
      try {
        start = await prepareThreadedWasm(imported.module, threads);
      } catch (error) {
        // e.g. no writable temporary directory: one thread still works.
        fallback = ` (the ${threads}-thread build could not be prepared: ${error instanceof Error ? error.message : String(error)})`;
        threads = 1;
      }
    }
  }
  let activated = start ? await activateThreaded(start, options.verbose) : await activateBackend('wasm', options.verbose);
  if (!activated.ok && threads > 1) {
    // The threaded build did not start: the single-threaded one still can.
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    if (imported.ok) imported.module.setThreadsCount?.(1);
    fallback = ` (the ${threads}-thread build failed: ${activated.why})`;
    threads = 1;
    activated = await activateBackend('wasm', options.verbose);
  }
  if (!activated.ok) return { ok: false, why: `wasm failed to start: ${activated.why}${fallback}` };
  if (threads > 1) unrefWasmThreads();
  installZeroCopyWasmIdentity();
  const running = imported.ok ? wasmThreadsCount(imported.module) : undefined;
  const threadNote = running === undefined ? '' : running > 1 ? `, ${running} threads` : ', 1 thread';
  return { ok: true, why: `XNNPACK WebAssembly kernels${threadNote}${fallback}, ${source}` };
}

/**
 * Starts the prepared threaded build, giving it up when one of its pthread workers dies before
 * loading or when it has not started within `threadedStartTimeoutMs()`: its workers are
 * terminated and tfjs' pending 'wasm' initialization is discarded, so the caller can start the
 * single-threaded build instead of waiting forever.
 */
async function activateThreaded(start: ThreadedWasmStart, verbose: boolean): Promise<ActivationResult> {
  const timeoutMs = threadedStartTimeoutMs();
  let abandoned = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`it did not start within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const result = await Promise.race([activateBackend('wasm', verbose, () => abandoned), start.failed, timedOut]);
    start.settle();
    return result;
  } catch (error) {
    abandoned = true;
    start.abandon();
    discardPendingBackend('wasm');
    return { ok: false, why: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
    start.restore();
  }
}

/** Makes tfjs forget a backend's pending initialization (it keeps the factory registered). */
function discardPendingBackend(name: string): void {
  const engine = tf.engine() as unknown as { registryFactory: Record<string, { factory: () => tf.KernelBackend | Promise<tf.KernelBackend>; priority: number }> };
  const entry = engine.registryFactory[name];
  if (entry === undefined) return;
  tf.removeBackend(name); // makes the pending initialization obsolete
  tf.registerBackend(name, entry.factory, entry.priority);
}

function wasmThreadsCount(module: ThreadableWasmModule): number | undefined {
  try {
    return module.getThreadsCount?.();
  } catch {
    return undefined;
  }
}

/** XNNPACK threads of the running wasm backend (1 = the single-threaded build), or undefined when not started. */
export async function wasmBackendThreads(): Promise<number | undefined> {
  if (!isInitialized('wasm')) return undefined;
  const imported = await importOptional<WasmModule>('@tensorflow/tfjs-backend-wasm');
  return imported.ok ? wasmThreadsCount(imported.module) : undefined;
}

/** Whether tfjs already holds an initialized instance of `name` (does not trigger initialization). */
export function isInitialized(name: string): boolean {
  const registry = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
  return registry[name] != null;
}
