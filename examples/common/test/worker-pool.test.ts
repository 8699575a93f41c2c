import { describe, expect, it } from 'vitest';
import { runOnWorkerPool } from '../src/worker-pool.js';

const entry = new URL('./fixtures/square-worker.mjs', import.meta.url);

describe('runOnWorkerPool', () => {
  it('runs every task and the follow-ups a finished task releases, on several workers', async () => {
    const progress: string[] = [];
    const results = await runOnWorkerPool<number, string, number>({
      entry, workerData: null, count: 2, tasks: [1, 2],
      followUps: (task) => (task === 1 ? [10, 11] : []),
      onProgress: (_task, p) => progress.push(p),
    });
    expect(results.map((r) => [r.task, r.result]).sort((a, b) => a[0] - b[0])).toEqual([[1, 1], [2, 4], [10, 100], [11, 121]]);
    expect(progress.sort()).toEqual(['working on 1', 'working on 10', 'working on 11', 'working on 2']);
  });

  it('rejects with the failing task named', async () => {
    await expect(runOnWorkerPool<number, string, number>({ entry, workerData: null, count: 2, tasks: [3, -1], label: (t) => `task ${t}` }))
      .rejects.toThrow(/task -1 failed: negative -1/);
  });

  it('resolves at once with no tasks', async () => {
    expect(await runOnWorkerPool({ entry, workerData: null, count: 1, tasks: [] })).toEqual([]);
  });
});
