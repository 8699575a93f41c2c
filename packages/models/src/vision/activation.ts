/**
 * The MLP activations of the HF-format vision towers by their `hidden_act` names (no other imports, so the host's
 * encoder block and the towers' layers share them).
 */
import * as tf from '@tensorflow/tfjs-core';
import { gelu } from '@mllm/core';
import type { VisionActivation } from './config.js';

/** CLIP's `quick_gelu`: `x·σ(1.702·x)`. */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}

/** Tanh-approximated GELU (`gelu_pytorch_tanh`, `gelu_new`): `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`. */
export function geluTanh(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
    return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
  });
}

/** The function of a `hidden_act` name. */
export function visionActivation(name: VisionActivation): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'quick_gelu':
      return quickGelu;
    case 'gelu':
      return gelu;
    case 'gelu_pytorch_tanh':
    case 'gelu_new':
      return geluTanh;
    default:
      throw new Error(`visionActivation: name must be one of 'quick_gelu', 'gelu', 'gelu_pytorch_tanh', 'gelu_new', got ${String(name)}`);
  }
}
