/**
 * Pre-norm transformer encoder block (CLIP/ViT), children `layer_norm1`, `self_attn`
 * (non-causal, biased `q_proj` / `k_proj` / `v_proj` / output projection), `layer_norm2`, `mlp.fc1`, `mlp.fc2`:
 *
 *   h = x + attn(LN1(x));  y = h + fc2(act(fc1(LN2(h))))       all [N, P, D]
 *
 * The host's tower uses the defaults (GELU, `self_attn.o_proj`); HF's CLIP / SigLIP encoder layers are this block
 * with their `hidden_act` and `self_attn.out_proj` (`ViTEncoderLayer`).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, LayerNorm, Linear, MultiHeadAttention } from '@mllm/core';
import { visionActivation } from '../vision/activation.js';
import type { VisionActivation } from '../vision/config.js';

export interface VisionEncoderBlockArgs extends ModuleArgs {
  hiddenSize: number;
  numHeads: number;
  intermediateSize: number;
  layerNormEps: number;
  /** The MLP activation by its HF `hidden_act` name (default `gelu`). */
  hiddenAct?: VisionActivation;
  /** Name the attention's output projection `self_attn.out_proj` (HF CLIP / SigLIP) instead of `self_attn.o_proj`. */
  outProj?: boolean;
}

export class VisionEncoderBlock extends Module {
  static readonly className: string = 'VisionEncoderBlock';
  readonly args: VisionEncoderBlockArgs;
  readonly layerNorm1: LayerNorm;
  readonly selfAttn: MultiHeadAttention;
  readonly layerNorm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(args: VisionEncoderBlockArgs) {
    super(args);
    this.args = { ...args };
    const { hiddenSize, numHeads, intermediateSize, layerNormEps } = args;
    this.act = visionActivation(args.hiddenAct ?? 'gelu');
    this.layerNorm1 = this.addModule('layer_norm1', new LayerNorm({ dim: hiddenSize, eps: layerNormEps }));
    this.selfAttn = this.addModule('self_attn', new MultiHeadAttention({ hiddenSize, numHeads, qkvBias: true, outputBias: true, outProj: args.outProj }));
    this.layerNorm2 = this.addModule('layer_norm2', new LayerNorm({ dim: hiddenSize, eps: layerNormEps }));
    this.fc1 = this.addModule('mlp.fc1', new Linear({ inFeatures: hiddenSize, outFeatures: intermediateSize }));
    this.fc2 = this.addModule('mlp.fc2', new Linear({ inFeatures: intermediateSize, outFeatures: hiddenSize }));
    this.built = true;
  }

  /** `x [N, P, D] → [N, P, D]`. */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    this.assertUsable();
    return tf.tidy(() => {
      const h = tf.add(x, this.selfAttn.forward({ hidden: this.layerNorm1.forward(x) }).output); // [N, P, D]
      return tf.add(h, this.fc2.forward(this.act(this.fc1.forward(this.layerNorm2.forward(h))))) as tf.Tensor3D; // [N, P, D]
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { name: _name, trainable: _trainable, ...rest } = this.args;
    return { ...super.getConfig(), ...rest };
  }
}
tf.serialization.registerClass(VisionEncoderBlock, 'mllm');
