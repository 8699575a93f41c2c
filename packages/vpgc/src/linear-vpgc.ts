/**
 * VPG-C for LLaVA-style hosts (the paper's linear-VPG variant): when the visual prompt generator is a
 * per-token projector (LLaVA's `linear` / `mlp2x_gelu` `mm_projector`) instead of a Q-Former, there are
 * no queries to re-run; the paper completes the visual prompts with a guidance-gated second linear
 * VPG over the same vision features,
 *
 *   V̄ = (W1 g 1ᵀ) ⊙ (W2 X)          (paper notation: X = [x_1 … x_Nv] ∈ R^{Dv×Nv}, columns are tokens)
 *
 * added to the image tokens at the same layer boundary as the Q-Former variant
 * (`Ṽ = V + Linear(QFormer(g + Q, X))` there, `Ṽ = V + V̄` here). The authors' repository has only
 * the Q-Former variant; this one is written from the paper's formula. At the input of decoder layer
 * `U` (0-based `updateLayer`), only on the prefill pass:
 *
 *   g_b  = h[b, t_b, :]                       raw residual stream at the last prompt token t_b, [B, H]
 *   a_b  = W1·g_b                             guidance_proj (no bias), [B, H]        (W1 g)
 *   P_k  = X_k·W2ᵀ                            visual_proj (no bias), [n, Nv, H]      (W2 X, row-major)
 *   V̄_k  = P_k ⊙ a_{s(k)}                     a_b broadcast over the Nv tokens (the `1ᵀ`), [n, Nv, H]
 *   h[s(k), span_k, :] += V̄_k                 residual on image k's Nv token positions only
 *
 * `X_k` is what the host fed its projector (`ForwardContext.imageFeatures`, after the tower's feature
 * selection), so image k's token j (projected from feature row j) gets row j of `V̄_k`: the projector
 * must keep one token per feature row (Ni = Nv), which LLaVA's projectors do.
 *
 * Choices where the paper is silent (documented in docs/vpgc.md):
 * - `g` is the raw hidden state. The Q-Former variant writes `g = Linear(h)`; composed with `W1` that
 *   is one linear map, so `W1` takes `h` directly (`[H, H]`).
 * - No biases: the formula has none, and without them `g = 0` gives `V̄ = 0` exactly whatever the
 *   weights (the guidance fully gates the update).
 * - Init: `W1 = 0` (zero module, as the Q-Former variant's zero projections), `W2` PyTorch's `nn.Linear`
 *   default U(±1/√Dv). A fresh module leaves the host exactly unchanged, and training still moves:
 *   with both factors zero every gradient would be zero; here ∂L/∂W1 = Σ (∂L/∂V̄ ⊙ W2X)·gᵀ ≠ 0, while
 *   ∂L/∂W2 ∝ W1·g = 0 on the first step (only `guidance_proj` moves then).
 * - Names (no reference checkpoint exists): beside the decoder like the Q-Former variant's
 *   `model.{qformer_proj,llm_proj}`: `model.guidance_proj.weight` `[H, H]` (W1) and
 *   `model.visual_proj.weight` `[H, Dv]` (W2), PyTorch `[out, in]` layout.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  Module,
  Linear,
  gatherRows,
  zerosInit,
  assertKnownKeys,
  assertOptionsObject,
  assertPositiveInt,
  assertTensor,
  describeValue,
  type ModuleArgs,
} from '@mllm/core';
import { imageSpanScatterIndex, imageTablesScatterIndex, type VPGCInputs } from './vpgc.js';
import type { VPGCForwardContext } from './hook-types.js';

export interface LinearVPGCArgs extends ModuleArgs {
  /** LLM hidden width `H` (the host's `hidden_size`). */
  llmHiddenSize: number;
  /** Width `Dv` of the vision features fed to the projector (the host's `vision_hidden_size`). */
  visionHiddenSize: number;
  /** 0-based decoder layer at whose input the hook runs (rule `⌊L/2⌋`, as the Q-Former variant). */
  updateLayer: number;
}

/** What the linear VPG-C hook reads from the host context (the Q-Former variant's fields, plus `visualTokens`). */
export type LinearVPGCForwardContext = VPGCForwardContext & {
  /** `[n, Ni, H]` the spliced tokens: checked to have one token per feature row (Ni = Nv) when given. */
  visualTokens?: tf.Tensor3D | null;
};

const LINEAR_VPGC_KEYS = ['llmHiddenSize', 'visionHiddenSize', 'updateLayer'] as const;
const LINEAR_VPGC_API = 'use addResidual(inputs) or attach it to a LLaVA-style host with attachLinearVPGC; save with saveAdapter';

/** The constructor's options, checked before `super` sees them. */
function checkedArgs(args: LinearVPGCArgs): LinearVPGCArgs {
  assertOptionsObject('LinearVPGC', 'args', args);
  assertKnownKeys('LinearVPGC', args, LINEAR_VPGC_KEYS);
  assertPositiveInt('LinearVPGC', 'llmHiddenSize', args.llmHiddenSize);
  assertPositiveInt('LinearVPGC', 'visionHiddenSize', args.visionHiddenSize);
  if (!Number.isInteger(args.updateLayer) || args.updateLayer < 0) {
    throw new Error(`LinearVPGC: updateLayer must be a non-negative integer, got ${describeValue(args.updateLayer)}`);
  }
  return args;
}

/**
 * The linear-VPG variant of VPG-C (see the file comment): two bias-free projections,
 * `guidance_proj` (W1, `[H, H]`, zero-initialised) and `visual_proj` (W2, `[H, Dv]`).
 */
export class LinearVPGC extends Module {
  static readonly className = 'LinearVPGC';
  readonly llmHiddenSize: number;
  readonly visionHiddenSize: number;
  readonly updateLayer: number;
  /** W1: `a = W1·g`, `[H, H]`, zero init. */
  readonly guidanceProj: Linear;
  /** W2: `P = X·W2ᵀ`, `[H, Dv]`, U(±1/√Dv) init. */
  readonly visualProj: Linear;

  constructor(args: LinearVPGCArgs) {
    super(checkedArgs(args));
    this.llmHiddenSize = args.llmHiddenSize;
    this.visionHiddenSize = args.visionHiddenSize;
    this.updateLayer = args.updateLayer;
    this.guidanceProj = this.addModule(
      'guidance_proj',
      new Linear({ inFeatures: this.llmHiddenSize, outFeatures: this.llmHiddenSize, bias: false, weightInit: zerosInit }),
    );
    this.visualProj = this.addModule('visual_proj', new Linear({ inFeatures: this.visionHiddenSize, outFeatures: this.llmHiddenSize, bias: false }));
    this.built = true;
  }

  /** The guidance gate `a = W1·g`: hidden `[B, L, H]`, lastPromptIndex `[B]` → `[B, H]`. */
  guidance(hidden: tf.Tensor3D, lastPromptIndex: number[]): tf.Tensor2D {
    this.assertUsable();
    assertTensor('LinearVPGC.guidance', 'hidden', hidden, { rank: 3, dtypes: ['float32'] });
    if (!Array.isArray(lastPromptIndex)) throw new Error(`LinearVPGC: lastPromptIndex must be an array of indices, got ${describeValue(lastPromptIndex)}`);
    const [B, L, H] = hidden.shape;
    if (H !== this.llmHiddenSize) throw new Error(`LinearVPGC: hidden must be [B, L, ${this.llmHiddenSize}], got [${hidden.shape}]`);
    if (lastPromptIndex.length !== B) {
      throw new Error(`LinearVPGC: lastPromptIndex must have one entry per sample (${B}), got ${lastPromptIndex.length}`);
    }
    lastPromptIndex.forEach((t, b) => {
      if (!Number.isInteger(t) || t < 0 || t >= L) throw new Error(`LinearVPGC: lastPromptIndex[${b}] must be in [0, ${L}), got ${t}`);
    });
    return tf.tidy(() => {
      const flat = tf.reshape(hidden, [B * L, H]); // [B·L, H]
      const tokens = gatherRows(flat as tf.Tensor2D, lastPromptIndex.map((t, b) => b * L + t)); // g: [B, H]
      return this.guidanceProj.forward(tokens) as tf.Tensor2D; // W1·g: [B, H]
    });
  }

  /**
   * The completed visual prompts `V̄` per image: guidance gate `[B, H]` (from `guidance`),
   * imageFeatures `[n, Nv, Dv]`, imageToSample `[n]` → `[n, Nv, H]`.
   */
  residualPrompts(guidance: tf.Tensor2D, imageFeatures: tf.Tensor3D, imageToSample: number[]): tf.Tensor3D {
    this.assertUsable();
    assertTensor('LinearVPGC.residualPrompts', 'guidance', guidance, { rank: 2, dtypes: ['float32'] });
    assertTensor('LinearVPGC.residualPrompts', 'imageFeatures', imageFeatures, { rank: 3, dtypes: ['float32'] });
    if (guidance.shape[1] !== this.llmHiddenSize) throw new Error(`LinearVPGC: guidance must be [B, ${this.llmHiddenSize}], got [${guidance.shape}]`);
    if (imageFeatures.shape[2] !== this.visionHiddenSize) {
      throw new Error(`LinearVPGC: imageFeatures must be [n, Nv, ${this.visionHiddenSize}] (the features fed to the projector), got [${imageFeatures.shape}]`);
    }
    if (!Array.isArray(imageToSample)) throw new Error(`LinearVPGC: imageToSample must be an array of sample indices, got ${describeValue(imageToSample)}`);
    const n = imageFeatures.shape[0];
    if (imageToSample.length !== n) throw new Error(`LinearVPGC: imageToSample must have length numImages = ${n}, got ${imageToSample.length}`);
    imageToSample.forEach((b, k) => {
      if (!Number.isInteger(b) || b < 0 || b >= guidance.shape[0]) {
        throw new Error(`LinearVPGC: imageToSample[${k}] must be in [0, ${guidance.shape[0]}), got ${b}`);
      }
    });
    return tf.tidy(() => {
      const gate = gatherRows(guidance, imageToSample); // a_{s(k)}: [n, H]
      const projected = this.visualProj.forward(imageFeatures); // X·W2ᵀ: [n, Nv, H]
      return tf.mul(projected, tf.expandDims(gate, 1)) as tf.Tensor3D; // [n, Nv, H] ⊙ [n, 1, H] → [n, Nv, H]
    });
  }

  /** The additive residual `[B, L, H]`: `V̄_k` on image k's span, exactly 0 elsewhere. */
  residual(inputs: VPGCInputs): tf.Tensor3D {
    assertOptionsObject('LinearVPGC.residual', 'inputs', inputs);
    const { hidden, imageFeatures } = inputs;
    assertTensor('LinearVPGC.residual', 'hidden', hidden, { rank: 3, dtypes: ['float32'] });
    assertTensor('LinearVPGC.residual', 'imageFeatures', imageFeatures, { rank: 3, dtypes: ['float32'] });
    const [B, L, H] = hidden.shape;
    const [n, Nv] = imageFeatures.shape;
    // One token per feature row: a pooling or query projector (Ni ≠ Nv) has no row-to-token map.
    if (Array.isArray(inputs.imageSpans)) {
      for (const spans of inputs.imageSpans) {
        for (const span of Array.isArray(spans) ? spans : []) {
          if (span && typeof span === 'object' && span.length !== Nv) {
            throw new Error(
              `LinearVPGC: image ${span.imageIndex} has ${span.length} tokens but ${Nv} feature rows; the linear VPG-C needs a projector ` +
                'that maps each feature row to one token (LLaVA\'s linear / mlp2x_gelu). For a Q-Former projector use attachVPGC',
            );
          }
        }
      }
    }
    // The host's tables when present (derived once per forward), else the spans of a hand-built input.
    const index =
      inputs.imageTables !== undefined
        ? imageTablesScatterIndex(B, L, n, Nv, inputs.imageTables, inputs.imageToSample)
        : imageSpanScatterIndex(B, L, n, Nv, inputs.imageSpans, inputs.imageToSample);
    return tf.tidy(() => {
      const gate = this.guidance(hidden, inputs.lastPromptIndex); // [B, H]
      const prompts = this.residualPrompts(gate, imageFeatures, inputs.imageToSample); // [n, Nv, H]
      const table = tf.concat([tf.reshape(prompts, [n * Nv, H]), tf.zeros([1, H])], 0); // [n·Nv + 1, H]
      const scattered = gatherRows(table as tf.Tensor2D, index); // [B·L, H]
      return tf.reshape(scattered, [B, L, H]) as tf.Tensor3D;
    });
  }

  /** `h + residual` `[B, L, H]` (a new tensor; `hidden` is not modified). */
  addResidual(inputs: VPGCInputs): tf.Tensor3D {
    return tf.tidy(() => tf.add(inputs.hidden, this.residual(inputs)) as tf.Tensor3D);
  }

  /**
   * The host hook body: at layer `updateLayer` on the prefill pass with images, `h + residual`;
   * otherwise null (hidden unchanged).
   */
  beforeLayer(layerIndex: number, hidden: tf.Tensor3D, ctx: LinearVPGCForwardContext): tf.Tensor3D | null {
    if (layerIndex !== this.updateLayer || !ctx.isPrefill || !ctx.imageFeatures || ctx.imageFeatures.shape[0] === 0) return null;
    const { imageFeatures, visualTokens } = ctx;
    if (visualTokens && visualTokens.shape[1] !== imageFeatures.shape[1]) {
      throw new Error(
        `LinearVPGC: the host's projector gives ${visualTokens.shape[1]} tokens per image from ${imageFeatures.shape[1]} feature rows; ` +
          'the linear VPG-C needs one token per feature row (LLaVA\'s linear / mlp2x_gelu projector). For a Q-Former projector use attachVPGC',
      );
    }
    return this.addResidual({
      hidden,
      lastPromptIndex: ctx.lastPromptIndex,
      imageFeatures,
      imageToSample: ctx.imageToSample,
      imageSpans: ctx.imageSpans,
      imageTables: ctx.imageTables,
    });
  }

  /** Not a tfjs-layers layer (it needs image spans and features): throws, naming the supported API. */
  override call(): tf.Tensor {
    throw this.notALayer(LINEAR_VPGC_API);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }

  /** Throws, so `model.save` of a tfjs model containing it fails naming the supported API. */
  override getConfig(): tf.serialization.ConfigDict {
    throw this.notALayer(LINEAR_VPGC_API);
  }
}
// Not registered with tf.serialization: see getConfig.
