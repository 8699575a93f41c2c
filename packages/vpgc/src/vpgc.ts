/**
 * VPG-C (Visual Prompt Generator Complete, Cheetah, ICLR 2024): re-queries the frozen Q-Former with
 * guidance from the LLM's middle layer and adds the result to the image tokens, in one LLM pass.
 *
 * At the input of decoder layer `U` (0-based `updateLayer`; the output of layer `U` 1-based), only on
 * the prefill pass:
 *
 *   c_b   = h[b, t_b, :]                           raw residual stream at the last prompt token t_b, [B, H]
 *   g_b   = c_b·W_qpᵀ + b_qp                       qformer_proj, [B, Dq]
 *   Q_k   = query_tokens + g_{s(k)}                [n, Nq, Dq]   (image k of sample s(k); one g per sample)
 *   O_k   = QFormer(Q_k, ln_vision(F_k))           the VPG's frozen Q-Former, [n, Nq, Dq]
 *   R_k   = O_k·W_llmᵀ + b_llm                     llm_proj, [n, Nq, H]   (llama_proj is NOT re-applied)
 *   h[s(k), span_k, :] += R_k                      residual on image k's Nq token positions only
 *
 * Trainable tensors (reference names below `llama_model.model.`): `query_tokens` `[1, Nq, Dq]` (a copy
 * of the VPG's queries), `qformer_proj.{weight [Dq, H], bias [Dq]}`, `llm_proj.{weight [H, Dq], bias [H]}`,
 * both projections zero-initialised, so a fresh VPG-C leaves the host's output exactly unchanged.
 *
 * Query tokens: the reference copies the BLIP-2 checkpoint's `query_tokens` into VPG-C's
 * (`init_query_tokens_value`). Here VPG-C's queries follow the VPG's until they are written on their
 * own (a VPG-C load, an optimizer step): weights loaded into the VPG after the VPGC was built reach
 * VPG-C too, so the order of construction and loading does not matter.
 *
 * Dropout: the reference never calls `.eval()`, so both Q-Former passes (the VPG's first pass,
 * `encode_img`, and this re-run) keep dropout 0.1 even at inference. Here dropout is on only when
 * `training` is true (re-run; the VPG's own `training` covers its pass), or when `dropoutAtInference`
 * is set (reference behaviour, both passes: the switch is the VPG's).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  Module,
  Linear,
  gatherRows,
  zerosInit,
  assertBoolean,
  assertKnownKeys,
  assertOptionsObject,
  assertPositiveInt,
  assertTensor,
  describeValue,
  type ImageTables,
  type ModuleArgs,
} from '@mllm/core';
import type { QFormerVPG } from './qformer-vpg.js';
import type { ImageSpan, VPGCForwardContext } from './hook-types.js';

export interface VPGCArgs extends ModuleArgs {
  /** The VPG whose (frozen) Q-Former and `ln_vision` are re-run. Not owned: not a child, not trained. */
  vpg: QFormerVPG;
  /** LLM hidden width `H` (default: the VPG's `llmHiddenSize`). */
  llmHiddenSize?: number;
  /** 0-based decoder layer at whose input the hook runs (reference: 16 of 32; rule `⌊L/2⌋`). */
  updateLayer: number;
  /**
   * Keep the Q-Former's dropout on at inference in both passes, like the reference. Sets the VPG's
   * `dropoutAtInference` (shared with the first pass); absent = leave the VPG's setting (default false).
   */
  dropoutAtInference?: boolean;
}

/** The hook's inputs, validated and explicit (what `VPGC.addResidual` reads from the host context). */
export interface VPGCInputs {
  /** `[B, L, H]` hidden states entering layer `updateLayer`. */
  hidden: tf.Tensor3D;
  /** `[B]` guidance token per sample. */
  lastPromptIndex: number[];
  /** `[n, Nv, Dv]` raw vision features (before `ln_vision`). */
  imageFeatures: tf.Tensor3D;
  /** `[n]` sample of each image. */
  imageToSample: number[];
  /** Per sample, the spans of its images (read only when `imageTables` is absent). */
  imageSpans: ImageSpan[][];
  /**
   * The host's per-forward image-token tables (`ForwardContext.imageTables`); when given, the
   * residual is placed from them instead of walking `imageSpans` again.
   */
  imageTables?: ImageTables;
}

/** Number of layers → default update layer `⌊L/2⌋` (16 for 32 layers). */
export function defaultUpdateLayer(numLayers: number): number {
  assertPositiveInt('defaultUpdateLayer', 'numLayers', numLayers);
  return Math.floor(numLayers / 2);
}

/**
 * Row index into `[R_flat (n·Nq rows); zero row]` for every position of the flattened `[B·L]`
 * sequence: image k's token t at `(s(k), start_k + t)` ↦ `k·Nq + t`; everything else ↦ the zero row `n·Nq`.
 * Validates the spans (length Nq, inside the sequence, image/sample consistent, no overlap).
 */
export function imageSpanScatterIndex(
  batchSize: number,
  sequenceLength: number,
  numImages: number,
  numQueries: number,
  imageSpans: ImageSpan[][],
  imageToSample: number[],
): Int32Array {
  if (!Array.isArray(imageSpans)) throw new Error(`VPGC: imageSpans must be an array (one list of spans per sample), got ${describeValue(imageSpans)}`);
  if (!Array.isArray(imageToSample)) throw new Error(`VPGC: imageToSample must be an array of sample indices, got ${describeValue(imageToSample)}`);
  if (imageSpans.length !== batchSize) {
    throw new Error(`VPGC: imageSpans must have one list per sample (${batchSize}), got ${imageSpans.length}`);
  }
  if (imageToSample.length !== numImages) {
    throw new Error(`VPGC: imageToSample must have length numImages = ${numImages}, got ${imageToSample.length}`);
  }
  const zeroRow = numImages * numQueries;
  const index = new Int32Array(batchSize * sequenceLength).fill(zeroRow);
  const seen = new Set<number>();
  imageSpans.forEach((spans, sample) => {
    if (!Array.isArray(spans)) throw new Error(`VPGC: imageSpans[${sample}] must be an array of spans, got ${describeValue(spans)}`);
    for (const span of spans) {
      assertOptionsObject('VPGC', `imageSpans[${sample}] entries`, span);
      const { imageIndex, start, length } = span;
      if (!Number.isInteger(imageIndex) || imageIndex < 0 || imageIndex >= numImages) {
        throw new Error(`VPGC: imageSpans[${sample}] imageIndex must be in [0, ${numImages}), got ${imageIndex}`);
      }
      if (imageToSample[imageIndex] !== sample) {
        throw new Error(`VPGC: image ${imageIndex} is in imageSpans[${sample}] but imageToSample says sample ${imageToSample[imageIndex]}`);
      }
      if (length !== numQueries) {
        throw new Error(`VPGC: image span length must equal the number of queries ${numQueries}, got ${length} (image ${imageIndex})`);
      }
      if (!Number.isInteger(start) || start < 0 || start + length > sequenceLength) {
        throw new Error(`VPGC: image ${imageIndex} span [${start}, ${start + length}) is outside the sequence [0, ${sequenceLength})`);
      }
      if (seen.has(imageIndex)) throw new Error(`VPGC: image ${imageIndex} appears in more than one span`);
      seen.add(imageIndex);
      for (let t = 0; t < length; t++) {
        const position = sample * sequenceLength + start + t;
        if (index[position] !== zeroRow) throw new Error(`VPGC: image spans overlap at sample ${sample}, position ${start + t}`);
        index[position] = imageIndex * numQueries + t;
      }
    }
  });
  // Every image must be placed: a missing span would silently drop that image's residual.
  if (seen.size !== numImages) {
    const missing = Array.from({ length: numImages }, (_, k) => k).filter((k) => !seen.has(k));
    throw new Error(`VPGC: imageSpans has no span for image${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (of ${numImages}; imageToSample [${imageToSample.join(', ')}])`);
  }
  return index;
}

/**
 * `imageSpanScatterIndex` from the host's per-forward tables: sample b's image token j at sequence
 * index `visualPositions[b][j]` ↦ row `visualRows[b][j]` (= `k·Nq + t` for image k's token t).
 * Validates what the spans check would: every row of `[n·Nq]` placed exactly once (so each span has
 * Nq tokens and every image is placed), inside the sequence, in its image's sample, no overlap.
 */
export function imageTablesScatterIndex(
  batchSize: number,
  sequenceLength: number,
  numImages: number,
  numQueries: number,
  imageTables: ImageTables,
  imageToSample: number[],
): Int32Array {
  assertOptionsObject('VPGC', 'imageTables', imageTables);
  const { visualRows, visualPositions } = imageTables;
  if (!Array.isArray(visualRows) || !Array.isArray(visualPositions) || visualRows.length !== batchSize || visualPositions.length !== batchSize) {
    throw new Error(`VPGC: imageTables.visualRows and visualPositions must have one list per sample (${batchSize}), got ${describeValue(visualRows)} and ${describeValue(visualPositions)}`);
  }
  if (!Array.isArray(imageToSample)) throw new Error(`VPGC: imageToSample must be an array of sample indices, got ${describeValue(imageToSample)}`);
  if (imageToSample.length !== numImages) {
    throw new Error(`VPGC: imageToSample must have length numImages = ${numImages}, got ${imageToSample.length}`);
  }
  const zeroRow = numImages * numQueries;
  const index = new Int32Array(batchSize * sequenceLength).fill(zeroRow);
  const placed = new Uint8Array(zeroRow);
  let count = 0;
  for (let sample = 0; sample < batchSize; sample++) {
    const rows = visualRows[sample];
    const positions = visualPositions[sample];
    if (!Array.isArray(rows) || !Array.isArray(positions) || rows.length !== positions.length) {
      throw new Error(`VPGC: imageTables.visualRows[${sample}] and visualPositions[${sample}] must be arrays of the same length`);
    }
    for (let j = 0; j < rows.length; j++) {
      const row = rows[j];
      const position = positions[j];
      if (!Number.isInteger(row) || row < 0 || row >= zeroRow || placed[row]) {
        throw new Error(`VPGC: imageTables.visualRows[${sample}][${j}] must be an unused row of the ${numImages}·${numQueries} image-query rows (image spans must hold the ${numQueries} query tokens), got ${row}`);
      }
      const image = Math.floor(row / numQueries);
      if (imageToSample[image] !== sample) {
        throw new Error(`VPGC: image ${image} is in imageTables sample ${sample} but imageToSample says sample ${imageToSample[image]}`);
      }
      if (!Number.isInteger(position) || position < 0 || position >= sequenceLength) {
        throw new Error(`VPGC: image ${image} token at ${position} is outside the sequence [0, ${sequenceLength})`);
      }
      const flat = sample * sequenceLength + position;
      if (index[flat] !== zeroRow) throw new Error(`VPGC: image spans overlap at sample ${sample}, position ${position}`);
      index[flat] = row;
      placed[row] = 1;
      count++;
    }
  }
  // Every row placed once: a missing or short span would silently drop part of an image's residual.
  if (count !== zeroRow) {
    const missing = Array.from({ length: numImages }, (_, k) => k).filter((k) => !placed.subarray(k * numQueries, (k + 1) * numQueries).every((v) => v === 1));
    throw new Error(`VPGC: imageTables place ${count} of the ${zeroRow} image-query rows (images ${missing.join(', ')} incomplete; each image span must hold ${numQueries} tokens)`);
  }
  return index;
}

/** The constructor's options, checked before `super` sees them (an object with a `vpg`, no unknown keys). */
function checkedVPGCArgs(args: VPGCArgs): VPGCArgs {
  assertOptionsObject('VPGC', 'args', args);
  assertKnownKeys('VPGC', args, ['vpg', 'llmHiddenSize', 'updateLayer', 'dropoutAtInference']);
  const vpg = args.vpg as Partial<QFormerVPG> | undefined;
  if (!vpg || typeof vpg !== 'object' || !vpg.queryTokensValue || !vpg.qformer) {
    throw new Error(`VPGC: args.vpg must be a QFormerVPG (the visual prompt generator to re-query), got ${describeValue(args.vpg)}`);
  }
  return args;
}

const VPGC_API = 'use addResidual(inputs) or attach it to a host with attachVPGC (it needs image spans and features); save with saveAdapter (reference layout)';

export class VPGC extends Module {
  static readonly className = 'VPGC';
  readonly vpg: QFormerVPG;
  readonly llmHiddenSize: number;
  readonly qformerWidth: number;
  readonly numQueryTokens: number;
  readonly updateLayer: number;
  /** Training mode (dropout in the Q-Former re-run, like the reference under `model.train()`). */
  training = false;
  readonly qformerProj: Linear;
  readonly llmProj: Linear;
  private queryTokens!: tfl.LayerVariable;
  /**
   * `dataId` of the query-token variable right after it last took the VPG's value; null once the
   * variable was written by anything else (any write, a load or an optimizer update, gives it a new
   * `dataId`). An identity check, so following the VPG costs no read-back.
   */
  private followedDataId: object | null = null;

  constructor(args: VPGCArgs) {
    super(checkedVPGCArgs(args));
    this.vpg = args.vpg;
    this.llmHiddenSize = args.llmHiddenSize ?? args.vpg.llmHiddenSize;
    assertPositiveInt('VPGC', 'llmHiddenSize', this.llmHiddenSize);
    if (!Number.isInteger(args.updateLayer) || args.updateLayer < 0) {
      throw new Error(`VPGC: updateLayer must be a non-negative integer, got ${describeValue(args.updateLayer)}`);
    }
    this.updateLayer = args.updateLayer;
    if (args.dropoutAtInference !== undefined) {
      assertBoolean('VPGC', 'dropoutAtInference', args.dropoutAtInference);
      this.dropoutAtInference = args.dropoutAtInference;
    }
    this.qformerWidth = args.vpg.qformerWidth;
    this.numQueryTokens = args.vpg.numQueryTokens;
    const source = args.vpg.queryTokensValue;
    this.queryTokens = this.addParameter('query_tokens', [1, this.numQueryTokens, this.qformerWidth], () => source.clone());
    this.followedDataId = this.queryTokens.read().dataId;
    this.qformerProj = this.addModule(
      'qformer_proj',
      new Linear({ inFeatures: this.llmHiddenSize, outFeatures: this.qformerWidth, weightInit: zerosInit, biasInit: zerosInit }),
    );
    this.llmProj = this.addModule(
      'llm_proj',
      new Linear({ inFeatures: this.qformerWidth, outFeatures: this.llmHiddenSize, weightInit: zerosInit, biasInit: zerosInit }),
    );
    this.built = true;
  }

  /** The VPG-C queries `[1, Nq, Dq]` (variable value; do not dispose). */
  get queryTokensValue(): tf.Tensor3D {
    this.followVpgQueryTokens();
    return this.queryTokens.read() as tf.Tensor3D;
  }

  /**
   * True while VPG-C's queries are still the VPG's (never written since: not loaded, not trained);
   * they then take the VPG's current value whenever they are read.
   */
  get queryTokensFollowVpg(): boolean {
    this.followVpgQueryTokens();
    return this.followedDataId !== null;
  }

  /**
   * While following, take the VPG's current queries (the reference's `init_query_tokens_value`, done
   * whenever read instead of once, so loading the VPG after building the VPGC still reaches VPG-C).
   * The variable then shares the VPG's tensor data (no copy; a later write to either gives it new data).
   */
  private followVpgQueryTokens(): void {
    if (this.followedDataId == null || this.isDisposed) return; // `== null`: also while the base constructor runs
    const own = this.queryTokens.read();
    if (own.dataId !== this.followedDataId) {
      this.followedDataId = null; // written on its own (loaded or trained): stop following
      return;
    }
    if (this.vpg.isDisposed) return;
    const source = this.vpg.queryTokensValue;
    if (source.dataId === own.dataId) return;
    this.queryTokens.write(source);
    this.followedDataId = own.dataId;
  }

  /** Every parameter under its reference name; the queries first catch up with the VPG's while following. */
  override namedParameters(prefix = ''): ReturnType<Module['namedParameters']> {
    this.followVpgQueryTokens();
    return super.namedParameters(prefix);
  }

  /**
   * Reference behaviour: Q-Former dropout stays on at inference, in the re-run and in the VPG's first
   * pass (`encode_img`). The switch is the VPG's `dropoutAtInference`; setting it here sets the VPG's.
   */
  get dropoutAtInference(): boolean {
    return this.vpg.dropoutAtInference;
  }
  set dropoutAtInference(value: boolean) {
    if (typeof value !== 'boolean') throw new Error(`VPGC: dropoutAtInference must be a boolean, got ${String(value)}`);
    this.vpg.dropoutAtInference = value;
  }

  /** Whether the Q-Former re-run uses dropout. */
  get dropoutActive(): boolean {
    return this.training || this.dropoutAtInference;
  }

  /** Guidance vectors: hidden `[B, L, H]`, lastPromptIndex `[B]` → `g` `[B, Dq]`. */
  guidance(hidden: tf.Tensor3D, lastPromptIndex: number[]): tf.Tensor2D {
    this.assertUsable();
    assertTensor('VPGC.guidance', 'hidden', hidden, { rank: 3, dtypes: ['float32'] });
    if (!Array.isArray(lastPromptIndex)) throw new Error(`VPGC: lastPromptIndex must be an array of indices, got ${describeValue(lastPromptIndex)}`);
    const [B, L, H] = hidden.shape;
    if (H !== this.llmHiddenSize) throw new Error(`VPGC: hidden must be [B, L, ${this.llmHiddenSize}], got [${hidden.shape}]`);
    if (lastPromptIndex.length !== B) {
      throw new Error(`VPGC: lastPromptIndex must have one entry per sample (${B}), got ${lastPromptIndex.length}`);
    }
    lastPromptIndex.forEach((t, b) => {
      if (!Number.isInteger(t) || t < 0 || t >= L) throw new Error(`VPGC: lastPromptIndex[${b}] must be in [0, ${L}), got ${t}`);
    });
    return tf.tidy(() => {
      const flat = tf.reshape(hidden, [B * L, H]); // [B·L, H]
      const tokens = gatherRows(flat as tf.Tensor2D, lastPromptIndex.map((t, b) => b * L + t)); // [B, H]
      return this.qformerProj.forward(tokens) as tf.Tensor2D; // [B, Dq]
    });
  }

  /**
   * Residual visual prompts per image: guidance `[B, Dq]`, imageFeatures `[n, Nv, Dv]` (raw),
   * imageToSample `[n]` → `R` `[n, Nq, H]`.
   */
  residualPrompts(guidance: tf.Tensor2D, imageFeatures: tf.Tensor3D, imageToSample: number[]): tf.Tensor3D {
    this.assertUsable();
    assertTensor('VPGC.residualPrompts', 'guidance', guidance, { rank: 2, dtypes: ['float32'] });
    assertTensor('VPGC.residualPrompts', 'imageFeatures', imageFeatures, { rank: 3, dtypes: ['float32'] });
    if (!Array.isArray(imageToSample)) throw new Error(`VPGC: imageToSample must be an array of sample indices, got ${describeValue(imageToSample)}`);
    const n = imageFeatures.shape[0];
    if (imageToSample.length !== n) {
      throw new Error(`VPGC: imageToSample must have length numImages = ${n}, got ${imageToSample.length}`);
    }
    imageToSample.forEach((b, k) => {
      if (!Number.isInteger(b) || b < 0 || b >= guidance.shape[0]) {
        throw new Error(`VPGC: imageToSample[${k}] must be in [0, ${guidance.shape[0]}), got ${b}`);
      }
    });
    return tf.tidy(() => {
      const perImage = gatherRows(guidance, imageToSample); // [n, Dq]
      const queries = tf.add(this.queryTokensValue, tf.expandDims(perImage, 1)) as tf.Tensor3D; // [1,Nq,Dq]+[n,1,Dq] → [n, Nq, Dq]
      const normalized = this.vpg.normalizeFeatures(imageFeatures); // [n, Nv, Dv]
      const output = this.vpg.qformer.forward(queries, normalized, { training: this.dropoutActive }); // [n, Nq, Dq]
      return this.llmProj.forward(output) as tf.Tensor3D; // [n, Nq, H]
    });
  }

  /** The additive residual `[B, L, H]`: `R_k` on image k's span, exactly 0 elsewhere. */
  residual(inputs: VPGCInputs): tf.Tensor3D {
    assertOptionsObject('VPGC.residual', 'inputs', inputs);
    const { hidden, imageFeatures } = inputs;
    assertTensor('VPGC.residual', 'hidden', hidden, { rank: 3, dtypes: ['float32'] });
    assertTensor('VPGC.residual', 'imageFeatures', imageFeatures, { rank: 3, dtypes: ['float32'] });
    const [B, L, H] = hidden.shape;
    const n = imageFeatures.shape[0];
    // The host's tables when present (derived once per forward), else the spans of a hand-built input.
    const index =
      inputs.imageTables !== undefined
        ? imageTablesScatterIndex(B, L, n, this.numQueryTokens, inputs.imageTables, inputs.imageToSample)
        : imageSpanScatterIndex(B, L, n, this.numQueryTokens, inputs.imageSpans, inputs.imageToSample);
    return tf.tidy(() => {
      const g = this.guidance(hidden, inputs.lastPromptIndex); // [B, Dq]
      const prompts = this.residualPrompts(g, imageFeatures, inputs.imageToSample); // [n, Nq, H]
      const table = tf.concat([tf.reshape(prompts, [n * this.numQueryTokens, H]), tf.zeros([1, H])], 0); // [n·Nq + 1, H]
      const scattered = gatherRows(table as tf.Tensor2D, index); // [B·L, H]
      return tf.reshape(scattered, [B, L, H]) as tf.Tensor3D; // [B, L, H]
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
  beforeLayer(layerIndex: number, hidden: tf.Tensor3D, ctx: VPGCForwardContext): tf.Tensor3D | null {
    if (layerIndex !== this.updateLayer || !ctx.isPrefill || !ctx.imageFeatures || ctx.imageFeatures.shape[0] === 0) return null;
    return this.addResidual({
      hidden,
      lastPromptIndex: ctx.lastPromptIndex,
      imageFeatures: ctx.imageFeatures,
      imageToSample: ctx.imageToSample,
      imageSpans: ctx.imageSpans,
      imageTables: ctx.imageTables,
    });
  }

  /** Not a tfjs-layers layer (it needs image spans and features): throws, naming the supported API. */
  override call(): tf.Tensor {
    throw this.notALayer(VPGC_API);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }

  /** Throws, so `model.save` of a tfjs model containing a VPGC fails naming the supported API. */
  override getConfig(): tf.serialization.ConfigDict {
    throw this.notALayer(VPGC_API);
  }
}
// Not registered with tf.serialization: see getConfig.
