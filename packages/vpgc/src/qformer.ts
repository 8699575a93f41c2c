/**
 * Compact BLIP-2 Q-Former (LAVIS `BertModel` driven with `query_embeds` only, no text tokens):
 *
 *   H⁰   = dropout(LayerNorm(Q))                 Q: query embeddings [N, Nq, D]  (bert.embeddings.LayerNorm)
 *   Hˡ⁺¹ = QFormerLayerₗ(Hˡ, X)                  X: image features   [N, Nv, Dv] (cross-attention every
 *                                                    `crossAttentionFreq` layers, from layer 0)
 *   out  = H^L                                   [N, Nq, D]  (`last_hidden_state`)
 *
 * Parameter names follow the LAVIS checkpoint below the `Qformer.` prefix:
 * `bert.embeddings.LayerNorm.*`, `bert.encoder.layer.{i}.attention.self.query.weight`, …,
 * `bert.encoder.layer.{i}.crossattention.*`, `bert.encoder.layer.{i}.intermediate_query.dense.*`,
 * `bert.encoder.layer.{i}.output_query.{dense,LayerNorm}.*`.
 *
 * Dropout is active only when `training` is passed (or `this.training` is set); inference is the
 * default. The Cheetah reference never calls `.eval()`, so its Q-Former runs with dropout 0.1 even at
 * inference; pass `training: true` to reproduce that.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, LayerNorm, checkedOptions, assertTensor, type ModuleArgs } from '@mllm/core';
import { QFormerLayer } from './qformer-layer.js';
import { trainingDropout } from './qformer-attention.js';
import { qformerConfig, type QFormerConfig } from './qformer-config.js';

export interface QFormerArgs extends ModuleArgs {
  /** Sizes; missing fields take BLIP-2's values. */
  config?: Partial<QFormerConfig>;
}

export interface QFormerRunOptions {
  /** Dropout on (default: `this.training`, which defaults to false). */
  training?: boolean;
  /** Also return each cross-attention layer's probabilities `[N, heads, Nq, Nv]`. */
  returnCrossAttentions?: boolean;
}

export interface QFormerOutput {
  /** `[N, Nq, D]` */
  lastHiddenState: tf.Tensor3D;
  /** One `[N, heads, Nq, Nv]` per cross-attention layer, in layer order (empty unless requested). */
  crossAttentions: tf.Tensor4D[];
}


export class QFormer extends Module {
  static readonly className = 'QFormer';
  readonly config: QFormerConfig;
  readonly embeddingLayerNorm: LayerNorm;
  readonly layers: QFormerLayer[] = [];
  /** Default dropout mode of `forward` (explicit; false = inference). */
  training = false;

  constructor(args: QFormerArgs = {}) {
    super(checkedOptions('QFormer', args, ['config']));
    this.config = qformerConfig(args.config);
    this.embeddingLayerNorm = this.addModule(
      'bert.embeddings.LayerNorm',
      new LayerNorm({ dim: this.config.hiddenSize, eps: this.config.layerNormEps }),
    );
    for (let i = 0; i < this.config.numHiddenLayers; i++) {
      this.layers.push(this.addModule(`bert.encoder.layer.${i}`, new QFormerLayer({ config: this.config, layerIndex: i })));
    }
    this.built = true;
  }

  /** Indices of the layers with cross-attention. */
  crossAttentionLayers(): number[] {
    return this.layers.filter((layer) => layer.crossAttention !== null).map((layer) => layer.layerIndex);
  }

  private checkInputs(queries: tf.Tensor, imageFeatures: tf.Tensor): void {
    const c = this.config;
    assertTensor('QFormer.forward', 'queries', queries, { dtypes: ['float32'] });
    assertTensor('QFormer.forward', 'imageFeatures', imageFeatures, { dtypes: ['float32'] });
    if (queries.rank !== 3 || queries.shape[2] !== c.hiddenSize) {
      throw new Error(`QFormer: queries must be [N or 1, Nq, ${c.hiddenSize}], got [${queries.shape}]`);
    }
    if (imageFeatures.rank !== 3 || imageFeatures.shape[2] !== c.encoderWidth) {
      throw new Error(`QFormer: imageFeatures must be [N, Nv, ${c.encoderWidth}], got [${imageFeatures.shape}]`);
    }
    if (queries.shape[0] !== 1 && queries.shape[0] !== imageFeatures.shape[0]) {
      throw new Error(
        `QFormer: queries batch must be 1 or equal to imageFeatures batch ${imageFeatures.shape[0]}, got [${queries.shape}]`,
      );
    }
  }

  /**
   * queries `[N or 1, Nq, D]` (broadcast over images when 1), imageFeatures `[N, Nv, Dv]` → output.
   */
  run(queries: tf.Tensor3D, imageFeatures: tf.Tensor3D, options: QFormerRunOptions = {}): QFormerOutput {
    this.assertUsable();
    this.checkInputs(queries, imageFeatures);
    const training = options.training ?? this.training;
    if (imageFeatures.shape[0] === 0) {
      // No images: empty results on every backend (wasm's kernels divide by the batch size).
      const [, Nq, D] = queries.shape;
      const crossAttentions = options.returnCrossAttentions
        ? this.crossAttentionLayers().map(() => tf.zeros([0, this.config.numAttentionHeads, Nq, imageFeatures.shape[1]]) as tf.Tensor4D)
        : [];
      return { lastHiddenState: tf.zeros([0, Nq, D]) as tf.Tensor3D, crossAttentions };
    }
    return tf.tidy(() => {
      const N = imageFeatures.shape[0];
      const expanded = queries.shape[0] === N ? queries : tf.tile(queries, [N, 1, 1]); // [N, Nq, D]
      let hidden = trainingDropout(
        this.embeddingLayerNorm.forward(expanded),
        this.config.hiddenDropoutProb,
        training,
      ) as tf.Tensor3D; // [N, Nq, D]
      const crossAttentions: tf.Tensor4D[] = [];
      for (const layer of this.layers) {
        const out = layer.forward(hidden, imageFeatures, { training });
        hidden = out.hidden;
        if (options.returnCrossAttentions && out.crossAttention) crossAttentions.push(out.crossAttention);
      }
      return { lastHiddenState: hidden, crossAttentions };
    });
  }

  /** queries `[N or 1, Nq, D]`, imageFeatures `[N, Nv, Dv]` → `[N, Nq, D]`. */
  forward(queries: tf.Tensor3D, imageFeatures: tf.Tensor3D, options: { training?: boolean } = {}): tf.Tensor3D {
    return this.run(queries, imageFeatures, { training: options.training }).lastHiddenState;
  }

  /**
   * Cross-attention mass per image token: the probabilities averaged over cross-attention layers,
   * heads and queries. queries `[N or 1, Nq, D]`, imageFeatures `[N, Nv, Dv]` → `[N, Nv]` (rows sum to 1).
   * Always computed without dropout.
   */
  crossAttentionMap(queries: tf.Tensor3D, imageFeatures: tf.Tensor3D): tf.Tensor2D {
    return tf.tidy(() => {
      const { crossAttentions } = this.run(queries, imageFeatures, { training: false, returnCrossAttentions: true });
      const perLayer = crossAttentions.map((probs) => tf.mean(probs, [1, 2])); // each [N, Nv]
      return tf.div(tf.addN(perLayer), perLayer.length) as tf.Tensor2D; // [N, Nv]
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    return tf.tidy(() => this.forward(list[0] as tf.Tensor3D, list[1] as tf.Tensor3D));
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const shapes = inputShape as tfl.Shape[];
    return [shapes[1][0], shapes[0][1], this.config.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: { ...this.config } };
  }
}
tf.serialization.registerClass(QFormer, 'mllm');
