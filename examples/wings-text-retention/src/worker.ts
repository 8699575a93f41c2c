/** Worker-thread entry: runs tasks posted by the main thread, reports steps and results back. */
import { parentPort, workerData } from 'node:worker_threads';
import { runTask, type Task, type TaskContext } from './tasks.js';

const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');
const context = workerData as Omit<TaskContext, 'onStep'>;
port.on('message', async (task: Task) => {
  try {
    const outcome = await runTask(task, { ...context, onStep: (t, report) => port.postMessage({ type: 'step', task: t, report }) });
    port.postMessage({ type: 'done', task, outcome });
  } catch (error) {
    port.postMessage({ type: 'error', task, message: error instanceof Error ? `${error.message}\n${error.stack}` : String(error) });
  }
});
