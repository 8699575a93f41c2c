/**
 * Small hand-built modules for the trainer tests (not exported from the package).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Module, Linear } from '@mllm/core';

/** `fc2(relu(fc1(x)))`: parameters `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`. */
export class TinyMlp extends Module {
  static readonly className = 'TinyMlp';
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(inFeatures: number, hidden: number, outFeatures: number) {
    super({});
    this.fc1 = this.addModule('fc1', new Linear({ inFeatures, outFeatures: hidden }));
    this.fc2 = this.addModule('fc2', new Linear({ inFeatures: hidden, outFeatures }));
  }
  /** `x [B, in] → [B, out]`. */
  forward(x: tf.Tensor): tf.Tensor {
    return this.fc2.forward(tf.relu(this.fc1.forward(x)));
  }
}

/** A model with named sub-parts like a host MLLM: `vision`, `mm_projector`, `moe`, `lm`. */
export class TinyMultimodal extends Module {
  static readonly className = 'TinyMultimodal';
  readonly vision: Linear;
  readonly projector: TinyMlp;
  readonly moe: Linear;
  readonly lm: TinyMlp;
  constructor(dim = 3) {
    super({});
    this.vision = this.addModule('vision', new Linear({ inFeatures: dim, outFeatures: dim }));
    this.projector = this.addModule('mm_projector', new TinyMlp(dim, dim, dim));
    this.moe = this.addModule('moe', new Linear({ inFeatures: dim, outFeatures: dim, bias: false }));
    this.lm = this.addModule('lm', new TinyMlp(dim, 4, 1));
  }
  /** `x [B, dim] → [B, 1]`. */
  forward(x: tf.Tensor): tf.Tensor {
    const visual = this.projector.forward(this.vision.forward(x));
    return this.lm.forward(tf.add(visual, this.moe.forward(visual)));
  }
}

/** Mean squared error over all elements. */
export function meanSquaredError(prediction: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.mean(tf.square(tf.sub(prediction, target)));
}

/** Deterministic data: `[rows, cols]` floats from a simple LCG in [-1, 1). */
export function fixedMatrix(rows: number, cols: number, seed: number): number[][] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
  return Array.from({ length: rows }, () => Array.from({ length: cols }, next));
}
