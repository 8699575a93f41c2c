/**
 * VPG-C hook forward+backward (gradients of the trainable `query_tokens`, `qformer_proj`, `llm_proj`
 * through the frozen Q-Former re-run), the companion of packages/vpgc/bench/hook.bench.ts (forward only),
 * with the same sizes and hook inputs. Prints one JSON line per backend and image count.
 *
 *   npx tsx --tsconfig bench/tsconfig.json bench/vpgc-train.bench.ts [--backends wasm] [--size blip2|small] [--images 1,4] [--iterations 2]
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, parseBackendRequest } from '@mllm/core';
import { QFormerVPG, VPGC, type QFormerConfig } from '@mllm/vpgc';

const SIZES: Record<string, Partial<QFormerConfig>> = {
  blip2: {},
  small: { hiddenSize: 384, numHiddenLayers: 6, numAttentionHeads: 6, intermediateSize: 1536, encoderWidth: 704 },
};
const NV = 257;
const NQ = 32;
const LLM_WIDTH = 1024;

/**
 * Matmul FLOPs (2·m·k·n) of forward+backward: the forward of packages/vpgc/bench/hook.bench.ts
 * (`hookFlops`, repeated here because importing that script runs it), plus one product per forward
 * product for the activation gradients (the Q-Former is frozen: no weight gradients), minus the image
 * key/value projections, which no gradient passes through.
 */
function trainFlops(c: QFormerConfig, n: number): { forward: number; forwardBackward: number } {
  const D = c.hiddenSize;
  let perImage = 0;
  let imageKeyValues = 0;
  for (let l = 0; l < c.numHiddenLayers; l++) {
    perImage += 2 * (4 * NQ * D * D + 2 * NQ * NQ * D);
    if (l % c.crossAttentionFreq === 0) {
      perImage += 2 * (2 * NQ * D * D + 2 * NV * c.encoderWidth * D + 2 * NQ * NV * D);
      imageKeyValues += 2 * (2 * NV * c.encoderWidth * D);
    }
    perImage += 2 * (2 * NQ * D * c.intermediateSize);
  }
  perImage += 2 * NQ * D * LLM_WIDTH;
  const forward = n * perImage + 2 * LLM_WIDTH * D;
  return { forward, forwardBackward: 2 * forward - n * imageKeyValues };
}

function argument(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const sizeName = argument('size', 'blip2');
  const qformer = SIZES[sizeName];
  if (!qformer) throw new Error(`--size must be one of ${Object.keys(SIZES).join(', ')}, got '${sizeName}'`);
  const iterations = Number(argument('iterations', '2'));
  for (const backend of argument('backends', 'wasm').split(',')) {
    await initBackend(parseBackendRequest(backend), { fastCpuKernels: true }); // the kernels docs/performance.md measures
    const vpg = new QFormerVPG({ qformer, numQueryTokens: NQ, llmHiddenSize: LLM_WIDTH });
    const vpgc = new VPGC({ vpg, updateLayer: 0 });
    // Non-zero projections, so the gradient reaches every trainable tensor (they start at zero).
    for (const v of vpgc.trainableVariables()) tf.tidy(() => v.assign(tf.randomNormal(v.shape, 0, 0.02, 'float32', 3)));
    const c = vpg.qformer.config;
    for (const n of argument('images', '1,4').split(',').map(Number)) {
      const L = n * NQ + 32;
      const hidden = tf.randomNormal([1, L, LLM_WIDTH]) as tf.Tensor3D;
      const features = tf.randomNormal([n, NV, c.encoderWidth]) as tf.Tensor3D;
      const weights = tf.randomNormal([1, L, LLM_WIDTH]);
      const spans = [Array.from({ length: n }, (_, k) => ({ imageIndex: k, start: 16 + k * NQ, length: NQ }))];
      const inputs = { hidden, imageFeatures: features, imageSpans: spans, imageToSample: new Array(n).fill(0), lastPromptIndex: [L - 1] };
      const step = async () => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(vpgc.addResidual(inputs), weights)) as tf.Scalar, vpgc.trainableVariables());
        await Promise.all(Object.values(grads).map((g) => g.data()));
        tf.dispose([value, ...Object.values(grads)]);
      };
      const before = tf.memory().numTensors;
      await step(); // warm-up
      let best = Infinity;
      for (let i = 0; i < iterations; i++) {
        const t0 = performance.now();
        await step();
        best = Math.min(best, performance.now() - t0);
      }
      if (tf.memory().numTensors !== before) throw new Error('vpgc-train bench: leaked tensors');
      console.log(JSON.stringify({ backend, size: sizeName, images: n, forwardBackwardMs: best, ...trainFlops(c, n) }));
      tf.dispose([hidden, features, weights]);
    }
    vpgc.dispose();
    vpg.dispose();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
