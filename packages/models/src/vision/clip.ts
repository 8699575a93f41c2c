/**
 * HF `CLIPVisionModel` (the tower of Parrot, Wings and LLaVA), state-dict names as HF writes them:
 *
 *   e = [class_embedding ; conv_p(pixels)] + position_embedding     [N, 1+P, D]   (conv without bias)
 *   h_0 = pre_layrnorm(e)                                            (sic: HF's name)
 *   h_i = layer_{i−1}(h_{i−1}),  i = 1..L                            (`ViTEncoderLayer`, quick_gelu MLP)
 *   hidden_states = (h_0, …, h_L);  last_hidden_state = h_L;  pooler_output = post_layernorm(h_L[:, 0])
 *
 * `vision_model.embeddings.{patch_embedding.weight, class_embedding, position_embedding.weight}`,
 * `vision_model.pre_layrnorm.*`, `vision_model.encoder.layers.{i}.…`, `vision_model.post_layernorm.*`.
 * LLaVA's `CLIPVisionTower.feature_select` takes `hidden_states[mm_vision_select_layer]` (e.g. −2: no
 * `post_layernorm`) and drops the CLS row for `patch` or keeps it for `cls_patch`: `selectFeatures`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, LayerNorm, normalInit, type VisionSelectFeature } from '@mllm/core';
import { resolveCLIPVisionConfig, type HFVisionConfigJson, type ResolvedViTConfig } from './config.js';
import { ConvPatchEmbedding, ViTEncoderLayer, assertPixels, hiddenStateIndex, runEncoderLayers } from './layers.js';
import { selectVisionFeature } from '../model/patch-vision-encoder.js';

export interface CLIPVisionModelArgs extends ModuleArgs {
  /** Parsed `config.json`: a full `CLIPConfig` (with `vision_config`) or a bare vision config. */
  config: HFVisionConfigJson;
}

export interface VisionTowerForwardOptions {
  /** Also return every hidden state (embeddings, then one per layer). Default false. */
  outputHiddenStates?: boolean;
}

export interface CLIPVisionOutput {
  /** `[N, 1+P, D]`: the last layer's output (no `post_layernorm`, as HF). */
  lastHiddenState: tf.Tensor3D;
  /** `[N, D]`: `post_layernorm` of the CLS row. */
  poolerOutput: tf.Tensor2D;
  /** `L + 1` tensors `[N, 1+P, D]` when requested (the last is `lastHiddenState`'s value, a separate tensor). */
  hiddenStates: tf.Tensor3D[] | null;
}

export interface VisionSelectOptions {
  /** Index into the hidden states (`mm_vision_select_layer`; negative from the end). Default −2 (LLaVA). */
  selectLayer?: number;
  /** `patch` drops CLS, `cls_patch` keeps it (`mm_vision_select_feature`). Default `patch`. */
  selectFeature?: VisionSelectFeature;
}

export class CLIPVisionModel extends Module {
  static readonly className = 'CLIPVisionModel';
  readonly visionConfig: ResolvedViTConfig;
  /** The config as given (for `getConfig` / saving). */
  readonly configJson: HFVisionConfigJson;
  readonly numPatches: number;
  readonly patchEmbedding: ConvPatchEmbedding;
  readonly preLayrnorm: LayerNorm;
  readonly layers: ViTEncoderLayer[];
  readonly postLayernorm: LayerNorm;
  private readonly classEmbedding: tfl.LayerVariable;
  private readonly positionEmbedding: tfl.LayerVariable;

  constructor(args: CLIPVisionModelArgs) {
    super(args);
    const c = (this.visionConfig = resolveCLIPVisionConfig(args.config));
    this.configJson = args.config;
    const D = c.hiddenSize;
    this.numPatches = Math.floor(c.imageSize / c.patchSize) ** 2;
    const pre = 'vision_model.';
    this.patchEmbedding = this.addModule(`${pre}embeddings.patch_embedding`, new ConvPatchEmbedding({
      numChannels: c.numChannels, hiddenSize: D, patchSize: c.patchSize, bias: false,
    }));
    this.classEmbedding = this.addParameter(`${pre}embeddings.class_embedding`, [D], normalInit(0.02));
    this.positionEmbedding = this.addParameter(`${pre}embeddings.position_embedding.weight`, [1 + this.numPatches, D], normalInit(0.02));
    this.preLayrnorm = this.addModule(`${pre}pre_layrnorm`, new LayerNorm({ dim: D, eps: c.layerNormEps }));
    this.layers = [];
    for (let i = 0; i < c.numLayers; i++) {
      this.layers.push(this.addModule(`${pre}encoder.layers.${i}`, new ViTEncoderLayer({
        hiddenSize: D, numHeads: c.numHeads, intermediateSize: c.intermediateSize, layerNormEps: c.layerNormEps, hiddenAct: c.hiddenAct,
      })));
    }
    this.postLayernorm = this.addModule(`${pre}post_layernorm`, new LayerNorm({ dim: D, eps: c.layerNormEps }));
    this.built = true;
  }

  /** `pixels [N, S, S, C]` (normalised, channels last) → `h_0 = pre_layrnorm(embeddings)` `[N, 1+P, D]`. */
  embed(pixelValues: tf.Tensor4D): tf.Tensor3D {
    this.assertUsable();
    const c = this.visionConfig;
    assertPixels('CLIPVisionModel', pixelValues, c.imageSize, c.numChannels);
    return tf.tidy(() => {
      const N = pixelValues.shape[0];
      const patches = this.patchEmbedding.forward(tf.cast(pixelValues, 'float32') as tf.Tensor4D); // [N, P, D]
      const cls = tf.tile(tf.reshape(this.classEmbedding.read(), [1, 1, c.hiddenSize]), [N, 1, 1]); // [N, 1, D]
      const e = tf.add(tf.concat([cls, patches], 1), this.positionEmbedding.read()); // [N, 1+P, D]
      return this.preLayrnorm.forward(e) as tf.Tensor3D;
    });
  }

  /** HF `CLIPVisionModel.forward`: the last hidden state, the pooled output and optionally every hidden state. */
  forward(pixelValues: tf.Tensor4D, options: VisionTowerForwardOptions = {}): CLIPVisionOutput {
    const h0 = this.embed(pixelValues);
    const { last, states } = runEncoderLayers(this.layers, h0, this.layers.length, options.outputHiddenStates ?? false);
    const poolerOutput = tf.tidy(() => {
      const [N, , D] = last.shape;
      return this.postLayernorm.forward(tf.reshape(tf.slice(last, [0, 0, 0], [N, 1, D]), [N, D])) as tf.Tensor2D; // [N, D]
    });
    return { lastHiddenState: states ? last.clone() : last, poolerOutput, hiddenStates: states };
  }

  /**
   * LLaVA's `CLIPVisionTower.forward`: `hidden_states[selectLayer]` with `selectFeature` applied, running only
   * the layers that state needs (layer −2 skips the last). `[N, P, D]` (`patch`) or `[N, 1+P, D]` (`cls_patch`).
   */
  selectFeatures(pixelValues: tf.Tensor4D, options: VisionSelectOptions = {}): tf.Tensor3D {
    const select = options.selectFeature ?? 'patch';
    if (select !== 'patch' && select !== 'cls_patch') {
      throw new Error(`CLIPVisionModel: selectFeature must be 'patch' or 'cls_patch', got ${JSON.stringify(select)}`);
    }
    const count = hiddenStateIndex('CLIPVisionModel', options.selectLayer ?? -2, this.layers.length);
    const { last } = runEncoderLayers(this.layers, this.embed(pixelValues), count, false);
    const out = selectVisionFeature(last, select);
    last.dispose();
    return out;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const out = this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
    out.poolerOutput.dispose();
    return out.lastHiddenState;
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [inputShape[0], 1 + this.numPatches, this.visionConfig.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: JSON.parse(JSON.stringify(this.configJson)) as tf.serialization.ConfigDict };
  }
}
tf.serialization.registerClass(CLIPVisionModel, 'mllm');
