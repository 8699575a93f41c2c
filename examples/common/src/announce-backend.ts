/** The one line an example prints about its backend before its worker threads start. */
import { initBackend, type BackendName, type BackendRequest, type TextStream } from '@mllm/core';

/**
 * Start `request` on this (main) thread and print the choice in one line, e.g.
 * `backend: wasm (auto: no tfjs-node, no hardware WebGPU adapter; wasm with 2 threads)`. The worker
 * threads start the same request themselves (quietly: an `auto` probe prints nothing) and arrive at
 * the same backend on the same machine.
 */
export async function announceBackend(request: BackendRequest, stream: TextStream = process.stdout): Promise<BackendName> {
  const choice = await initBackend(request);
  stream.write(`backend: ${choice.backend} (${choice.reason})\n`);
  return choice.backend;
}
