/**
 * Wings router (reference class `ReweightLinear`): a per-token gate between the visual and the
 * textual learner, driven by where the same layer's main self-attention looks.
 *
 *   s[b,t,j] = Σ_heads P[b,head,t,j]                      [B, Lq, L]  (row t sums to the head count)
 *   z[b,t,:] = s[b,t,:]·W[:, 0:L]ᵀ + bias                 [B, Lq, 2]  (only the first L columns of W)
 *   w = softmax(SiLU(z))                                   [B, Lq, 2]
 *   visual = w[..., 0:1], textual = w[..., 1:2]            [B, Lq, 1] each
 *
 * `W` (`linear.weight`, reference `[2, maxLength]`) has one learned 2-vector per absolute key
 * position, so the input width is the key sequence length, capped at `maxLength` (4096 in the
 * release; a longer sequence is an error, as in the reference).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  Linear,
  Module,
  checkedOptions,
  assertPositiveInt,
  assertTensor,
  linearForward,
  silu,
  sumOverAxis1,
  type ModuleArgs,
} from '@mllm/core';

export interface WingsRouterArgs extends ModuleArgs {
  /** Maximum key sequence length = the router's input width (4096 in the release). */
  maxLength: number;
}

export interface RouterWeights {
  /** Weight of the visual learner `[B, Lq, 1]`. */
  visual: tf.Tensor3D;
  /** Weight of the textual learner `[B, Lq, 1]`. */
  textual: tf.Tensor3D;
}

/** `P [B, heads, Lq, L]` → head-summed `[B, Lq, L]` (core's `sumOverAxis1`: no whole-map transpose on wasm). */
export function sumOverHeads(attentionProbs: tf.Tensor): tf.Tensor3D {
  return tf.tidy(() => sumOverAxis1(attentionProbs) as tf.Tensor3D);
}

/**
 * Wings' stage-2 router. Reference parameters `linear.weight` `[2, maxLength]` and `linear.bias` `[2]`,
 * in a host under `model.layers.{i}.reweight_module.`: load with
 * `router.loadStateDict(dict, { prefix: 'model.layers.0.reweight_module.' })` (`Module`'s method).
 */
export class WingsRouter extends Module {
  static readonly className = 'WingsRouter';
  readonly maxLength: number;
  /** Child `linear`: `Linear(maxLength → 2)` with bias, PyTorch default init U(±1/√maxLength). */
  readonly linear: Linear;

  constructor(args: WingsRouterArgs) {
    super(checkedOptions('WingsRouter', args, ['maxLength']));
    assertPositiveInt('WingsRouter', 'maxLength', args.maxLength);
    this.maxLength = args.maxLength;
    this.linear = this.addModule('linear', new Linear({ inFeatures: this.maxLength, outFeatures: 2, bias: true }));
    this.built = true;
  }

  /** Raw gate logits `z = s·W[:, :L]ᵀ + b` `[B, Lq, 2]` from `attentionProbs [B, heads, Lq, L]`. */
  logits(attentionProbs: tf.Tensor): tf.Tensor3D {
    this.assertUsable();
    assertTensor('WingsRouter.forward', 'attentionProbs', attentionProbs, { dtypes: ['float32'] });
    if (attentionProbs.rank !== 4) {
      throw new Error(`WingsRouter: attentionProbs must be [B, heads, Lq, L], got [${attentionProbs.shape.join(', ')}]`);
    }
    const L = attentionProbs.shape[3] as number;
    if (L > this.maxLength) {
      throw new Error(
        `WingsRouter: attentionProbs key length L = ${L} exceeds the router's maxLength ${this.maxLength} ` +
          `(it has one learned column per key position); got attentionProbs [${attentionProbs.shape.join(', ')}]`,
      );
    }
    return tf.tidy(() => {
      const summed = sumOverHeads(attentionProbs); // [B, Lq, L]
      const kernel = tf.slice(this.linear.kernelValue, [0, 0], [L, 2]) as tf.Tensor2D; // [L, 2] = W[:, :L]ᵀ
      return linearForward(summed, kernel, this.linear.biasValue as tf.Tensor1D) as tf.Tensor3D; // [B, Lq, 2]
    });
  }

  /** `attentionProbs [B, heads, Lq, L]` → `{ visual, textual }` each `[B, Lq, 1]`, summing to 1. */
  forward(attentionProbs: tf.Tensor): RouterWeights {
    return tf.tidy(() => {
      const weights = tf.softmax(silu(this.logits(attentionProbs))); // [B, Lq, 2]
      const [visual, textual] = tf.split(weights, 2, -1) as [tf.Tensor3D, tf.Tensor3D]; // [B, Lq, 1] each
      return { visual, textual };
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    return tf.tidy(() => {
      const { visual, textual } = this.forward(Array.isArray(inputs) ? inputs[0] : inputs);
      return [visual, textual];
    });
  }

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape[] {
    const s = inputShape as tfl.Shape;
    return [
      [s[0], s[2], 1],
      [s[0], s[2], 1],
    ];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), maxLength: this.maxLength };
  }
}
tf.serialization.registerClass(WingsRouter, 'mllm');
