/**
 * Parrot (AIDC-AI/Parrot, `ParrotQwen2ForCausalLM`) as a whole model from its released checkpoint directory:
 * a `LlavaModel` (Qwen2 decoder, CLIP tower, `mlp2x_gelu` projector) with Parrot's multilingual MoE attached
 * between the projector and the splice (`attachParrot`), every weight — the MoE's `model.moe_model.*` included —
 * loaded in one strict, all-or-nothing load.
 *
 *   <dir>/config.json                 `model_type` parrot_qwen2: the Qwen2 keys, `mm_*` and `moe_*` keys
 *   <dir>/model-0000i-of-0000n.safetensors + model.safetensors.index.json   (F32, F16 or BF16)
 *   <dir>/tokenizer.json, tokenizer_config.json                            (for `chat`; or `options.tokenizerDir`)
 *   <tower dir>/config.json, preprocessor_config.json                      (`mm_vision_tower`'s directory)
 *
 * What the authors' code implies, set by the loader (each also read from the config where it has a key):
 *
 * - **MoE from the `moe_*` keys** (`parseReferenceConfig` of @mllm/parrot): `num_experts`, `moe_intermediate_size`,
 *   `use_moe` (false = stage 1: identity), `use_moe_residual`; `moe_hidden_size` must equal `hidden_size`.
 * - **α fallback**: `moe.py` reads `getattr(config, 'moe_weight', 1.0)`, so a config without `moe_weight` runs
 *   with α = 1.0, not the 0.1 of training; mirrored (with a one-time warning), `options.missingMoeWeight` overrides.
 * - **Dense routing**: the reference softmaxes over every expert; `moe_top_k` is stored but never read, so it is
 *   ignored here too (`topK` null).
 * - **Several images in one prompt** (`multiImage: 'reference'`): `prepare_inputs_labels_for_multimodal` runs the
 *   MoE once per sample, on the sample's first image, and splices **zeros** for its later images (their slots in
 *   a zero-initialised buffer are never written). `options.multiImage: 'clean'` routes every image instead.
 * - **The MoE's text** is every text token of the prompt (system turn, chat markup, question; not the image
 *   placeholders): at inference `labels` is None, so the reference's question mask is all true.
 * - **CLIP layer −2 with CLS, no `post_layernorm`** (`mm_vision_select_layer` −2, `mm_vision_select_feature`
 *   `cls_patch`, from the config; `CLIPVisionTower.feature_select` reads `hidden_states[−2]`, which never passes
 *   the post-norm): the CLS row is the MoE's query, so anything but `cls_patch` is refused.
 * - **Right padding, positions 0.. per sample** (`tokenizer_padding_side` right), as `LlavaModel` builds them.
 * - **Tower directory**: `mm_vision_tower` is a path on the authors' machine (e.g.
 *   `/playgound/models/clip-vit-large-patch14-336`): `options.visionTowerDir`, else the sibling directory named
 *   after its last component. Its `config.json` gives the tower's architecture; its weights are the checkpoint's
 *   copy (`model.vision_tower.vision_tower.*`, which `from_pretrained` loads over the tower directory's).
 * - **Chat** (`chat`): the authors' `QwenConversationFormatter.format_query` (Qwen2 ChatML, default system prompt
 *   `You are a helpful assistant.`, each image as `<image>\n` before the question), eos `<|im_end|>` and pad
 *   `<|endoftext|>` (the tokenizer overrides of `ParrotQwen2ForCausalLM.build`), greedy decoding, the answer
 *   decoded without special tokens and stripped (VLMEvalKit's `Parrot.generate_inner`).
 */
import { assertKnownKeys, assertOptionsObject, describeValue, nodeFilePromises } from '@mllm/core';
import {
  loadImageProcessor, loadLlavaWeights, LlavaModel, PREPROCESSOR_CONFIG_FILE, readLlavaConfigs, type HFTokenizer,
  type ImageProcessor,
  ModelInputError,
} from '@mllm/models';
import { attachParrot, parseReferenceConfig, type AttachedParrot } from '@mllm/parrot';
import type { ChatOptions, ChatResult, PretrainedMLLM, RgbImage } from '../pretrained-model.js';
import { LlavaPretrained } from '../llava/load-llava.js';
import { readCheckpointTokenizer } from '../tokenizer-dir.js';
import { probedConfig } from '../probed-config.js';

const OWNER = 'loadParrot';

/** Options of {@link loadParrot}. */
export interface LoadParrotOptions {
  /** The CLIP tower directory (default: the sibling of `dir` named after `mm_vision_tower`'s last component). */
  visionTowerDir?: string;
  /**
   * α when the config has no `moe_weight` (default 1.0, the reference module's `getattr` fallback, with a
   * one-time warning; pass 0.1 for the training value or 1.0 to keep the fallback quietly).
   */
  missingMoeWeight?: number;
  /**
   * Prompts with several images: `reference` (default) splices zeros for every image after a sample's first, as
   * the authors' code does; `clean` runs each image through the MoE with its sample's text.
   */
  multiImage?: 'reference' | 'clean';
  /** Where `tokenizer.json` / `tokenizer_config.json` are (default `dir`), for a tokenizer kept outside the checkpoint. */
  tokenizerDir?: string;
}

const OPTION_KEYS = ['visionTowerDir', 'missingMoeWeight', 'multiImage', 'tokenizerDir'];

/** A loaded Parrot checkpoint (see the file comment for what the loader sets). */
export class PretrainedParrot implements PretrainedMLLM {
  readonly kind = 'parrot' as const;
  /** The checkpoint directory and the tower directory it was loaded from. */
  readonly directory: string;
  readonly visionTowerDir: string;
  /** The whole model: its state dict holds every checkpoint name, `model.moe_model.*` included. */
  readonly model: LlavaModel;
  /** The attached MoE (`parrot.module` is the `ParrotMoE`; `parrot.config` its settings). */
  readonly parrot: AttachedParrot;
  /**
   * The checkpoint's tokenizer (from `options.tokenizerDir` when given), or null when the directory has no
   * `tokenizer.json` (then `chat` is unavailable).
   */
  readonly tokenizer: HFTokenizer | null;
  /**
   * The tower directory's CLIP processor (`preprocessor_config.json`, as `CLIPVisionTower.load_model` reads it),
   * with LLaVA's pad-to-square when `image_aspect_ratio` is `pad`; null when the file is absent (then `chat` is
   * unavailable).
   */
  readonly imageProcessor: ImageProcessor | null;

  /** @internal Use {@link loadParrot}. */
  constructor(parts: {
    directory: string; visionTowerDir: string; model: LlavaModel; parrot: AttachedParrot; tokenizer: HFTokenizer | null; imageProcessor: ImageProcessor | null;
  }) {
    this.directory = parts.directory;
    this.visionTowerDir = parts.visionTowerDir;
    this.model = parts.model;
    this.parrot = parts.parrot;
    this.tokenizer = parts.tokenizer;
    this.imageProcessor = parts.imageProcessor;
  }

  /**
   * One user turn → Parrot's greedy answer, as the authors' inference runs it (`TestRunner` / VLMEvalKit's
   * `Parrot`): `QwenConversationFormatter.format_query` with one `<image>\n` per image before the question
   * (`llavaPrompt` style `chatml`), the images through the tower's CLIP processor (after LLaVA's `expand2square`
   * with the mean colour when the config's `image_aspect_ratio` is `pad`), greedy decoding with the KV cache until
   * `<|im_end|>` (the eos `ParrotQwen2ForCausalLM.build` sets) or `maxNewTokens`, the answer decoded without special
   * tokens and stripped. The MoE runs at the prefill. Runs as `LlavaPretrained.chat` does on this model.
   */
  async chat(question: string, images: readonly RgbImage[], options: ChatOptions = {}): Promise<ChatResult> {
    const owner = 'PretrainedParrot.chat';
    const tokenizer = this.requireTokenizer(owner);
    if (!this.imageProcessor) {
      throw new ModelInputError(`${owner}: ${JSON.stringify(this.visionTowerDir)} has no preprocessor_config.json; copy the tower's processor config there`);
    }
    return new LlavaPretrained(this.directory, this.model, tokenizer, this.imageProcessor, 'chatml').chat(question, images, options);
  }

  private requireTokenizer(owner: string): HFTokenizer {
    if (!this.tokenizer) {
      throw new ModelInputError(`${owner}: ${JSON.stringify(this.directory)} has no tokenizer.json; copy the checkpoint's tokenizer files there or load with { tokenizerDir }`);
    }
    return this.tokenizer;
  }

  /** Dispose the model's tensors and the MoE's (an attached module is owned by its caller, here this object). */
  dispose(): void {
    this.parrot.remove();
    this.model.dispose();
    this.parrot.module.dispose();
  }
}

/**
 * `fromPretrained` for Parrot: reads `<dir>/config.json` (`model_type` `parrot_qwen2`, with `moe_*` keys) and the
 * tower directory's, builds the `LlavaModel`, attaches the MoE with the reference's behaviour (see the file
 * comment), and loads every weight strictly in one load. Missing or extra weights (e.g. no `model.moe_model.*`),
 * a missing tower directory, or a config that is not Parrot's are clear errors; on any error nothing is returned
 * and nothing leaks. Node only; everything is read from local directories.
 *
 * @example
 * ```ts
 * const parrot = await loadParrot('models/Parrot-7B'); // tower in models/clip-vit-large-patch14-336
 * const { text } = await parrot.chat('What is in the picture?', [image]);
 * ```
 */
export async function loadParrot(dir: string, options: LoadParrotOptions = {}): Promise<PretrainedParrot> {
  assertOptionsObject(OWNER, 'options', options as unknown);
  assertKnownKeys(OWNER, options, OPTION_KEYS, { layerKeys: false }); // loader options never reach a tfjs Layer
  const multiImage = options.multiImage ?? 'reference';
  if (multiImage !== 'reference' && multiImage !== 'clean') {
    throw new Error(`${OWNER}: options.multiImage must be 'reference' or 'clean', got ${describeValue(options.multiImage)}`);
  }
  const { config, visionConfig, visionTowerDir } = await readLlavaConfigs(dir, { visionTowerDir: options.visionTowerDir, config: probedConfig(options) }, OWNER);
  if (config.moe_hidden_size === undefined || config.num_experts === undefined) {
    throw new Error(
      `${OWNER}: ${JSON.stringify(dir)}'s config.json has no moe_hidden_size / num_experts, so it is not a Parrot checkpoint ` +
        `(model_type ${describeValue(config.model_type)}); load a plain LLaVA checkpoint with loadLlavaModel`,
    );
  }
  const parsed = parseReferenceConfig(config, options.missingMoeWeight === undefined ? {} : { missingMoeWeight: options.missingMoeWeight });
  if (parsed.args.hiddenSize !== config.hidden_size) {
    throw new Error(`${OWNER}: moe_hidden_size must equal hidden_size ${describeValue(config.hidden_size)} (the MoE works on projected tokens), got ${parsed.args.hiddenSize}`);
  }
  const tokenizer = await readCheckpointTokenizer(OWNER, dir, options.tokenizerDir);
  const imageProcessor = await readImageProcessor(visionTowerDir, config.image_aspect_ratio === 'pad');
  const model = new LlavaModel({ config, visionConfig });
  let parrot: AttachedParrot;
  try {
    const { hiddenSize: _, ...build } = parsed.args;
    parrot = attachParrot(model, { ...build, topK: null, multiImage });
  } catch (error) {
    model.dispose();
    throw error;
  }
  try {
    await loadLlavaWeights(model, dir, visionTowerDir); // strict; disposes the model on any error
  } catch (error) {
    parrot.module.dispose();
    throw error;
  }
  return new PretrainedParrot({ directory: dir, visionTowerDir, model, parrot, tokenizer, imageProcessor });
}

async function exists(dir: string, file: string): Promise<boolean> {
  const { fs, path } = await nodeFilePromises(OWNER);
  return fs.stat(path.join(dir, file)).then(() => true, () => false);
}

/** The tower's image processor, or null when it has no `preprocessor_config.json` (a bad file is still an error). */
async function readImageProcessor(towerDir: string, padToSquare: boolean): Promise<ImageProcessor | null> {
  return (await exists(towerDir, PREPROCESSOR_CONFIG_FILE)) ? loadImageProcessor(towerDir, { padToSquare }) : null;
}
