/** Tiny host models and images for the model tests (not exported from the package). */
import * as tf from '@tensorflow/tfjs-core';
import { setSeed } from '@mllm/core';
import { HostMLLM } from './host-mllm.js';
import type { HostConfig, VisionConfig } from './config.js';

export const TINY_VOCAB = 262; // 256 bytes + 6 specials

export function tinyTextConfig(overrides: Partial<HostConfig> = {}): HostConfig {
  return { vocabSize: TINY_VOCAB, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 24, ropeTheta: 10000, maxLength: 256, ...overrides };
}

export function tinyVisionConfig(overrides: Partial<VisionConfig> = {}): VisionConfig {
  return { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16, ...overrides };
}

/** A seeded tiny HostMLLM (4 patches → 4 visual tokens with 'patch', 5 with 'cls_patch'). */
export function tinyHost(seed = 1, text: Partial<HostConfig> = {}, vision: Partial<VisionConfig> = {}): HostMLLM {
  setSeed(seed);
  return new HostMLLM({ config: { text: tinyTextConfig(text), vision: tinyVisionConfig(vision) } });
}

/** `[n, 8, 8, 3]` deterministic pixels in [0, 1]. */
export function tinyImages(n: number, seed = 7): tf.Tensor4D {
  return tf.randomUniform([n, 8, 8, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
}

/** The backend the test project runs on (`MLLM_TEST_BACKEND`, else tfjs' active one). */
export function currentBackend(): string {
  return process.env.MLLM_TEST_BACKEND || tf.getBackend();
}

type Nested = number | Nested[];

function flatten(value: tf.Tensor | Nested): number[] {
  if (value instanceof tf.Tensor) return Array.from(value.dataSync());
  return Array.isArray(value) ? value.flatMap((v) => flatten(v)) : [value];
}

/** Throws unless `|a − e| ≤ atol + rtol·|e|` elementwise (same element count). */
export function expectAllClose(actual: tf.Tensor | Nested, expected: tf.Tensor | Nested, tol: { rtol: number; atol: number }): void {
  const a = flatten(actual);
  const e = flatten(expected);
  if (a.length !== e.length) throw new Error(`expectAllClose: ${a.length} actual vs ${e.length} expected elements`);
  const bad = a.map((v, i) => [i, v, e[i]] as const).filter(([, v, x]) => !(Math.abs(v - x) <= tol.atol + tol.rtol * Math.abs(x)));
  if (bad.length) {
    throw new Error(`expectAllClose: ${bad.length} of ${a.length} differ, e.g. [${bad[0][0]}] ${bad[0][1]} vs ${bad[0][2]} (rtol ${tol.rtol}, atol ${tol.atol})`);
  }
}

/** Runs `fn`, disposes the tensors it returns, and throws if the tensor count changed. */
export function expectNoLeaks(fn: () => unknown): void {
  const before = tf.memory().numTensors;
  const result = fn();
  const returned: tf.Tensor[] = [];
  const collect = (v: unknown): void => {
    if (v instanceof tf.Tensor) returned.push(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object') Object.values(v).forEach(collect);
  };
  collect(result);
  tf.dispose(returned);
  const after = tf.memory().numTensors;
  if (after !== before) throw new Error(`expectNoLeaks: ${after - before} tensors leaked`);
}
