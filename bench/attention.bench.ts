/**
 * The host decoder's attention products on one backend: tfjs' BatchMatMul (`tf.matMul` on 3-D operands,
 * the path before core's `groupedMatMul`) against core's `batchMatMul`/`groupedMatMul`, forward and
 * forward+backward of `scaledDotProductAttention`, and the causal-padding mask. Interleaved runs, best of N.
 *
 *   npx tsx --tsconfig bench/tsconfig.json bench/attention.bench.ts [--backend wasm] [--runs 7] [--B 8 --heads 4 --L 150 --d 16]
 */
import * as tf from '@tensorflow/tfjs';
import { batchMatMul, initBackend, parseBackendRequest, maskedSoftmax, scaledDotProductAttention } from '@mllm/core';
import { causalPaddingMask } from '@mllm/models';

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}
const backend = argument('backend', 'wasm');
const runs = Number(argument('runs', '7'));
const [B, h, L, d] = ['B', 'heads', 'L', 'd'].map((n, i) => Number(argument(n, ['8', '4', '150', '16'][i]!))) as [number, number, number, number];
await initBackend(parseBackendRequest(backend), { fastCpuKernels: true }); // the kernels docs/performance.md measures

/** core's batchMatMul before groupedMatMul: tfjs' 3-D BatchMatMul with explicit-transpose gradients. */
const previousBatchMatMul = tf.customGrad(((a: tf.Tensor3D, b: tf.Tensor3D, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, [sa, sb]: tf.Tensor[]) => [
      tf.matMul(dy as tf.Tensor3D, tf.transpose(sb!, [0, 2, 1]) as tf.Tensor3D), // [G, M, N]·[G, N, K]
      tf.matMul(tf.transpose(sa!, [0, 2, 1]) as tf.Tensor3D, dy as tf.Tensor3D), // [G, K, M]·[G, M, N]
    ],
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;

/** Attention as before: the same math and layout through {@link previousBatchMatMul}. */
function attentionBatchMatMul(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const q3 = tf.reshape(q, [B * h, L, d]) as tf.Tensor3D; // [B·h, L, d]
    const kT = tf.reshape(tf.transpose(k, [0, 1, 3, 2]), [B * h, d, L]) as tf.Tensor3D; // [B·h, d, L]
    const v3 = tf.reshape(v, [B * h, L, d]) as tf.Tensor3D;
    const scores = tf.reshape(tf.mul(previousBatchMatMul(q3, kT), 1 / Math.sqrt(d)), [B, h, L, L]); // [B, h, L, L]
    const probs = tf.reshape(maskedSoftmax(scores, mask), [B * h, L, L]) as tf.Tensor3D;
    return tf.reshape(previousBatchMatMul(probs, v3), [B, h, L, d]); // [B, h, L, d]
  });
}

async function bestOf(fns: Record<string, () => tf.Tensor | tf.Tensor[]>): Promise<Record<string, number>> {
  const best: Record<string, number> = {};
  const run = async (fn: () => tf.Tensor | tf.Tensor[]) => {
    const t0 = performance.now();
    const out = fn();
    const list = Array.isArray(out) ? out : [out];
    await Promise.all(list.map((t) => t.data()));
    tf.dispose(list);
    return performance.now() - t0;
  };
  for (const fn of Object.values(fns)) await run(fn); // warm-up
  for (let r = 0; r < runs; r++) for (const [name, fn] of Object.entries(fns)) best[name] = Math.min(best[name] ?? Infinity, await run(fn));
  return best;
}

const q = tf.randomNormal([B, h, L, d]);
const k = tf.randomNormal([B, h, L, d]);
const v = tf.randomNormal([B, h, L, d]);
const keys = tf.tensor2d(Array.from({ length: B * L }, (_, i) => (i % L < L - Math.floor(i / L) * 5 ? 1 : 0)), [B, L], 'int32');
const mask = causalPaddingMask(keys);
const loss = (attention: (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.Tensor) => tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.square(attention(a, b, c))));
const oldGrad = loss((a, b, c) => attentionBatchMatMul(a, b, c, mask));
const newGrad = loss((a, b, c) => scaledDotProductAttention(a, b, c, mask).output);
const G = B * h;
const a3 = tf.randomNormal([G, L, d]) as tf.Tensor3D;
const b3 = tf.randomNormal([G, d, L]) as tf.Tensor3D;
const p3 = tf.randomNormal([G, L, L]) as tf.Tensor3D;
const v3 = tf.randomNormal([G, L, d]) as tf.Tensor3D;
const t = await bestOf({
  'QKᵀ tf.matMul (BatchMatMul)': () => tf.matMul(a3, b3),
  'QKᵀ batchMatMul': () => batchMatMul(a3, b3),
  'PV tf.matMul (BatchMatMul)': () => tf.matMul(p3, v3),
  'PV batchMatMul': () => batchMatMul(p3, v3),
  'attention fwd, before (BatchMatMul)': () => tf.tidy(() => attentionBatchMatMul(q, k, v, mask)),
  'attention fwd, core (groupedMatMul)': () => tf.tidy(() => scaledDotProductAttention(q, k, v, mask).output),
  'attention fwd+bwd, before (BatchMatMul)': () => oldGrad([q, k, v]),
  'attention fwd+bwd, core (groupedMatMul)': () => newGrad([q, k, v]),
  'causalPaddingMask (now)': () => causalPaddingMask(keys),
  'mask via broadcast logicalAnd': () => tf.tidy(() => {
    const i = tf.expandDims(tf.range(0, L, 1, 'int32'), 1);
    const j = tf.expandDims(tf.range(0, L, 1, 'int32'), 0);
    return tf.logicalAnd(tf.reshape(tf.greaterEqual(i, j), [1, 1, L, L]), tf.reshape(tf.notEqual(keys, 0), [B, 1, 1, L]));
  }),
});
const productFlops = 2 * G * L * L * d;
console.log(`${backend}: B=${B}, heads=${h}, L=${L}, d=${d}; best of ${runs} interleaved runs\n`);
console.log('| operation | ms | GFLOP/s |');
console.log('|---|---:|---:|');
for (const [name, ms] of Object.entries(t)) {
  const flops = name.startsWith('QK') || name.startsWith('PV') ? productFlops : name.includes('fwd+bwd') ? 6 * productFlops : name.includes('fwd') ? 2 * productFlops : 0;
  console.log(`| ${name} | ${ms.toFixed(2)} | ${flops ? (flops / ms / 1e6).toFixed(2) : ''} |`);
}
tf.dispose([q, k, v, keys, mask, a3, b3, p3, v3]);
