/**
 * One decoder layer's Wings modules (visual + textual LoRRA learners + router), forward and
 * forward+backward, on cpu and wasm, against a plain 2-D matMul of equal FLOPs.
 *
 *   npx tsx packages/wings/bench/learners.bench.ts [--backends cpu,wasm] [--runs 5]
 *
 * Shapes: B = 1, L = 256 (64 image tokens at positions 16..79), H = 1024, 16 heads, r = 64,
 * router width 4096. FLOPs count the matMuls (2·m·k·n each); backward ≈ 2× forward. Times are the
 * best of `--runs` runs, interleaved with the reference matMul.
 */
import '@tensorflow/tfjs';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, parseBackendRequest, setSeed } from '@mllm/core';
import { WingsLayer, type LearnerKeys } from '../src/index.js';

const B = 1;
const L = 256;
const H = 1024;
const HEADS = 16;
const R = 64;
const IMAGE_START = 16;
const NI = 64;
const MAX_LENGTH = 4096;

function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 && process.argv[index + 1] ? process.argv[index + 1] : fallback;
}

/** Matmul FLOPs of one forward. */
function forwardFlops(): { visual: number; textual: number; router: number; total: number } {
  const lowRank = (rows: number) => 2 * rows * R * (H + H); // (x·Aᵀ)·Bᵀ
  const learner = (keys: number) => lowRank(L) + 2 * lowRank(keys) + 2 * (2 * L * keys * H) + lowRank(L); // q, k+v, QKᵀ+PV, o
  const visual = learner(NI);
  const textual = learner(L);
  const router = 2 * L * L * 2;
  return { visual, textual, router, total: visual + textual + router };
}

/**
 * Best-of-`runs` wall times of `a` and `b`, interleaved (a, b, a, b, …) so both see the same machine
 * load; the minimum is the least disturbed run.
 */
function timePair(a: () => void, b: () => void, runs: number): [number, number] {
  a(); // warm-up (kernel and operator setup)
  b();
  let bestA = Infinity;
  let bestB = Infinity;
  for (let i = 0; i < runs; i++) {
    let start = performance.now();
    a();
    bestA = Math.min(bestA, performance.now() - start);
    start = performance.now();
    b();
    bestB = Math.min(bestB, performance.now() - start);
  }
  return [bestA, bestB];
}

async function benchBackend(backend: string, runs: number): Promise<string[]> {
  await initBackend(parseBackendRequest(backend), { fastCpuKernels: true }); // the kernels docs/performance.md measures
  setSeed(1);
  const layer = new WingsLayer({ hiddenSize: H, numHeads: HEADS, rank: R, ropeTheta: 1e6, stage: 2, routerMaxLength: MAX_LENGTH });
  // Non-zero up-projections so every path computes something.
  for (const variable of layer.trainableVariables()) tf.tidy(() => variable.assign(tf.randomNormal(variable.shape, 0, 0.02, 'float32', 3)));

  const residual = tf.randomNormal([B, L, H], 0, 1, 'float32', 4) as tf.Tensor3D;
  const embeddings = tf.randomNormal([B, L, H], 0, 1, 'float32', 5) as tf.Tensor3D;
  const visualTokens = tf.randomNormal([B, NI, H], 0, 1, 'float32', 6) as tf.Tensor3D;
  const positions = tf.tensor2d([Array.from({ length: L }, (_, t) => t)], [B, L], 'int32');
  const textMask = tf.tensor2d([Array.from({ length: L }, (_, t) => (t >= IMAGE_START && t < IMAGE_START + NI ? 0 : 1))], [B, L]);
  const probs = tf.tidy(() => tf.softmax(tf.add(tf.randomNormal([B, HEADS, L, L], 0, 1, 'float32', 7), tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([L, L]), -1, 0)), -1e9)))) as tf.Tensor4D;
  const hasImage = tf.ones([B]) as tf.Tensor1D;
  const visual: LearnerKeys = {
    source: visualTokens,
    positions: tf.tensor2d([Array.from({ length: NI }, (_, k) => IMAGE_START + k)], [B, NI], 'int32'),
    keyMask: tf.ones([B, NI]) as tf.Tensor2D,
    causalByPosition: false,
  };
  const textual: LearnerKeys = { source: embeddings, positions, keyMask: textMask, causalByPosition: true };
  const inputs = { residual, positions, attentionProbs: probs, hasImage, visual, textual };
  const weights = tf.randomNormal([B, L, H], 0, 1, 'float32', 8);
  const variables = layer.trainableVariables();

  // Braces: a typed array returned from tidy is walked element by element looking for tensors (~40 ms here).
  const forward = () => tf.tidy(() => {
    layer.forward(inputs).dataSync();
  });
  const forwardBackward = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.forward(inputs), weights)) as tf.Scalar, variables);
      value.dataSync();
      for (const g of Object.values(grads)) g.dataSync();
    });
  const flops = forwardFlops();
  // Reference: n plain 2-D matMuls [128, H]·[H, H] (268 MFLOP each), n chosen to match the FLOPs.
  const refA = tf.randomNormal([128, H], 0, 1, 'float32', 9) as tf.Tensor2D;
  const refB = tf.randomNormal([H, H], 0, 1, 'float32', 10) as tf.Tensor2D;
  const matMulFor = (total: number) => {
    const count = Math.max(1, Math.round(total / (2 * 128 * H * H)));
    return {
      run: () => {
        for (let i = 0; i < count; i++) {
          tf.tidy(() => {
            tf.matMul(refA, refB).dataSync();
          });
        }
      },
      flops: count * 2 * 128 * H * H,
    };
  };

  const lines: string[] = [];
  const before = tf.memory().numTensors;
  for (const [label, fn, total] of [
    ['forward', forward, flops.total],
    ['forward+backward', forwardBackward, 3 * flops.total],
  ] as const) {
    const reference = matMulFor(total);
    const [ms, refMs] = timePair(fn, reference.run, runs);
    const gflops = total / ms / 1e6;
    const refGflops = reference.flops / refMs / 1e6;
    const equalFlopsMs = (refMs * total) / reference.flops;
    lines.push(
      `| ${backend} | ${label} | ${(total / 1e6).toFixed(0)} | ${ms.toFixed(1)} | ${gflops.toFixed(2)} | ${equalFlopsMs.toFixed(1)} | ${refGflops.toFixed(2)} | ${(ms / equalFlopsMs).toFixed(2)} |`,
    );
  }
  if (tf.memory().numTensors !== before) lines.push(`(leak: ${tf.memory().numTensors - before} tensors on ${backend})`);
  tf.dispose([refA, refB, residual, embeddings, visualTokens, positions, textMask, probs, hasImage, visual.positions, visual.keyMask, weights]);
  layer.dispose();
  return lines;
}

async function main(): Promise<void> {
  const backends = argument('backends', 'cpu,wasm').split(',');
  const runs = Number(argument('runs', '5'));
  const f = forwardFlops();
  console.log(`Wings layer learners + router: B=${B}, L=${L} (${NI} image tokens), H=${H}, heads=${HEADS}, r=${R}, router width ${MAX_LENGTH}`);
  console.log(`forward matMul FLOPs: visual ${(f.visual / 1e6).toFixed(0)}M, textual ${(f.textual / 1e6).toFixed(0)}M, router ${(f.router / 1e6).toFixed(1)}M; best of ${runs} interleaved runs`);
  console.log('');
  console.log('| backend | pass | MFLOP | ms | GFLOP/s | 2-D matMul ms (equal FLOPs) | matMul GFLOP/s | ratio |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const backend of backends) for (const line of await benchBackend(backend, runs)) console.log(line);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
