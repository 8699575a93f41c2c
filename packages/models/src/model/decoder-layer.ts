/**
 * Pre-norm decoder layer (LLaMA/Qwen2), children `input_layernorm`, `self_attn`,
 * `post_attention_layernorm`, `mlp`:
 *
 *   h = h_in + attn(norm1(h_in))        → optional `afterAttention` replacement of h
 *   h_out = h + mlp(norm2(h))           all [B, L, H]
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, RMSNorm, SwiGLU, MultiHeadAttention, type AfterAttentionArgs } from '@mllm/core';

/** Cached rotated keys / values of one layer, `[B, heads, Lk, d]`. */
export interface LayerCache {
  keys: tf.Tensor4D;
  values: tf.Tensor4D;
}

export interface DecoderLayerArgs extends ModuleArgs {
  hiddenSize: number;
  numHeads: number;
  intermediateSize: number;
  ropeTheta: number;
  rmsEps: number;
  qkvBias?: boolean;
}

export interface DecoderLayerInputs {
  /** `[B, Lq]` int32 real positions of the queries (rotary). */
  positions: tf.Tensor2D;
  /** Broadcastable to `[B, heads, Lq, Lk]`, nonzero = attend. */
  mask: tf.Tensor;
  /** Keys/values of earlier positions (decode steps). */
  past?: LayerCache | null;
  /** Compute attention probabilities for `afterAttention`. */
  returnProbs?: boolean;
  /** Called after the attention residual; a returned tensor replaces it. */
  afterAttention?: (args: AfterAttentionArgs) => tf.Tensor3D | null;
}

const DECODER_LAYER_API = 'use forward(hidden, { positions, mask }); it is saved with its host (saveHostModel, reference layout)';

export class DecoderLayer extends Module {
  static readonly className = 'DecoderLayer';
  readonly config: DecoderLayerArgs;
  readonly inputLayernorm: RMSNorm;
  readonly selfAttn: MultiHeadAttention;
  readonly postAttentionLayernorm: RMSNorm;
  readonly mlp: SwiGLU;

  constructor(args: DecoderLayerArgs) {
    super(args);
    this.config = { ...args };
    const { hiddenSize, numHeads, intermediateSize, ropeTheta, rmsEps } = args;
    this.inputLayernorm = this.addModule('input_layernorm', new RMSNorm({ dim: hiddenSize, eps: rmsEps }));
    this.selfAttn = this.addModule('self_attn', new MultiHeadAttention({ hiddenSize, numHeads, ropeTheta, qkvBias: args.qkvBias ?? false }));
    this.postAttentionLayernorm = this.addModule('post_attention_layernorm', new RMSNorm({ dim: hiddenSize, eps: rmsEps }));
    this.mlp = this.addModule('mlp', new SwiGLU({ hiddenSize, intermediateSize }));
    this.built = true;
  }

  /** `hidden [B, Lq, H] → { hidden [B, Lq, H], present }` (present = past + this call's keys/values). */
  forward(hidden: tf.Tensor3D, inputs: DecoderLayerInputs): { hidden: tf.Tensor3D; present: LayerCache } {
    this.assertUsable();
    const out = tf.tidy(() => {
      const attentionInput = this.inputLayernorm.forward(hidden) as tf.Tensor3D; // [B, Lq, H]
      const attention = this.selfAttn.forward({
        hidden: attentionInput,
        queryPositions: inputs.positions,
        mask: inputs.mask,
        past: inputs.past ?? null,
        returnProbs: inputs.returnProbs ?? false,
      });
      let h = tf.add(hidden, attention.output) as tf.Tensor3D; // [B, Lq, H]
      if (inputs.afterAttention) {
        const replaced = inputs.afterAttention({
          residual: h,
          attentionInput,
          attentionProbs: attention.probs ?? null,
          layerInput: hidden,
        });
        if (replaced) {
          assertSameShape('afterAttention', replaced, h);
          h = replaced;
        }
      }
      const y = tf.add(h, this.mlp.forward(this.postAttentionLayernorm.forward(h))) as tf.Tensor3D; // [B, Lq, H]
      return { hidden: y, keys: attention.present.keys, values: attention.present.values };
    });
    return { hidden: out.hidden as tf.Tensor3D, present: { keys: out.keys as tf.Tensor4D, values: out.values as tf.Tensor4D } };
  }

  /** Not a tfjs-layers layer (it needs positions and a mask): throws, naming `forward`. */
  override call(): tf.Tensor {
    throw this.notALayer(DECODER_LAYER_API);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }

  /** Throws: not a tfjs-layers layer, so `model.save` of a model containing one fails naming the supported API. */
  override getConfig(): tf.serialization.ConfigDict {
    throw this.notALayer(DECODER_LAYER_API);
  }
}
// Not registered with tf.serialization: see getConfig.

/** Error when a hook returns a tensor of the wrong shape. */
export function assertSameShape(hook: string, replaced: tf.Tensor, expected: tf.Tensor): void {
  if (replaced.rank !== expected.rank || replaced.shape.some((d, i) => d !== expected.shape[i])) {
    throw new Error(`${hook} hook must return [${expected.shape}], got [${replaced.shape}]`);
  }
}
