/**
 * EVA ViT-g as BLIP-2 / Cheetah build it (`eva_vit.py` `VisionTransformer` from `create_eva_vit_g`, then
 * `ln_vision`), under the names of the Cheetah / BLIP-2 checkpoints:
 *
 *   h_0 = [cls_token ; conv_p(pixels)] + pos_embed                   [N, 1+P, D]   (conv with bias)
 *   h_i = block_{i−1}(h_{i−1}),  i = 1..L                             (`EVABlock`)
 *   visual_encoder(pixels) = h_L  (no final norm: `use_mean_pooling=False` leaves it commented out)
 *   image_embeds = ln_vision(h_L)                                     what the Q-Former reads
 *
 * `visual_encoder.{cls_token [1,1,D], pos_embed [1,1+P,D], patch_embed.proj.{weight,bias}, blocks.{i}.…}` and
 * `ln_vision.{weight,bias}`. ViT-g has no relative-position bias and no layer scale (`init_values` None), which
 * is all this implements. The reference runs the ViT with F16 weights (`vit_precision: fp16`); here it runs in
 * float32 on whatever the checkpoint stores.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, LayerNorm, Linear, gelu, mergeHeads, scaledDotProductAttention, splitHeads, normalInit, zerosInit } from '@mllm/core';
import { resolveEVAVisionConfig, type EVAVisionConfigJson, type ResolvedEVAVisionConfig } from './config.js';
import { ConvPatchEmbedding, assertPixels, runEncoderLayers } from './layers.js';
import type { VisionTowerForwardOptions } from './clip.js';

export interface EVABlockArgs extends ModuleArgs {
  hiddenSize: number;
  numHeads: number;
  mlpHidden: number;
  qkvBias: boolean;
  layerNormEps: number;
}

/**
 * `eva_vit.py` `Block` (children `norm1`, `attn.qkv` (no bias) with `attn.q_bias` / `attn.v_bias`, `attn.proj`,
 * `norm2`, `mlp.fc1`, `mlp.fc2`):
 *
 *   [q | k | v] = x·W_qkvᵀ + [q_bias | 0 | v_bias]         (k has no bias)
 *   h = x + proj(softmax(q·kᵀ/√d)·v);  y = h + fc2(gelu(fc1(norm2(h))))       (attention on norm1(x))
 */
export class EVABlock extends Module {
  static readonly className = 'EVABlock';
  readonly args: EVABlockArgs;
  readonly norm1: LayerNorm;
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly norm2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly qBias: tfl.LayerVariable | null = null;
  private readonly vBias: tfl.LayerVariable | null = null;

  constructor(args: EVABlockArgs) {
    super(args);
    this.args = { ...args };
    const { hiddenSize: D, layerNormEps: eps } = args;
    this.norm1 = this.addModule('norm1', new LayerNorm({ dim: D, eps }));
    this.qkv = this.addModule('attn.qkv', new Linear({ inFeatures: D, outFeatures: 3 * D, bias: false }));
    if (args.qkvBias) {
      this.qBias = this.addParameter('attn.q_bias', [D], zerosInit);
      this.vBias = this.addParameter('attn.v_bias', [D], zerosInit);
    }
    this.proj = this.addModule('attn.proj', new Linear({ inFeatures: D, outFeatures: D }));
    this.norm2 = this.addModule('norm2', new LayerNorm({ dim: D, eps }));
    this.fc1 = this.addModule('mlp.fc1', new Linear({ inFeatures: D, outFeatures: args.mlpHidden }));
    this.fc2 = this.addModule('mlp.fc2', new Linear({ inFeatures: args.mlpHidden, outFeatures: D }));
    this.built = true;
  }

  /** `x [N, L, D] → [N, L, D]`. */
  forward(x: tf.Tensor3D): tf.Tensor3D {
    this.assertUsable();
    const { hiddenSize: D, numHeads: h } = this.args;
    return tf.tidy(() => {
      const qkv = this.qkv.forward(this.norm1.forward(x)); // [N, L, 3D]
      const [N, L] = x.shape;
      let q: tf.Tensor = tf.slice(qkv, [0, 0, 0], [N, L, D]);
      const k = tf.slice(qkv, [0, 0, D], [N, L, D]);
      let v: tf.Tensor = tf.slice(qkv, [0, 0, 2 * D], [N, L, D]);
      if (this.qBias && this.vBias) {
        q = tf.add(q, this.qBias.read());
        v = tf.add(v, this.vBias.read());
      }
      const attention = scaledDotProductAttention(splitHeads(q, h), splitHeads(k, h), splitHeads(v, h), null).output; // [N, h, L, d]
      const mid = tf.add(x, this.proj.forward(mergeHeads(attention))); // [N, L, D]
      return tf.add(mid, this.fc2.forward(gelu(this.fc1.forward(this.norm2.forward(mid))))) as tf.Tensor3D;
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
tf.serialization.registerClass(EVABlock, 'mllm');

export interface EVAVisionTransformerArgs extends ModuleArgs {
  /** Parsed `config.json` (`EVAVisionConfigJson`); absent keys take ViT-g's values. Default `{}` (ViT-g). */
  config?: EVAVisionConfigJson;
  /** Include `ln_vision` (default true: BLIP-2 / Cheetah always apply it). */
  withLnVision?: boolean;
}

export interface EVAVisionOutput {
  /** `[N, 1+P, D]`: `visual_encoder(pixels)`, the last block's output. */
  lastHiddenState: tf.Tensor3D;
  /** `L + 1` tensors `[N, 1+P, D]` when requested: the embeddings, then each block's output. */
  hiddenStates: tf.Tensor3D[] | null;
}

export class EVAVisionTransformer extends Module {
  static readonly className = 'EVAVisionTransformer';
  readonly visionConfig: ResolvedEVAVisionConfig;
  readonly configJson: EVAVisionConfigJson;
  readonly numPatches: number;
  readonly patchEmbed: ConvPatchEmbedding;
  readonly blocks: EVABlock[];
  readonly lnVision: LayerNorm | null;
  private readonly clsToken: tfl.LayerVariable;
  private readonly posEmbed: tfl.LayerVariable;

  constructor(args: EVAVisionTransformerArgs = {}) {
    super(args);
    const c = (this.visionConfig = resolveEVAVisionConfig(args.config ?? {}));
    this.configJson = args.config ?? {};
    const withLn = args.withLnVision ?? true;
    if (typeof withLn !== 'boolean') throw new Error(`EVAVisionTransformer: withLnVision must be a boolean, got ${String(withLn)}`);
    const D = c.hiddenSize;
    this.numPatches = Math.floor(c.imageSize / c.patchSize) ** 2;
    const pre = 'visual_encoder.';
    this.patchEmbed = this.addModule(`${pre}patch_embed.proj`, new ConvPatchEmbedding({
      numChannels: c.numChannels, hiddenSize: D, patchSize: c.patchSize, bias: true,
    }));
    this.clsToken = this.addParameter(`${pre}cls_token`, [1, 1, D], normalInit(0.02));
    this.posEmbed = this.addParameter(`${pre}pos_embed`, [1, 1 + this.numPatches, D], normalInit(0.02));
    this.blocks = [];
    for (let i = 0; i < c.numLayers; i++) {
      this.blocks.push(this.addModule(`${pre}blocks.${i}`, new EVABlock({
        hiddenSize: D, numHeads: c.numHeads, mlpHidden: c.mlpHidden, qkvBias: c.qkvBias, layerNormEps: c.layerNormEps,
      })));
    }
    this.lnVision = withLn ? this.addModule('ln_vision', new LayerNorm({ dim: D, eps: c.lnVisionEps })) : null;
    this.built = true;
  }

  /** `pixels [N, S, S, C]` (normalised, channels last) → `h_0` `[N, 1+P, D]`. */
  embed(pixelValues: tf.Tensor4D): tf.Tensor3D {
    this.assertUsable();
    const c = this.visionConfig;
    assertPixels('EVAVisionTransformer', pixelValues, c.imageSize, c.numChannels);
    return tf.tidy(() => {
      const N = pixelValues.shape[0];
      const patches = this.patchEmbed.forward(tf.cast(pixelValues, 'float32') as tf.Tensor4D); // [N, P, D]
      const cls = tf.tile(this.clsToken.read(), [N, 1, 1]); // [N, 1, D]
      return tf.add(tf.concat([cls, patches], 1), this.posEmbed.read()) as tf.Tensor3D; // [N, 1+P, D]
    });
  }

  /** `visual_encoder(pixels)` (`VisionTransformer.forward`) and optionally every hidden state. */
  encode(pixelValues: tf.Tensor4D, options: VisionTowerForwardOptions = {}): EVAVisionOutput {
    const { last, states } = runEncoderLayers(this.blocks, this.embed(pixelValues), this.blocks.length, options.outputHiddenStates ?? false);
    return { lastHiddenState: states ? last.clone() : last, hiddenStates: states };
  }

  /** `ln_vision(visual_encoder(pixels))` `[N, 1+P, D]` (what BLIP-2 / Cheetah feed the Q-Former); without `ln_vision`, the ViT output. */
  forward(pixelValues: tf.Tensor4D): tf.Tensor3D {
    const { lastHiddenState } = this.encode(pixelValues);
    if (!this.lnVision) return lastHiddenState;
    const out = this.lnVision.forward(lastHiddenState) as tf.Tensor3D;
    lastHiddenState.dispose();
    return out;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [inputShape[0], 1 + this.numPatches, this.visionConfig.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: JSON.parse(JSON.stringify(this.configJson)) as tf.serialization.ConfigDict, withLnVision: this.lnVision !== null };
  }
}
tf.serialization.registerClass(EVAVisionTransformer, 'mllm');
