/**
 * Grouped-query self-attention of HF LLaMA / Qwen2 (`q_proj`, `k_proj`, `v_proj`, `o_proj`), with
 * `h` query heads sharing `kv` key/value heads in groups of `g = h / kv` (query head `i` reads KV head
 * `⌊i / g⌋`, HF's `repeat_kv`):
 *
 *   q = split(x·Wqᵀ + bq) [B, h, Lq, d];  k, v = split(x·Wkᵀ + bk), split(x·Wvᵀ + bv) [B, kv, Lk, d]
 *   q, k ← rope(q), rope(k)                          (tables of the query positions)
 *   k, v ← [past; k], [past; v]                      (KV cache: kv heads, not h)
 *   out = merge(softmax(q·kᵀ/√d, mask)·v)·Woᵀ + bo   [B, Lq, H]
 *
 * The groups are not materialised: the g query heads of one KV head are consecutive in `[B, h, Lq, d]`,
 * so `q` reshapes (no copy) to `[B, kv, g·Lq, d]` and each KV head is one plain batched product
 * with its g·Lq query rows, the same grouped `batchMatMul` / XNNPACK path as ungrouped attention
 * (docs/performance.md §1), instead of repeating keys and values g times (a copy per layer and step).
 * The mask then covers `g·Lq` rows (`hfAttentionMask`, built once per forward by the model).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, Linear, assertPositiveInt, mergeHeads, scaledDotProductAttention, splitHeads, applyRotary } from '@mllm/core';
import type { LayerCache } from '../model/decoder-layer.js';

export interface GroupedQueryAttentionArgs extends ModuleArgs {
  hiddenSize: number;
  numHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  qkvBias: boolean;
  outputBias: boolean;
}

export interface GroupedQueryAttentionInputs {
  /** `[B, Lq, H]` */
  hidden: tf.Tensor3D;
  /** Rotary tables of the query positions, `[B, 1, Lq, d]`. */
  cos: tf.Tensor4D;
  sin: tf.Tensor4D;
  /** `[B, 1, g·Lq, Lk]` (nonzero = attend; see `hfAttentionMask`). */
  mask: tf.Tensor4D;
  /** Cached rotated keys / values `[B, kv, Lpast, d]`. */
  past?: LayerCache | null;
  returnProbs?: boolean;
}

export interface GroupedQueryAttentionOutputs {
  /** `[B, Lq, H]` */
  output: tf.Tensor3D;
  /** `[B, h, Lq, Lk]` when requested. */
  probs: tf.Tensor4D | null;
  /** `[B, kv, Lpast + Lq, d]` */
  present: LayerCache;
}

export class GroupedQueryAttention extends Module {
  static readonly className = 'GroupedQueryAttention';
  readonly config: GroupedQueryAttentionArgs;
  readonly groups: number;
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly oProj: Linear;

  constructor(args: GroupedQueryAttentionArgs) {
    super(args);
    for (const key of ['hiddenSize', 'numHeads', 'numKeyValueHeads', 'headDim'] as const) {
      assertPositiveInt('GroupedQueryAttention', key, args[key]);
    }
    if (args.numHeads % args.numKeyValueHeads !== 0) {
      throw new Error(`GroupedQueryAttention: numKeyValueHeads ${args.numKeyValueHeads} must divide numHeads ${args.numHeads}`);
    }
    this.config = { ...args };
    this.groups = args.numHeads / args.numKeyValueHeads;
    const { hiddenSize: H, numHeads, numKeyValueHeads, headDim: d, qkvBias } = args;
    this.qProj = this.addModule('q_proj', new Linear({ inFeatures: H, outFeatures: numHeads * d, bias: qkvBias }));
    this.kProj = this.addModule('k_proj', new Linear({ inFeatures: H, outFeatures: numKeyValueHeads * d, bias: qkvBias }));
    this.vProj = this.addModule('v_proj', new Linear({ inFeatures: H, outFeatures: numKeyValueHeads * d, bias: qkvBias }));
    this.oProj = this.addModule('o_proj', new Linear({ inFeatures: numHeads * d, outFeatures: H, bias: args.outputBias }));
    this.built = true;
  }

  forward(inputs: GroupedQueryAttentionInputs): GroupedQueryAttentionOutputs {
    this.assertUsable();
    const { hidden } = inputs;
    const { numHeads: h, numKeyValueHeads: kv, headDim: d } = this.config;
    const [B, Lq] = hidden.shape;
    const result = tf.tidy(() => {
      const q = applyRotary(splitHeads(this.qProj.forward(hidden), h), inputs.cos, inputs.sin); // [B, h, Lq, d]
      let k = applyRotary(splitHeads(this.kProj.forward(hidden), kv), inputs.cos, inputs.sin) as tf.Tensor4D; // [B, kv, Lq, d]
      let v = splitHeads(this.vProj.forward(hidden), kv); // [B, kv, Lq, d]
      if (inputs.past) {
        k = tf.concat([inputs.past.keys, k], 2); // [B, kv, Lpast+Lq, d]
        v = tf.concat([inputs.past.values, v], 2);
      }
      const Lk = k.shape[2];
      const grouped = tf.reshape(q, [B, kv, this.groups * Lq, d]); // [B, kv, g·Lq, d] (heads i = kv·g + j)
      const attention = scaledDotProductAttention(grouped, k, v, inputs.mask); // out [B, kv, g·Lq, d]
      const out = tf.reshape(attention.output, [B, h, Lq, d]); // [B, h, Lq, d]
      const output = this.oProj.forward(mergeHeads(out)); // [B, Lq, H]
      const kept: Record<string, tf.Tensor> = { output, keys: k, values: v };
      if (inputs.returnProbs) kept.probs = tf.reshape(attention.probs, [B, h, Lq, Lk]); // [B, h, Lq, Lk]
      return kept;
    });
    return {
      output: result.output as tf.Tensor3D,
      probs: (result.probs as tf.Tensor4D | undefined) ?? null,
      present: { keys: result.keys as tf.Tensor4D, values: result.values as tf.Tensor4D },
    };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    throw new Error(`GroupedQueryAttention.call: use forward({ hidden, cos, sin, mask }) (got ${Array.isArray(inputs) ? 'a list' : 'a tensor'})`);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { name: _name, trainable: _trainable, ...rest } = this.config;
    return { ...super.getConfig(), ...rest };
  }
}
tf.serialization.registerClass(GroupedQueryAttention, 'mllm');
