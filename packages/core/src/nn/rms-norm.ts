/** RMSNorm (LLaMA/Qwen2): `y = x / √(mean(x², -1) + eps) · weight`, param `weight` `[D]` (init 1). */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs } from './module.js';
import { onesInit } from './initializers.js';
import { assertPositiveInt } from './linear.js';

export interface RMSNormArgs extends ModuleArgs {
  dim: number;
  /** Default 1e-6. */
  eps?: number;
}

/** `x [..., D] → [..., D]` normalized by its root mean square. */
export function rmsNorm(x: tf.Tensor, weight: tf.Tensor, eps: number): tf.Tensor {
  return tf.tidy(() => {
    const meanSquare = tf.mean(tf.square(x), -1, true); // [..., 1]
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(meanSquare, eps))), weight);
  });
}

export class RMSNorm extends Module {
  static readonly className = 'RMSNorm';
  readonly dim: number;
  readonly eps: number;
  private weight!: tfl.LayerVariable;

  constructor(args: RMSNormArgs) {
    super(args);
    assertPositiveInt('RMSNorm', 'dim', args.dim);
    this.dim = args.dim;
    this.eps = args.eps ?? 1e-6;
    this.build([null, this.dim]);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (this.built) return;
    this.weight = this.addParameter('weight', [this.dim], onesInit);
    super.build(inputShape);
  }

  forward(x: tf.Tensor): tf.Tensor {
    this.assertUsable();
    if (x.shape[x.rank - 1] !== this.dim) throw new Error(`RMSNorm: input last dimension must be ${this.dim}, got [${x.shape}]`);
    return rmsNorm(x, this.weight.read(), this.eps);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(Array.isArray(inputs) ? inputs[0] : inputs));
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), dim: this.dim, eps: this.eps };
  }
}
tf.serialization.registerClass(RMSNorm, 'mllm');
