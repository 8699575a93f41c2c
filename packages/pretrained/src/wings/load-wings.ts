/**
 * `loadWings(dir)`: a Wings checkpoint directory as the authors release it → the authors' model, a
 * `LlavaModel` (SigLIP tower without its last layer, `mlp2x_gelu` projector, HF Qwen2 / LLaMA decoder) with
 * Wings' learners attached (`attachWings`), computing what `WingsQwen2ForCausalLM.forward` computes:
 *
 *   per chosen layer ℓ, after the main attention residual:
 *     h ← h + 2·(w_v·attn_pool(h, V) + w_t·attn_t_pool(h, T))        (w_v, w_t) = reweight_module(P_ℓ)
 *   V: the projected image tokens at their positions; T: the text embeddings of the reference's key lists
 *   (`system_prompt_length` leading tokens left out of image samples), masked by column index as the
 *   reference does; a batch without images: h ← h + attn_t_pool(h, T), no router.
 *
 * Every `referenceCompat` switch of @mllm/wings is on by default (`REFERENCE_COMPAT`: the doubled update,
 * the text keys and mask as the reference builds them, the router-less text-only path), because the released
 * weights were trained with them; `referenceCompat: 'clean'` runs the clean design instead (other logits).
 *
 * From the checkpoint (see checkpoint.ts): `config.json` (the LLaVA keys, `lora_dim`, `system_prompt_length`,
 * `image_token_length`), the weights of `model.safetensors` / `model-000*.safetensors` (the files the authors'
 * loader globs), the learner layers, stage, rank and router width from the weight names and shapes
 * (`wingsCheckpointShape`). The tower's architecture comes from the tower directory (`visionTowerDir`, else the
 * sibling directory named like `mm_vision_tower`'s last component); its weights from the checkpoint's
 * `model.vision_tower.vision_tower.*`, else from that directory.
 */
import { assertKnownKeys, assertOptionsObject, describeValue, disposeStateDict, loadShardedCheckpoint, loadStateDict, type StateDict } from '@mllm/core';
import {
  LLAVA_VISION_TOWER_PREFIX,
  LlavaModel,
  ModelInputError,
  clipImageProcessor,
  isIgnoredLlavaTensor,
  readLlavaConfigs,
  siglipImageProcessor,
  type HFTokenizer,
  type ImageProcessor,
} from '@mllm/models';
import { attachWings, wingsCheckpointShape, type AttachedWings, type WingsConfig } from '@mllm/wings';
import type { ChatOptions, ChatResult, PretrainedMLLM, RgbImage } from '../pretrained-model.js';
import { readWingsWeights, resolveWingsCheckpointConfig, type WingsCheckpointConfig } from './checkpoint.js';
import { wingsPrompt } from './prompt.js';
import { readCheckpointTokenizer } from '../tokenizer-dir.js';
import { probedConfig } from '../probed-config.js';

const OWNER = 'loadWings';

export interface LoadWingsOptions {
  /** The vision tower directory (default: the sibling of `dir` named like the last component of `mm_vision_tower`). */
  visionTowerDir?: string;
  /**
   * `'reference'` (default: every switch, as the released weights were trained and evaluated), `'clean'`
   * (the clean design, which changes the logits) or single switches (`@mllm/wings`' `ReferenceCompat`).
   */
  referenceCompat?: WingsConfig['referenceCompat'];
  /** Overrides `config.json`'s `system_prompt_length` (tokens before the user's text: 14 for the released Qwen1.5 template). */
  systemPromptLength?: number;
  /** Where `tokenizer.json` / `tokenizer_config.json` are (default `dir`; the base LLM's directory when the checkpoint has none). */
  tokenizerDir?: string;
}

const OPTION_KEYS = ['visionTowerDir', 'referenceCompat', 'systemPromptLength', 'tokenizerDir'];

/** A loaded Wings checkpoint (`kind: 'wings'`): the model with its learners, the tokenizer, the authors' prompt. */
export class WingsModel implements PretrainedMLLM {
  readonly kind = 'wings' as const;
  constructor(
    readonly directory: string,
    /** The LLaVA host with the learners attached (its state dict uses the checkpoint's names). */
    readonly model: LlavaModel,
    /** The attached learners (`@mllm/wings`' `attachWings` result). */
    readonly wings: AttachedWings,
    /** The checkpoint's Wings keys. */
    readonly config: WingsCheckpointConfig,
    /** The checkpoint's tokenizer, or null when `tokenizer.json` is absent (then `chat` needs `tokenizerDir`). */
    readonly tokenizer: HFTokenizer | null,
  ) {}

  /**
   * One user turn → the greedy answer, as `infer.py`'s `generate_vqa` builds it: the prompt of `wingsPrompt`
   * (`<image>` placed by `replace_image_token`), the image through `imageProcessor` (`process_images`: pad to
   * square with the mean colour when `image_aspect_ratio` is `pad`, then the tower's processor), greedy
   * decoding that re-runs the whole sequence each step (the reference's generate keeps no KV cache), stopped at
   * the eos ids, the answer decoded without special tokens and trimmed. Wings' inference takes one image;
   * with none the question is asked as text only (no `<image>` is added).
   */
  async chat(question: string, images: readonly RgbImage[], options: ChatOptions = {}): Promise<ChatResult> {
    const owner = 'WingsModel.chat';
    if (typeof question !== 'string') throw new Error(`${owner}: question must be a string, got ${describeValue(question)}`);
    if (!Array.isArray(images)) throw new Error(`${owner}: images must be an array of RGB images, got ${describeValue(images)}`);
    if (images.length > 1) throw new ModelInputError(`${owner}: images must hold at most one image (Wings' infer.py passes the first image only), got ${images.length}`);
    if (options === null || typeof options !== 'object') throw new Error(`${owner}: options must be an object, got ${describeValue(options)}`);
    const tokenizer = this.tokenizer;
    if (!tokenizer) {
      throw new ModelInputError(`${owner}: ${JSON.stringify(this.directory)} has no tokenizer.json; load with { tokenizerDir } (the base LLM's directory, e.g. Qwen1.5-7B-Chat)`);
    }
    const maxNewTokens = options.maxNewTokens ?? 128;
    const { inputIds } = wingsPrompt(tokenizer, this.config.modelType, question, images.length === 1);
    const eos = this.eosTokenIds;
    // ChatResult's clocks (as LlavaPretrained.chat): prefill from here to the first token (preprocessing, image
    // encoding, the prompt); decode from the first to the last answer token (a final eos-only step not counted).
    const started = performance.now();
    let firstTokenAt: number | undefined;
    let lastTokenAt: number | undefined;
    const answer: number[] = [];
    const pixelValues = images.length === 1 ? this.imageProcessor.preprocess(images[0]!) : null; // [1, 3, S, S]
    try {
      this.model.generate([inputIds], {
        pixelValues,
        maxNewTokens,
        eosTokenId: eos,
        onToken: ([token]) => {
          const time = performance.now();
          firstTokenAt ??= time;
          if (token == null || eos.includes(token)) return; // progress counts answer tokens only
          answer.push(token);
          lastTokenAt = time;
          options.onToken?.({ tokens: answer.length, text: tokenizer.decode(answer, { skipSpecialTokens: true }) });
        },
      });
      const end = performance.now();
      const imageTokens = pixelValues ? this.config.imageTokenLength : 0;
      return {
        text: tokenizer.decode(answer, { skipSpecialTokens: true }).trim(),
        tokens: answer,
        promptTokens: inputIds.length - (pixelValues ? 1 : 0) + imageTokens,
        prefillMs: (firstTokenAt ?? end) - started,
        decodeMs: (lastTokenAt ?? end) - (firstTokenAt ?? end),
      };
    } finally {
      pixelValues?.dispose();
    }
  }

  /**
   * The image preprocessing of `process_images` for this checkpoint's tower: SigLIP's processor as Wings vendors
   * it (resize to the tower's size, mean = std = 0.5; so400m: 384 px) or CLIP's (shortest edge and crop at the
   * tower's size), with LLaVA's pad-to-square first when `image_aspect_ratio` is `pad` (the released setting).
   */
  get imageProcessor(): ImageProcessor {
    const size = this.model.visionTower.visionConfig.imageSize;
    const padToSquare = this.model.llavaConfig.imageAspectRatio === 'pad';
    return this.model.visionTowerType === 'siglip'
      ? siglipImageProcessor({ size, padToSquare })
      : clipImageProcessor({ shortestEdge: size, cropSize: size, padToSquare });
  }

  /** The ids greedy decoding stops at: `config.json`'s `eos_token_id` and the tokenizer's eos (Wings sets `<|im_end|>` for Qwen). */
  get eosTokenIds(): number[] {
    const fromConfig = this.model.configJson.eos_token_id;
    const ids = Array.isArray(fromConfig) ? fromConfig : typeof fromConfig === 'number' ? [fromConfig] : [];
    const eos = this.tokenizer?.eosId ?? -1;
    return [...new Set([...(ids as number[]), ...(eos >= 0 ? [eos] : [])])];
  }

  dispose(): void {
    this.wings.remove();
    this.wings.module.dispose();
    this.model.dispose();
  }
}

/** The visual tokens per image the tower gives (its patch count; + CLS for CLIP `cls_patch`). */
function tokensPerImage(model: LlavaModel): number {
  const { imageSize, patchSize } = model.visionTower.visionConfig;
  return Math.floor(imageSize / patchSize) ** 2 + (model.visionSelectFeature === 'cls_patch' ? 1 : 0);
}

/** The checkpoint's tensors plus, when it lacks the tower's, the tower directory's under the checkpoint prefix. */
async function checkpointTensors(dir: string, visionTowerDir: string, model: LlavaModel): Promise<StateDict> {
  const tensors = await readWingsWeights(dir);
  const prefix = `${LLAVA_VISION_TOWER_PREFIX}.`;
  if ([...tensors.keys()].some((name) => name.startsWith(prefix))) return tensors;
  try {
    const { tensors: tower } = await loadShardedCheckpoint(visionTowerDir);
    for (const [name, t] of tower) tensors.set(prefix + name, t);
  } catch (error) {
    disposeStateDict(tensors);
    throw error;
  }
  return tensors;
}

/**
 * Loads a Wings checkpoint directory (`model_type` `wings_qwen2` or `wings_llama`): see the file comment.
 * All or nothing: a missing or extra tensor, a wrong shape, a checkpoint without learner weights, a tower whose
 * patch count is not `image_token_length` are errors naming what is wrong; nothing is returned, nothing leaks.
 */
export async function loadWings(dir: string, options: LoadWingsOptions = {}): Promise<WingsModel> {
  assertOptionsObject(OWNER, 'options', options as unknown); // a cast: keep options' own type
  assertKnownKeys(OWNER, options, OPTION_KEYS, { layerKeys: false }); // loader options never reach a tfjs Layer
  const { config, visionConfig, visionTowerDir } = await readLlavaConfigs(dir, { visionTowerDir: options.visionTowerDir, config: probedConfig(options) }, OWNER);
  const wingsConfig = resolveWingsCheckpointConfig(config);
  const tokenizer = await readCheckpointTokenizer(OWNER, dir, options.tokenizerDir);
  // `mm_hidden_size` is not the tower's width in Wings' configs (see checkpoint.ts): the tower directory's
  // hidden_size is, and the strict load checks the projector's weight against it.
  const { mm_hidden_size: _ignored, ...llavaJson } = config;
  const model = new LlavaModel({ config: llavaJson, visionConfig });
  let tensors: StateDict | null = null;
  let attached: AttachedWings | null = null;
  try {
    const perImage = tokensPerImage(model);
    if (perImage !== wingsConfig.imageTokenLength) {
      throw new Error(
        `${OWNER}: config.json image_token_length ${wingsConfig.imageTokenLength} must equal the tower's visual tokens per image, ` +
          `(image_size ${model.visionTower.visionConfig.imageSize} / patch_size ${model.visionTower.visionConfig.patchSize})² = ${perImage} ` +
          `(Wings' SigLipVisionTower asserts 27 × 27 = 729 for so400m at 384 px, and the learners place each image's keys by image_token_length)`,
      );
    }
    tensors = await checkpointTensors(dir, visionTowerDir, model);
    const shape = wingsCheckpointShape(tensors, dir);
    if (shape.rank !== wingsConfig.loraDim) {
      throw new Error(`${OWNER}: config.json lora_dim ${wingsConfig.loraDim} differs from the learners' rank ${shape.rank} in the weights`);
    }
    attached = attachWings(model, {
      stage: shape.stage,
      rank: shape.rank,
      layers: shape.layers,
      routerMaxLength: shape.routerMaxLength,
      referenceCompat: options.referenceCompat ?? 'reference',
      systemPromptLength: options.systemPromptLength ?? wingsConfig.systemPromptLength,
    });
    const used = new Map([...tensors].filter(([name]) => !isIgnoredLlavaTensor(name, model)));
    loadStateDict(model, used, { strict: true });
  } catch (error) {
    if (attached) {
      attached.remove();
      attached.module.dispose();
    }
    model.dispose();
    throw error;
  } finally {
    if (tensors) disposeStateDict(tensors);
  }
  return new WingsModel(dir, model, attached, wingsConfig, tokenizer);
}

