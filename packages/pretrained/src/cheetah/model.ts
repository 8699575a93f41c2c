/**
 * The whole Cheetah model (DCDmllm/Cheetah, `Cheetah_Vicuna` / `Cheetah_Llama2`) as its inference code runs it:
 *
 *   F_k  = visual_encoder(x_k)                         EVA ViT-g, [n, 1+P, Dv]           (x_k [3, S, S], BLIP-2 eval transform)
 *   V_k  = llama_proj(Qformer(query_tokens, ln_vision(F_k)))                            [n, Nq, H] (`encode_img`)
 *   h_0  = segment embeddings and V_k spliced as `prompt_process` / `Chat.batch_get_context_emb` lay them out
 *   h    = LLaMA layers; at the input of layer `updateLayer` (prefill only) VPG-C adds
 *          llm_proj(Qformer(query_tokens' + qformer_proj(h[b, t_b]), ln_vision(F_k))) on image k's span,
 *          t_b the guidance token (`input_part_targets_len`: the last context position in `Chat`)
 *   logits = lm_head(norm(h))
 *
 * State-dict names are the Cheetah checkpoint's: `visual_encoder.*`, `ln_vision.*`, `Qformer.*`, `query_tokens`,
 * `llama_proj.*`, `llama_model.{model.*, lm_head.weight}` (HF LLaMA under `llama_model.`), and VPG-C's
 * `llama_model.model.{query_tokens, qformer_proj.*, llm_proj.*}`. The reference's second name of the Q-Former,
 * `llama_model.model.Qformer.*` (the same module registered twice), is read as an alias by `loadCheetah`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, assertTensor, describeValue, gatherRows, type ImageSpan, type Parameter } from '@mllm/core';
import { EVAVisionTransformer, HFCausalLM, disposeHFCache, resolveHFDecoderConfig, type EVAVisionConfigJson, type HFKVCache } from '@mllm/models';
import { QFormerVPG, attachVPGC, type AttachedVPGC, type QFormerConfig, type VPGC } from '@mllm/vpgc';

/** The reference's `update_layer`: `Chat.answer` / `batch_answer`'s default, whatever the config says. */
export const CHEETAH_UPDATE_LAYER = 16;

/**
 * How a batch of prompts is laid out, as the two reference code paths do it:
 * - `'chat'`: `Chat.batch_get_context_emb` (`batch_answer`; `answer` is its one-sample case): each text
 *   segment left-padded to the batch's longest, BOS already in the first segment's ids, positions
 *   `cumsum(mask) − 1` as HF `generate` makes them, guidance token the last position `L − 1`;
 * - `'prompt_process'`: `Cheetah_Vicuna.prompt_process` + `forward`: BOS prepended, each segment right-padded,
 *   positions `0 … L−1` counting through the padding (no `position_ids` reach the LLM), guidance token the
 *   last real token of each sample.
 */
export type CheetahLayout = 'chat' | 'prompt_process';

export interface CheetahModelArgs {
  /** The LLM's HF `config.json` (LLaMA). */
  llmConfig: Record<string, unknown>;
  /** EVA ViT shape (default: ViT-g as `create_eva_vit_g` builds it, at `imageSize`). */
  visionConfig?: EVAVisionConfigJson;
  /** The ViT input size (`model.image_size`, 224); ignored when `visionConfig.img_size` is set. */
  imageSize?: number;
  /** Q-Former sizes (default BERT-base as `init_Qformer` reads it; `encoderWidth` follows the ViT). */
  qformerConfig?: Partial<QFormerConfig>;
  /** `num_query_token` (32). */
  numQueryTokens?: number;
  /** 0-based decoder layer at whose input VPG-C runs (default {@link CHEETAH_UPDATE_LAYER}). */
  updateLayer?: number;
  /** Keep the Q-Former's dropout on at inference, as the reference (which never calls `.eval()`) does. Default false. */
  dropoutAtInference?: boolean;
  /**
   * Token id of segment padding (its embedding fills the padded slots): Cheetah-Vicuna pads with EOS
   * (`pad_token = eos_token`, the default here), Cheetah-LLaMA-2 with UNK 0 (`pad_token = unk_token`).
   */
  padTokenId?: number;
}

/** A batch laid out for the LLM (what `prepare` returns; the caller disposes `inputsEmbeds` and `imageFeatures`). */
export interface CheetahBatch {
  /** `[B, L, H]` text embeddings with the image tokens spliced in. */
  inputsEmbeds: tf.Tensor3D;
  /** `[B][L]` 1 = real token. */
  attentionMask: number[][];
  /** `[B][L]` rotary positions. */
  positionIds: number[][];
  /** Per sample, its images' spans (image `b·n + i` is sample b's i-th). */
  imageSpans: ImageSpan[][];
  /** `[B]` the VPG-C guidance token. */
  lastPromptIndex: number[];
  /** `[B·n, 1+P, Dv]` the ViT's output (before `ln_vision`), what VPG-C re-queries. */
  imageFeatures: tf.Tensor3D;
  /** `[B][L]` token ids (image positions 0), for reference. */
  tokenIds: number[][];
}

export interface CheetahInputs {
  /** Per sample, the token ids of its `n + 1` text segments around its `n` images (every sample has `n`). */
  segments: number[][][];
  /** `[B·n, 3, S, S]` normalised pixel values (channels first, as the reference), sample-major. */
  pixelValues: tf.Tensor4D;
  /** Default `'chat'`. */
  layout?: CheetahLayout;
}

export interface CheetahGenerateOptions {
  maxNewTokens: number;
  /** Token ids that end a sample (default the LLM config's `eos_token_id`). */
  eosTokenId?: number | number[];
  /** Stop a sample when its tokens end with one of these sequences (Vicuna's `###`: `[835]` or `[2277, 29937]`). */
  stopSequences?: number[][];
  /** Called after each step with the tokens so far per sample. */
  onStep?: (tokens: number[][]) => void;
}

function int(value: unknown, fallback: number): number {
  return typeof value === 'number' && Number.isInteger(value) ? value : fallback;
}

export class CheetahModel extends Module {
  static readonly className = 'CheetahModel';
  readonly visualEncoder: EVAVisionTransformer;
  readonly vpg: QFormerVPG;
  readonly llamaModel: HFCausalLM;
  readonly vpgc: VPGC;
  readonly attached: AttachedVPGC;
  readonly updateLayer: number;
  /** `bos_token_id` (1), `eos_token_id` (2) and the segment padding id (see `CheetahModelArgs.padTokenId`). */
  readonly bosTokenId: number;
  readonly padTokenId: number;
  readonly eosTokenId: number;

  constructor(args: CheetahModelArgs) {
    super({});
    const layers = resolveHFDecoderConfig(args.llmConfig).numLayers;
    this.updateLayer = args.updateLayer ?? CHEETAH_UPDATE_LAYER;
    if (!Number.isInteger(this.updateLayer) || this.updateLayer < 0 || this.updateLayer >= layers) {
      throw new Error(`CheetahModel: updateLayer must be a layer of the ${layers}-layer LLM, in [0, ${layers}), got ${describeValue(this.updateLayer)}` +
        (args.updateLayer === undefined ? ` (the reference's hard-wired ${CHEETAH_UPDATE_LAYER}; pass updateLayer for a smaller LLM)` : ''));
    }
    try {
      const vision = { ...(args.visionConfig ?? {}) };
      if (vision.img_size === undefined && args.imageSize !== undefined) vision.img_size = args.imageSize;
      this.visualEncoder = this.addModule('vision', new EVAVisionTransformer({ config: vision, withLnVision: false }));
      const dv = this.visualEncoder.visionConfig.hiddenSize;
      this.llamaModel = this.addModule('llm', new HFCausalLM({ config: args.llmConfig }));
      if (this.llamaModel.hfConfig.modelType !== 'llama') {
        throw new Error(`CheetahModel: the LLM must be a LLaMA (Vicuna / LLaMA-2), got model_type ${JSON.stringify(this.llamaModel.hfConfig.modelType)}`);
      }
      this.vpg = this.addModule('vpg', new QFormerVPG({
        qformer: { ...(args.qformerConfig ?? {}), encoderWidth: dv },
        numQueryTokens: args.numQueryTokens ?? 32,
        llmHiddenSize: this.llamaModel.hfConfig.hiddenSize,
      }));
      this.attached = attachVPGC(this.llamaModel, { vpg: this.vpg, updateLayer: this.updateLayer, dropoutAtInference: args.dropoutAtInference ?? false });
    } catch (error) {
      this.dispose(); // the parts built so far
      throw error;
    }
    this.vpgc = this.attached.module;
    const json = args.llmConfig;
    this.bosTokenId = int(json.bos_token_id, 1);
    this.eosTokenId = int(json.eos_token_id, 2);
    this.padTokenId = args.padTokenId ?? this.eosTokenId;
    const V = this.llamaModel.hfConfig.vocabSize;
    if (!Number.isInteger(this.padTokenId) || this.padTokenId < 0 || this.padTokenId >= V) {
      this.dispose();
      throw new Error(`CheetahModel: padTokenId must be a token id in [0, ${V}), got ${describeValue(args.padTokenId)}`);
    }
    this.built = true;
  }

  /**
   * The reference's names: the ViT's and the VPG's own (`visual_encoder.*`, `ln_vision.*`, `Qformer.*`,
   * `query_tokens`, `llama_proj.*`) and the LLM's under `llama_model.` (VPG-C included, as `llama_model.model.*`).
   */
  override namedParameters(prefix = ''): Array<[string, Parameter]> {
    return [
      ...this.visualEncoder.namedParameters(prefix),
      ...this.vpg.namedParameters(prefix),
      ...this.llamaModel.namedParameters(`${prefix}llama_model.`),
    ];
  }

  /** ViT input size `S`. */
  get imageSize(): number {
    return this.visualEncoder.visionConfig.imageSize;
  }

  /** `Nq` image tokens per image. */
  get numQueryTokens(): number {
    return this.vpg.numQueryTokens;
  }

  /**
   * `encode_img`: pixels `[n, 3, S, S]` (normalised, channels first) → image tokens `[n, Nq, H]` and the ViT output
   * `[n, 1+P, Dv]` (before `ln_vision`; VPG-C normalises it again, as the reference re-uses `ln_vision`'s output).
   */
  encodeImages(pixelValues: tf.Tensor4D): { imageEmbeds: tf.Tensor3D; features: tf.Tensor3D } {
    this.assertUsable();
    const S = this.imageSize;
    assertTensor('CheetahModel.encodeImages', 'pixelValues', pixelValues, { rank: 4, dtypes: ['float32'] });
    if (pixelValues.shape[1] !== 3 || pixelValues.shape[2] !== S || pixelValues.shape[3] !== S) {
      throw new Error(`CheetahModel.encodeImages: pixelValues must be [numImages, 3, ${S}, ${S}] (channels first, as the reference), got [${pixelValues.shape}]`);
    }
    const features = tf.tidy(() => this.visualEncoder.forward(tf.transpose(pixelValues, [0, 2, 3, 1]) as tf.Tensor4D)); // NCHW → NHWC; [n, 1+P, Dv]
    const imageEmbeds = this.vpg.forward(features); // [n, Nq, H]
    return { imageEmbeds, features };
  }

  /**
   * Lay out a batch as the reference does (`layout`, see {@link CheetahLayout}): segments and images interleaved,
   * padding per segment, positions, image spans and guidance tokens.
   */
  prepare(inputs: CheetahInputs): CheetahBatch {
    this.assertUsable();
    const owner = 'CheetahModel.prepare';
    const layout = inputs.layout ?? 'chat';
    if (layout !== 'chat' && layout !== 'prompt_process') throw new Error(`${owner}: layout must be 'chat' or 'prompt_process', got ${describeValue(layout)}`);
    const { segments } = inputs;
    if (!Array.isArray(segments) || segments.length === 0 || !segments.every((s) => Array.isArray(s) && s.every((seg) => Array.isArray(seg)))) {
      throw new Error(`${owner}: segments must be one list of token-id segments per sample, got ${describeValue(segments)}`);
    }
    const B = segments.length;
    const numSegments = segments[0]!.length;
    if (numSegments < 1 || segments.some((s) => s.length !== numSegments)) {
      throw new Error(`${owner}: every sample must have the same number of segments (images + 1), got [${segments.map((s) => s.length).join(', ')}]`);
    }
    const n = numSegments - 1;
    assertTensor(owner, 'pixelValues', inputs.pixelValues, { rank: 4, dtypes: ['float32'] });
    if (inputs.pixelValues.shape[0] !== B * n) {
      throw new Error(`${owner}: pixelValues must hold B·n = ${B}·${n} = ${B * n} images (sample-major), got ${inputs.pixelValues.shape[0]}`);
    }
    const V = this.llamaModel.hfConfig.vocabSize;
    segments.forEach((sample, b) => sample.forEach((seg, i) => seg.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`${owner}: segments[${b}][${i}][${t}] must be a token id in [0, ${V}), got ${describeValue(id)}`);
    })));
    const Nq = this.numQueryTokens;
    // Rows of token ids, mask and per-position source: text (-1) or image row k·Nq + j.
    const ids: number[][] = Array.from({ length: B }, () => []);
    const mask: number[][] = Array.from({ length: B }, () => []);
    const imageRow: number[][] = Array.from({ length: B }, () => []);
    const imageSpans: ImageSpan[][] = Array.from({ length: B }, () => []);
    const push = (b: number, id: number, m: number, row = -1) => {
      ids[b]!.push(id);
      mask[b]!.push(m);
      imageRow[b]!.push(row);
    };
    if (layout === 'prompt_process') for (let b = 0; b < B; b++) push(b, this.bosTokenId, 1); // forward's bos_embeds
    for (let i = 0; i <= n; i++) {
      const width = Math.max(...segments.map((s) => s[i]!.length));
      for (let b = 0; b < B; b++) {
        const seg = segments[b]![i]!;
        const pad = width - seg.length;
        // tokenizer(padding=True): left padding in Chat (padding_side 'left'), right in prompt_process
        if (layout === 'chat') for (let t = 0; t < pad; t++) push(b, this.padTokenId, 0);
        for (const id of seg) push(b, id, 1);
        if (layout === 'prompt_process') for (let t = 0; t < pad; t++) push(b, this.padTokenId, 0);
      }
      if (i === n) break;
      for (let b = 0; b < B; b++) {
        const k = b * n + i;
        imageSpans[b]!.push({ imageIndex: k, start: ids[b]!.length, length: Nq });
        for (let j = 0; j < Nq; j++) push(b, 0, 1, k * Nq + j);
      }
    }
    const L = ids[0]!.length;
    if (mask.some((row) => row.every((m) => m === 0))) throw new Error(`${owner}: a sample has no token (empty segments and no image)`);
    const positionIds = layout === 'chat'
      ? mask.map((row) => { let next = 0; return row.map((m) => (m ? next++ : 1)); }) // generate: cumsum(mask) − 1, padding 1
      : mask.map((row) => row.map((_, t) => t)); // no position_ids: arange, through the padding
    const lastPromptIndex = layout === 'chat' ? mask.map(() => L - 1) : mask.map((row) => row.lastIndexOf(1));
    const { imageEmbeds, features } = n > 0 ? this.encodeImages(inputs.pixelValues) : { imageEmbeds: null, features: tf.zeros([0, 1, 1]) as tf.Tensor3D };
    try {
      const inputsEmbeds = tf.tidy(() => {
        const H = this.llamaModel.hfConfig.hiddenSize;
        const text = tf.reshape(this.llamaModel.embed(ids), [B * L, H]); // [B·L, H]
        if (!imageEmbeds) return tf.reshape(text, [B, L, H]) as tf.Tensor3D;
        const images = tf.reshape(imageEmbeds, [B * n * Nq, H]); // [B·n·Nq, H]
        const index = imageRow.flatMap((row, b) => row.map((r, t) => (r < 0 ? b * L + t : B * L + r)));
        return tf.reshape(gatherRows(tf.concat([text, images], 0) as tf.Tensor2D, index), [B, L, H]) as tf.Tensor3D; // [B, L, H]
      });
      return { inputsEmbeds, attentionMask: mask, positionIds, imageSpans, lastPromptIndex, imageFeatures: features, tokenIds: ids };
    } catch (error) {
      features.dispose();
      throw error;
    } finally {
      imageEmbeds?.dispose();
    }
  }

  /** One LLM pass over a prepared batch (VPG-C at `updateLayer` on this prefill): logits `[B, L, V]`, and the cache with `useCache`. */
  forwardBatch(batch: CheetahBatch, options: { useCache?: boolean } = {}): { logits: tf.Tensor3D; cache: HFKVCache | null } {
    this.assertUsable();
    const B = batch.attentionMask.length;
    const n = batch.imageFeatures.shape[0] / B;
    return this.llamaModel.forward({
      inputsEmbeds: batch.inputsEmbeds,
      attentionMask: batch.attentionMask,
      positionIds: batch.positionIds,
      useCache: options.useCache ?? false,
      context: n > 0
        ? {
            imageSpans: batch.imageSpans,
            imageToSample: Array.from({ length: B * n }, (_, k) => Math.floor(k / n)),
            imageFeatures: batch.imageFeatures,
            lastPromptIndex: batch.lastPromptIndex,
          }
        : { lastPromptIndex: batch.lastPromptIndex },
    });
  }

  /** `prepare` then one pass: logits `[B, L, V]` (rows of padding positions are not the reference's). */
  forward(inputs: CheetahInputs): tf.Tensor3D {
    const batch = this.prepare(inputs);
    try {
      return this.forwardBatch(batch).logits;
    } finally {
      batch.inputsEmbeds.dispose();
      batch.imageFeatures.dispose();
    }
  }

  /**
   * Greedy decoding as `Chat.answer` / `batch_answer` run `generate` (without sampling): the prefill with VPG-C,
   * then cached steps (VPG-C does not run again), positions continuing from each sample's last one. Returns the
   * new tokens of each sample, ending at its first eos or stop sequence (included). Each sample stops on its own:
   * `Chat`'s stopping criteria look at the first sample only and stop the whole batch there.
   */
  generate(inputs: CheetahInputs, options: CheetahGenerateOptions): number[][] {
    const owner = 'CheetahModel.generate';
    if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 1) {
      throw new Error(`${owner}: options.maxNewTokens must be a positive integer, got ${describeValue(options.maxNewTokens)}`);
    }
    const eos = options.eosTokenId === undefined ? [this.eosTokenId] : Array.isArray(options.eosTokenId) ? options.eosTokenId : [options.eosTokenId];
    const stops = options.stopSequences ?? [];
    const batch = this.prepare(inputs);
    const B = batch.attentionMask.length;
    const out: number[][] = Array.from({ length: B }, () => []);
    const done = new Array<boolean>(B).fill(false);
    const V = this.llamaModel.hfConfig.vocabSize;
    const argmaxLast = (logits: tf.Tensor3D): number[] => {
      const [, Lq] = logits.shape;
      const data = logits.dataSync();
      return out.map((_, b) => {
        const offset = (b * Lq + Lq - 1) * V;
        let best = 0;
        for (let v = 1; v < V; v++) if (data[offset + v]! > data[offset + best]!) best = v;
        return best;
      });
    };
    const take = (next: number[]) => next.map((token, b) => {
      if (done[b]) return this.padTokenId;
      out[b]!.push(token);
      const tokens = out[b]!;
      if (eos.includes(token) || stops.some((s) => s.length > 0 && s.length <= tokens.length && s.every((id, i) => tokens[tokens.length - s.length + i] === id))) done[b] = true;
      return token;
    });
    let cache: HFKVCache | null = null;
    try {
      const first = this.forwardBatch(batch, { useCache: true });
      batch.inputsEmbeds.dispose();
      batch.imageFeatures.dispose();
      cache = first.cache;
      let next = take(argmaxLast(first.logits));
      first.logits.dispose();
      options.onStep?.(out.map((t) => [...t]));
      for (let step = 1; step < options.maxNewTokens && !done.every(Boolean); step++) {
        const r = this.llamaModel.forward({ inputIds: next.map((t) => [t]), cache, useCache: true });
        disposeHFCache(cache);
        cache = r.cache;
        next = take(argmaxLast(r.logits));
        r.logits.dispose();
        options.onStep?.(out.map((t) => [...t]));
      }
    } finally {
      if (!batch.inputsEmbeds.isDisposed) batch.inputsEmbeds.dispose();
      if (!batch.imageFeatures.isDisposed) batch.imageFeatures.dispose();
      disposeHFCache(cache);
    }
    return out;
  }

  override call(): tf.Tensor {
    throw this.notALayer('use forward({ segments, pixelValues }) or generate(...) (it needs prompt segments and images)');
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    throw this.notALayer('load it with loadCheetah');
  }
}
