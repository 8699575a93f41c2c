/**
 * `@mllm/parrot/threads`: ParrotMoE's experts on worker threads (Node only).
 *
 * tfjs-wasm runs one thread in Node, so on a multi-core machine one core does all the work. Parrot's
 * experts are independent given the tokens and the routing weights, so some of them can run on
 * worker threads, each with its own tfjs backend instance holding its experts' kernels, while the
 * calling thread runs the rest, in the forward and in the backward:
 *
 *   const threads = await ExpertThreads.start(moe);   // 1 worker: half the experts, two cores busy
 *   ... moe.forward(...), tf.variableGrads(...), a Trainer — unchanged ...
 *   await threads.close();
 *
 * Same results as the single-thread path, bitwise, when the workers run the calling thread's
 * backend (cpu or wasm): every expert runs the same kernels in the same order (`expert-math.ts`),
 * and outputs and input gradients are summed in expert order on the calling thread.
 *
 * How: tfjs runs forward and gradient functions synchronously, so the calling thread posts each
 * request on a `MessageChannel`, runs its own experts, then blocks in `Atomics.wait` until the worker
 * has answered and collects the answer with `receiveMessageOnPort`. Kernels are copied to a worker
 * only when they changed (a tfjs Variable's `assign` gives it new data), i.e. once per optimizer step.
 * In a browser, `Atomics.wait` is not allowed on the main thread: this module is for Node.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { ExpertGradients, ExpertKernels } from './expert-math.js';
import type { ExpertOffload } from './experts.js';
import type { ParrotMoE } from './parrot-moe.js';
import {
  transferableValues,
  type BackwardReply,
  type ForwardReply,
  type KernelUpdate,
  type WorkerReply,
  type WorkerRequest,
  type WorkerStartData,
} from './thread-protocol.js';

/** Backends a worker thread can run (those that live in host memory and run in any Node thread). */
export type ExpertThreadBackend = 'wasm' | 'cpu';

/** Options of {@link ExpertThreads.start}. */
export interface ExpertThreadsOptions {
  /** Worker threads (default 1: with the calling thread, two cores at work). At most numExperts − localExperts. */
  workers?: number;
  /**
   * Experts kept on the calling thread (default: an equal share of the `workers + 1` threads, the
   * smaller one when E does not divide evenly, since the calling thread also sums the outputs).
   */
  localExperts?: number;
  /** Backend of the workers (default: the active backend, which must be cpu or wasm). */
  backend?: ExpertThreadBackend;
  /** A call that has not come back from a worker within this many milliseconds fails (default 600 000). */
  timeoutMs?: number;
  /** The worker script (default: `expert-worker.js` / `.cjs` next to this module in the package's `dist`). */
  workerScript?: string | URL;
}

interface WorkerHandle {
  index: number;
  worker: Worker;
  port: MessagePort;
  signal: Int32Array; // [0]: replies posted so far (the worker adds 1 and notifies after each)
  experts: number[]; // global expert indices, ascending
  sent: Map<number, KernelIds>; // expert → dataIds of the kernels it holds
  exited: string | null;
}

interface CallState {
  workers: Set<number>; // worker indices with a pending reply
}

/** Forwards whose kernel identities are remembered for their backward (the newest few). */
const REMEMBERED_FORWARDS = 8;
type KernelIds = [object, object, object];

declare const __filename: string | undefined;

function thisModulePath(): string | undefined {
  if (typeof __filename === 'string') return __filename; // CJS build
  try {
    const url = import.meta.url;
    if (typeof url === 'string' && url.startsWith('file:')) return fileURLToPath(url);
  } catch {
    // import.meta unavailable in this transpilation
  }
  return undefined;
}

/** The worker script next to this module: `dist/expert-worker.{js,cjs}` (source runs use the built one). */
function defaultWorkerScript(): string {
  const here = thisModulePath();
  if (!here) throw new Error('ExpertThreads.start: cannot locate the worker script; pass options.workerScript');
  const dir = dirname(here);
  const candidates = here.endsWith('.cjs')
    ? [join(dir, 'expert-worker.cjs')]
    : here.endsWith('.ts')
      ? [join(dir, '..', 'dist', 'expert-worker.js')]
      : [join(dir, 'expert-worker.js')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `ExpertThreads.start: worker script not found (looked for ${candidates.join(', ')}); build @mllm/parrot or pass options.workerScript`,
    );
  }
  return found;
}

/** Split E experts: `local` on the calling thread (indices 0…local−1), the rest in contiguous chunks over the workers. */
export function assignExperts(numExperts: number, workers: number, localExperts?: number): { local: number[]; workers: number[][] } {
  if (!Number.isInteger(workers) || workers < 1 || workers > numExperts) {
    throw new Error(`ExpertThreads: workers must be an integer in [1, ${numExperts}] (numExperts), got ${String(workers)}`);
  }
  const local = localExperts ?? Math.floor(numExperts / (workers + 1));
  if (!Number.isInteger(local) || local < 0 || local > numExperts - workers) {
    throw new Error(
      `ExpertThreads: localExperts must be an integer in [0, ${numExperts - workers}] (numExperts − workers), got ${String(localExperts)}`,
    );
  }
  const remote = numExperts - local;
  const chunks: number[][] = [];
  let next = local;
  for (let w = 0; w < workers; w++) {
    const size = Math.floor(remote / workers) + (w < remote % workers ? 1 : 0);
    chunks.push(Array.from({ length: size }, (_, i) => next + i));
    next += size;
  }
  return { local: Array.from({ length: local }, (_, i) => i), workers: chunks };
}

/**
 * ParrotMoE's experts on `worker_threads`. Create with {@link ExpertThreads.start}; it sets
 * `moe.expertOffload`. {@link ExpertThreads.close} stops the workers and puts all experts back on
 * the calling thread.
 */
export class ExpertThreads implements ExpertOffload {
  /** Experts on the calling thread. */
  readonly localExperts: readonly number[];
  /** Experts per worker thread. */
  readonly workerExperts: readonly (readonly number[])[];
  /** Backend of the workers (and the one the MoE must run on). */
  readonly backend: ExpertThreadBackend;
  readonly numExperts: number;
  private readonly handles: WorkerHandle[];
  private readonly timeoutMs: number;
  private readonly calls = new Map<number, CallState>();
  /** Per kept forward: the dataIds of every expert's kernels at that time (a backward's saved kernels are clones with new ids). */
  private readonly forwardKernelIds = new Map<number, KernelIds[]>();
  private nextCallId = 1;
  private closed = false;
  private moe: ParrotMoE | null;

  private constructor(moe: ParrotMoE, handles: WorkerHandle[], local: number[], backend: ExpertThreadBackend, timeoutMs: number) {
    this.moe = moe;
    this.handles = handles;
    this.localExperts = local;
    this.workerExperts = handles.map((h) => h.experts);
    this.backend = backend;
    this.numExperts = moe.numExperts;
    this.timeoutMs = timeoutMs;
  }

  /**
   * Start the worker threads for `moe` (its `expertStrategy` must be `separate`, the default) and
   * attach them (`moe.expertOffload = threads`). Resolves once every worker's backend is up.
   */
  static async start(moe: ParrotMoE, options: ExpertThreadsOptions = {}): Promise<ExpertThreads> {
    if (moe.expertOffload) throw new Error('ExpertThreads.start: this ParrotMoE already has expert threads; close them first');
    if (moe.expertStrategy !== 'separate') {
      throw new Error(`ExpertThreads.start: expert threads need expertStrategy 'separate', got '${moe.expertStrategy}'`);
    }
    const active = tf.getBackend();
    const backend = options.backend ?? (active as ExpertThreadBackend);
    if (backend !== 'wasm' && backend !== 'cpu') {
      throw new Error(`ExpertThreads.start: backend must be 'wasm' or 'cpu' (worker threads hold their own backend), got '${String(backend)}'`);
    }
    const timeoutMs = options.timeoutMs ?? 600_000;
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0)) throw new Error(`ExpertThreads.start: timeoutMs must be > 0, got ${String(timeoutMs)}`);
    const { local, workers } = assignExperts(moe.numExperts, options.workers ?? 1, options.localExperts);
    const script = options.workerScript ?? defaultWorkerScript();
    const handles: WorkerHandle[] = [];
    try {
      for (let index = 0; index < workers.length; index++) {
        handles.push(await startWorker(index, script, backend, workers[index]!));
      }
    } catch (error) {
      await Promise.all(handles.map((h) => h.worker.terminate()));
      throw error;
    }
    const threads = new ExpertThreads(moe, handles, local, backend, timeoutMs);
    moe.expertOffload = threads;
    return threads;
  }

  /** Stop the workers; the MoE runs all experts on the calling thread again. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.moe && this.moe.expertOffload === this) this.moe.expertOffload = null;
    this.moe = null;
    await Promise.all(this.handles.map((h) => h.worker.terminate()));
  }

  /** Whether {@link close} was called. */
  get isClosed(): boolean {
    return this.closed;
  }

  remoteExperts(numExperts: number): readonly number[] {
    this.assertOpen();
    if (numExperts !== this.numExperts) {
      throw new Error(`ExpertThreads: started for ${this.numExperts} experts, called with ${numExperts}`);
    }
    if (tf.getBackend() !== this.backend) {
      throw new Error(`ExpertThreads: the workers run '${this.backend}' but the active backend is '${tf.getBackend()}'; start the threads on the backend the model runs on`);
    }
    return this.handles.flatMap((h) => h.experts);
  }

  startForward(tokens: tf.Tensor2D, kernels: readonly ExpertKernels[], keepActivations: boolean): number {
    this.assertOpen();
    const id = this.nextCallId++;
    const [M, D] = tokens.shape;
    const ids = kernels.map((k): KernelIds => [k.gate.dataId, k.up.dataId, k.down.dataId]);
    if (keepActivations) {
      this.forwardKernelIds.set(id, ids);
      for (const old of [...this.forwardKernelIds.keys()].slice(0, Math.max(0, this.forwardKernelIds.size - REMEMBERED_FORWARDS))) {
        this.forwardKernelIds.delete(old);
      }
    }
    for (const h of this.handles) {
      const transfer: ArrayBuffer[] = [];
      const request: WorkerRequest = {
        type: 'forward',
        id,
        M,
        D,
        tokens: transferableValues(tokens, transfer),
        keep: keepActivations,
        kernels: this.kernelUpdates(h, kernels, ids, transfer),
      };
      this.post(h, request, transfer);
    }
    this.calls.set(id, { workers: new Set(this.handles.map((h) => h.index)) });
    return id;
  }

  finishForward(callId: number): tf.Tensor2D[] {
    const outputs: tf.Tensor2D[] = [];
    for (const h of this.handles) {
      const reply = this.receive(h, callId, 'forward') as ForwardReply;
      for (const data of reply.outputs) outputs.push(tf.tensor2d(data, [reply.M, reply.D]));
    }
    return outputs;
  }

  startBackward(
    callId: number,
    request: { tokens: tf.Tensor2D; dOut: tf.Tensor3D; weights: tf.Tensor2D; kernels: readonly ExpertKernels[]; weightGradients: boolean },
  ): void {
    this.assertOpen();
    const [B, N, D] = request.dOut.shape;
    // The saved kernels hold the forward's values under new ids: compare the forward's ids instead.
    const ids = this.forwardKernelIds.get(callId) ?? request.kernels.map((k): KernelIds => [k.gate.dataId, k.up.dataId, k.down.dataId]);
    this.forwardKernelIds.delete(callId);
    for (const h of this.handles) {
      const transfer: ArrayBuffer[] = [];
      const message: WorkerRequest = {
        type: 'backward',
        id: callId,
        B,
        N,
        D,
        E: this.numExperts,
        tokens: transferableValues(request.tokens, transfer),
        dOut: transferableValues(request.dOut, transfer),
        weights: transferableValues(request.weights, transfer),
        weightGradients: request.weightGradients,
        kernels: this.kernelUpdates(h, request.kernels, ids, transfer),
      };
      this.post(h, message, transfer);
    }
    this.calls.set(callId, { workers: new Set(this.handles.map((h) => h.index)) });
  }

  finishBackward(callId: number): ExpertGradients[] {
    const grads: ExpertGradients[] = [];
    for (const h of this.handles) {
      const reply = this.receive(h, callId, 'backward') as BackwardReply;
      for (const g of reply.grads) {
        const { D, I, M } = reply;
        grads.push({
          input: tf.tensor2d(g.input, [M, D]),
          ...(g.gate ? { gate: tf.tensor2d(g.gate, [D, I]) } : {}),
          ...(g.up ? { up: tf.tensor2d(g.up, [D, I]) } : {}),
          ...(g.down ? { down: tf.tensor2d(g.down, [I, D]) } : {}),
        });
      }
    }
    return grads;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('ExpertThreads: closed (the MoE no longer uses them)');
    for (const h of this.handles) {
      if (h.exited) throw new Error(`ExpertThreads: worker ${h.index} stopped (${h.exited}); close these threads and start new ones`);
    }
  }

  /**
   * The kernels of `h`'s experts that the worker does not hold: `ids[e]` identifies the values of
   * `kernels[e]` (a tfjs Variable gets new data, hence a new dataId, on every `assign`).
   */
  private kernelUpdates(h: WorkerHandle, kernels: readonly ExpertKernels[], allIds: readonly KernelIds[], transfer: ArrayBuffer[]): KernelUpdate[] {
    const updates: KernelUpdate[] = [];
    for (const e of h.experts) {
      const k = kernels[e]!;
      const ids = allIds[e]!;
      const last = h.sent.get(e);
      if (last && last[0] === ids[0] && last[1] === ids[1] && last[2] === ids[2]) continue;
      const [D, I] = k.gate.shape;
      updates.push({ expert: e, D, I, gate: transferableValues(k.gate, transfer), up: transferableValues(k.up, transfer), down: transferableValues(k.down, transfer) });
      h.sent.set(e, ids);
    }
    return updates;
  }

  private post(h: WorkerHandle, request: WorkerRequest, transfer: ArrayBuffer[]): void {
    h.port.postMessage(request, transfer);
  }

  /** Block until `h` answers call `callId` (or fails, or the timeout passes). */
  private receive(h: WorkerHandle, callId: number, kind: 'forward' | 'backward'): WorkerReply {
    const deadline = Date.now() + this.timeoutMs;
    const call = this.calls.get(callId);
    for (;;) {
      const seen = Atomics.load(h.signal, 0);
      const received = receiveMessageOnPort(h.port);
      if (received) {
        const reply = received.message as WorkerReply;
        if (reply.id !== callId) continue; // an answer to an abandoned call (its caller threw)
        call?.workers.delete(h.index);
        if (call && call.workers.size === 0) this.calls.delete(callId);
        if (reply.type === 'error') {
          h.sent.clear(); // the worker may hold partial kernel updates: send all kernels next time
          throw new Error(`ExpertThreads: worker ${h.index} failed in the ${kind} pass: ${reply.message}`);
        }
        if (reply.type !== kind) throw new Error(`ExpertThreads: worker ${h.index} answered '${reply.type}' to a ${kind} request`);
        return reply;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`ExpertThreads: worker ${h.index} did not answer the ${kind} pass within ${this.timeoutMs} ms`);
      }
      Atomics.wait(h.signal, 0, seen, Math.min(left, 1000));
    }
  }
}

async function startWorker(index: number, script: string | URL, backend: ExpertThreadBackend, experts: number[]): Promise<WorkerHandle> {
  const channel = new MessageChannel();
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const data: WorkerStartData = { port: channel.port2, signal, backend, experts };
  const worker = new Worker(script, { workerData: data, transferList: [channel.port2] });
  const handle: WorkerHandle = { index, worker, port: channel.port1, signal, experts, sent: new Map(), exited: null };
  await new Promise<void>((resolve, reject) => {
    const onMessage = (message: { type: string; message?: string }) => {
      if (message.type === 'ready') {
        cleanup();
        resolve();
      } else if (message.type === 'error') {
        cleanup();
        reject(new Error(`ExpertThreads.start: worker ${index} could not start its '${backend}' backend: ${message.message}`));
      }
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new Error(`ExpertThreads.start: worker ${index} failed to start: ${error.message}`));
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new Error(`ExpertThreads.start: worker ${index} exited with code ${code} before it was ready`));
    };
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
  worker.on('error', (error) => {
    handle.exited = `error: ${error.message}`;
  });
  worker.on('exit', (code) => {
    handle.exited ??= `exit code ${code}`;
  });
  // Neither keeps the process alive: an unclosed ExpertThreads does not hang the program at its end.
  worker.unref();
  channel.port1.unref();
  return handle;
}
