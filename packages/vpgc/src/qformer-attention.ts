/**
 * BERT attention block of the Q-Former (LAVIS `BertAttention`): multi-head attention followed by
 * the post-LN output sub-layer.
 *
 *   ctx    = softmax(q·kᵀ / √d) · v                 q = x·Wqᵀ+bq, k = c·Wkᵀ+bk, v = c·Wvᵀ+bv
 *   output = LayerNorm(dropout(ctx·Woᵀ + bo) + x)   (eps 1e-12)
 *
 * Self-attention uses `c = x`; cross-attention uses the image features `c` (`[N, Nv, Dv]`, keys and
 * values projected from `Dv` to `D`). No attention mask: the Q-Former's queries attend to each
 * other bidirectionally and to every image token (BLIP-2 passes all-ones masks).
 *
 * Parameter names: `self.query.*`, `self.key.*`, `self.value.*`, `output.dense.*`, `output.LayerNorm.*`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, Linear, LayerNorm, scaledDotProductAttention, splitHeads, mergeHeads, normalInit, zerosInit, nextSeed, type ModuleArgs } from '@mllm/core';

export interface QFormerAttentionArgs extends ModuleArgs {
  /** Query/hidden width `D`. */
  hiddenSize: number;
  /** Heads (`D` divisible by it). */
  numHeads: number;
  /** Width of the keys/values source: `D` for self-attention, `Dv` for cross-attention. */
  keyWidth: number;
  layerNormEps: number;
  /** Dropout on the attention probabilities (training only). */
  attentionDropout: number;
  /** Dropout on the dense output (training only). */
  hiddenDropout: number;
}

/** Options of one forward call. */
export interface QFormerForwardOptions {
  /** Dropout active (default false: inference). */
  training?: boolean;
}

/** `x` with inverted dropout of `rate` when `training`, else `x` itself. Seeded from the global stream. */
export function trainingDropout(x: tf.Tensor, rate: number, training: boolean): tf.Tensor {
  if (!training || rate === 0) return x;
  return tf.dropout(x, rate, undefined, nextSeed());
}

/**
 * Multi-head scaled dot-product attention without mask.
 * q `[N, Lq, D]`, k/v `[N, Lk, D]` → context `[N, Lq, D]` and probabilities `[N, heads, Lq, Lk]`
 * (before dropout, which only touches the product with v).
 */
export function multiHeadAttention(
  q: tf.Tensor3D,
  k: tf.Tensor3D,
  v: tf.Tensor3D,
  numHeads: number,
  dropoutRate = 0,
  training = false,
): { context: tf.Tensor3D; probs: tf.Tensor4D } {
  return tf.tidy(() => {
    // Core's attention (q·kᵀ by batchMatMulTransposeB, plain softmax: one fused kernel on cpu, dropout
    // on the probabilities only where they meet v).
    const { output, probs } = scaledDotProductAttention(splitHeads(q, numHeads), splitHeads(k, numHeads), splitHeads(v, numHeads), null, {
      dropoutRate,
      training,
    }); // [N, h, Lq, d], [N, h, Lq, Lk]
    return { context: mergeHeads(output), probs };
  });
}

/** BERT-initialised Linear: weight N(0, 0.02), bias 0 (BERT `_init_weights`). */
export function bertLinear(inFeatures: number, outFeatures: number): Linear {
  return new Linear({ inFeatures, outFeatures, weightInit: normalInit(0.02), biasInit: zerosInit });
}

export class QFormerAttention extends Module {
  static readonly className = 'QFormerAttention';
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly keyWidth: number;
  readonly layerNormEps: number;
  readonly attentionDropout: number;
  readonly hiddenDropout: number;
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly dense: Linear;
  readonly layerNorm: LayerNorm;

  constructor(args: QFormerAttentionArgs) {
    super(args);
    this.hiddenSize = args.hiddenSize;
    this.numHeads = args.numHeads;
    this.keyWidth = args.keyWidth;
    this.layerNormEps = args.layerNormEps;
    this.attentionDropout = args.attentionDropout;
    this.hiddenDropout = args.hiddenDropout;
    if (this.hiddenSize % this.numHeads !== 0) {
      throw new Error(`QFormerAttention: hiddenSize ${this.hiddenSize} is not divisible by numHeads ${this.numHeads}`);
    }
    this.query = this.addModule('self.query', bertLinear(this.hiddenSize, this.hiddenSize));
    this.key = this.addModule('self.key', bertLinear(this.keyWidth, this.hiddenSize));
    this.value = this.addModule('self.value', bertLinear(this.keyWidth, this.hiddenSize));
    this.dense = this.addModule('output.dense', bertLinear(this.hiddenSize, this.hiddenSize));
    this.layerNorm = this.addModule('output.LayerNorm', new LayerNorm({ dim: this.hiddenSize, eps: this.layerNormEps }));
    this.built = true;
  }

  /**
   * hidden `[N, Lq, D]`, source `[N, Lk, keyWidth]` (null: self-attention on `hidden`)
   * → output `[N, Lq, D]` and probabilities `[N, heads, Lq, Lk]`.
   */
  forward(
    hidden: tf.Tensor3D,
    source: tf.Tensor3D | null,
    options: QFormerForwardOptions = {},
  ): { output: tf.Tensor3D; probs: tf.Tensor4D } {
    this.assertUsable();
    const training = options.training ?? false;
    return tf.tidy(() => {
      const context = source ?? hidden;
      const q = this.query.forward(hidden) as tf.Tensor3D; // [N, Lq, D]
      const k = this.key.forward(context) as tf.Tensor3D; // [N, Lk, D]
      const v = this.value.forward(context) as tf.Tensor3D; // [N, Lk, D]
      const attention = multiHeadAttention(q, k, v, this.numHeads, this.attentionDropout, training);
      const projected = trainingDropout(this.dense.forward(attention.context), this.hiddenDropout, training);
      const output = this.layerNorm.forward(tf.add(projected, hidden)) as tf.Tensor3D; // [N, Lq, D]
      return { output, probs: attention.probs };
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const list = Array.isArray(inputs) ? inputs : [inputs];
    return tf.tidy(() => this.forward(list[0] as tf.Tensor3D, (list[1] as tf.Tensor3D | undefined) ?? null).output);
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      hiddenSize: this.hiddenSize,
      numHeads: this.numHeads,
      keyWidth: this.keyWidth,
      layerNormEps: this.layerNormEps,
      attentionDropout: this.attentionDropout,
      hiddenDropout: this.hiddenDropout,
    };
  }
}
tf.serialization.registerClass(QFormerAttention, 'mllm');
