/**
 * `LlavaModel`: the original-LLaVA anatomy that Parrot, Wings and Bunny share (`prepare_inputs_labels_for_multimodal`
 * of their `*_arch.py`), on the project's HF decoder and vision towers:
 *
 *   F = select(tower(pixel_values))                    [N, Nv, Dv]   `model.vision_tower.vision_tower.*`
 *   V = mm_projector(F) → transformVisual hooks        [N, Ni, H]    `model.mm_projector.*`
 *   per sample b: drop padding (attentionMask), split the text at each IMAGE_TOKEN_INDEX (−200), embed the text,
 *   put the next image's Ni rows in place of each placeholder                           E_b [L_b, H]
 *   pad the batch to L = max L_b on `tokenizer_padding_side` with zero rows; mask 1 on real rows;
 *   positions 0..L_b−1 on each sample's real rows, 0 on padding (the reference's `position_ids`)
 *   logits = HFCausalLM(inputs_embeds = E, attention_mask, position_ids)        [B, L, V]
 *
 * State-dict names are the LLaVA checkpoints': the decoder's own (`model.embed_tokens.*`, `model.layers.*`,
 * `model.norm.*`, `lm_head.*`), the projector under `model.mm_projector`, the tower's HF names under
 * `model.vision_tower.vision_tower.` (e.g. `model.vision_tower.vision_tower.vision_model.encoder.layers.0.…`).
 *
 * Tower features (LLaVA's `feature_select`): CLIP gives `hidden_states[mm_vision_select_layer]` with CLS dropped
 * (`patch`) or kept (`cls_patch`). SigLIP (no CLS) gives the penultimate hidden state of the full tower whatever
 * the config says, as Parrot's / Wings' `SigLipVisionTower` (last layer deleted, `hidden_states[-1]`) and Bunny's
 * `SiglipVisionTower` (`select_layer = -2`) both do; the tower is built without its last layer and head.
 *
 * Differences from the reference, each a case it gets wrong or leaves undefined: a sample without a placeholder
 * consumes no image (the reference's training path gives it the next image's features, zero-width); more or
 * fewer images than placeholders is an error; `tokenizer_model_max_length` truncation is an error instead of
 * silently cutting the prompt; generation reads each sample's last real row (HF's `generate` reads the last
 * column, a padding row for the shorter samples of a right-padded batch).
 *
 * Public calls keep `tf.memory().numTensors` flat; returned tensors (logits, caches) belong to the caller.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  assertOptionsObject, assertTensor, describeValue, Module, type BaseModelShape, type DecoderHooks, type ForwardContext,
  type HookHandle, type ImageSpan, type ImageTables, imageTablesFromSpans, type ModuleArgs, type ModuleHost, type Parameter,
  type VisionSelectFeature, type VisualProjector,
} from '@mllm/core';
import { HFCausalLM, disposeHFCache, readHFIntRows, type HFIntRows, type HFKVCache } from '../hf/causal-lm.js';
import { CLIPVisionModel } from '../vision/clip.js';
import { SiglipVisionModel } from '../vision/siglip.js';
import { IMAGE_TOKEN_INDEX } from '../tokenizer/hf-tokenizer.js';
import { IGNORE_INDEX } from '../tokenizer/byte-tokenizer.js';
import { planSequence, spliceEmbeddings, type SequencePlan } from '../model/sequence.js';
import { contextFromPlan } from '../model/context.js';
import { llavaVisionTowerType, resolveLlavaConfig, type LlavaConfigJson, type LlavaVisionTowerType, type ResolvedLlavaConfig } from './config.js';
import { buildLlavaProjector } from './projector.js';
import { ModelInputError } from '../input-error.js';

/** Where the tower's HF parameters live in a LLaVA checkpoint (`<prefix>.vision_model.…`). */
export const LLAVA_VISION_TOWER_PREFIX = 'model.vision_tower.vision_tower';
/** Where the projector's parameters live in a LLaVA checkpoint. */
export const LLAVA_PROJECTOR_NAME = 'model.mm_projector';

/** The towers a LLaVA model runs (SigLIP is built without its last layer and head, see the file comment). */
export type LlavaVisionTower = CLIPVisionModel | SiglipVisionModel;

export interface LlavaModelArgs extends ModuleArgs {
  /** The LLaVA `config.json` (decoder keys + `mm_*` keys, see `LlavaConfigJson`). */
  config: LlavaConfigJson | Record<string, unknown>;
  /** The vision tower directory's `config.json` (full CLIP / SigLIP config or the bare vision config). */
  visionConfig: Record<string, unknown>;
  /** Replaces the projector `mm_projector_type` names (e.g. a Q-Former VPG); registered under `projectorName` when a Module. */
  projector?: VisualProjector;
  /** Child name of a Module projector (default `model.mm_projector`). */
  projectorName?: string;
}

/** What a cached decode step needs to know about the prompt (the hooks' per-sample / per-image context). */
export interface LlavaPromptState {
  imageSpans: ImageSpan[][];
  imageToSample: number[];
  /** `[B]` 1 = the sample has an image. */
  hasImage: number[];
  lastPromptIndex: number[];
  /** `[B]` real spliced lengths of the prompts. */
  lengths: number[];
  imageTables: ImageTables;
  /** `[N, Nv, Dv]` tower features of the prompt's images (owned by the cache), or null. */
  imageFeatures: tf.Tensor3D | null;
  /** `[N, Ni, H]` spliced visual tokens (after transformVisual; owned by the cache), or null. */
  visualTokens: tf.Tensor3D | null;
}

/** The decoder's KV cache plus the prompt state; dispose with `disposeLlavaCache`. */
export interface LlavaKVCache extends HFKVCache {
  prompt: LlavaPromptState;
}

/** Dispose a cache's tensors (KV layers and the prompt's image tensors). */
export function disposeLlavaCache(cache: LlavaKVCache | null | undefined): void {
  if (!cache) return;
  disposeHFCache(cache);
  cache.prompt.imageFeatures?.dispose();
  cache.prompt.visualTokens?.dispose();
}

export interface LlavaForwardOptions {
  /**
   * `[B, T]` token ids with `IMAGE_TOKEN_INDEX` (−200) where each image goes (as `tokenizerImageToken` makes them);
   * with a `cache`, only the new tokens `[B, n]` (no placeholders).
   */
  inputIds: HFIntRows;
  /** `[numImages, C, S, S]` preprocessed pixels (HF `pixel_values`, channels first), the images in placeholder order across the batch. */
  pixelValues?: tf.Tensor4D | null;
  /** `[numImages, Nv, Dv]` tower features instead of `pixelValues` (what `encodeImages` returns). */
  imageFeatures?: tf.Tensor3D | null;
  /** `[B, T]` 1 = real token, 0 = padding (anywhere: padding is dropped before splicing, as the reference). Default all ones. */
  attentionMask?: HFIntRows;
  /** `[B, T]` labels (`IGNORE_INDEX` −100 = prompt): only what the hooks' `promptMask` / `lastPromptIndex` are built from. */
  labels?: HFIntRows | null;
  /** The cache of an earlier `useCache` call: this call decodes `inputIds` after it (not disposed). */
  cache?: LlavaKVCache | null;
  /** Return the cache including this call's tokens. */
  useCache?: boolean;
  /**
   * Compute the head only at each sample's last real row (`logits [B, 1, V]`; HFCausalLM's `logitsPositions`):
   * all generation needs from a prompt. At Qwen2's 151936-token vocabulary the head over every row of a 228-token
   * prompt is a quarter of its FLOPs and 264 MiB (logits and their transpose), more than a Qwen2-0.5B LLaVA has
   * left of wasm's 4 GiB heap (docs/performance.md).
   */
  lastLogitsOnly?: boolean;
}

export interface LlavaForwardResult {
  /** `[B, L, V]` (L: the spliced, padded length; `[B, n, V]` on a cached step; `[B, 1, V]` with `lastLogitsOnly`). Rows of padding are meaningless. */
  logits: tf.Tensor3D;
  cache: LlavaKVCache | null;
  /** `[B, L]` 1 = real row of the spliced batch (a cached step: this call's mask). */
  attentionMask: number[][];
  /** `[B, L]` positions given to the decoder (null on a cached step: the cache's count continues). */
  positionIds: number[][] | null;
  /** Per sample, where each image's tokens are in the spliced sequence (a cached step: the prompt's). */
  imageSpans: ImageSpan[][];
  /** `[B]` real spliced lengths L_b (a cached step: the prompt's). */
  lengths: number[];
  /** `[B, L]` spliced labels (−100 at images and padding), or null without labels. */
  labels: number[][] | null;
}

export interface LlavaGenerateOptions {
  /** `[numImages, C, S, S]` pixels of the prompts' images (placeholder order). */
  pixelValues?: tf.Tensor4D | null;
  /** `[numImages, Nv, Dv]` tower features instead of pixels. */
  imageFeatures?: tf.Tensor3D | null;
  /** `[B, T]` 1 = real prompt token (padding anywhere is dropped). */
  attentionMask?: HFIntRows;
  /** Tokens to generate per sample (≥ 1). */
  maxNewTokens: number;
  /** A sample stops after generating one of these (kept in its output, as HF's `generate`). */
  eosTokenId?: number | number[];
  /** Token fed for samples that have stopped (default the first eos id, else 0). */
  padTokenId?: number;
  /** Called after each step with each sample's new token (null once it has stopped). */
  onToken?: (tokens: ReadonlyArray<number | null>, step: number) => void;
  /** Use the KV cache (default true; off when an attached hook `requiresFullSequence`). */
  useCache?: boolean;
}

/** The constructor's options must be an object (checked before `super` sees them). */
function checkedArgs(args: LlavaModelArgs): ModuleArgs {
  assertOptionsObject('LlavaModel', 'args', args);
  return { name: args.name, trainable: args.trainable };
}

/**
 * Left padding of a right-padded plan: sample b's rows move right by `L − L_b` (a roll: its padding rows, at
 * the end, come round to the front), spans and `lastPromptIndex` with them.
 */
function padPlanLeft(plan: SequencePlan): SequencePlan {
  const { batchSize: B, length: L } = plan;
  const shifts = plan.lengths.map((n) => L - n);
  const roll = <A extends Float32Array | Int32Array>(a: A): A => {
    const out = a.slice() as A;
    for (let b = 0; b < B; b++) for (let q = 0; q < L; q++) out[b * L + q] = a[b * L + ((q - shifts[b]! + L) % L)]!;
    return out;
  };
  return {
    ...plan,
    sourceIndex: roll(plan.sourceIndex),
    attentionMask: roll(plan.attentionMask),
    textMask: roll(plan.textMask),
    promptMask: roll(plan.promptMask),
    systemMask: roll(plan.systemMask),
    labels: plan.labels ? roll(plan.labels) : null,
    imageSpans: plan.imageSpans.map((spans, b) => spans.map((s) => ({ ...s, start: s.start + shifts[b]! }))),
    lastPromptIndex: plan.lastPromptIndex.map((i, b) => i + shifts[b]!),
  };
}

/** `[B·L]` → `[B][L]` rows. */
function rowsOf(a: ArrayLike<number>, B: number, L: number): number[][] {
  return Array.from({ length: B }, (_, b) => Array.from({ length: L }, (_, q) => a[b * L + q]!));
}

export class LlavaModel extends Module implements ModuleHost {
  static readonly className = 'LlavaModel';
  /** The resolved LLaVA config. */
  readonly llavaConfig: ResolvedLlavaConfig;
  /** The LLaVA `config.json` and the tower's, as given. */
  readonly configJson: Record<string, unknown>;
  readonly visionConfigJson: Record<string, unknown>;
  /** The decoder (its parameters are this model's `model.embed_tokens.*`, `model.layers.*`, `model.norm.*`, `lm_head.*`). */
  readonly languageModel: HFCausalLM;
  readonly visionTowerType: LlavaVisionTowerType;
  /** The vision tower (its HF parameters under `model.vision_tower.vision_tower.`). */
  readonly visionTower: LlavaVisionTower;
  private projectorValue: VisualProjector;

  constructor(args: LlavaModelArgs) {
    super(checkedArgs(args));
    const c = resolveLlavaConfig(args.config);
    if (args.visionConfig === null || typeof args.visionConfig !== 'object' || Array.isArray(args.visionConfig)) {
      throw new Error(`LlavaModel: visionConfig must be the vision tower's parsed config.json, got ${describeValue(args.visionConfig)}`);
    }
    this.llavaConfig = c;
    this.configJson = { ...(args.config as Record<string, unknown>) };
    this.visionConfigJson = args.visionConfig;
    this.visionTowerType = llavaVisionTowerType(args.visionConfig, c.visionTowerName);
    const tower = this.visionTowerType === 'clip'
      ? new CLIPVisionModel({ config: args.visionConfig })
      : new SiglipVisionModel({ config: args.visionConfig, dropLastLayer: true });
    this.visionTower = this.addModule(LLAVA_VISION_TOWER_PREFIX, tower);
    try {
      this.languageModel = new HFCausalLM({ config: c.decoderJson });
    } catch (error) {
      tower.dispose();
      throw error;
    }
    const Dv = tower.visionConfig.hiddenSize;
    if (c.mmHiddenSize !== null && c.mmHiddenSize !== Dv) {
      this.dispose();
      throw new Error(`LlavaModel: mm_hidden_size must equal the vision tower's hidden_size ${Dv}, got ${c.mmHiddenSize}`);
    }
    if (this.visionTowerType === 'clip') {
      const layers = (tower as CLIPVisionModel).layers.length;
      if (c.selectLayer < -(layers + 1) || c.selectLayer > layers) {
        this.dispose();
        throw new Error(`LlavaModel: mm_vision_select_layer must be a hidden-state index in [${-(layers + 1)}, ${layers}] of the ${layers}-layer tower, got ${c.selectLayer}`);
      }
    }
    try {
      this.projectorValue = args.projector ?? buildLlavaProjector(c.projector, Dv, this.languageModel.hfConfig.hiddenSize);
    } catch (error) {
      this.dispose();
      throw error;
    }
    if (!this.projectorValue || typeof this.projectorValue.forward !== 'function') {
      this.dispose();
      throw new Error(`LlavaModel: projector must have forward(features [N, Nv, Dv]), got ${describeValue(args.projector)}`);
    }
    if (this.projectorValue instanceof Module) this.addModule(args.projectorName ?? LLAVA_PROJECTOR_NAME, this.projectorValue);
    this.built = true;
  }

  /** The visual projector (`mm_projector`). */
  get projector(): VisualProjector {
    return this.projectorValue;
  }

  /** What the projected row 0 of an image is: CLS (`cls_patch`, CLIP only) or a patch. */
  get visionSelectFeature(): VisionSelectFeature {
    return this.visionTowerType === 'clip' ? this.llavaConfig.selectFeature : 'patch';
  }

  /** The decoder's parameters under their own names, then the tower's and the projector's (LLaVA checkpoint names). */
  override namedParameters(prefix = ''): Array<[string, Parameter]> {
    return [...this.languageModel.namedParameters(prefix), ...super.namedParameters(prefix)];
  }

  override dispose(): ReturnType<Module['dispose']> {
    const wasDisposed = this.isDisposed;
    const own = super.dispose();
    const lm = wasDisposed ? 0 : this.languageModel.dispose().numDisposedVariables;
    return { refCountAfterDispose: 0, numDisposedVariables: own.numDisposedVariables + lm };
  }

  // ---------------------------------------------------------------- ModuleHost

  /**
   * Attach hooks: the decoder's (`prepare`, `beforeLayer`, `afterAttention`, their `namedModules` under the
   * decoder's names, e.g. `model.layers.3.attn_pool`) and `transformVisual`, run on the projected tokens of
   * every full forward / prefill in attach order.
   */
  addHooks(hooks: DecoderHooks): HookHandle {
    this.assertUsable();
    return this.languageModel.addHooks(hooks);
  }

  /** Freeze the decoder, the tower and the projector, leaving attached modules' flags as they are. */
  freezeBase(): void {
    this.languageModel.freezeBase();
    this.visionTower.setTrainable(false);
    if (this.projectorValue instanceof Module) this.projectorValue.setTrainable(false);
  }

  /** The decoder's shape with the checkpoint's `model_type` and the tower's width / feature selection. */
  baseModelShape(): BaseModelShape {
    return {
      ...this.languageModel.baseModelShape(),
      model_type: this.llavaConfig.modelType,
      vision_hidden_size: this.visionTower.visionConfig.hiddenSize,
      vision_select_feature: this.visionSelectFeature,
    };
  }

  /** True when some attached hook cannot run on cached decode steps. */
  get requiresFullSequence(): boolean {
    return this.languageModel.requiresFullSequence;
  }

  // ---------------------------------------------------------------- forward

  /**
   * `pixelValues [N, C, S, S]` (HF `pixel_values`: preprocessed, channels first) → the selected tower features
   * `[N, Nv, Dv]` fed to the projector (see the file comment for the selection).
   */
  encodeImages(pixelValues: tf.Tensor4D): tf.Tensor3D {
    this.assertUsable();
    const owner = 'LlavaModel.encodeImages';
    assertTensor(owner, 'pixelValues', pixelValues, { rank: 4, dtypes: ['float32'] });
    const { imageSize: S, numChannels: C } = this.visionTower.visionConfig;
    const [, c, h, w] = pixelValues.shape;
    if (c !== C || h !== S || w !== S) {
      const hint = pixelValues.shape[3] === C && c === S ? ' (channels last? pass pixelValues.transpose([0, 3, 1, 2]))' : '';
      throw new Error(`${owner}: pixelValues must be [numImages, ${C}, ${S}, ${S}] (HF pixel_values, channels first), got [${pixelValues.shape}]${hint}`);
    }
    return tf.tidy(() => {
      const nhwc = tf.transpose(pixelValues, [0, 2, 3, 1]) as tf.Tensor4D; // [N, S, S, C]: the towers take channels last
      if (this.visionTower instanceof CLIPVisionModel) {
        return this.visionTower.selectFeatures(nhwc, { selectLayer: this.llavaConfig.selectLayer, selectFeature: this.llavaConfig.selectFeature });
      }
      return this.visionTower.towerFeatures(nhwc, -1); // [N, P, D]: the built (truncated) tower's last hidden state
    });
  }

  /**
   * One forward: with images (LLaVA's splice, see the file comment) or, given a `cache`, a decode step of new
   * tokens after it. Padding: the input's padding (attentionMask 0, anywhere) is dropped; the spliced batch is
   * padded on `tokenizer_padding_side` (right by default) and positions count 0.. over each sample's real rows,
   * padding rows at position 0, as the reference. A cached step continues each sample's count (its last real
   * position + 1, as the reference's `sum(attention_mask) − 1` in generation).
   */
  forward(options: LlavaForwardOptions): LlavaForwardResult {
    this.assertUsable();
    assertOptionsObject('LlavaModel.forward', 'options', options as unknown);
    return options.cache ? this.decodeStep(options) : this.fullForward(options);
  }

  private dims(owner: string, value: unknown): [number, number] {
    if (value instanceof tf.Tensor) return [value.shape[0] ?? 0, value.shape[1] ?? 0];
    if (!Array.isArray(value) || !value.every((r) => Array.isArray(r))) throw new Error(`${owner}: inputIds must be [B, T] rows of token ids or a rank-2 tensor, got ${describeValue(value)}`);
    if (value.length === 0 || (value[0] as unknown[]).length === 0) throw new Error(`${owner}: inputIds must have at least one sample and one token, got [${value.length}, ${(value[0] as unknown[] | undefined)?.length ?? 0}]`);
    return [value.length, (value[0] as unknown[]).length];
  }

  private fullForward(options: LlavaForwardOptions): LlavaForwardResult {
    const owner = 'LlavaModel.forward';
    const lm = this.languageModel;
    const V = lm.hfConfig.vocabSize;
    const H = lm.hfConfig.hiddenSize;
    const [B, T] = this.dims(owner, options.inputIds);
    const ids = readHFIntRows(owner, 'inputIds', options.inputIds, B, T, (v) => Number.isInteger(v) && ((v >= 0 && v < V) || v === IMAGE_TOKEN_INDEX), `a token id in [0, ${V}) or IMAGE_TOKEN_INDEX (${IMAGE_TOKEN_INDEX})`);
    const mask = options.attentionMask == null ? ids.map((r) => r.map(() => 1)) : readHFIntRows(owner, 'attentionMask', options.attentionMask, B, T, (v) => v === 0 || v === 1, '0 or 1');
    const labels = options.labels == null ? null : readHFIntRows(owner, 'labels', options.labels, B, T, (v) => Number.isInteger(v) && ((v >= 0 && v < V) || v === IGNORE_INDEX), `a token id in [0, ${V}) or IGNORE_INDEX (${IGNORE_INDEX})`);
    // The reference's `cur_input_ids[cur_attention_mask]`: padding anywhere is dropped before splicing.
    const rows = ids.map((row, b) => row.filter((_, t) => mask[b]![t] === 1));
    const labelRows = labels ? labels.map((row, b) => row.filter((_, t) => mask[b]![t] === 1)) : null;
    rows.forEach((row, b) => {
      if (row.length === 0) throw new Error(`${owner}: attentionMask row ${b} has no real token`);
    });
    const numImages = rows.reduce((n, row) => n + row.filter((id) => id === IMAGE_TOKEN_INDEX).length, 0);
    const { pixelValues, imageFeatures } = options;
    if (pixelValues != null && imageFeatures != null) throw new Error(`${owner}: give pixelValues or imageFeatures, not both`);
    if (imageFeatures != null) assertTensor(owner, 'imageFeatures', imageFeatures, { rank: 3, dtypes: ['float32'] });
    if (pixelValues != null) assertTensor(owner, 'pixelValues', pixelValues, { rank: 4, dtypes: ['float32'] });
    const given = imageFeatures?.shape[0] ?? pixelValues?.shape[0] ?? 0;
    if (given !== numImages) {
      throw new Error(`${owner}: inputIds hold ${numImages} image placeholders (IMAGE_TOKEN_INDEX ${IMAGE_TOKEN_INDEX}, real tokens only) but ${given} images were given (${imageFeatures ? 'imageFeatures' : 'pixelValues'})`);
    }
    if (imageFeatures && imageFeatures.shape[2] !== this.visionTower.visionConfig.hiddenSize) {
      throw new Error(`${owner}: imageFeatures must be [${numImages}, Nv, ${this.visionTower.visionConfig.hiddenSize}], got [${imageFeatures.shape}]`);
    }
    const maxLength = this.configJson.tokenizer_model_max_length;
    let plan!: SequencePlan;
    const out = tf.tidy(() => {
      let features: tf.Tensor3D | null = null;
      let visual: tf.Tensor3D | null = null;
      if (numImages > 0) {
        features = imageFeatures ?? this.encodeImages(pixelValues!); // [N, Nv, Dv]
        visual = this.projectorValue.forward(features) as tf.Tensor3D; // [N, Ni, H]
        if (visual.rank !== 3 || visual.shape[0] !== numImages || visual.shape[2] !== H) {
          throw new Error(`${owner}: the projector must return [${numImages}, Ni, ${H}], got [${visual.shape}]`);
        }
      }
      plan = planSequence({ ids: rows, labels: labelRows, imageTokenId: IMAGE_TOKEN_INDEX, padId: 0, tokensPerImage: visual ? visual.shape[1] : 0 });
      if (typeof maxLength === 'number' && plan.length > maxLength) {
        // The caller's prompt, not a bug: a ModelInputError (the mllm command prints it on one line).
        throw new ModelInputError(`${owner}: the spliced sequence has ${plan.length} tokens, more than tokenizer_model_max_length ${maxLength} (the reference would cut it); shorten the prompt or pass fewer images`);
      }
      if (this.llavaConfig.paddingSide === 'left') plan = padPlanLeft(plan);
      // position_ids: 0..L_b−1 over each sample's real rows (the roll keeps them contiguous), 0 on padding.
      const L = plan.length;
      for (let b = 0; b < B; b++) {
        const start = this.llavaConfig.paddingSide === 'left' ? L - plan.lengths[b]! : 0;
        for (let q = 0; q < L; q++) plan.positions[b * L + q] = plan.attentionMask[b * L + q] ? q - start : 0;
      }
      const textEmbeddings = lm.embed(rowsOf(plan.textIds, B, plan.textLength)); // [B, T', H]
      if (visual) {
        const promptTextMask = tf.tensor2d(plan.promptTextMask, [B, plan.textLength]); // [B, T']
        for (const hook of lm.hooks) {
          if (!hook.transformVisual) continue;
          const next = hook.transformVisual({ visual, textEmbeddings, promptTextMask, imageToSample: plan.imageToSample, visionSelectFeature: this.visionSelectFeature });
          if (next.rank !== 3 || next.shape.some((d, i) => d !== visual!.shape[i])) {
            throw new Error(`transformVisual hook must return [${visual.shape}], got [${next.shape}]`);
          }
          visual = next;
        }
      }
      const inputsEmbeds = spliceEmbeddings(textEmbeddings, visual, plan); // [B, L, H]
      const ctx: ForwardContext = contextFromPlan(plan, inputsEmbeds, features, visual, true);
      const result = lm.forward({
        inputsEmbeds,
        attentionMask: rowsOf(plan.attentionMask, B, L),
        positionIds: rowsOf(plan.positions, B, L),
        useCache: options.useCache ?? false,
        context: ctx,
        logitsPositions: options.lastLogitsOnly ? plan.lengths.map((n) => (this.llavaConfig.paddingSide === 'left' ? L - 1 : n - 1)) : undefined,
      });
      const kept: Record<string, tf.TensorContainer> = { logits: result.logits };
      if (result.cache) {
        kept.layers = result.cache.layers as unknown as tf.TensorContainer;
        kept.keyMask = result.cache.keyMask;
        kept.nextPositions = result.cache.nextPositions;
        if (features) kept.features = features === imageFeatures ? features.clone() : features;
        if (visual) kept.visual = visual;
      }
      return kept as tf.TensorContainer;
    }) as Record<string, unknown>;
    const L = plan.length;
    let cache: LlavaKVCache | null = null;
    if (out.layers) {
      cache = {
        layers: out.layers as HFKVCache['layers'],
        keyMask: out.keyMask as number[][],
        nextPositions: out.nextPositions as number[],
        prompt: {
          imageSpans: plan.imageSpans, imageToSample: plan.imageToSample, hasImage: plan.hasImage, lastPromptIndex: plan.lastPromptIndex, lengths: plan.lengths,
          imageTables: imageTablesFromSpans(plan.imageSpans),
          imageFeatures: (out.features as tf.Tensor3D | undefined) ?? null,
          visualTokens: (out.visual as tf.Tensor3D | undefined) ?? null,
        },
      };
    }
    return {
      logits: out.logits as tf.Tensor3D,
      cache,
      attentionMask: rowsOf(plan.attentionMask, B, L),
      positionIds: rowsOf(plan.positions, B, L),
      imageSpans: plan.imageSpans,
      lengths: plan.lengths,
      labels: plan.labels ? rowsOf(plan.labels, B, L) : null,
    };
  }

  private decodeStep(options: LlavaForwardOptions): LlavaForwardResult {
    const owner = 'LlavaModel.forward';
    const cache = options.cache!;
    if (!cache.prompt || !Array.isArray(cache.layers)) throw new Error(`${owner}: cache must be the cache of an earlier LlavaModel.forward({ useCache: true }), got ${describeValue(cache)}`);
    if (options.pixelValues != null || options.imageFeatures != null) throw new Error(`${owner}: images go with the prompt (the first call), not with a cached decode step`);
    const V = this.languageModel.hfConfig.vocabSize;
    const [B, n] = this.dims(owner, options.inputIds);
    const ids = readHFIntRows(owner, 'inputIds', options.inputIds, B, n, (v) => Number.isInteger(v) && v >= 0 && v < V, `a token id in [0, ${V}) (no image placeholder after the prompt)`);
    const mask = options.attentionMask == null ? ids.map((r) => r.map(() => 1)) : readHFIntRows(owner, 'attentionMask', options.attentionMask, B, n, (v) => v === 0 || v === 1, '0 or 1');
    const p = cache.prompt;
    const hasImage = tf.tensor1d(p.hasImage, 'float32'); // [B]
    let r;
    try {
      r = this.languageModel.forward({
        inputIds: ids, attentionMask: mask, cache, useCache: options.useCache ?? false,
        context: {
          imageSpans: p.imageSpans, imageToSample: p.imageToSample, hasImage, imageFeatures: p.imageFeatures,
          visualTokens: p.visualTokens, lastPromptIndex: p.lastPromptIndex, imageTables: p.imageTables,
        },
      });
    } finally {
      hasImage.dispose();
    }
    // The prompt's image tensors are shared by value (clone: a new handle on the same data) so each cache owns its own.
    const next: LlavaKVCache | null = r.cache
      ? { ...r.cache, prompt: { ...p, imageFeatures: p.imageFeatures?.clone() ?? null, visualTokens: p.visualTokens?.clone() ?? null } }
      : null;
    return { logits: r.logits, cache: next, attentionMask: mask, positionIds: null, imageSpans: p.imageSpans, lengths: p.lengths, labels: null };
  }

  // ---------------------------------------------------------------- generate

  /**
   * Greedy decoding: the prompts `inputIds [B, T]` (with image placeholders; padding anywhere per
   * `attentionMask`) → each sample's new tokens (up to `maxNewTokens`, ending with its first eos, included).
   * The prompt is spliced and run once; each step feeds the previous tokens through the KV cache (or re-runs the
   * whole sequence when a hook `requiresFullSequence`). The first token of each sample is read from its last real
   * row (see the file comment).
   */
  generate(inputIds: HFIntRows, options: LlavaGenerateOptions): number[][] {
    this.assertUsable();
    const owner = 'LlavaModel.generate';
    assertOptionsObject(owner, 'options', options as unknown);
    const { maxNewTokens } = options;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new Error(`${owner}: options.maxNewTokens must be a positive integer, got ${describeValue(maxNewTokens)}`);
    const eos = options.eosTokenId == null ? [] : Array.isArray(options.eosTokenId) ? options.eosTokenId : [options.eosTokenId];
    const pad = options.padTokenId ?? eos[0] ?? 0;
    if (options.onToken != null && typeof options.onToken !== 'function') throw new Error(`${owner}: options.onToken must be a function, got ${describeValue(options.onToken)}`);
    const [B, T] = this.dims(owner, inputIds);
    const out: number[][] = Array.from({ length: B }, () => []);
    const done = new Array<boolean>(B).fill(false);
    let step = 0;
    const take = (next: number[]): number[] => {
      const reported = next.map((token, b) => (done[b] ? null : token));
      const fed = next.map((token, b) => {
        if (done[b]) return pad;
        out[b]!.push(token);
        if (eos.includes(token)) done[b] = true;
        return token;
      });
      options.onToken?.(reported, step);
      step++; // not inside the optional call above: its arguments are skipped without onToken
      return fed;
    };
    const argmaxRows = (logits: tf.Tensor3D, rowOf: (b: number) => number): number[] => {
      const [, Lq, V] = logits.shape;
      const data = logits.dataSync();
      return out.map((_, b) => {
        const offset = (b * Lq + rowOf(b)) * V;
        let best = 0;
        for (let v = 1; v < V; v++) if (data[offset + v]! > data[offset + best]!) best = v;
        return best;
      });
    };
    const lastRow = (r: LlavaForwardResult) => (b: number) => (this.llavaConfig.paddingSide === 'left' ? r.logits.shape[1] - 1 : r.lengths[b]! - 1);
    if ((options.useCache ?? true) && !this.requiresFullSequence) {
      const first = this.forward({ inputIds, pixelValues: options.pixelValues, imageFeatures: options.imageFeatures, attentionMask: options.attentionMask, useCache: true, lastLogitsOnly: true });
      let cache = first.cache;
      try {
        let next = take(argmaxRows(first.logits, () => 0));
        first.logits.dispose();
        while (step < maxNewTokens && !done.every(Boolean)) {
          const r = this.forward({ inputIds: next.map((t) => [t]), cache, useCache: true });
          disposeLlavaCache(cache);
          cache = r.cache;
          next = take(argmaxRows(r.logits, () => 0));
          r.logits.dispose();
        }
      } finally {
        disposeLlavaCache(cache);
      }
      return out;
    }
    // Full sequences: the prompt's real tokens then the generated ones (labelled, so the hooks see them as
    // generated, not prompt), the images encoded once.
    const V = this.languageModel.hfConfig.vocabSize;
    const ids = readHFIntRows(owner, 'inputIds', inputIds, B, T, (v) => Number.isInteger(v) && ((v >= 0 && v < V) || v === IMAGE_TOKEN_INDEX), `a token id in [0, ${V}) or IMAGE_TOKEN_INDEX (${IMAGE_TOKEN_INDEX})`);
    const mask = options.attentionMask == null ? ids.map((r) => r.map(() => 1)) : readHFIntRows(owner, 'attentionMask', options.attentionMask, B, T, (v) => v === 0 || v === 1, '0 or 1');
    const prompts = ids.map((row, b) => row.filter((_, t) => mask[b]![t] === 1));
    const features = options.pixelValues != null && options.imageFeatures == null ? this.encodeImages(options.pixelValues) : null;
    try {
      while (step < maxNewTokens && !done.every(Boolean)) {
        const seqs = prompts.map((p, b) => [...p, ...out[b]!]);
        const width = Math.max(...seqs.map((s) => s.length));
        const r = this.forward({
          inputIds: seqs.map((s) => [...s, ...new Array<number>(width - s.length).fill(0)]),
          attentionMask: seqs.map((s) => [...s.map(() => 1), ...new Array<number>(width - s.length).fill(0)]),
          labels: seqs.map((s, b) => [...s.map((id, t) => (t < prompts[b]!.length ? IGNORE_INDEX : id)), ...new Array<number>(width - s.length).fill(IGNORE_INDEX)]),
          imageFeatures: features ?? options.imageFeatures ?? null,
        });
        take(argmaxRows(r.logits, lastRow(r)));
        r.logits.dispose();
      }
    } finally {
      features?.dispose();
    }
    return out;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    throw this.notALayer(`use forward({ inputIds, pixelValues }) or generate() (got ${Array.isArray(inputs) ? 'a list' : 'a tensor'})`);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [...inputShape, this.languageModel.hfConfig.vocabSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    throw this.notALayer('load it with loadLlavaModel(dir)');
  }
}
// Not registered with tf.serialization: a LlavaModel is loaded from its checkpoint directory (loadLlavaModel).
