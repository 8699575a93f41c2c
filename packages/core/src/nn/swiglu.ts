/**
 * SwiGLU MLP (LLaMA/Qwen2 MLP, and each Parrot expert): `y = down(silu(gate(x)) ⊙ up(x))`,
 * children `gate_proj`, `up_proj` (D→I) and `down_proj` (I→D), bias-free by default. The math (and
 * its written-out backward, `swiGLU`) lives in `ops/swiglu.ts`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs } from './module.js';
import { Linear, assertPositiveInt } from './linear.js';
import { swiGLUGate } from '../ops/swiglu.js';

export interface SwiGLUArgs extends ModuleArgs {
  hiddenSize: number;
  intermediateSize: number;
  /** Biases on the three projections (default false). */
  bias?: boolean;
}

export class SwiGLU extends Module {
  static readonly className = 'SwiGLU';
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  readonly useBias: boolean;
  readonly gateProj: Linear;
  readonly upProj: Linear;
  readonly downProj: Linear;

  constructor(args: SwiGLUArgs) {
    super(args);
    assertPositiveInt('SwiGLU', 'hiddenSize', args.hiddenSize);
    assertPositiveInt('SwiGLU', 'intermediateSize', args.intermediateSize);
    this.hiddenSize = args.hiddenSize;
    this.intermediateSize = args.intermediateSize;
    this.useBias = args.bias ?? false;
    const bias = this.useBias;
    this.gateProj = this.addModule('gate_proj', new Linear({ inFeatures: this.hiddenSize, outFeatures: this.intermediateSize, bias }));
    this.upProj = this.addModule('up_proj', new Linear({ inFeatures: this.hiddenSize, outFeatures: this.intermediateSize, bias }));
    this.downProj = this.addModule('down_proj', new Linear({ inFeatures: this.intermediateSize, outFeatures: this.hiddenSize, bias }));
    this.built = true;
  }

  /** `x [..., D] → [..., D]`. */
  forward(x: tf.Tensor): tf.Tensor {
    this.assertUsable();
    return tf.tidy(() => this.downProj.forward(swiGLUGate(this.gateProj.forward(x), this.upProj.forward(x)))); // down(silu(gate(x)) ⊙ up(x))
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(Array.isArray(inputs) ? inputs[0] : inputs));
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), hiddenSize: this.hiddenSize, intermediateSize: this.intermediateSize, bias: this.useBias };
  }
}
tf.serialization.registerClass(SwiGLU, 'mllm');
