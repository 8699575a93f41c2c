/**
 * ExpertThreads: the experts on worker threads give the single-thread results bit for bit (same
 * backend, same kernels, same summation order), in the forward and in every gradient; kernels
 * follow optimizer updates; nothing leaks; bad use fails with a clear error and loses nothing.
 * The worker script is the built one (`dist/expert-worker.js`): `pnpm test` builds first.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testBackend } from '@mllm/core/testing';
import { ParrotMoE, type ParrotMoEArgs } from './parrot-moe.js';
import { ExpertThreads, assignExperts, type ExpertThreadsOptions } from './threads.js';
import { DIMS, batchTensors, randomBatch, randomWeights, weightsToStateDict } from './testing/fixtures.js';

const { D, I, N } = DIMS;
const E = 4;
const LAYOUTS = [
  [1, 1, 1, 1, 1, 1],
  [1, 1, 0, 1, 0, 0],
];
const hostBackend = testBackend() === 'cpu' || testBackend() === 'wasm';

function makeMoE(args: Partial<ParrotMoEArgs> = {}): ParrotMoE {
  const moe = new ParrotMoE({ hiddenSize: D, intermediateSize: I, numExperts: E, ...args });
  const dict = weightsToStateDict(randomWeights(17, D, I, E, 2));
  moe.loadStateDict(dict);
  tf.dispose([...dict.values()]);
  return moe;
}

/** Forward outputs and the gradients of a probe loss w.r.t. every trainable weight and the inputs, as plain arrays. */
function run(moe: ParrotMoE, seed = 3): Record<string, Float32Array> {
  const batch = randomBatch(seed, N, D, LAYOUTS);
  const { visual: v0, text: t0, textMask } = batchTensors(batch);
  const visual = tf.variable(v0, true, `visual_${seed}_${Math.random()}`);
  const text = tf.variable(t0, true, `text_${seed}_${Math.random()}`);
  const probe = tf.randomNormal([2, N, D], 0, 1, 'float32', 9);
  const result: Record<string, Float32Array> = {};
  const forward = moe.forward({ visual: visual as unknown as tf.Tensor3D, text: text as unknown as tf.Tensor3D, textMask });
  result.output = forward.output.dataSync() as Float32Array;
  result.routing = forward.routingWeights.dataSync() as Float32Array;
  tf.dispose([forward.output, forward.routingWeights, forward.textAttention, forward.auxLoss ?? []].flat());
  const variables = [...moe.trainableVariables(), visual, text];
  const { value, grads } = tf.variableGrads(() => {
    const out = moe.forward({ visual: visual as unknown as tf.Tensor3D, text: text as unknown as tf.Tensor3D, textMask });
    let loss = tf.sum(tf.mul(out.output, probe));
    if (out.auxLoss) loss = tf.add(loss, out.auxLoss);
    return loss as tf.Scalar;
  }, variables);
  result.loss = value.dataSync() as Float32Array;
  variables.forEach((variable, i) => {
    const key = i < variables.length - 2 ? `grad:${i}` : i === variables.length - 2 ? 'grad:visual' : 'grad:text';
    result[key] = grads[variable.name]!.dataSync() as Float32Array;
  });
  tf.dispose([value, ...Object.values(grads), visual, text, textMask, v0, t0, probe]);
  return result;
}

function expectBitwiseEqual(actual: Record<string, Float32Array>, expected: Record<string, Float32Array>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const key of Object.keys(expected)) {
    const a = actual[key]!;
    const b = expected[key]!;
    expect(a.length, key).toBe(b.length);
    const firstDifference = a.findIndex((x, i) => !Object.is(x, b[i]));
    expect(firstDifference, `${key}: first differing element (${a[firstDifference]} vs ${b[firstDifference]})`).toBe(-1);
  }
}

let open: ExpertThreads[] = [];
async function start(moe: ParrotMoE, options: ExpertThreadsOptions = {}): Promise<ExpertThreads> {
  const threads = await ExpertThreads.start(moe, options);
  open.push(threads);
  return threads;
}
afterEach(async () => {
  await Promise.all(open.map((t) => t.close()));
  open = [];
});

describe('assignExperts', () => {
  it('splits E experts between the calling thread (first, smaller share) and the workers', () => {
    expect(assignExperts(6, 1)).toEqual({ local: [0, 1, 2], workers: [[3, 4, 5]] });
    expect(assignExperts(3, 1)).toEqual({ local: [0], workers: [[1, 2]] });
    expect(assignExperts(7, 2)).toEqual({ local: [0, 1], workers: [[2, 3, 4], [5, 6]] });
    expect(assignExperts(4, 1, 0)).toEqual({ local: [], workers: [[0, 1, 2, 3]] });
  });

  it('rejects worker and local counts that leave a worker without experts', () => {
    expect(() => assignExperts(4, 0)).toThrow(/workers must be an integer in \[1, 4\].*got 0/);
    expect(() => assignExperts(4, 5)).toThrow(/workers must be an integer in \[1, 4\].*got 5/);
    expect(() => assignExperts(4, 2, 3)).toThrow(/localExperts must be an integer in \[0, 2\].*got 3/);
  });
});

describe.runIf(hostBackend)('ExpertThreads (same results as one thread)', () => {
  const cases: Array<{ label: string; args: Partial<ParrotMoEArgs>; options: ExpertThreadsOptions }> = [
    { label: '1 worker, dense routing', args: {}, options: {} },
    { label: '2 workers, top-2 routing + aux loss', args: { topK: 2, auxLossCoefficient: 0.3, moeWeight: 1 }, options: { workers: 2 } },
    { label: 'all experts on 1 worker, no residual', args: { useResidual: false }, options: { localExperts: 0 } },
  ];
  for (const { label, args, options } of cases) {
    it(`${label}: forward and every gradient bitwise equal, no leaked tensors`, async () => {
      const moe = makeMoE(args);
      const single = run(moe);
      const threads = await start(moe, options);
      expect(moe.expertOffload).toBe(threads);
      const before = tf.memory().numTensors;
      const threaded = run(moe);
      expect(tf.memory().numTensors).toBe(before);
      expectBitwiseEqual(threaded, single);
      // and again (kernels already on the worker, activations replaced)
      expectBitwiseEqual(run(moe, 4), (await (async () => {
        await threads.close();
        return run(moe, 4);
      })()));
      expect(moe.expertOffload).toBeNull();
      moe.dispose();
    });
  }

  it('frozen experts: input gradients still equal (no kernel gradients computed)', async () => {
    const moe = makeMoE();
    for (const expert of moe.experts) expert.setTrainable(false);
    const single = run(moe);
    await start(moe);
    expectBitwiseEqual(run(moe), single);
    moe.dispose();
  });

  it('follows weight updates: the workers get new kernels after an optimizer-style assign', async () => {
    const moe = makeMoE();
    await start(moe, { workers: 2 });
    run(moe); // kernels sent
    for (const v of moe.trainableVariables()) v.assign(tf.tidy(() => tf.add(v, tf.mul(tf.randomNormal(v.shape, 0, 1, 'float32', 5), 0.05))));
    const threaded = run(moe);
    await open.pop()!.close();
    expectBitwiseEqual(threaded, run(moe));
    moe.dispose();
  });
});

describe.runIf(hostBackend)('ExpertThreads (errors)', () => {
  it('refuses strategies other than separate, a second start, and backends a worker cannot hold', async () => {
    const wide = makeMoE({ expertStrategy: 'wide' });
    await expect(ExpertThreads.start(wide)).rejects.toThrow(/expertStrategy 'separate', got 'wide'/);
    wide.dispose();
    const moe = makeMoE();
    await expect(ExpertThreads.start(moe, { backend: 'webgpu' as never })).rejects.toThrow(/backend must be 'wasm' or 'cpu'.*got 'webgpu'/);
    await expect(ExpertThreads.start(moe, { workers: 9 })).rejects.toThrow(/workers must be an integer in \[1, 4\].*got 9/);
    await start(moe);
    await expect(ExpertThreads.start(moe)).rejects.toThrow(/already has expert threads/);
    moe.dispose();
  });

  it('a strategy changed after start, or another active backend, fails the forward with a clear error; close restores one thread', async () => {
    const moe = makeMoE();
    const other = testBackend() === 'cpu' ? 'wasm' : 'cpu';
    const threads = await start(moe, { backend: other });
    const batch = batchTensors(randomBatch(3, N, D, LAYOUTS));
    const before = tf.memory().numTensors;
    expect(() => moe.forward(batch)).toThrow(new RegExp(`workers run '${other}' but the active backend is '${testBackend()}'`));
    moe.expertStrategy = 'stacked';
    expect(() => moe.forward(batch)).toThrow(/worker threads only with strategy 'separate', got 'stacked'/);
    expect(tf.memory().numTensors).toBe(before);
    moe.expertStrategy = 'separate';
    await threads.close();
    await threads.close(); // idempotent
    expect(threads.isClosed).toBe(true);
    const out = moe.forward(batch);
    expect(out.output.shape).toEqual([2, N, D]);
    tf.dispose([out.output, out.routingWeights, out.textAttention, Object.values(batch)].flat());
    moe.dispose();
  });

  describe('broken workers', () => {
    let dir = '';
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it('a worker that cannot start rejects start() and leaves the MoE on one thread', async () => {
      dir = mkdtempSync(join(tmpdir(), 'mllm-threads-'));
      const script = join(dir, 'broken.mjs');
      writeFileSync(script, "throw new Error('broken on purpose');\n");
      const moe = makeMoE();
      await expect(ExpertThreads.start(moe, { workerScript: script })).rejects.toThrow(/worker 0 failed to start: broken on purpose/);
      expect(moe.expertOffload).toBeNull();
      moe.dispose();
    });

    it('a worker that never answers times out: the forward throws, nothing leaks, the MoE works after close', async () => {
      dir = mkdtempSync(join(tmpdir(), 'mllm-threads-'));
      const script = join(dir, 'silent.mjs');
      writeFileSync(script, "import { parentPort } from 'node:worker_threads';\nparentPort.postMessage({ type: 'ready' });\n");
      const moe = makeMoE();
      const threads = await start(moe, { workerScript: script, timeoutMs: 300 });
      const batch = batchTensors(randomBatch(3, N, D, LAYOUTS));
      const before = tf.memory().numTensors;
      expect(() => moe.forward(batch)).toThrow(/worker 0 did not answer the forward pass within 300 ms/);
      expect(tf.memory().numTensors).toBe(before);
      await threads.close();
      const out = moe.forward(batch);
      expect(out.output.shape).toEqual([2, N, D]);
      tf.dispose([out.output, out.routingWeights, out.textAttention, Object.values(batch)].flat());
      moe.dispose();
    });
  });
});

describe.runIf(!hostBackend)('ExpertThreads on a GPU backend', () => {
  it(`refuses to start on ${testBackend()} (workers hold a host-memory backend)`, async () => {
    const moe = makeMoE();
    await expect(ExpertThreads.start(moe)).rejects.toThrow(new RegExp(`backend must be 'wasm' or 'cpu'.*got '${testBackend()}'`));
    expect(moe.expertOffload).toBeNull();
    moe.dispose();
  });
});
