/** Worker-thread entry: runs the seed tasks posted by the main thread, reports progress and results back. */
import { parentPort } from 'node:worker_threads';
import { runSeed, type SeedTask } from './seed-task.js';

const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');
port.on('message', async (task: SeedTask) => {
  try {
    const result = await runSeed(task, (progress) => port.postMessage({ type: 'progress', progress }));
    port.postMessage({ type: 'done', result });
  } catch (error) {
    port.postMessage({ type: 'error', message: error instanceof Error ? `${error.message}\n${error.stack}` : String(error) });
  }
});
