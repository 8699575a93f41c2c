/** The one line an example prints about its backend before its worker threads start. */
import { initBackend, type BackendName, type BackendRequest } from '@mllm/core';
import type { TextStream } from '@mllm/train';

/**
 * Start `request` on this (main) thread and print the choice in one short line, e.g.
 * `backend: wasm (auto; passed over tensorflow, webgpu)` (`describeBackendChoice` has the reasons). The worker
 * threads start the same request themselves (quietly: an `auto` probe prints nothing) and arrive at
 * the same backend on the same machine.
 */
export async function announceBackend(request: BackendRequest, stream: TextStream = process.stdout): Promise<BackendName> {
  const choice = await initBackend(request);
  const passedOver = choice.tried.filter((attempt) => attempt.name !== choice.backend).map((attempt) => attempt.name);
  stream.write(`backend: ${choice.backend} (${choice.requested}${passedOver.length > 0 ? `; passed over ${passedOver.join(', ')}` : ''})\n`);
  return choice.backend;
}
