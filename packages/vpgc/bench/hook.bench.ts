/**
 * VPG-C hook benchmark: the prefill hook (guidance → Q-Former re-run per image → llm_proj → scatter-add)
 * against the backend's plain 2-D matMul at equal FLOPs.
 *
 *   npx tsx packages/vpgc/bench/hook.bench.ts [--backends cpu,wasm] [--size blip2|small] [--images 1,4] [--iterations 3]
 *
 * Sizes: `blip2` = BLIP-2 Q-Former (12 layers, 768 wide, 12 heads, FFN 3072, cross-attention every 2nd
 * layer, Dv 1408, Nv 257, 32 queries); `small` = 6 layers, 384 wide, 6 heads, FFN 1536, Dv 704, Nv 257.
 * The LLM width is Dl = 1024 in both; the hidden sequence is the images' tokens plus 32 text tokens.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, parseBackendRequest } from '@mllm/core';
import { QFormerVPG, VPGC, type QFormerConfig } from '../src/index.js';

interface Size { name: string; qformer: Partial<QFormerConfig>; Nv: number; Nq: number }
const SIZES: Record<string, Size> = {
  blip2: { name: 'BLIP-2 (12×768, Dv 1408)', qformer: {}, Nv: 257, Nq: 32 },
  small: {
    name: 'small (6×384, Dv 704)',
    qformer: { hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 6, intermediateSize: 1536, encoderWidth: 704 },
    Nv: 257,
    Nq: 32,
  },
};
const LLM_WIDTH = 1024;

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** Multiply-adds ×2 of the hook for `n` images (B = 1). */
export function hookFlops(c: QFormerConfig, Nq: number, Nv: number, n: number, Dl: number): number {
  const D = c.hiddenSize;
  let perImage = 0;
  for (let l = 0; l < c.numHiddenLayers; l++) {
    perImage += 2 * (4 * Nq * D * D + 2 * Nq * Nq * D); // self-attention projections + scores/context
    if (l % c.crossAttentionFreq === 0) {
      perImage += 2 * (2 * Nq * D * D + 2 * Nv * c.encoderWidth * D + 2 * Nq * Nv * D); // q/o, k/v over image tokens, scores/context
    }
    perImage += 2 * (2 * Nq * D * c.intermediateSize); // query FFN
  }
  perImage += 2 * Nq * D * Dl; // llm_proj
  return n * perImage + 2 * Dl * D; // + qformer_proj of the guidance token
}

async function time(fn: () => tf.Tensor, iterations: number): Promise<number> {
  const warm = fn();
  await warm.data();
  warm.dispose();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = performance.now();
    const out = fn();
    await out.data();
    times.push(performance.now() - t0);
    out.dispose();
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]; // median
}

async function main(): Promise<void> {
  const backends = argument('backends', 'cpu,wasm').split(',');
  const size = SIZES[argument('size', 'blip2')];
  if (!size) throw new Error(`--size must be one of ${Object.keys(SIZES).join(', ')}`);
  const imageCounts = argument('images', '1,4').split(',').map(Number);
  const iterations = Number(argument('iterations', '3'));
  const rows: string[] = [];
  for (const backend of backends) {
    await initBackend(parseBackendRequest(backend), { fastCpuKernels: true }); // the kernels docs/performance.md measures
    const vpg = new QFormerVPG({ qformer: size.qformer, numQueryTokens: size.Nq, llmHiddenSize: LLM_WIDTH });
    const vpgc = new VPGC({ vpg, updateLayer: 0 });
    const c = vpg.qformer.config;
    for (const n of imageCounts) {
      const L = n * size.Nq + 32;
      const hidden = tf.randomNormal([1, L, LLM_WIDTH]) as tf.Tensor3D;
      const features = tf.randomNormal([n, size.Nv, c.encoderWidth]) as tf.Tensor3D;
      const spans = [Array.from({ length: n }, (_, k) => ({ imageIndex: k, start: 16 + k * size.Nq, length: size.Nq }))];
      const before = tf.memory().numTensors;
      const hookMs = await time(() => vpgc.addResidual({
        hidden, imageFeatures: features, imageSpans: spans, imageToSample: new Array(n).fill(0), lastPromptIndex: [L - 1],
      }), iterations);
      if (tf.memory().numTensors !== before) throw new Error('bench: the hook leaked tensors');
      const flops = hookFlops(c, size.Nq, size.Nv, n, LLM_WIDTH);
      const side = Math.round(Math.cbrt(flops / 2));
      const a = tf.randomNormal([side, side]) as tf.Tensor2D;
      const b = tf.randomNormal([side, side]) as tf.Tensor2D;
      const matMulMs = await time(() => tf.matMul(a, b), iterations);
      const matMulFlops = 2 * side ** 3;
      const hookRate = flops / hookMs / 1e6;
      const matMulRate = matMulFlops / matMulMs / 1e6;
      rows.push(`| ${backend} | ${size.name} | ${n} | ${(flops / 1e9).toFixed(2)} | ${hookMs.toFixed(0)} | ${hookRate.toFixed(2)} | ${side}³ | ${matMulMs.toFixed(0)} | ${matMulRate.toFixed(2)} | ${(hookRate / matMulRate).toFixed(2)} |`);
      console.log(rows[rows.length - 1]);
      tf.dispose([hidden, features, a, b]);
    }
    vpgc.dispose();
    vpg.dispose();
  }
  console.log('\n| backend | Q-Former | images | hook GFLOP | hook ms | hook GFLOP/s | matMul | matMul ms | matMul GFLOP/s | hook/matMul |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
