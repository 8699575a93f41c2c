/**
 * Host multimodal LM (LLaVA anatomy): vision tower → projector → splice at `<image>` → HostLM.
 *
 *   F = vision_tower(images)                          [numImages, Nv, Dv]   (`model.vision_tower.*`)
 *   V = projector(F)  → transformVisual hooks         [numImages, Ni, H]    (`model.mm_projector.*`)
 *   E = splice(embed_tokens(text), V)                 [B, L, H]             right-padded
 *   logits = HostLM(E)                                [B, L, V]
 *
 * Public calls keep `tf.memory().numTensors` flat; returned tensors belong to the caller.
 */
import * as tf from '@tensorflow/tfjs-core';
import { assertBinaryMask, assertOptionsObject, assertTensor, type BaseModelShape, type ImageSpan, isHostMemoryBackend, MlpGeluProjector, Module, type VisualProjector } from '@mllm/core';
import { IGNORE_INDEX, ByteTokenizer, type Tokenizer } from '../tokenizer/byte-tokenizer.js';
import { tokenizerFromSpec } from '../tokenizer/tokenizer-spec.js';
import { encodeChat, type ChatMessage } from '../tokenizer/chat-template.js';
import { HostLM, type HostLMArgs } from './host-lm.js';
import { PatchVisionEncoder } from './patch-vision-encoder.js';
import { causalPaddingMask, countImages, planSequence, spliceEmbeddings, type SequencePlan } from './sequence.js';
import { contextFromPlan, decodeContext } from './context.js';
import { shiftedCrossEntropy, shiftedTokenLogProbs } from './loss.js';
import type { LayerCache } from './decoder-layer.js';
import { checkHostMLLMConfig, type HostMLLMConfig } from './config.js';
import type { MultimodalBatch } from './collate.js';

export interface HostMLLMArgs extends Omit<HostLMArgs, 'config'> {
  config: HostMLLMConfig;
  /** Replaces the default `mlp2x_gelu` projector (e.g. a Q-Former VPG). */
  projector?: VisualProjector;
  /** Child name of a Module projector (default `model.mm_projector`). */
  projectorName?: string;
  /** Default: from `config.tokenizer`, else the default ByteTokenizer. */
  tokenizer?: Tokenizer;
}

/** A prompt: token ids (already templated), a user message, or a conversation (templated with the generation preface). */
export type PromptInput = number[] | string | ChatMessage[];

export interface PromptOptions {
  /** System prompt for string / message prompts (default the chat template's; null = none). */
  systemPrompt?: string | null;
}

export interface GenerateOptions extends PromptOptions {
  /** Default 32. */
  maxNewTokens?: number;
  /** KV cache (default true; off automatically when a hook `requiresFullSequence`). */
  useCache?: boolean;
  /** Stop tokens (default `<|im_end|>` and `<eos>`); not included in the output. */
  eosTokenIds?: number[];
}

export interface GenerateOutput {
  /** Generated ids per prompt (stop token excluded). */
  tokenIds: number[][];
  /** Decoded texts (special tokens skipped, invalid bytes → U+FFFD). */
  texts: string[];
}

export interface OptionScore {
  /** Σ log p(option tokens | prompt). */
  sum: number;
  /** sum / numTokens. */
  mean: number;
  numTokens: number;
}

export interface HostForwardOutput {
  /** `[B, L, V]` */
  logits: tf.Tensor3D;
  /** `[B, L]` int32 spliced labels (IGNORE at prompt, images, padding), or null. */
  labels: tf.Tensor2D | null;
  /** `[B, L]` float 1 = real. */
  attentionMask: tf.Tensor2D;
  imageSpans: ImageSpan[][];
  /** `[B]` spliced real lengths. */
  lengths: number[];
}

interface SequenceRequest {
  ids: number[][];
  labels: number[][] | null;
  systemMask: number[][] | null;
  images: tf.Tensor4D | null;
  imageFeatures: tf.Tensor3D | null;
}

interface RunResult {
  logits: tf.Tensor3D;
  present: LayerCache[] | null;
  plan: SequencePlan;
  imageFeatures: tf.Tensor3D | null;
  visualTokens: tf.Tensor3D | null;
}

/** The options must be an object with a valid `config` shape; returns the host LM's args. */
function checkedMllmArgs(args: HostMLLMArgs): HostLMArgs {
  assertOptionsObject('HostMLLM', 'args', args);
  checkHostMLLMConfig(args.config);
  return { ...args, config: args.config.text };
}

export class HostMLLM extends HostLM {
  static override readonly className = 'HostMLLM';
  readonly mllmConfig: HostMLLMConfig;
  readonly visionTower: PatchVisionEncoder;
  readonly tokenizer: Tokenizer;
  private projectorValue!: VisualProjector;
  private projectorChild: string | null = null;

  constructor(args: HostMLLMArgs) {
    super(checkedMllmArgs(args));
    this.mllmConfig = { projectorType: 'mlp2x_gelu', ...args.config };
    this.visionTower = this.addModule('model.vision_tower', new PatchVisionEncoder({ config: args.config.vision }));
    this.tokenizer = args.tokenizer ?? (args.config.tokenizer ? tokenizerFromSpec(args.config.tokenizer) : new ByteTokenizer());
    if (this.tokenizer.vocabSize > this.textConfig.vocabSize) {
      throw new Error(`HostMLLM: text.vocabSize ${this.textConfig.vocabSize} must be ≥ the tokenizer's vocabSize ${this.tokenizer.vocabSize}`);
    }
    this.setProjector(
      args.projector ?? new MlpGeluProjector({ inFeatures: this.visionTower.visionConfig.hiddenSize, outFeatures: this.textConfig.hiddenSize }),
      args.projectorName,
    );
  }

  override baseModelShape(): BaseModelShape {
    const vision = this.visionTower.visionConfig;
    return { ...super.baseModelShape(), vision_hidden_size: vision.hiddenSize, vision_select_feature: vision.selectFeature };
  }

  get projector(): VisualProjector {
    return this.projectorValue;
  }

  /** Child name of a Module projector (its parameters are `<name>.<param>`), or null. */
  get projectorModuleName(): string | null {
    return this.projectorChild;
  }

  /** Swap the projector; a Module projector is registered as child `name`. Returns the old one (not disposed). */
  setProjector(projector: VisualProjector, name = 'model.mm_projector'): VisualProjector | undefined {
    if (!projector || typeof projector.forward !== 'function') throw new Error('setProjector: projector must have forward(features [N, Nv, Dv])');
    const old = this.projectorValue;
    if (this.projectorChild) this.removeModule(this.projectorChild);
    this.projectorChild = null;
    if (projector instanceof Module) {
      this.addModule(name, projector);
      this.projectorChild = name;
    }
    this.projectorValue = projector;
    return old;
  }

  protected override layersApiHint(): string {
    return 'use forward(batch), generate() or scoreOptions(); save with saveHostModel and load with loadHostModel (reference layout, attached modules included)';
  }

  /** `images [N, S, S, C]` in [0, 1] → vision features `[N, Nv, Dv]`. */
  encodeImages(images: tf.Tensor4D): tf.Tensor3D {
    return this.visionTower.forward(images);
  }

  /** Full forward of a batch. */
  forward(batch: MultimodalBatch): HostForwardOutput {
    const request = this.requestFromBatch(batch);
    const run = this.run(request, false, false);
    const { plan } = run;
    const shape: [number, number] = [plan.batchSize, plan.length];
    return {
      logits: run.logits,
      labels: plan.labels ? tf.tensor2d(plan.labels, shape, 'int32') : null,
      attentionMask: tf.tensor2d(plan.attentionMask, shape),
      imageSpans: plan.imageSpans,
      lengths: plan.lengths,
    };
  }

  /** Mean next-token cross-entropy over supervised labels (scalar, differentiable). */
  loss(batch: MultimodalBatch): tf.Scalar {
    if (!batch.labels) throw new Error('HostMLLM.loss: batch.labels [B, T] are required');
    const request = this.requestFromBatch(batch);
    return tf.tidy(() => {
      const run = this.run(request, false, false);
      return shiftedCrossEntropy(run.logits, run.plan.labels!);
    });
  }

  /** Greedy decoding for one or several prompts; `images` hold all prompts' images in placeholder order. */
  generate(prompts: PromptInput | PromptInput[], images: tf.Tensor4D | null = null, options: GenerateOptions = {}): GenerateOutput {
    this.assertUsable();
    const encoded = this.promptList(prompts).map((p) => this.encodePrompt(p, options));
    const promptIds = encoded.map((e) => e.ids);
    const systemMask = encoded.map((e) => e.systemMask);
    const maxNewTokens = options.maxNewTokens ?? 32;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
    const stop = new Set(options.eosTokenIds ?? [this.tokenizer.imEndId, this.tokenizer.eosId]);
    const useCache = (options.useCache ?? true) && !this.requiresFullSequence;
    const features = this.featuresFor(promptIds, images);
    const B = promptIds.length;
    const generated: number[][] = promptIds.map(() => []);
    const done = new Array<boolean>(B).fill(maxNewTokens === 0);
    try {
      if (useCache) this.generateCached(promptIds, systemMask, features, generated, done, maxNewTokens, stop);
      else this.generateFull(promptIds, systemMask, features, generated, done, maxNewTokens, stop);
    } finally {
      features?.dispose();
    }
    return { tokenIds: generated, texts: generated.map((ids) => this.tokenizer.decode(ids, { skipSpecialTokens: true })) };
  }

  /** Log-likelihood of each option continuing the prompt, `sum` (default) or per-token `mean`. */
  scoreOptions(prompt: PromptInput, images: tf.Tensor4D | null, options: string[], settings: PromptOptions & { reduction?: 'sum' | 'mean' } = {}): number[] {
    const scores = this.scoreOptionsDetailed(prompt, images, options, settings);
    return scores.map((s) => (settings.reduction === 'mean' ? s.mean : s.sum));
  }

  /** Sum, mean and token count of each option's log-likelihood given the prompt (one batched forward). */
  scoreOptionsDetailed(prompt: PromptInput, images: tf.Tensor4D | null, options: string[], settings: PromptOptions = {}): OptionScore[] {
    this.assertUsable();
    if (!Array.isArray(options) || options.length === 0) throw new Error(`scoreOptions: options must be a non-empty string array, got ${JSON.stringify(options)}`);
    const { ids: promptIds, systemMask } = this.encodePrompt(prompt, settings);
    const optionIds = options.map((o, k) => {
      if (typeof o !== 'string' || o.length === 0) throw new Error(`scoreOptions: options[${k}] must be a non-empty string, got ${JSON.stringify(o)}`);
      return this.tokenizer.encode(o);
    });
    const features = this.featuresFor([promptIds], images);
    try {
      const sums = tf.tidy(() => {
        const n = features ? features.shape[0] : 0;
        const tiled = features ? (tf.gather(features, options.flatMap(() => [...Array(n).keys()])) as tf.Tensor3D) : null; // [K·n, Nv, Dv]
        const run = this.run({
          ids: optionIds.map((o) => [...promptIds, ...o]),
          labels: optionIds.map((o) => [...promptIds.map(() => IGNORE_INDEX), ...o]),
          systemMask: optionIds.map((o) => [...systemMask, ...o.map(() => 0)]),
          images: null,
          imageFeatures: tiled,
        }, false, false);
        return tf.sum(shiftedTokenLogProbs(run.logits, run.plan.labels!), 1); // [K]
      });
      const values = Array.from(sums.dataSync());
      sums.dispose();
      return values.map((sum, k) => ({ sum, mean: sum / optionIds[k].length, numTokens: optionIds[k].length }));
    } finally {
      features?.dispose();
    }
  }

  // ---------------------------------------------------------------- internals

  /** Vision + projector + hooks + splice + decoder, in one tidy. */
  private run(request: SequenceRequest, collectCache: boolean, keepVisual: boolean): RunResult {
    this.assertUsable();
    const vocab = this.textConfig.vocabSize;
    request.ids.forEach((row, b) => row.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`HostMLLM: inputIds[${b}][${t}] must be an integer in [0, ${vocab}), got ${id}`);
    }));
    const imageId = this.tokenizer.imageId;
    const numImages = countImages(request.ids, imageId).reduce((a, b) => a + b, 0);
    if (request.images) checkImageBatch(request.images, 'images');
    const given = request.imageFeatures?.shape[0] ?? request.images?.shape[0] ?? 0;
    if (given !== numImages) {
      throw new Error(`HostMLLM: inputIds hold ${numImages} image placeholders but ${given} images/imageFeatures were given`);
    }
    let plan!: SequencePlan;
    const out = tf.tidy(() => {
      let features: tf.Tensor3D | null = null;
      let visual: tf.Tensor3D | null = null;
      if (numImages > 0) {
        features = request.imageFeatures ?? this.encodeImages(request.images!); // [N, Nv, Dv]
        visual = this.projectorValue.forward(features) as tf.Tensor3D; // [N, Ni, H]
        if (visual.rank !== 3 || visual.shape[0] !== numImages || visual.shape[2] !== this.textConfig.hiddenSize) {
          throw new Error(`HostMLLM: projector must return [${numImages}, Ni, ${this.textConfig.hiddenSize}], got [${visual.shape}]`);
        }
      }
      plan = planSequence({
        ids: request.ids, labels: request.labels, systemMask: request.systemMask,
        imageTokenId: imageId, padId: this.tokenizer.padId, tokensPerImage: visual ? visual.shape[1] : 0,
      });
      if (plan.length > this.textConfig.maxLength) {
        throw new Error(`HostMLLM: spliced sequence length ${plan.length} exceeds maxLength ${this.textConfig.maxLength}`);
      }
      const textEmbeddings = this.embedIds(plan.textIds, plan.batchSize, plan.textLength); // [B, T, H]
      if (visual) {
        const promptTextMask = tf.tensor2d(plan.promptTextMask, [plan.batchSize, plan.textLength]);
        for (const hook of this.hooks) {
          if (!hook.transformVisual) continue;
          const next = hook.transformVisual({
            visual, textEmbeddings, promptTextMask, imageToSample: plan.imageToSample,
            visionSelectFeature: this.visionTower.visionConfig.selectFeature,
          });
          if (next.rank !== 3 || next.shape.some((d, i) => d !== visual!.shape[i])) {
            throw new Error(`transformVisual hook must return [${visual.shape}], got [${next.shape}]`);
          }
          visual = next;
        }
      }
      const inputEmbeddings = spliceEmbeddings(textEmbeddings, visual, plan); // [B, L, H]
      const ctx = contextFromPlan(plan, inputEmbeddings, features, visual, true);
      const decoded = this.runDecoder({
        inputEmbeddings, positions: ctx.positions, mask: causalPaddingMask(ctx.attentionMask), ctx, collectCache,
      });
      const result: Record<string, tf.TensorContainer> = { logits: decoded.logits };
      if (decoded.present) result.present = decoded.present as unknown as tf.TensorContainer;
      if (keepVisual && features && visual) {
        result.features = features === request.imageFeatures ? features.clone() : features;
        result.visual = visual;
      }
      return result as tf.TensorContainer;
    }) as Record<string, unknown>;
    return {
      logits: out.logits as tf.Tensor3D,
      present: (out.present as LayerCache[] | undefined) ?? null,
      plan,
      imageFeatures: (out.features as tf.Tensor3D | undefined) ?? null,
      visualTokens: (out.visual as tf.Tensor3D | undefined) ?? null,
    };
  }

  private generateCached(promptIds: number[][], systemMask: number[][], features: tf.Tensor3D | null, generated: number[][], done: boolean[], maxNew: number, stop: Set<number>): void {
    if (done.every(Boolean)) return;
    const prefill = this.run({ ids: promptIds, labels: null, systemMask, images: null, imageFeatures: features }, true, true);
    const { plan } = prefill;
    const B = plan.batchSize;
    let past = prefill.present!;
    const keyValid: number[][] = [...Array(B).keys()].map((b) => Array.from(plan.attentionMask.subarray(b * plan.length, (b + 1) * plan.length)));
    try {
      let next = argmaxRows(prefill.logits, plan.lengths.map((l) => l - 1));
      prefill.logits.dispose();
      for (let step = 0; ; step++) {
        this.accept(next, plan.lengths, generated, done, maxNew, stop);
        if (done.every(Boolean)) break;
        const tokens = next.map((id, b) => (done[b] ? this.tokenizer.padId : id));
        keyValid.forEach((row) => row.push(1));
        const result = tf.tidy(() => {
          const inputEmbeddings = this.embedIds(tokens, B, 1); // [B, 1, H]
          const positions = tf.tensor2d(plan.lengths.map((l) => l + step), [B, 1], 'int32'); // [B, 1]
          const ctx = decodeContext(plan, prefill.imageFeatures, prefill.visualTokens, inputEmbeddings, positions);
          const mask = tf.tensor4d(keyValid.flat(), [B, 1, 1, keyValid[0].length]); // [B, 1, 1, Lk]
          const out = this.runDecoder({ inputEmbeddings, positions, mask, ctx, past, collectCache: true });
          return { logits: out.logits, present: out.present as unknown as tf.TensorContainer };
        });
        disposeCache(past);
        past = result.present as unknown as LayerCache[];
        next = argmaxRows(result.logits as tf.Tensor3D, new Array(B).fill(0));
        (result.logits as tf.Tensor).dispose();
      }
    } finally {
      disposeCache(past);
      prefill.imageFeatures?.dispose();
      prefill.visualTokens?.dispose();
    }
  }

  private generateFull(promptIds: number[][], systemMask: number[][], features: tf.Tensor3D | null, generated: number[][], done: boolean[], maxNew: number, stop: Set<number>): void {
    while (!done.every(Boolean)) {
      // generated tokens are labelled (not prompt), so transformVisual and lastPromptIndex see only the prompt
      const run = this.run({
        ids: promptIds.map((p, b) => [...p, ...generated[b]]),
        labels: promptIds.map((p, b) => [...p.map(() => IGNORE_INDEX), ...generated[b]]),
        systemMask: systemMask.map((m, b) => [...m, ...generated[b].map(() => 0)]),
        images: null, imageFeatures: features,
      }, false, false);
      const next = argmaxRows(run.logits, run.plan.lengths.map((l) => l - 1));
      run.logits.dispose();
      const promptLengths = run.plan.lengths.map((l, b) => l - generated[b].length);
      this.accept(next, promptLengths, generated, done, maxNew, stop);
    }
  }

  /** Append each running sample's next token, or finish it (stop token, maxNewTokens, maxLength). */
  private accept(next: number[], promptLengths: number[], generated: number[][], done: boolean[], maxNew: number, stop: Set<number>): void {
    next.forEach((id, b) => {
      if (done[b]) return;
      if (stop.has(id)) { done[b] = true; return; }
      generated[b].push(id);
      if (generated[b].length >= maxNew || promptLengths[b] + generated[b].length >= this.textConfig.maxLength) done[b] = true;
    });
  }

  /** Vision features for the prompts' images (caller disposes), after checking the count. */
  private featuresFor(promptIds: number[][], images: tf.Tensor4D | null): tf.Tensor3D | null {
    const placeholders = countImages(promptIds, this.tokenizer.imageId).reduce((a, b) => a + b, 0);
    if (images) checkImageBatch(images, 'images');
    const given = images ? images.shape[0] : 0;
    if (placeholders !== given) throw new Error(`HostMLLM: prompts hold ${placeholders} image placeholders but images has ${given} images`);
    return images && placeholders > 0 ? this.encodeImages(images) : null;
  }

  private promptList(prompts: PromptInput | PromptInput[]): PromptInput[] {
    if (typeof prompts === 'string') return [prompts];
    if (!Array.isArray(prompts) || prompts.length === 0) throw new Error(`generate: prompts must be a prompt or a non-empty list of prompts, got ${JSON.stringify(prompts)}`);
    const first = prompts[0];
    if (typeof first === 'number' || (typeof first === 'object' && first !== null && !Array.isArray(first))) return [prompts as PromptInput];
    return prompts as PromptInput[];
  }

  /** Token ids and system-turn mask of a prompt (raw ids: no system turn known). */
  private encodePrompt(prompt: PromptInput, options: PromptOptions): { ids: number[]; systemMask: number[] } {
    const template = { addGenerationPrompt: true, systemPrompt: options.systemPrompt };
    if (typeof prompt === 'string') {
      const enc = encodeChat(this.tokenizer, [{ role: 'user', content: prompt }], template);
      return { ids: enc.inputIds, systemMask: enc.systemMask };
    }
    if (Array.isArray(prompt) && prompt.length > 0 && typeof prompt[0] === 'number') {
      return { ids: [...(prompt as number[])], systemMask: prompt.map(() => 0) };
    }
    if (Array.isArray(prompt) && prompt.length > 0) {
      const enc = encodeChat(this.tokenizer, prompt as ChatMessage[], template);
      return { ids: enc.inputIds, systemMask: enc.systemMask };
    }
    throw new Error(`HostMLLM: a prompt must be token ids, a string or chat messages, got ${JSON.stringify(prompt)}`);
  }

  /** Read a batch's tensors into per-sample JS rows (right padding checked). */
  private requestFromBatch(batch: MultimodalBatch): SequenceRequest {
    assertOptionsObject('HostMLLM', 'batch', batch);
    const { inputIds } = batch;
    assertTensor('HostMLLM', 'batch.inputIds', inputIds, { rank: 2, dtypes: ['int32', 'float32'] });
    const [B, T] = inputIds.shape;
    for (const key of ['attentionMask', 'labels', 'systemMask'] as const) {
      const t = batch[key];
      if (t != null) assertTensor('HostMLLM', `batch.${key}`, t, { rank: 2 });
      if (t != null && key !== 'labels') assertBinaryMask('HostMLLM', `batch.${key}`, t);
      if (t && (t.rank !== 2 || t.shape[0] !== B || t.shape[1] !== T)) throw new Error(`HostMLLM: batch.${key} must be [${B}, ${T}], got [${t.shape}]`);
    }
    if (batch.images != null) assertTensor('HostMLLM', 'batch.images', batch.images, { rank: 4, dtypes: ['float32'] });
    if (batch.imageFeatures != null) assertTensor('HostMLLM', 'batch.imageFeatures', batch.imageFeatures, { rank: 3, dtypes: ['float32'] });
    const ids = inputIds.arraySync() as number[][];
    const mask = batch.attentionMask ? (batch.attentionMask.arraySync() as number[][]) : null;
    const lengths = ids.map((row, b) => {
      if (!mask) return T;
      const n = mask[b].reduce((count, v) => count + (v ? 1 : 0), 0);
      if (mask[b].some((v, t) => (t < n) !== Boolean(v))) throw new Error(`HostMLLM: batch.attentionMask row ${b} must be right-padded (1…1 0…0), got [${mask[b]}]`);
      return n;
    });
    const cut = (rows: number[][]) => rows.map((row, b) => row.slice(0, lengths[b]));
    return {
      ids: cut(ids),
      labels: batch.labels ? cut(batch.labels.arraySync() as number[][]) : null,
      systemMask: batch.systemMask ? cut(batch.systemMask.arraySync() as number[][]) : null,
      images: batch.imageFeatures ? null : batch.images ?? null,
      imageFeatures: batch.imageFeatures ?? null,
    };
  }
}
// Not registered with tf.serialization (a host is not a tfjs-layers layer: HostLM.getConfig).

/** Argmax over V of `logits[b, rows[b]]` for each b. */
function argmaxRows(logits: tf.Tensor3D, rows: number[]): number[] {
  const [B, L, V] = logits.shape;
  const ids = tf.tidy(() => {
    const flat = tf.reshape(logits, [B * L, V]); // [B·L, V]
    const picked = tf.gather(flat, rows.map((r, b) => b * L + r)); // [B, V]
    return tf.argMax(picked, 1);
  });
  const out = Array.from(ids.dataSync());
  ids.dispose();
  return out;
}

function disposeCache(cache: LayerCache[] | null): void {
  for (const c of cache ?? []) {
    c.keys.dispose();
    c.values.dispose();
  }
}

/**
 * Images are a batch `[numImages, S, S, C]` of pixels in [0, 1]. A single image without the batch
 * dimension, `[H, W, C]`, would otherwise be counted as H images, and 0..255 pixels would pass the
 * vision tower's normalization silently and give meaningless features.
 * The range check reads one min/max pair, on cpu and wasm only (host memory, no download): on a GPU
 * backend it would stall the queue once per call, and Chromium's WebGPU cannot read back
 * synchronously at all, so there the range is not checked.
 * @throws Error naming the argument, the expected and the actual shape or range
 */
export function checkImageBatch(images: tf.Tensor, argument: string): void {
  if (!(images instanceof tf.Tensor)) {
    throw new Error(`HostMLLM: ${argument} must be a tf.Tensor4D [numImages, S, S, C] of pixels in [0, 1], got ${images === null ? 'null' : Array.isArray(images) ? 'a plain array (wrap it with tf.tensor4d)' : typeof images}`);
  }
  if (images.rank !== 4) {
    const hint = images.rank === 3 ? ` (one image without the batch dimension? pass ${argument}.expandDims(0), shape [1, ${images.shape}])` : '';
    throw new Error(`HostMLLM: ${argument} must be [numImages, S, S, C] (rank 4), got shape [${images.shape}]${hint}`);
  }
  if (images.size === 0 || !isHostMemoryBackend()) return;
  const [min, max] = tf.tidy(() => tf.stack([tf.min(images), tf.max(images)]).dataSync());
  if (!(min >= 0 && max <= 1)) {
    const hint = max > 1 && max <= 255 && min >= 0 ? ` (0..255 pixel values? divide by 255)` : '';
    throw new Error(`HostMLLM: ${argument} must hold pixel values in [0, 1], got values in [${min}, ${max}]${hint}`);
  }
}
