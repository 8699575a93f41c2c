/** LayerNorm (PyTorch): `y = (x − mean) / √(var + eps) · weight + bias` over the last axis. */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs } from './module.js';
import { onesInit, zerosInit } from './initializers.js';
import { assertPositiveInt } from './linear.js';
import { hostLayerNormAvailable, runHostLayerNorm } from '../kernels/cpu/host-layer-norm.js';

export interface LayerNormArgs extends ModuleArgs {
  dim: number;
  /** Default 1e-5 (PyTorch); BERT/Q-Former use 1e-12. */
  eps?: number;
}

/**
 * `x [..., D] → [..., D]`, biased variance like PyTorch. On cpu (float32, `weight`/`bias` `[D]`) one fused
 * kernel per direction (`kernels/cpu/host-layer-norm.ts`); elsewhere composed from tf ops.
 */
export function layerNorm(x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor, eps: number): tf.Tensor {
  const D = x.shape[x.rank - 1];
  const fits = (t: tf.Tensor) => t.rank === 1 && t.shape[0] === D && t.dtype === 'float32';
  if (x.rank >= 1 && x.dtype === 'float32' && fits(weight) && fits(bias) && hostLayerNormAvailable()) return runHostLayerNorm(x, weight, bias, eps);
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, -1, true); // [..., 1]
    return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps))), weight), bias);
  });
}

export class LayerNorm extends Module {
  static readonly className = 'LayerNorm';
  readonly dim: number;
  readonly eps: number;
  private weight!: tfl.LayerVariable;
  private bias!: tfl.LayerVariable;

  constructor(args: LayerNormArgs) {
    super(args);
    assertPositiveInt('LayerNorm', 'dim', args.dim);
    this.dim = args.dim;
    this.eps = args.eps ?? 1e-5;
    this.build([null, this.dim]);
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    if (this.built) return;
    this.weight = this.addParameter('weight', [this.dim], onesInit);
    this.bias = this.addParameter('bias', [this.dim], zerosInit);
    super.build(inputShape);
  }

  forward(x: tf.Tensor): tf.Tensor {
    this.assertUsable();
    if (x.shape[x.rank - 1] !== this.dim) throw new Error(`LayerNorm: input last dimension must be ${this.dim}, got [${x.shape}]`);
    return layerNorm(x, this.weight.read(), this.bias.read(), this.eps);
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
tf.serialization.registerClass(LayerNorm, 'mllm');
