/**
 * The WebGPU backend (`@tensorflow/tfjs-backend-webgpu`): the browser's `navigator.gpu`, or in
 * Node Dawn from the `webgpu` npm package (see `node-webgpu.ts`).
 *
 * A software adapter (SwiftShader and similar, `GPUAdapterInfo.isFallbackAdapter`) computes
 * correctly but is slower than wasm, so `auto` passes over it; asking for `webgpu` by name uses it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { activateBackend } from './activate-backend.js';
import { captureDawnTick, ensureNodeNavigatorGpu, withDawnTickCapture, installNodeSyncRead, setNavigatorGpu } from './node-webgpu.js';
import { firstLine, importOptional, isNodeRuntime } from './runtime.js';
import { notInstalled, type StartResult } from './start-result.js';
import type { WebGpuAdapterLike, WebGpuAdapterSummary, WebGpuDeviceLike, WebGpuLike } from './webgpu-types.js';

/** Result of starting WebGPU: also the adapter it runs on, when one was found. */
export interface WebGpuStartResult extends StartResult {
  adapter?: WebGpuAdapterSummary;
}

interface WebGpuModule {
  WebGPUBackend: new (device: unknown, adapterInfo?: unknown) => tf.KernelBackend;
}

const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|microsoft basic render|\bwarp\b/i;

/** Reads the adapter's identity and whether it is a software fallback. */
export async function summarizeAdapter(adapter: WebGpuAdapterLike): Promise<WebGpuAdapterSummary> {
  let info = adapter.info;
  if (info === undefined && typeof adapter.requestAdapterInfo === 'function') {
    info = await adapter.requestAdapterInfo().catch(() => undefined);
  }
  const vendor = info?.vendor ?? '';
  const architecture = info?.architecture ?? '';
  const device = info?.device ?? '';
  const description = info?.description ?? '';
  const isFallbackAdapter =
    info?.isFallbackAdapter === true ||
    adapter.isFallbackAdapter === true ||
    SOFTWARE_ADAPTER.test(`${architecture} ${device} ${description}`);
  return { vendor, architecture, device, description, isFallbackAdapter };
}

/** One line naming an adapter, e.g. `google swiftshader (SwiftShader driver 5.0.0, software)`. */
export function describeAdapter(adapter: WebGpuAdapterSummary): string {
  const name = [adapter.vendor, adapter.architecture].filter((s) => s.length > 0).join(' ') || 'unnamed adapter';
  const details = [adapter.description || adapter.device, adapter.isFallbackAdapter ? 'software fallback' : 'hardware']
    .filter((s) => s.length > 0)
    .join(', ');
  return `${name} (${details})`;
}

/** Finds `navigator.gpu` (creating it through Dawn in Node) and asks it for an adapter. */
async function findAdapter(dawnOptions: readonly string[]): Promise<
  { ok: true; adapter: WebGpuAdapterSummary; createdByUs: boolean; notes: string[] } | { ok: false; why: string }
> {
  let gpu: WebGpuLike | undefined;
  let createdByUs = false;
  let notes: string[] = [];
  if (isNodeRuntime()) {
    const setup = await ensureNodeNavigatorGpu(dawnOptions);
    if (!setup.ok) return { ok: false, why: setup.why };
    ({ gpu, createdByUs, notes } = setup);
  } else {
    gpu = (globalThis as { navigator?: { gpu?: WebGpuLike } }).navigator?.gpu;
    if (!gpu) return { ok: false, why: 'navigator.gpu is not available in this browser/context' };
  }
  let adapter: WebGpuAdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (error) {
    adapter = null;
    notes.push(firstLine(error));
  }
  if (adapter == null) {
    if (createdByUs) setNavigatorGpu(undefined);
    const hint = isNodeRuntime() ? '; on a machine without a GPU install chromium (SwiftShader Vulkan driver)' : '';
    return { ok: false, why: `no WebGPU adapter${notes.length ? ` (${notes.join('; ')})` : ''}${hint}` };
  }
  return { ok: true, adapter: await summarizeAdapter(adapter), createdByUs, notes };
}

/**
 * Registers tfjs' `webgpu` backend factory when importing the package did not (it registers only
 * if `navigator.gpu` existed at import time). Mirrors tfjs' own factory.
 */
function registerWebGpuFactory(module: WebGpuModule): void {
  tf.registerBackend(
    'webgpu',
    async () => {
      const gpu = (globalThis as { navigator?: { gpu?: WebGpuLike } }).navigator?.gpu;
      if (!gpu) throw new Error('navigator.gpu disappeared');
      const adapter = (await gpu.requestAdapter({ powerPreference: 'high-performance' })) as
        | (WebGpuAdapterLike & {
            features: Set<string>;
            limits: Record<string, number>;
            requestDevice(descriptor: unknown): Promise<unknown>;
          })
        | null;
      if (!adapter) throw new Error('no WebGPU adapter');
      const limits = adapter.limits;
      const device = await adapter.requestDevice({
        requiredFeatures: adapter.features.has('timestamp-query') ? ['timestamp-query'] : [],
        requiredLimits: {
          maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
          maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
          maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
          maxBufferSize: limits.maxBufferSize,
          maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
          maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup,
        },
      });
      return new module.WebGPUBackend(device, adapter.info);
    },
    3,
  );
}

/**
 * Starts the webgpu backend.
 * @param options.allowFallbackAdapter use a software adapter (true when asked for by name)
 * @param options.dawnOptions Node only: options for Dawn's `create()` when `navigator.gpu` is created
 */
export async function startWebGpuBackend(options: {
  allowFallbackAdapter: boolean;
  verbose: boolean;
  dawnOptions?: readonly string[];
}): Promise<WebGpuStartResult> {
  const found = await findAdapter(options.dawnOptions ?? []);
  if (!found.ok) return { ok: false, why: found.why };
  const { adapter, createdByUs, notes } = found;
  const adapterText = describeAdapter(adapter);
  if (adapter.isFallbackAdapter && !options.allowFallbackAdapter) {
    if (createdByUs) setNavigatorGpu(undefined);
    return {
      ok: false,
      adapter,
      why: `only a software adapter, ${adapterText}, which is slower than wasm (initBackend('webgpu') uses it anyway)`,
    };
  }
  const imported = await importOptional<WebGpuModule>('@tensorflow/tfjs-backend-webgpu');
  if (!imported.ok && tf.findBackendFactory('webgpu') == null) {
    if (createdByUs) setNavigatorGpu(undefined);
    return { ok: false, adapter, why: notInstalled('@tensorflow/tfjs-backend-webgpu', imported.error, tf.version_core) };
  }
  if (tf.findBackendFactory('webgpu') == null && imported.ok) registerWebGpuFactory(imported.module);
  if (isNodeRuntime() && imported.ok) installNodeSyncRead(imported.module.WebGPUBackend);
  // Dawn hands its event-processing callback to setImmediate while tfjs creates the device.
  const activated = await withDawnTickCapture(() => activateBackend('webgpu', options.verbose));
  if (!activated.ok) {
    if (createdByUs) setNavigatorGpu(undefined);
    return { ok: false, adapter, why: `webgpu failed to start on ${adapterText}: ${activated.why}` };
  }
  if (isNodeRuntime()) {
    const device = (tf.backend() as unknown as { device?: WebGpuDeviceLike }).device;
    if (device && !(await captureDawnTick(device))) notes.push('synchronous reads unavailable (use await data())');
  }
  const via = isNodeRuntime() ? 'Dawn (webgpu npm package)' : 'navigator.gpu';
  return { ok: true, adapter, why: `${adapterText} via ${via}${notes.length ? `; ${notes.join('; ')}` : ''}` };
}
