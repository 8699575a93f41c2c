/**
 * LLaVA's `build_vision_projector` projectors, with the reference `nn.Sequential` child names:
 *
 *   linear         V = F·W0ᵀ + b0                                  `mm_projector.{weight,bias}`
 *   mlp{N}x_gelu   V = L_{N−1}(GELU(… GELU(L_0(F))))               `mm_projector.{0,2,…,2N−2}.{weight,bias}`
 *   identity       V = F                                           (no parameters; needs Dv = H)
 *
 * `F [N, Nv, Dv] → V [N, Nv, H]`; GELU is the exact (erf) one of `nn.GELU()`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { gelu, Linear, Module, type ModuleArgs, type VisualProjector } from '@mllm/core';
import type { LlavaProjectorSpec } from './config.js';

export interface LlavaMlpProjectorArgs extends ModuleArgs {
  /** Dv, the tower's feature width. */
  inFeatures: number;
  /** H, the decoder's hidden size. */
  outFeatures: number;
  /** N of `mlp{N}x_gelu`: the number of Linear layers (≥ 1). */
  depth: number;
}

/** `mlp{N}x_gelu`: Linear(Dv→H), then N−1 times GELU + Linear(H→H); children `0`, `2`, … as the reference Sequential. */
export class LlavaMlpProjector extends Module {
  static readonly className = 'LlavaMlpProjector';
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly depth: number;
  readonly linears: Linear[];

  constructor(args: LlavaMlpProjectorArgs) {
    super(args);
    if (!Number.isInteger(args.depth) || args.depth < 1) throw new Error(`LlavaMlpProjector: depth must be a positive integer, got ${String(args.depth)}`);
    this.inFeatures = args.inFeatures;
    this.outFeatures = args.outFeatures;
    this.depth = args.depth;
    this.linears = [];
    for (let i = 0; i < args.depth; i++) {
      // Sequential index 2i: the GELUs at the odd indices have no parameters.
      this.linears.push(this.addModule(String(2 * i), new Linear({ inFeatures: i === 0 ? args.inFeatures : args.outFeatures, outFeatures: args.outFeatures })));
    }
    this.built = true;
  }

  /** `x [..., Dv] → [..., H]`. */
  forward(x: tf.Tensor): tf.Tensor {
    this.assertUsable();
    return tf.tidy(() => this.linears.reduce((h, linear, i) => linear.forward(i === 0 ? h : gelu(h)), x));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.forward(Array.isArray(inputs) ? inputs[0]! : inputs));
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape.slice(0, -1), this.outFeatures];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), inFeatures: this.inFeatures, outFeatures: this.outFeatures, depth: this.depth };
  }
}
tf.serialization.registerClass(LlavaMlpProjector, 'mllm');

/** The identity projector (`identity`): passes the features through (Dv must equal H). */
export class LlavaIdentityProjector implements VisualProjector {
  forward(features: tf.Tensor3D): tf.Tensor {
    return features.clone();
  }
}

/** The projector `spec` names, from Dv to H (`linear` is a plain `Linear`: its parameters are `mm_projector.{weight,bias}`). */
export function buildLlavaProjector(spec: LlavaProjectorSpec, inFeatures: number, outFeatures: number): VisualProjector {
  switch (spec.type) {
    case 'linear':
      return new Linear({ inFeatures, outFeatures });
    case 'identity':
      if (inFeatures !== outFeatures) throw new Error(`LLaVA config: mm_projector_type 'identity' needs mm_hidden_size equal to hidden_size, got ${inFeatures} and ${outFeatures}`);
      return new LlavaIdentityProjector();
    case 'mlp':
      return new LlavaMlpProjector({ inFeatures, outFeatures, depth: spec.depth });
  }
}
