/**
 * WebGPU in Node through Dawn (the `webgpu` npm package), including CPU-only machines.
 *
 * On a machine without a GPU, Dawn's Vulkan backend can run on SwiftShader (a software Vulkan
 * driver). Debian's `chromium` package ships both pieces in `/usr/lib/chromium`:
 * - `vk_swiftshader_icd.json`: the driver manifest. `VK_ICD_FILENAMES` must point to it; when that
 *   variable (and `VK_DRIVER_FILES`) is unset and the file exists, it is set automatically.
 * - `libvulkan.so.1`: the Vulkan loader. Dawn opens `libvulkan.so.1` by name; when no system loader
 *   is installed (Debian package `libvulkan1`), chromium's copy is preloaded (the effect of
 *   `LD_LIBRARY_PATH=/usr/lib/chromium`, which cannot be set after the process started).
 *
 * tfjs' synchronous reads (`dataSync`, `arraySync`) on WebGPU need `OffscreenCanvas`, which Node
 * lacks; `installNodeSyncRead` replaces them with a buffer copy whose mapping is completed by
 * driving Dawn's event processing from JavaScript (see `waitForMapping`).
 */
import { notInstalled } from './start-result.js';
import * as tf from '@tensorflow/tfjs-core';
import { fileExists, firstLine, importOptional, readEnvironment, setEnvironment } from './runtime.js';
import type { WebGpuBufferLike, WebGpuDeviceLike, WebGpuLike } from './webgpu-types.js';

/** SwiftShader's Vulkan driver manifest as installed by Debian's `chromium` package. */
export const SWIFTSHADER_ICD_PATH = '/usr/lib/chromium/vk_swiftshader_icd.json';
/** The Vulkan loader shipped alongside it. */
export const CHROMIUM_VULKAN_LOADER_PATH = '/usr/lib/chromium/libvulkan.so.1';

interface DawnModule {
  create(options: string[]): WebGpuLike;
  globals: Record<string, unknown>;
}

/** Result of making `navigator.gpu` available in Node. */
export type NodeGpuSetup =
  | { ok: true; gpu: WebGpuLike; createdByUs: boolean; notes: string[] }
  | { ok: false; why: string };

const RTLD_NOW = 2;
const RTLD_GLOBAL = 256;
/** glibc: keep the library loaded even though Node unloads the failed "addon". */
const RTLD_NODELETE = 0x1000;

/**
 * Makes sure a Vulkan loader can be found by Dawn: the system one, else chromium's copy.
 * @returns a note describing what was done, or an error string
 */
export async function ensureVulkanLoader(): Promise<{ ok: boolean; note: string }> {
  if (process.platform !== 'linux') return { ok: true, note: '' };
  const tryLoad = (path: string): string | undefined => {
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, path, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
      return undefined;
    } catch (error) {
      const message = firstLine(error);
      // The library was loaded (and stays loaded) but is not a Node addon: that is success here.
      return /self-register|Module did not/i.test(message) ? undefined : message;
    }
  };
  const systemError = tryLoad('libvulkan.so.1');
  if (systemError === undefined) return { ok: true, note: 'system Vulkan loader' };
  if (await fileExists(CHROMIUM_VULKAN_LOADER_PATH)) {
    const chromiumError = tryLoad(CHROMIUM_VULKAN_LOADER_PATH);
    if (chromiumError === undefined) return { ok: true, note: `Vulkan loader ${CHROMIUM_VULKAN_LOADER_PATH}` };
    return { ok: false, note: `cannot load ${CHROMIUM_VULKAN_LOADER_PATH}: ${chromiumError}` };
  }
  return {
    ok: false,
    note: `no Vulkan loader (libvulkan.so.1: ${systemError}); install Debian package libvulkan1 or chromium`,
  };
}

/**
 * Provides `navigator.gpu` in Node via Dawn when it does not exist yet: sets
 * `VK_ICD_FILENAMES` to SwiftShader when unset and available, loads a Vulkan loader, imports
 * `webgpu`, installs its globals (`GPUBufferUsage`, …) and assigns `navigator.gpu`.
 * @param dawnOptions options for `create()` of the `webgpu` package, e.g.
 *   `enable-dawn-features=disable_workgroup_init`; used only when `navigator.gpu` is created here
 */
export async function ensureNodeNavigatorGpu(dawnOptions: readonly string[] = []): Promise<NodeGpuSetup> {
  const existing = (globalThis as { navigator?: { gpu?: WebGpuLike } }).navigator?.gpu;
  if (existing) return { ok: true, gpu: existing, createdByUs: false, notes: ['navigator.gpu provided by the host'] };
  const notes: string[] = [];
  if (
    process.platform === 'linux' &&
    readEnvironment('VK_ICD_FILENAMES') === undefined &&
    readEnvironment('VK_DRIVER_FILES') === undefined &&
    (await fileExists(SWIFTSHADER_ICD_PATH))
  ) {
    setEnvironment('VK_ICD_FILENAMES', SWIFTSHADER_ICD_PATH);
    notes.push(`VK_ICD_FILENAMES=${SWIFTSHADER_ICD_PATH}`);
  }
  if (process.platform === 'linux') {
    const drivers = await vulkanDriverManifests();
    if (drivers.length === 0) {
      // Without a driver manifest Dawn would only fail, after the Vulkan loader has printed
      // "vkCreateInstance: Found no drivers!" to stderr (native output JavaScript cannot capture):
      // decide here, quietly, and say why in the reason.
      return {
        ok: false,
        why: `no Vulkan driver is installed (no ICD manifest in ${vulkanIcdDirectories().join(', ')}; VK_ICD_FILENAMES unset)`,
      };
    }
  }
  const loader = await ensureVulkanLoader();
  if (!loader.ok) return { ok: false, why: loader.note };
  if (loader.note) notes.push(loader.note);
  const dawn = await importOptional<DawnModule>('webgpu');
  if (!dawn.ok) return { ok: false, why: `Dawn (the 'webgpu' npm package): ${notInstalled('webgpu', dawn.error)}` };
  let gpu: WebGpuLike;
  try {
    for (const [key, value] of Object.entries(dawn.module.globals)) {
      if (!(key in globalThis)) (globalThis as Record<string, unknown>)[key] = value;
    }
    gpu = dawn.module.create([...dawnOptions]);
  } catch (error) {
    return { ok: false, why: `Dawn failed to start: ${firstLine(error)}` };
  }
  setNavigatorGpu(gpu);
  return { ok: true, gpu, createdByUs: true, notes };
}

/**
 * The directories the Linux Vulkan loader searches for driver (ICD) manifests: the XDG config and data
 * directories (defaults `/etc/xdg`, `/usr/local/share`, `/usr/share`), `/etc` and `~/.local/share`.
 */
export function vulkanIcdDirectories(): string[] {
  const split = (value: string | undefined, fallback: string) => (value ?? fallback).split(':').filter(Boolean);
  const home = readEnvironment('HOME');
  const dataHome = readEnvironment('XDG_DATA_HOME') ?? (home ? `${home}/.local/share` : undefined);
  const bases = [
    ...split(readEnvironment('XDG_CONFIG_DIRS'), '/etc/xdg'),
    '/usr/local/etc',
    '/etc',
    ...(dataHome ? [dataHome] : []),
    ...split(readEnvironment('XDG_DATA_DIRS'), '/usr/local/share:/usr/share'),
  ];
  return [...new Set(bases.map((base) => `${base.replace(/\/$/, '')}/vulkan/icd.d`))];
}

/**
 * Vulkan driver manifests the loader would find: `VK_ICD_FILENAMES` / `VK_DRIVER_FILES` when set
 * (taken as given), else the `*.json` files in {@link vulkanIcdDirectories}.
 */
export async function vulkanDriverManifests(): Promise<string[]> {
  const explicit = readEnvironment('VK_DRIVER_FILES') ?? readEnvironment('VK_ICD_FILENAMES');
  if (explicit !== undefined) return explicit.split(':').filter(Boolean);
  const fs = (await import(/* @vite-ignore */ 'node:fs' as string)) as typeof import('node:fs');
  const found: string[] = [];
  for (const dir of vulkanIcdDirectories()) {
    try {
      for (const entry of fs.readdirSync(dir)) if (entry.endsWith('.json')) found.push(`${dir}/${entry}`);
    } catch {
      // absent or unreadable: the loader skips it too
    }
  }
  return found;
}

/** Assigns (or with `undefined`, removes) `navigator.gpu`, creating `navigator` on Node 20. */
export function setNavigatorGpu(gpu: WebGpuLike | undefined): void {
  const scope = globalThis as unknown as { navigator?: Record<string, unknown> };
  if (gpu === undefined) {
    if (scope.navigator) delete scope.navigator.gpu;
    return;
  }
  if (scope.navigator === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: {}, writable: true, configurable: true, enumerable: true });
  }
  try {
    scope.navigator!.gpu = gpu;
  } catch {
    // A read-only `navigator` object (newer Node versions): define the property instead.
  }
  if (scope.navigator!.gpu !== gpu) {
    Object.defineProperty(scope.navigator, 'gpu', { value: gpu, writable: true, configurable: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Synchronous reads

type Tick = () => void;
const TICK_KEY = Symbol.for('@mllm/core:dawn-process-events');
const PATCHED_KEY = Symbol.for('@mllm/core:webgpu-node-sync-read');
const MAP_READ_TIMEOUT_MS = 120_000;

/** Dawn's event-processing callback, captured once per process (kept on globalThis). */
function dawnTick(): Tick | undefined {
  return (globalThis as Record<symbol, Tick | undefined>)[TICK_KEY];
}

/**
 * Runs `fn` with the global `setImmediate` wrapped to capture the native function Dawn schedules
 * through it to process its events (`wgpuInstanceProcessEvents`; Dawn looks `setImmediate` up on
 * the global object each time). Dawn does so when an asynchronous operation such as
 * `requestDevice` starts. Calling the captured function later runs Dawn's event processing
 * synchronously, which is what makes synchronous reads possible.
 */
export async function withDawnTickCapture<T>(fn: () => Promise<T>): Promise<T> {
  if (dawnTick()) return fn();
  const original = globalThis.setImmediate;
  let captured: Tick | undefined;
  const wrapper = ((callback: (...args: unknown[]) => void, ...args: unknown[]) => {
    if (captured === undefined && /\[native code\]/.test(Function.prototype.toString.call(callback))) {
      captured = () => callback();
    }
    return original(callback, ...args);
  }) as typeof setImmediate;
  globalThis.setImmediate = wrapper;
  try {
    return await fn();
  } finally {
    if (globalThis.setImmediate === wrapper) globalThis.setImmediate = original;
    if (captured && !dawnTick()) (globalThis as Record<symbol, Tick | undefined>)[TICK_KEY] = captured;
  }
}

/**
 * Ensures Dawn's event-processing callback is captured, starting an asynchronous operation on
 * `device` (`onSubmittedWorkDone`) under `withDawnTickCapture` if needed.
 * @returns whether synchronous reads are possible
 */
export async function captureDawnTick(device: WebGpuDeviceLike): Promise<boolean> {
  if (dawnTick()) return true;
  await withDawnTickCapture(() => device.queue.onSubmittedWorkDone());
  return dawnTick() !== undefined;
}

let sleepCell: Int32Array | undefined;

/**
 * Maps `buffer` for reading and blocks until it is mapped, by calling Dawn's event processing in a
 * loop with pauses growing from 20 µs to 2 ms (the GPU, here SwiftShader, works on its own threads
 * meanwhile; backing off leaves them the CPU on small machines).
 * @throws when Dawn's tick was not captured, the mapping fails, or it takes over 120 s
 */
export function waitForMapping(buffer: WebGpuBufferLike, mapModeRead: number): void {
  const tick = dawnTick();
  if (!tick) {
    throw new Error(
      'Synchronous read (dataSync/arraySync) on webgpu in Node is unavailable: Dawn event processing was not captured. Use `await tensor.data()`.',
    );
  }
  let failure: unknown;
  buffer.mapAsync(mapModeRead).catch((error: unknown) => {
    failure = error;
  });
  const start = Date.now();
  let pauseMs = 0.02;
  while (buffer.mapState === 'pending') {
    tick();
    if (buffer.mapState !== 'pending') break;
    if (Date.now() - start > MAP_READ_TIMEOUT_MS) throw new Error('webgpu synchronous read: mapping timed out after 120 s');
    sleepCell ??= new Int32Array(new SharedArrayBuffer(4));
    Atomics.wait(sleepCell, 0, 0, pauseMs);
    pauseMs = Math.min(pauseMs * 1.5, 2);
  }
  if (buffer.mapState !== 'mapped') {
    throw new Error(`webgpu synchronous read: mapping failed (${failure === undefined ? buffer.mapState : firstLine(failure)})`);
  }
}

/** The parts of tfjs' `WebGPUBackend` the synchronous read uses. */
interface WebGpuBackendInternals {
  tensorMap: { get(dataId: object): { values?: unknown; dtype: tf.DataType; resource?: WebGpuBufferLike | null } };
  bufferManager: {
    acquireBuffer(size: number, usage: number): WebGpuBufferLike;
    releaseBuffer(buffer: WebGpuBufferLike): void;
  };
  commandEncoder: { copyBufferToBuffer(src: unknown, srcOffset: number, dst: unknown, dstOffset: number, size: number): void };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  readSync(dataId: object): tf.backend_util.BackendValues;
}

/**
 * Replaces `WebGPUBackend.prototype.readSync` (in Node only) with: copy the tensor's GPU buffer
 * into a staging buffer, map it synchronously (`waitForMapping`), convert like tfjs' async `read`,
 * and cache the values on the CPU side as tfjs does. Idempotent.
 */
export function installNodeSyncRead(backendClass: { prototype: object }): void {
  const prototype = backendClass.prototype as WebGpuBackendInternals & Record<symbol, boolean>;
  if (prototype[PATCHED_KEY]) return;
  const originalReadSync = prototype.readSync;
  const globals = globalThis as unknown as { GPUBufferUsage: { COPY_DST: number; MAP_READ: number }; GPUMapMode: { READ: number } };
  prototype.readSync = function readSync(this: WebGpuBackendInternals, dataId: object) {
    const data = this.tensorMap.get(dataId);
    const buffer = data.resource;
    if (data.values != null || data.dtype === 'string' || data.dtype === 'complex64' || buffer == null || typeof buffer.size !== 'number') {
      return originalReadSync.call(this, dataId);
    }
    const size = buffer.size;
    const staging = this.bufferManager.acquireBuffer(size, globals.GPUBufferUsage.COPY_DST | globals.GPUBufferUsage.MAP_READ);
    this.ensureCommandEncoderReady();
    this.endComputePassEncoder();
    this.commandEncoder.copyBufferToBuffer(buffer, 0, staging, 0, size);
    this.submitQueue();
    let bytes: ArrayBuffer;
    try {
      waitForMapping(staging, globals.GPUMapMode.READ);
      bytes = staging.getMappedRange().slice(0);
      staging.unmap();
    } finally {
      this.bufferManager.releaseBuffer(staging);
    }
    const values = tf.util.convertBackendValuesAndArrayBuffer(bytes, data.dtype);
    data.values = values;
    return values;
  };
  prototype[PATCHED_KEY] = true;
}
