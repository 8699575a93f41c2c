/**
 * Multi-head (self- or cross-) attention with LLaMA/Qwen2 names `q_proj`, `k_proj`, `v_proj`,
 * `o_proj`, optional rotary embedding at explicit positions, and optional returned probabilities.
 *
 *   q = split(x·Wq), k = split(kv·Wk), v = split(kv·Wv)          [B, h, L, d]
 *   q, k ← rope(q, qPos), rope(k, kPos)                         (when rope is on)
 *   out = merge(softmax(q·kᵀ/√d, mask)·v)·Wo                     [B, Lq, H]
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs } from './module.js';
import { Linear, assertPositiveInt } from './linear.js';
import { mergeHeads, scaledDotProductAttention, splitHeads } from '../ops/attention.js';
import { applyRotary, rotaryCosSin } from '../ops/rotary.js';

export interface MultiHeadAttentionArgs extends ModuleArgs {
  hiddenSize: number;
  numHeads: number;
  /** Width of the key/value source (cross-attention); default hiddenSize. */
  keyValueSize?: number;
  /** Bias on q/k/v projections (Qwen2: true, LLaMA: false). Default false. */
  qkvBias?: boolean;
  /** Bias on the output projection. Default false. */
  outputBias?: boolean;
  /** Rotary θ; null/undefined = no rotary embedding. */
  ropeTheta?: number | null;
  /**
   * Name the output projection `out_proj` (HF CLIP / SigLIP encoder layers) instead of `o_proj` (LLaMA / Qwen2).
   * Default false. (A boolean, not the name: tfjs-layers' config serialization camel-cases string values.)
   */
  outProj?: boolean;
}

export interface AttentionInputs {
  /** `[B, Lq, H]` */
  hidden: tf.Tensor;
  /** `[B, Lk, Hkv]`; default `hidden` (self-attention). */
  keyValue?: tf.Tensor;
  /** `[B, Lq]` real positions of queries (needed with rope). */
  queryPositions?: tf.Tensor2D;
  /** `[B, Lk]` real positions of keys; default queryPositions. */
  keyPositions?: tf.Tensor2D;
  /** Broadcastable to `[B, h, Lq, Lk]`, nonzero = attend. */
  mask?: tf.Tensor | null;
  /** Also return `[B, h, Lq, Lk]` probabilities. */
  returnProbs?: boolean;
  /**
   * Cached keys/values `[B, h, Lpast, d]` (already rotated) to prepend; the result carries the
   * updated cache in `present`. Used for incremental decoding.
   */
  past?: { keys: tf.Tensor4D; values: tf.Tensor4D } | null;
}

export interface AttentionOutputs {
  /** `[B, Lq, H]` */
  output: tf.Tensor;
  /** `[B, h, Lq, Lk]` when requested. */
  probs?: tf.Tensor4D;
  /** Keys/values including this call's, `[B, h, Lpast+Lk, d]`. */
  present: { keys: tf.Tensor4D; values: tf.Tensor4D };
}

export class MultiHeadAttention extends Module {
  static readonly className = 'MultiHeadAttention';
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly keyValueSize: number;
  readonly qkvBias: boolean;
  readonly outputBias: boolean;
  readonly ropeTheta: number | null;
  readonly outputName: 'o_proj' | 'out_proj';
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;

  constructor(args: MultiHeadAttentionArgs) {
    super(args);
    assertPositiveInt('MultiHeadAttention', 'hiddenSize', args.hiddenSize);
    assertPositiveInt('MultiHeadAttention', 'numHeads', args.numHeads);
    if (args.hiddenSize % args.numHeads !== 0) {
      throw new Error(`MultiHeadAttention: hiddenSize ${args.hiddenSize} must be divisible by numHeads ${args.numHeads}`);
    }
    this.hiddenSize = args.hiddenSize;
    this.numHeads = args.numHeads;
    this.headDim = args.hiddenSize / args.numHeads;
    this.keyValueSize = args.keyValueSize ?? args.hiddenSize;
    this.qkvBias = args.qkvBias ?? false;
    this.outputBias = args.outputBias ?? false;
    this.ropeTheta = args.ropeTheta ?? null;
    this.outputName = args.outProj ? 'out_proj' : 'o_proj';
    const H = this.hiddenSize;
    this.qProj = this.addModule('q_proj', new Linear({ inFeatures: H, outFeatures: H, bias: this.qkvBias }));
    this.kProj = this.addModule('k_proj', new Linear({ inFeatures: this.keyValueSize, outFeatures: H, bias: this.qkvBias }));
    this.vProj = this.addModule('v_proj', new Linear({ inFeatures: this.keyValueSize, outFeatures: H, bias: this.qkvBias }));
    this.oProj = this.addModule(this.outputName, new Linear({ inFeatures: H, outFeatures: H, bias: this.outputBias }));
    this.built = true;
  }

  forward(inputs: AttentionInputs): AttentionOutputs {
    this.assertUsable();
    const { hidden, returnProbs = false } = inputs;
    const keyValue = inputs.keyValue ?? hidden;
    if (hidden.rank !== 3 || hidden.shape[2] !== this.hiddenSize) {
      throw new Error(`MultiHeadAttention: hidden must be [B, L, ${this.hiddenSize}], got [${hidden.shape}]`);
    }
    if (keyValue.rank !== 3 || keyValue.shape[2] !== this.keyValueSize || keyValue.shape[0] !== hidden.shape[0]) {
      throw new Error(`MultiHeadAttention: keyValue must be [${hidden.shape[0]}, Lk, ${this.keyValueSize}], got [${keyValue.shape}]`);
    }
    if (this.ropeTheta !== null && !inputs.queryPositions) {
      throw new Error('MultiHeadAttention: queryPositions [B, Lq] are required when rope is on');
    }
    const result = tf.tidy(() => {
      let q = splitHeads(this.qProj.forward(hidden), this.numHeads); // [B, h, Lq, d]
      let k = splitHeads(this.kProj.forward(keyValue), this.numHeads); // [B, h, Lk, d]
      let v = splitHeads(this.vProj.forward(keyValue), this.numHeads); // [B, h, Lk, d]
      if (this.ropeTheta !== null) {
        const qRot = rotaryCosSin(inputs.queryPositions!, this.headDim, this.ropeTheta);
        const kRot = rotaryCosSin(inputs.keyPositions ?? inputs.queryPositions!, this.headDim, this.ropeTheta);
        q = applyRotary(q, qRot.cos, qRot.sin) as tf.Tensor4D;
        k = applyRotary(k, kRot.cos, kRot.sin) as tf.Tensor4D;
      }
      if (inputs.past) {
        k = tf.concat([inputs.past.keys, k], 2); // [B, h, Lpast+Lk, d]
        v = tf.concat([inputs.past.values, v], 2);
      }
      const attention = scaledDotProductAttention(q, k, v, inputs.mask ?? null);
      const output = this.oProj.forward(mergeHeads(attention.output)); // [B, Lq, H]
      const out: Record<string, tf.Tensor> = { output, keys: k, values: v };
      if (returnProbs) out.probs = attention.probs;
      return out;
    });
    return {
      output: result.output,
      probs: result.probs as tf.Tensor4D | undefined,
      present: { keys: result.keys as tf.Tensor4D, values: result.values as tf.Tensor4D },
    };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const [hidden, keyValue] = Array.isArray(inputs) ? inputs : [inputs];
      const r = this.forward({ hidden, keyValue });
      return r.output;
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape {
    const first = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tfl.Shape;
    return first;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      hiddenSize: this.hiddenSize,
      numHeads: this.numHeads,
      keyValueSize: this.keyValueSize,
      qkvBias: this.qkvBias,
      outputBias: this.outputBias,
      ropeTheta: this.ropeTheta,
      outProj: this.outputName === 'out_proj',
    };
  }
}
tf.serialization.registerClass(MultiHeadAttention, 'mllm');
