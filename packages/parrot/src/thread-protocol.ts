/**
 * Messages between the calling thread (`threads.ts`) and an expert worker (`expert-worker.ts`).
 * Float32 data travels as `Float32Array`s (transferred where the sender owns the buffer).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MessagePort } from 'node:worker_threads';

/**
 * A tensor's float32 values as an array this thread owns, its buffer added to `transfer`. On wasm
 * `dataSync` already returns a fresh copy of the heap bytes; elsewhere (cpu) it returns the backend's
 * own storage, which must not be detached, so it is copied.
 */
export function transferableValues(t: tf.Tensor, transfer: ArrayBuffer[]): Float32Array {
  const data = t.dataSync() as Float32Array;
  const owned = tf.getBackend() === 'wasm' && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
  transfer.push(owned.buffer as ArrayBuffer);
  return owned;
}

/** `workerData` of an expert worker. */
export interface WorkerStartData {
  /** Requests arrive and replies leave on this port. */
  port: MessagePort;
  /** `[0]` counts the replies posted; the worker adds 1 and notifies after each one. */
  signal: Int32Array;
  backend: 'wasm' | 'cpu';
  /** Global indices of this worker's experts, ascending. */
  experts: number[];
}

/** New kernels of one expert, internal `[in, out]` layout: gate/up `[D, I]`, down `[I, D]`. */
export interface KernelUpdate {
  expert: number;
  D: number;
  I: number;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
}

export interface ForwardRequest {
  type: 'forward';
  id: number;
  M: number;
  D: number;
  tokens: Float32Array; // [M, D]
  /** Keep the activations for a backward of this call. */
  keep: boolean;
  kernels: KernelUpdate[];
}

export interface BackwardRequest {
  type: 'backward';
  id: number;
  B: number;
  N: number;
  D: number;
  E: number;
  tokens: Float32Array; // [B·N, D], to recompute a forward whose activations are gone
  dOut: Float32Array; // [B, N, D]
  weights: Float32Array; // [B, E]
  weightGradients: boolean;
  kernels: KernelUpdate[];
}

export type WorkerRequest = ForwardRequest | BackwardRequest;

export interface ForwardReply {
  type: 'forward';
  id: number;
  M: number;
  D: number;
  /** Each expert's output `[M, D]`, in the worker's expert order. */
  outputs: Float32Array[];
}

export interface BackwardReply {
  type: 'backward';
  id: number;
  M: number;
  D: number;
  I: number;
  /** Per expert, in the worker's expert order (kernel gradients only when asked for). */
  grads: Array<{ gate?: Float32Array; up?: Float32Array; down?: Float32Array; input: Float32Array }>;
}

export interface ErrorReply {
  type: 'error';
  id: number;
  message: string;
}

export type WorkerReply = ForwardReply | BackwardReply | ErrorReply;
