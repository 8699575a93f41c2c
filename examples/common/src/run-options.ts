/** What every example's `runExample` takes. */
import type { BackendRequest } from '@mllm/core';
import type { TextStream } from '@mllm/train';

export interface ExampleRunOptions<Config> {
  backend: BackendRequest;
  /** Training seeds; each recipe runs once per seed. */
  seeds: number[];
  outDir: string;
  /** Overrides of the example's default configuration. */
  config?: Partial<Config>;
  /** Worker threads (0 = run inline on this thread; default min(2, cores, tasks)). */
  workers?: number;
  /** Where the progress bar writes (default stdout). */
  stream?: TextStream;
}
