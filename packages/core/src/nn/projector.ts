/**
 * LLaVA's `mlp2x_gelu` projector: `Linear(in→out) → GELU (exact erf) → Linear(out→out)`.
 * Children are named `0` and `2` like the reference `nn.Sequential` (`mm_projector.0.weight`).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs } from './module.js';
import { Linear, assertPositiveInt } from './linear.js';
import { gelu } from '../ops/activations.js';

export interface MlpGeluProjectorArgs extends ModuleArgs {
  /** Vision feature width. */
  inFeatures: number;
  /** LLM hidden width. */
  outFeatures: number;
}

export class MlpGeluProjector extends Module {
  static readonly className = 'MlpGeluProjector';
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(args: MlpGeluProjectorArgs) {
    super(args);
    assertPositiveInt('MlpGeluProjector', 'inFeatures', args.inFeatures);
    assertPositiveInt('MlpGeluProjector', 'outFeatures', args.outFeatures);
    this.inFeatures = args.inFeatures;
    this.outFeatures = args.outFeatures;
    this.fc1 = this.addModule('0', new Linear({ inFeatures: this.inFeatures, outFeatures: this.outFeatures }));
    this.fc2 = this.addModule('2', new Linear({ inFeatures: this.outFeatures, outFeatures: this.outFeatures }));
    this.built = true;
  }

  /** `x [..., in] → [..., out]`. */
  forward(x: tf.Tensor): tf.Tensor {
    this.assertUsable();
    return tf.tidy(() => this.fc2.forward(gelu(this.fc1.forward(x))));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(Array.isArray(inputs) ? inputs[0] : inputs));
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape.slice(0, -1), this.outFeatures];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), inFeatures: this.inFeatures, outFeatures: this.outFeatures };
  }
}
tf.serialization.registerClass(MlpGeluProjector, 'mllm');
