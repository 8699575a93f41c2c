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
 */
import * as tf from '@tensorflow/tfjs-core';
import { activateBackend } from './activate-backend.js';
import { importOptional, isNodeRuntime, resolvePackageEntry } from './runtime.js';
import type { StartResult } from './start-result.js';

/** A URL/path prefix ending in `/`, or one entry per wasm binary name. */
export type WasmPaths = string | Record<string, string>;

interface WasmModule {
  setWasmPaths(prefixOrFileMap: WasmPaths, usePlatformFetch?: boolean): void;
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

/** Registers and starts the wasm backend. */
export async function startWasmBackend(options: { wasmPaths?: WasmPaths; verbose: boolean }): Promise<StartResult> {
  const imported = await importOptional<WasmModule>('@tensorflow/tfjs-backend-wasm');
  if (!imported.ok && tf.findBackendFactory('wasm') == null) {
    return { ok: false, why: `@tensorflow/tfjs-backend-wasm is not installed (${imported.error})` };
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
  const activated = await activateBackend('wasm', options.verbose);
  if (!activated.ok) return { ok: false, why: `wasm failed to start: ${activated.why}` };
  return { ok: true, why: `XNNPACK WebAssembly kernels, ${source}` };
}

/** Whether tfjs already holds an initialized instance of `name` (does not trigger initialization). */
export function isInitialized(name: string): boolean {
  const registry = (tf.engine() as unknown as { registry: Record<string, unknown> }).registry;
  return registry[name] != null;
}
