/**
 * The few WebGPU shapes @mllm touches, declared locally so @mllm/core does not need the DOM
 * WebGPU typings (`@webgpu/types`) at compile time.
 */

/** `GPUAdapterInfo` fields read for reporting and fallback detection. */
export interface WebGpuAdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

/** `GPUAdapter` (only what is read). */
export interface WebGpuAdapterLike {
  info?: WebGpuAdapterInfoLike;
  /** Older spelling, before it moved to `info`. */
  isFallbackAdapter?: boolean;
  requestAdapterInfo?: () => Promise<WebGpuAdapterInfoLike>;
}

/** `navigator.gpu`. */
export interface WebGpuLike {
  requestAdapter(options?: { powerPreference?: 'low-power' | 'high-performance' }): Promise<WebGpuAdapterLike | null>;
}

/** `GPUBuffer` (only what the synchronous read uses). */
export interface WebGpuBufferLike {
  size: number;
  mapState: 'unmapped' | 'pending' | 'mapped';
  mapAsync(mode: number, offset?: number, size?: number): Promise<void>;
  getMappedRange(offset?: number, size?: number): ArrayBuffer;
  unmap(): void;
}

/** `GPUDevice` (only what the synchronous read uses). */
export interface WebGpuDeviceLike {
  queue: { onSubmittedWorkDone(): Promise<void> };
}

/** What `initBackend` reports about a WebGPU adapter. */
export interface WebGpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A software implementation (SwiftShader, WARP, lavapipe…): correct but slow. */
  isFallbackAdapter: boolean;
}
