/**
 * SigLIP vision tower (HF `SiglipVisionModel`, as Parrot and Wings vendor it in `SigLipVisionModel`), HF names:
 *
 *   h_0 = conv_p(pixels) + position_embedding                         [N, P, D]   (conv with bias, no CLS)
 *   h_i = layer_{i−1}(h_{i−1}),  i = 1..L                             (`ViTEncoderLayer`, gelu_pytorch_tanh MLP)
 *   hidden_states = (h_0, …, h_L);  last_hidden_state = post_layernorm(h_L)
 *
 *   pooler_output = head(last_hidden_state)                          [N, D]      (`SiglipPoolingHead`)
 *
 * `vision_model.embeddings.{patch_embedding.{weight,bias}, position_embedding.weight}`,
 * `vision_model.encoder.layers.{i}.…`, `vision_model.post_layernorm.*`, `vision_model.head.*` (absent with
 * `vision_use_head: false`, as newer HF configs may say).
 *
 * `dropLastLayer: true` builds the tower as Parrot's / Wings' `SigLipVisionTower.load_model` leaves it (the
 * last encoder layer deleted, the head replaced by `Identity`); its features are `hidden_states[−1]` of that
 * truncated encoder, without `post_layernorm` (`towerFeatures`). Wings also asserts 27 × 27 = 729 patches,
 * which only holds for 384 px images with patch 14 (so400m); the tower here takes any configured size.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, LayerNorm, Linear, normalInit, zerosInit, mergeHeads, scaledDotProductAttention, splitHeads } from '@mllm/core';
import { resolveSiglipVisionConfig, type HFVisionConfigJson, type ResolvedViTConfig } from './config.js';
import { ConvPatchEmbedding, ViTEncoderLayer, assertPixels, hiddenStateIndex, runEncoderLayers, visionActivation } from './layers.js';
import type { VisionTowerForwardOptions } from './clip.js';

export interface SiglipPoolingHeadArgs extends ModuleArgs {
  config: ResolvedViTConfig;
}

/**
 * SigLIP's attention-pooling head (`SigLipMultiheadAttentionPoolingHead`): one learned query (`probe`
 * `[1, 1, D]`) attends over the tokens through a `torch.nn.MultiheadAttention` (`attention.in_proj_weight`
 * `[3D, D]` = rows of Wq, Wk, Wv; `attention.in_proj_bias` `[3D]`; `attention.out_proj`), then a residual MLP:
 *
 *   a = out_proj(softmax(q·kᵀ/√d)·v),  q = probe·Wqᵀ + bq,  k, v = x·Wkᵀ + bk, x·Wvᵀ + bv   [N, 1, D]
 *   pooled = (a + mlp(layernorm(a)))[:, 0]                                                 [N, D]
 */
export class SiglipPoolingHead extends Module {
  static readonly className = 'SiglipPoolingHead';
  readonly headConfig: ResolvedViTConfig;
  readonly outProj: Linear;
  readonly layernorm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly probe: tfl.LayerVariable;
  private readonly inProjWeight: tfl.LayerVariable;
  private readonly inProjBias: tfl.LayerVariable;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(args: SiglipPoolingHeadArgs) {
    super(args);
    const c = (this.headConfig = args.config);
    const D = c.hiddenSize;
    this.act = visionActivation(c.hiddenAct);
    this.probe = this.addParameter('probe', [1, 1, D], normalInit(1));
    // internal [D, 3D] (`linear` layout): columns [0, D) are Wqᵀ, [D, 2D) Wkᵀ, [2D, 3D) Wvᵀ
    this.inProjWeight = this.addParameter('attention.in_proj_weight', [3 * D, D], normalInit(0.02), { layout: 'linear' });
    this.inProjBias = this.addParameter('attention.in_proj_bias', [3 * D], zerosInit);
    this.outProj = this.addModule('attention.out_proj', new Linear({ inFeatures: D, outFeatures: D }));
    this.layernorm = this.addModule('layernorm', new LayerNorm({ dim: D, eps: c.layerNormEps }));
    this.fc1 = this.addModule('mlp.fc1', new Linear({ inFeatures: D, outFeatures: c.intermediateSize }));
    this.fc2 = this.addModule('mlp.fc2', new Linear({ inFeatures: c.intermediateSize, outFeatures: D }));
    this.built = true;
  }

  /** `x [N, P, D] → [N, D]`. */
  forward(x: tf.Tensor3D): tf.Tensor2D {
    this.assertUsable();
    const { hiddenSize: D, numHeads: h } = this.headConfig;
    return tf.tidy(() => {
      const [N, P] = x.shape;
      const w = this.inProjWeight.read(); // [D, 3D]
      const b = this.inProjBias.read(); // [3D]
      const wq = tf.slice(w, [0, 0], [D, D]);
      const wkv = tf.slice(w, [0, D], [D, 2 * D]);
      const q = tf.add(tf.matMul(tf.reshape(this.probe.read(), [1, D]), wq), tf.slice(b, [0], [D])); // [1, D]
      const kv = tf.reshape(tf.add(tf.matMul(tf.reshape(x, [N * P, D]), wkv), tf.slice(b, [D], [2 * D])), [N, P, 2 * D]); // [N, P, 2D]
      const qN = tf.tile(tf.reshape(q, [1, 1, D]), [N, 1, 1]); // [N, 1, D]
      const k = tf.slice(kv, [0, 0, 0], [N, P, D]);
      const v = tf.slice(kv, [0, 0, D], [N, P, D]);
      const attended = scaledDotProductAttention(splitHeads(qN, h), splitHeads(k, h), splitHeads(v, h), null).output; // [N, h, 1, d]
      const a = this.outProj.forward(mergeHeads(attended)); // [N, 1, D]
      const pooled = tf.add(a, this.fc2.forward(this.act(this.fc1.forward(this.layernorm.forward(a))))); // [N, 1, D]
      return tf.reshape(pooled, [N, D]) as tf.Tensor2D;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [inputShape[0], this.headConfig.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: { ...this.headConfig } };
  }
}
tf.serialization.registerClass(SiglipPoolingHead, 'mllm');

export interface SiglipVisionModelArgs extends ModuleArgs {
  /** Parsed `config.json`: a full `SiglipConfig` (with `vision_config`) or a bare vision config. */
  config: HFVisionConfigJson;
  /**
   * Build `num_hidden_layers − 1` layers and no pooling head, as Parrot's and Wings' `SigLipVisionTower` use
   * the model (default false: all layers, and the head unless `vision_use_head` is false).
   */
  dropLastLayer?: boolean;
}

export interface SiglipVisionOutput {
  /** `[N, P, D]`: `post_layernorm` of the last built layer's output. */
  lastHiddenState: tf.Tensor3D;
  /** `[N, D]`: the pooling head's output, or null when the model has no head. */
  poolerOutput: tf.Tensor2D | null;
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
  readonly head: SiglipPoolingHead | null;
  private readonly positionEmbedding: tfl.LayerVariable;

  constructor(args: SiglipVisionModelArgs) {
    super(args);
    const c = (this.visionConfig = resolveSiglipVisionConfig(args.config));
    this.configJson = args.config;
    const drop = args.dropLastLayer ?? false;
    if (typeof drop !== 'boolean') throw new Error(`SiglipVisionModel: dropLastLayer must be a boolean, got ${String(drop)}`);
    this.dropLastLayer = drop;
    const vision = (args.config.vision_config ?? args.config) as Record<string, unknown>;
    const useHead = vision.vision_use_head ?? true;
    if (typeof useHead !== 'boolean') throw new Error(`SiglipVisionModel: vision_use_head must be a boolean, got ${String(useHead)}`);
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
    this.head = useHead && !drop ? this.addModule(`${pre}head`, new SiglipPoolingHead({ config: c })) : null;
    this.built = true;
  }

  /** `pixels [N, S, S, C]` (normalised, channels last) → `h_0` `[N, P, D]`. */
  embed(pixelValues: tf.Tensor4D): tf.Tensor3D {
    this.assertUsable();
    const c = this.visionConfig;
    assertPixels('SiglipVisionModel', pixelValues, c.imageSize, c.numChannels);
    return tf.tidy(() => tf.add(this.patchEmbedding.forward(tf.cast(pixelValues, 'float32') as tf.Tensor4D), this.positionEmbedding.read()) as tf.Tensor3D);
  }

  /** The vendored `SigLipVisionModel.forward`: last hidden state, pooled output (with a head), hidden states. */
  forward(pixelValues: tf.Tensor4D, options: VisionTowerForwardOptions = {}): SiglipVisionOutput {
    const { last, states } = runEncoderLayers(this.layers, this.embed(pixelValues), this.layers.length, options.outputHiddenStates ?? false);
    const lastHiddenState = this.postLayernorm.forward(last) as tf.Tensor3D;
    if (!states) last.dispose();
    const poolerOutput = this.head ? this.head.forward(lastHiddenState) : null;
    return { lastHiddenState, poolerOutput, hiddenStates: states };
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
    const out = this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
    out.poolerOutput?.dispose();
    return out.lastHiddenState;
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [inputShape[0], this.numPatches, this.visionConfig.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: JSON.parse(JSON.stringify(this.configJson)) as tf.serialization.ConfigDict, dropLastLayer: this.dropLastLayer };
  }
}
tf.serialization.registerClass(SiglipVisionModel, 'mllm');
