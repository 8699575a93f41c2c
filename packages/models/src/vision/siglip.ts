/**
 * SigLIP vision tower (HF `SiglipVisionModel`, as Parrot and Wings vendor it in `SigLipVisionModel`), HF names:
 *
 *   h_0 = conv_p(pixels) + position_embedding                         [N, P, D]   (conv with bias, no CLS)
 *   h_i = layer_{i−1}(h_{i−1}),  i = 1..L                             (`ViTEncoderLayer`, gelu_pytorch_tanh MLP)
 *   hidden_states = (h_0, …, h_L);  last_hidden_state = post_layernorm(h_L)
 *
 * `vision_model.embeddings.{patch_embedding.{weight,bias}, position_embedding.weight}`,
 * `vision_model.encoder.layers.{i}.…`, `vision_model.post_layernorm.*`. The attention-pooling head
 * (`vision_model.head.*`, the pooled output) is not computed: no reference MLLM reads it, and the loader
 * skips its tensors.
 *
 * `dropLastLayer: true` builds the tower as Parrot's / Wings' `SigLipVisionTower.load_model` leaves it (the
 * last encoder layer deleted, the head replaced by `Identity`); its features are `hidden_states[−1]` of that
 * truncated encoder, without `post_layernorm` (`towerFeatures`). Wings also asserts 27 × 27 = 729 patches,
 * which only holds for 384 px images with patch 14 (so400m); the tower here takes any configured size.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, LayerNorm, normalInit } from '@mllm/core';
import { resolveSiglipVisionConfig, type HFVisionConfigJson, type ResolvedViTConfig } from './config.js';
import { ConvPatchEmbedding, ViTEncoderLayer, assertPixels, hiddenStateIndex, runEncoderLayers } from './layers.js';
import type { VisionTowerForwardOptions } from './clip.js';

export interface SiglipVisionModelArgs extends ModuleArgs {
  /** Parsed `config.json`: a full `SiglipConfig` (with `vision_config`) or a bare vision config. */
  config: HFVisionConfigJson;
  /**
   * Build `num_hidden_layers − 1` layers, as Parrot's and Wings' `SigLipVisionTower` use the model (default
   * false: all layers).
   */
  dropLastLayer?: boolean;
}

export interface SiglipVisionOutput {
  /** `[N, P, D]`: `post_layernorm` of the last built layer's output. */
  lastHiddenState: tf.Tensor3D;
  /** `layers + 1` tensors `[N, P, D]` when requested (no `post_layernorm`). */
  hiddenStates: tf.Tensor3D[] | null;
}

export class SiglipVisionModel extends Module {
  static readonly className = 'SiglipVisionModel';
  readonly visionConfig: ResolvedViTConfig;
  readonly configJson: HFVisionConfigJson;
  readonly dropLastLayer: boolean;
  readonly numPatches: number;
  readonly patchEmbedding: ConvPatchEmbedding;
  readonly layers: ViTEncoderLayer[];
  readonly postLayernorm: LayerNorm;
  private readonly positionEmbedding: tfl.LayerVariable;

  constructor(args: SiglipVisionModelArgs) {
    super(args);
    const c = (this.visionConfig = resolveSiglipVisionConfig(args.config));
    this.configJson = args.config;
    const drop = args.dropLastLayer ?? false;
    if (typeof drop !== 'boolean') throw new Error(`SiglipVisionModel: dropLastLayer must be a boolean, got ${String(drop)}`);
    this.dropLastLayer = drop;
    const D = c.hiddenSize;
    this.numPatches = Math.floor(c.imageSize / c.patchSize) ** 2;
    const pre = 'vision_model.';
    this.patchEmbedding = this.addModule(`${pre}embeddings.patch_embedding`, new ConvPatchEmbedding({
      numChannels: c.numChannels, hiddenSize: D, patchSize: c.patchSize, bias: true,
    }));
    this.positionEmbedding = this.addParameter(`${pre}embeddings.position_embedding.weight`, [this.numPatches, D], normalInit(0.02));
    this.layers = [];
    for (let i = 0; i < c.numLayers - (drop ? 1 : 0); i++) {
      this.layers.push(this.addModule(`${pre}encoder.layers.${i}`, new ViTEncoderLayer({
        hiddenSize: D, numHeads: c.numHeads, intermediateSize: c.intermediateSize, layerNormEps: c.layerNormEps, hiddenAct: c.hiddenAct,
      })));
    }
    this.postLayernorm = this.addModule(`${pre}post_layernorm`, new LayerNorm({ dim: D, eps: c.layerNormEps }));
    this.built = true;
  }

  /** `pixels [N, S, S, C]` (normalised, channels last) → `h_0` `[N, P, D]`. */
  embed(pixelValues: tf.Tensor4D): tf.Tensor3D {
    this.assertUsable();
    const c = this.visionConfig;
    assertPixels('SiglipVisionModel', pixelValues, c.imageSize, c.numChannels);
    return tf.tidy(() => tf.add(this.patchEmbedding.forward(tf.cast(pixelValues, 'float32') as tf.Tensor4D), this.positionEmbedding.read()) as tf.Tensor3D);
  }

  /** The vendored `SigLipVisionModel.forward` without the pooling head. */
  forward(pixelValues: tf.Tensor4D, options: VisionTowerForwardOptions = {}): SiglipVisionOutput {
    const { last, states } = runEncoderLayers(this.layers, this.embed(pixelValues), this.layers.length, options.outputHiddenStates ?? false);
    const lastHiddenState = this.postLayernorm.forward(last) as tf.Tensor3D;
    if (!states) last.dispose();
    return { lastHiddenState, hiddenStates: states };
  }

  /**
   * `hidden_states[selectLayer]` of the built encoder (default −1), running only the layers it needs. With
   * `dropLastLayer` and the default, these are Parrot's / Wings' `SigLipVisionTower` features `[N, P, D]`.
   */
  towerFeatures(pixelValues: tf.Tensor4D, selectLayer = -1): tf.Tensor3D {
    const count = hiddenStateIndex('SiglipVisionModel', selectLayer, this.layers.length);
    return runEncoderLayers(this.layers, this.embed(pixelValues), count, false).last;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D).lastHiddenState;
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [inputShape[0], this.numPatches, this.visionConfig.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: JSON.parse(JSON.stringify(this.configJson)) as tf.serialization.ConfigDict, dropLastLayer: this.dropLastLayer };
  }
}
tf.serialization.registerClass(SiglipVisionModel, 'mllm');
