/**
 * One decoder layer's Wings modules and their combination into the residual stream, run right
 * after the main attention residual (`h = h_in + attn`) and before the MLP:
 *
 *   stage 1:  h ← h + out_v·hasImage
 *   stage 2:  (w_v, w_t) = router(P)            P = the layer's main attention probabilities [B, heads, L, L]
 *             h ← h + c·(w_v·out_v·hasImage + w_t·out_t)     c = 2 with referenceCompat.doubleAdd (the
 *                                                             reference's second add), else 1
 *
 * with `out_v = attn_pool(h, visual keys)` and `out_t = attn_t_pool(h, textual keys)`. Children are
 * named like the reference decoder layer's attributes: `attn_pool` (visual learner), `attn_t_pool`
 * (textual learner, created in both stages like the reference, used and trained only in stage 2),
 * `reweight_module` (router, stage 2 only).
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Module,
  assertBinaryMask,
  assertKnownKeys,
  assertOptionsObject,
  assertPositiveInt,
  assertTensor,
  zeroMasked,
  type ModuleArgs,
} from '@mllm/core';
import { LoRRA, type FullyMaskedRows } from './lorra.js';
import { WingsRouter } from './router.js';

/**
 * Switches that reproduce the public reference code's behaviour (all off = the clean design).
 * `REFERENCE_COMPAT` turns them all on; `loadWingsCheckpoint` uses it unless told otherwise.
 */
export interface ReferenceCompat {
  /**
   * Stage 2 adds both weighted learner outputs twice (`h + 2·w_v·out_v·hasImage + 2·w_t·out_t`).
   * The reference layer (`modeling_wings_qwen2.py`, `wings_layer_forward`) adds `w_v·out_v` and
   * `w_t·out_t`, then adds both again in a loop whenever both learners ran, padded text keys or not:
   * the released checkpoints were trained at twice the learner scale. (When the batch's text keys
   * were padded, it masks the first visual add of the samples without padding, which are its
   * text-only samples with a dummy image; here those samples have no visual term at all.)
   */
  doubleAdd?: boolean;
  /**
   * Stage 2 on a batch without any image: no router, `h + out_t` (the reference's `images=None`
   * path, where only the textual learner runs and its output is added unweighted).
   */
  textOnlyNoRouter?: boolean;
  /**
   * Textual keys gathered like the reference (image samples: positions `[systemPromptLength, b) ∪
   * [b+n, L)` around the first image `[b, b+n)`, right padding included; samples without an image:
   * `[0, L)`), right-padded to equal length by repeating the last index, and masked by column index
   * instead of real position (`j ≤ t` and attention mask at sequence position j), the padded count
   * of last query rows fully masked, which the reference's additive mask turns into a uniform
   * average over all keys. Leaks future tokens for image samples.
   */
  misalignedTextMask?: boolean;
}

/** Every `ReferenceCompat` switch on: what the released checkpoints were trained and evaluated with. */
export const REFERENCE_COMPAT: Readonly<Required<ReferenceCompat>> = Object.freeze({
  doubleAdd: true,
  textOnlyNoRouter: true,
  misalignedTextMask: true,
});

/** Every `ReferenceCompat` switch off: the clean design. */
export const CLEAN_COMPAT: Readonly<Required<ReferenceCompat>> = Object.freeze({
  doubleAdd: false,
  textOnlyNoRouter: false,
  misalignedTextMask: false,
});

export type WingsStage = 1 | 2;

export interface WingsLayerArgs extends ModuleArgs {
  hiddenSize: number;
  numHeads: number;
  rank: number;
  ropeTheta: number;
  /** 1: visual learner only, no router; 2: both learners and the router. */
  stage: WingsStage;
  /** Router width = maximum key sequence length (4096 in the release). */
  routerMaxLength: number;
  initStd?: number;
}

/** Keys/values for one learner, prepared once per forward (the same for every layer). */
export interface LearnerKeys {
  /** `[B, Lk, H]` */
  source: tf.Tensor3D;
  /** `[B, Lk]` real positions. */
  positions: tf.Tensor2D;
  /** `[B, Lk]` 1 = real key. */
  keyMask: tf.Tensor2D;
  /** Causal by real position (`posK ≤ posQ`). */
  causalByPosition: boolean;
  /** Optional explicit `[B, Lq, Lk]` mask (reference-compat text mask). */
  attendMask?: tf.Tensor3D | null;
  fullyMaskedRows?: FullyMaskedRows;
}

export interface WingsLayerInputs {
  /** `h_in + attn` `[B, L, H]`: the learners' query stream. */
  residual: tf.Tensor3D;
  /** `[B, L]` real positions of the queries. */
  positions: tf.Tensor2D;
  /** Main attention probabilities `[B, heads, L, L]` (stage 2 only). */
  attentionProbs: tf.Tensor4D | null;
  /** `[B]` 1 = the sample has at least one image. */
  hasImage: tf.Tensor1D;
  /** Visual keys (null when the batch has no image). */
  visual: LearnerKeys | null;
  /** Textual keys (stage 2). */
  textual: LearnerKeys | null;
  referenceCompat?: ReferenceCompat;
}

const WINGS_LAYER_KEYS = ['stage', 'hiddenSize', 'numHeads', 'rank', 'ropeTheta', 'routerMaxLength', 'initStd'];

/** The constructor's options, checked before `super` sees them (an object, no unknown keys). */
function checkedArgs(args: WingsLayerArgs): WingsLayerArgs {
  assertOptionsObject('WingsLayer', 'args', args);
  assertKnownKeys('WingsLayer', args, WINGS_LAYER_KEYS);
  return args;
}

/** Learner keys are an object with `source [B, Lk, H]`, `positions [B, Lk]` and `keyMask [B, Lk]` tensors. */
function checkLearnerKeys(name: string, keys: LearnerKeys): void {
  assertOptionsObject('WingsLayer.forward', name, keys);
  assertTensor('WingsLayer.forward', `${name}.source`, keys.source, { rank: 3 });
  assertTensor('WingsLayer.forward', `${name}.positions`, keys.positions, { rank: 2 });
  assertTensor('WingsLayer.forward', `${name}.keyMask`, keys.keyMask, { rank: 2 });
}

const WINGS_LAYER_API = 'use forward({ residual, positions, attentionProbs, hasImage, visual, textual }) or attach Wings to a host; save with saveAdapter (reference layout)';

export class WingsLayer extends Module {
  static readonly className = 'WingsLayer';
  readonly stage: WingsStage;
  readonly hiddenSize: number;
  readonly numHeads: number;
  readonly rank: number;
  readonly ropeTheta: number;
  readonly routerMaxLength: number;
  readonly initStd: number;
  /** Visual learner (`attn_pool`). */
  readonly visualLearner: LoRRA;
  /** Textual learner (`attn_t_pool`). */
  readonly textualLearner: LoRRA;
  /** Router (`reweight_module`), stage 2 only. */
  readonly router: WingsRouter | null;

  constructor(args: WingsLayerArgs) {
    super(checkedArgs(args));
    if (args.stage !== 1 && args.stage !== 2) throw new Error(`WingsLayer: stage must be 1 or 2, got ${String(args.stage)}`);
    assertPositiveInt('WingsLayer', 'routerMaxLength', args.routerMaxLength);
    this.stage = args.stage;
    this.hiddenSize = args.hiddenSize;
    this.numHeads = args.numHeads;
    this.rank = args.rank;
    this.ropeTheta = args.ropeTheta;
    this.routerMaxLength = args.routerMaxLength;
    this.initStd = args.initStd ?? 0.02;
    const learner = () =>
      new LoRRA({ hiddenSize: args.hiddenSize, numHeads: args.numHeads, rank: args.rank, ropeTheta: args.ropeTheta, initStd: this.initStd });
    this.visualLearner = this.addModule('attn_pool', learner());
    this.textualLearner = this.addModule('attn_t_pool', learner());
    this.router = this.stage === 2 ? this.addModule('reweight_module', new WingsRouter({ maxLength: args.routerMaxLength })) : null;
    // Stage 1 trains only the visual learner (the reference freezes attn_t_pool there).
    if (this.stage === 1) this.textualLearner.setTrainable(false);
    this.built = true;
  }

  private runLearner(learner: LoRRA, residual: tf.Tensor3D, positions: tf.Tensor2D, keys: LearnerKeys): tf.Tensor3D {
    return learner.forward({
      query: residual,
      source: keys.source,
      queryPositions: positions,
      keyPositions: keys.positions,
      keyMask: keys.keyMask,
      causalByPosition: keys.causalByPosition,
      attendMask: keys.attendMask ?? null,
      fullyMaskedRows: keys.fullyMaskedRows,
    });
  }

  /** The new residual stream `[B, L, H]` (see the file comment for the formula). */
  forward(inputs: WingsLayerInputs): tf.Tensor3D {
    this.assertUsable();
    assertOptionsObject('WingsLayer.forward', 'inputs', inputs);
    const compat = inputs.referenceCompat ?? {};
    const { residual, positions } = inputs;
    assertTensor('WingsLayer.forward', 'residual', residual, { rank: 3, dtypes: ['float32'] });
    assertTensor('WingsLayer.forward', 'positions', positions, { rank: 2 });
    assertTensor('WingsLayer.forward', 'hasImage', inputs.hasImage);
    if (inputs.visual != null) checkLearnerKeys('visual', inputs.visual);
    if (inputs.textual != null) checkLearnerKeys('textual', inputs.textual);
    if (inputs.attentionProbs != null) assertTensor('WingsLayer.forward', 'attentionProbs', inputs.attentionProbs, { rank: 4 });
    const B = residual.shape[0];
    if (inputs.hasImage.rank !== 1 || inputs.hasImage.shape[0] !== B) {
      throw new Error(`WingsLayer: hasImage must be [${B}], got [${inputs.hasImage.shape.join(', ')}]`);
    }
    assertBinaryMask('WingsLayer.forward', 'hasImage', inputs.hasImage);
    return tf.tidy(() => {
      const hasImage = tf.reshape(inputs.hasImage, [B, 1, 1]); // [B, 1, 1]
      const anyImage = inputs.visual != null;
      if (this.stage === 1) {
        if (!anyImage) return tf.clone(residual);
        const outVisual = this.runLearner(this.visualLearner, residual, positions, inputs.visual!); // [B, L, H]
        // Selected, not multiplied: a text-only sample's visual output (NaN from garbage keys) must not leak.
        return tf.add(residual, zeroMasked(outVisual, hasImage)) as tf.Tensor3D;
      }
      if (!inputs.textual) throw new Error('WingsLayer: stage 2 needs textual keys');
      const outTextual = this.runLearner(this.textualLearner, residual, positions, inputs.textual); // [B, L, H]
      if (!anyImage && compat.textOnlyNoRouter) return tf.add(residual, outTextual) as tf.Tensor3D;
      if (!inputs.attentionProbs) throw new Error('WingsLayer: stage 2 needs the layer attentionProbs [B, heads, L, L] for the router');
      const weights = this.router!.forward(inputs.attentionProbs); // [B, L, 1] each
      // The reference adds the weighted terms once, then again in a loop over (weight, output) pairs.
      const factor = compat.doubleAdd ? 2 : 1;
      let update = tf.mul(weights.textual, outTextual); // [B, L, H]
      if (anyImage) {
        const outVisual = this.runLearner(this.visualLearner, residual, positions, inputs.visual!); // [B, L, H]
        update = tf.add(update, zeroMasked(tf.mul(weights.visual, outVisual), hasImage));
      }
      return tf.add(residual, factor === 1 ? update : tf.mul(update, factor)) as tf.Tensor3D;
    });
  }

  /** Not a tfjs-layers layer (it needs the host's attention probabilities and image keys): throws, naming `forward`. */
  override call(): tf.Tensor {
    throw this.notALayer(WINGS_LAYER_API);
  }

  /** Throws, so `model.save` of a tfjs model containing a WingsLayer fails naming the supported API. */
  override getConfig(): tf.serialization.ConfigDict {
    throw this.notALayer(WINGS_LAYER_API);
  }
}
// Not registered with tf.serialization: see getConfig.
