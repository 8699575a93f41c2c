/**
 * Worker-thread entry of `@mllm/parrot/threads`: holds some experts' kernels on its own tfjs
 * backend and answers forward/backward requests with the same math as the calling thread
 * (`expert-math.ts`). Not a public entry point; `ExpertThreads.start` launches it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend, transposeLastTwo } from '@mllm/core';
import {
  expertBackward,
  expertForward,
  expertOutputGradient,
  type ExpertActivations,
  type ExpertKernels,
} from './expert-math.js';
import {
  transferableValues,
  type BackwardReply,
  type ForwardReply,
  type KernelUpdate,
  type WorkerReply,
  type WorkerRequest,
  type WorkerStartData,
} from './thread-protocol.js';

/** Activations of forwards whose backward may still come (the newest few). */
const KEPT_CALLS = 2;

const { port, signal, backend, experts } = workerData as WorkerStartData;
const kernels = new Map<number, ExpertKernels>();
const kept = new Map<number, Call>();

function applyKernelUpdates(updates: KernelUpdate[]): void {
  for (const u of updates) {
    if (!experts.includes(u.expert)) throw new Error(`kernels for expert ${u.expert}, which this worker does not run (${experts.join(', ')})`);
    const previous = kernels.get(u.expert);
    kernels.set(u.expert, {
      gate: tf.tensor2d(u.gate, [u.D, u.I]),
      up: tf.tensor2d(u.up, [u.D, u.I]),
      down: tf.tensor2d(u.down, [u.I, u.D]),
    });
    if (previous) tf.dispose([previous.gate, previous.up, previous.down]);
  }
}

function kernelsOf(e: number): ExpertKernels {
  const k = kernels.get(e);
  if (!k) throw new Error(`no kernels received for expert ${e}`);
  return k;
}

interface Call {
  tokens: tf.Tensor2D;
  activations: ExpertActivations[];
}

function disposeCall(call: Call): void {
  tf.dispose([call.tokens, ...call.activations.flatMap((a) => [a.gate, a.up, a.output])]);
}

function forgetCall(id: number): void {
  const call = kept.get(id);
  if (!call) return;
  disposeCall(call);
  kept.delete(id);
}

function forward(request: Extract<WorkerRequest, { type: 'forward' }>, transfer: ArrayBuffer[]): ForwardReply {
  applyKernelUpdates(request.kernels);
  const tokens = tf.tensor2d(request.tokens, [request.M, request.D]);
  const activations = experts.map((e) => expertForward(tokens, kernelsOf(e)));
  const outputs = activations.map((a) => transferableValues(a.output, transfer));
  if (request.keep) {
    kept.set(request.id, { tokens, activations });
    for (const id of [...kept.keys()].slice(0, Math.max(0, kept.size - KEPT_CALLS))) forgetCall(id);
  } else {
    disposeCall({ tokens, activations });
  }
  return { type: 'forward', id: request.id, M: request.M, D: request.D, outputs };
}

function backward(request: Extract<WorkerRequest, { type: 'backward' }>, transfer: ArrayBuffer[]): BackwardReply {
  applyKernelUpdates(request.kernels);
  const { B, N, D, E } = request;
  const M = B * N;
  let call = kept.get(request.id);
  if (!call) {
    // Activations gone (more forwards since, or kept = false): recompute them.
    const tokens = tf.tensor2d(request.tokens, [M, D]);
    call = { tokens, activations: experts.map((e) => expertForward(tokens, kernelsOf(e))) };
    kept.set(request.id, call);
  }
  const { tokens, activations } = call;
  const I = kernelsOf(experts[0]!).gate.shape[1];
  const grads: BackwardReply['grads'] = [];
  // The arrays are collected outside tidy's return value: tidy walks what it returns, element by element.
  tf.tidy(() => {
    const dOut = tf.tensor3d(request.dOut, [B, N, D]);
    const weights = tf.tensor2d(request.weights, [B, E]);
    const tokensT = request.weightGradients ? transposeLastTwo(tokens) : null; // [D, M]
    experts.forEach((e, j) => {
      const g = expertBackward(tokensT, kernelsOf(e), activations[j]!, expertOutputGradient(dOut, weights, e), request.weightGradients);
      grads.push({
        input: transferableValues(g.input, transfer),
        ...(g.gate ? { gate: transferableValues(g.gate, transfer) } : {}),
        ...(g.up ? { up: transferableValues(g.up, transfer) } : {}),
        ...(g.down ? { down: transferableValues(g.down, transfer) } : {}),
      });
    });
  });
  forgetCall(request.id);
  return { type: 'backward', id: request.id, M, D, I, grads };
}

function reply(message: WorkerReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(message, transfer);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

let currentId = -1;
process.on('uncaughtException', (error) => {
  reply({ type: 'error', id: currentId, message: error instanceof Error ? error.message : String(error) });
});

port.on('message', (request: WorkerRequest) => {
  currentId = request.id;
  const transfer: ArrayBuffer[] = [];
  try {
    const answer = request.type === 'forward' ? forward(request, transfer) : backward(request, transfer);
    reply(answer, transfer);
  } catch (error) {
    reply({ type: 'error', id: request.id, message: error instanceof Error ? error.message : String(error) });
  }
});

// This worker thread is ParrotMoE's own (its own tfjs instance): the fast cpu kernels affect nobody else.
initBackend(backend, { fastCpuKernels: true }).then(
  () => parentPort!.postMessage({ type: 'ready', backend: tf.getBackend() }),
  (error: unknown) => parentPort!.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) }),
);
