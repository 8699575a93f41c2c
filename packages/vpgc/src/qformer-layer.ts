/**
 * One Q-Former layer on the query stream (LAVIS `BertLayer` with `query_length = Nq` and no text):
 *
 *   h = LN(h + dropout(SelfAttn(h)·Wo))                       attention.*
 *   h = LN(h + dropout(CrossAttn(h, X)·Wo))   (cross layers)  crossattention.*
 *   h = LN(h + dropout(W2·GELU(W1·h + b1) + b2))              intermediate_query.dense, output_query.*
 *
 * GELU is exact (erf). The text-side FFN (`intermediate`, `output`) of the reference only runs on
 * text tokens, which the VPG never feeds, so it is not built (its checkpoint keys are ignored on load).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, Linear, LayerNorm, gelu, type ModuleArgs } from '@mllm/core';
import { QFormerAttention, bertLinear, trainingDropout, type QFormerForwardOptions } from './qformer-attention.js';
import { hasCrossAttention, validateQFormerConfig, type QFormerConfig } from './qformer-config.js';

export interface QFormerLayerArgs extends ModuleArgs {
  config: QFormerConfig;
  /** 0-based index (decides whether the layer has cross-attention). */
  layerIndex: number;
}

/** Result of one layer. */
export interface QFormerLayerOutput {
  /** `[N, Nq, D]` */
  hidden: tf.Tensor3D;
  /** Cross-attention probabilities `[N, heads, Nq, Nv]` (null in layers without cross-attention). */
  crossAttention: tf.Tensor4D | null;
}

export class QFormerLayer extends Module {
  static readonly className = 'QFormerLayer';
  readonly config: QFormerConfig;
  readonly layerIndex: number;
  readonly attention: QFormerAttention;
  readonly crossAttention: QFormerAttention | null;
  readonly intermediate: Linear;
  readonly outputDense: Linear;
  readonly outputLayerNorm: LayerNorm;

  constructor(args: QFormerLayerArgs) {
    super(args);
    validateQFormerConfig(args.config);
    this.config = { ...args.config };
    this.layerIndex = args.layerIndex;
    const c = this.config;
    const attentionArgs = {
      hiddenSize: c.hiddenSize,
      numHeads: c.numAttentionHeads,
      layerNormEps: c.layerNormEps,
      attentionDropout: c.attentionProbsDropoutProb,
      hiddenDropout: c.hiddenDropoutProb,
    };
    this.attention = this.addModule('attention', new QFormerAttention({ ...attentionArgs, keyWidth: c.hiddenSize }));
    this.crossAttention = hasCrossAttention(c, this.layerIndex)
      ? this.addModule('crossattention', new QFormerAttention({ ...attentionArgs, keyWidth: c.encoderWidth }))
      : null;
    this.intermediate = this.addModule('intermediate_query.dense', bertLinear(c.hiddenSize, c.intermediateSize));
    this.outputDense = this.addModule('output_query.dense', bertLinear(c.intermediateSize, c.hiddenSize));
    this.outputLayerNorm = this.addModule('output_query.LayerNorm', new LayerNorm({ dim: c.hiddenSize, eps: c.layerNormEps }));
    this.built = true;
  }

  /** hidden `[N, Nq, D]`, imageFeatures `[N, Nv, Dv]` → `[N, Nq, D]` (+ cross-attention probabilities). */
  forward(hidden: tf.Tensor3D, imageFeatures: tf.Tensor3D, options: QFormerForwardOptions = {}): QFormerLayerOutput {
    this.assertUsable();
    const training = options.training ?? false;
    const result = tf.tidy(() => {
      let h = this.attention.forward(hidden, null, options).output; // [N, Nq, D]
      let crossAttention: tf.Tensor4D[] = [];
      if (this.crossAttention) {
        const cross = this.crossAttention.forward(h, imageFeatures, options);
        h = cross.output; // [N, Nq, D]
        crossAttention = [cross.probs]; // [N, heads, Nq, Nv]
      }
      const inner = gelu(this.intermediate.forward(h)); // [N, Nq, F]
      const projected = trainingDropout(this.outputDense.forward(inner), this.config.hiddenDropoutProb, training); // [N, Nq, D]
      const out = this.outputLayerNorm.forward(tf.add(projected, h)) as tf.Tensor3D;
      return { hidden: out, crossAttention };
    });
    return { hidden: result.hidden, crossAttention: result.crossAttention[0] ?? null };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    return tf.tidy(() => this.forward(list[0] as tf.Tensor3D, list[1] as tf.Tensor3D).hidden);
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: { ...this.config }, layerIndex: this.layerIndex };
  }
}
tf.serialization.registerClass(QFormerLayer, 'mllm');
