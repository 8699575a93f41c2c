/**
 * A small task pool over worker threads, shared by the examples: tfjs-wasm in Node uses one
 * thread, so independent training runs (seeds, recipes) on two workers use both cores.
 *
 * Main side: `runOnWorkerPool` posts tasks to `count` workers; a finished task may release
 * follow-up tasks (`followUps`, e.g. the fine-tuning runs of a seed after its pretraining).
 * Worker side: `serveTasks(handler)` runs each posted task and reports progress and results.
 * Each example keeps a tiny `worker-entry.mjs` (tsx's hooks are not inherited by workers).
 */
import { Worker, parentPort, workerData } from 'node:worker_threads';

type Message<T, P, R> =
  | { type: 'progress'; task: T; progress: P }
  | { type: 'done'; task: T; result: R }
  | { type: 'error'; task: T; message: string };

export interface WorkerPoolOptions<T, P, R> {
  /** URL of the worker entry module. */
  entry: URL;
  /** Given to every worker as `workerData`. */
  workerData: unknown;
  count: number;
  tasks: T[];
  /** Tasks that become ready when `task` is done (default none). */
  followUps?: (task: T, result: R) => T[];
  onProgress?: (task: T, progress: P) => void;
  /** For error messages. */
  label?: (task: T) => string;
}

/** Runs every task (and follow-up) on the pool; results in completion order. Rejects on the first error. */
export function runOnWorkerPool<T, P, R>(options: WorkerPoolOptions<T, P, R>): Promise<Array<{ task: T; result: R }>> {
  return new Promise((resolve, reject) => {
    const ready = [...options.tasks];
    const results: Array<{ task: T; result: R }> = [];
    let pending = ready.length;
    const pool: Worker[] = [];
    const idle: Worker[] = [];
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      for (const worker of pool) void worker.terminate();
      if (error) reject(error);
      else resolve(results);
    };
    const dispatch = () => {
      while (idle.length && ready.length) idle.pop()!.postMessage(ready.shift());
    };
    if (pending === 0) return finish();
    for (let i = 0; i < Math.max(1, options.count); i++) {
      const worker = new Worker(options.entry, { workerData: options.workerData });
      worker.on('message', (message: Message<T, P, R>) => {
        if (message.type === 'progress') return options.onProgress?.(message.task, message.progress);
        if (message.type === 'error') {
          const name = options.label ? options.label(message.task) : 'a task';
          return finish(new Error(`${name} failed: ${message.message}`));
        }
        results.push({ task: message.task, result: message.result });
        const next = options.followUps?.(message.task, message.result) ?? [];
        pending += next.length;
        ready.unshift(...next);
        idle.push(worker);
        if (--pending === 0) return finish();
        dispatch();
      });
      worker.on('error', (error) => finish(error));
      pool.push(worker);
      idle.push(worker);
    }
    dispatch();
  });
}

/** Worker side: run `handler` for each posted task; `report` sends progress to the main thread. */
export function serveTasks<T, P, R>(handler: (task: T, report: (progress: P) => void, data: unknown) => Promise<R>): void {
  const port = parentPort;
  if (!port) throw new Error('serveTasks must run in a worker thread');
  port.on('message', async (task: T) => {
    try {
      const result = await handler(task, (progress) => port.postMessage({ type: 'progress', task, progress }), workerData);
      port.postMessage({ type: 'done', task, result });
    } catch (error) {
      port.postMessage({ type: 'error', task, message: error instanceof Error ? `${error.message}\n${error.stack}` : String(error) });
    }
  });
}
