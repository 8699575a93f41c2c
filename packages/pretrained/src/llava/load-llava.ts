/**
 * Plain LLaVA-style HF checkpoints (LLaVA-1.5, LLaVA-Qwen2, Bunny …: `mm_projector`, `vision_tower`,
 * no paper module) as a {@link PretrainedMLLM}: `@mllm/models`' `LlavaModel`, the checkpoint's
 * tokenizer, the conversation format its authors' code uses (./conversation.ts), their image
 * preprocessing (the tower's `preprocessor_config.json`, LLaVA's pad-to-square for
 * `image_aspect_ratio: pad`), greedy decoding with the KV cache.
 *
 * Directory layout (everything local; no network):
 *
 *   <dir>/config.json, model*.safetensors   the LLaVA checkpoint (see `loadLlavaModel`)
 *   <dir>/tokenizer.json (+ tokenizer_config.json), or in `options.tokenizerDir`
 *   <tower dir>/config.json, preprocessor_config.json (+ weights when the checkpoint lacks them):
 *       `options.visionTowerDir`, else the sibling of <dir> named like `mm_vision_tower`'s last component
 */
import { assertKnownKeys, assertOptionsObject, nodeFilePromises } from '@mllm/core';
import { loadImageProcessor, loadLlavaWeights, LlavaModel, readLlavaConfigs, type HFTokenizer, type ImageProcessor } from '@mllm/models';
import type { ChatOptions, ChatResult, PretrainedMLLM, RgbImage } from '../pretrained-model.js';
import { probedConfig } from '../probed-config.js';
import { readCheckpointTokenizer } from '../tokenizer-dir.js';
import { LLAVA_CONVERSATION_STYLES, llavaPrompt, pickLlavaConversation, type LlavaConversationStyle } from './conversation.js';

/** Options of {@link loadLlava}. */
export interface LoadLlavaOptions {
  /** The vision tower's directory (default: the sibling of `dir` named like `mm_vision_tower`'s last component). */
  visionTowerDir?: string;
  /** The prompt format (default: {@link pickLlavaConversation}'s choice for the checkpoint). */
  conversation?: LlavaConversationStyle;
  /** Where `tokenizer.json` / `tokenizer_config.json` are (default `dir`), for a tokenizer kept outside the checkpoint. */
  tokenizerDir?: string;
}

const OWNER = 'loadLlava';
/** The keys of {@link LoadLlavaOptions}: any other is an error (a typo would otherwise be ignored). */
const OPTION_KEYS = ['visionTowerDir', 'conversation', 'tokenizerDir'];

/** Reads `preprocessor_config.json` from the tower directory (where LLaVA's `CLIPVisionTower` reads it), else from the checkpoint. */
async function loadProcessor(dirs: readonly string[], padToSquare: boolean): Promise<ImageProcessor> {
  const { fs, path } = await nodeFilePromises(OWNER);
  for (const dir of dirs) {
    if (await fs.stat(path.join(dir, 'preprocessor_config.json')).then(() => true, () => false)) return loadImageProcessor(dir, { padToSquare });
  }
  throw new Error(
    `${OWNER}: no preprocessor_config.json in the vision tower directory ${JSON.stringify(dirs[0])} or the checkpoint ${JSON.stringify(dirs[1])}; ` +
      `the image preprocessing (size, crop, mean, std) is read from it: copy the tower's preprocessor_config.json there`,
  );
}

function checkImages(images: readonly RgbImage[]): void {
  if (!Array.isArray(images)) throw new Error(`LlavaPretrained.chat: images must be an array of RGB images, got ${typeof images}`);
  images.forEach((image, i) => {
    const ok = image && Number.isInteger(image.height) && Number.isInteger(image.width) && image.height > 0 && image.width > 0 && image.data instanceof Float32Array;
    if (!ok) throw new Error(`LlavaPretrained.chat: images[${i}] must be { height, width, data: Float32Array } (RGB in [0, 1]), got ${JSON.stringify(image)?.slice(0, 80)}`);
    if (image.data.length !== image.height * image.width * 3) {
      throw new Error(`LlavaPretrained.chat: images[${i}].data must hold height · width · 3 = ${image.height * image.width * 3} values, got ${image.data.length}`);
    }
  });
}

/** A loaded plain LLaVA checkpoint; see the module comment. */
export class LlavaPretrained implements PretrainedMLLM {
  readonly kind = 'llava' as const;

  /** @param conversation the prompt format; see ./conversation.ts. */
  constructor(
    readonly directory: string,
    readonly model: LlavaModel,
    readonly tokenizer: HFTokenizer,
    readonly imageProcessor: ImageProcessor,
    readonly conversation: LlavaConversationStyle,
  ) {}

  /**
   * One user turn with `images` (an `<image>\n` each, before the question) → the greedy answer, decoded
   * without special tokens and trimmed (LLaVA's `batch_decode(…, skip_special_tokens=True)[0].strip()`).
   * Generation stops at the format's stop tokens ({@link llavaPrompt}'s `stopIds`), which are not part of
   * the answer. Keeps `tf.memory().numTensors` flat.
   */
  async chat(question: string, images: readonly RgbImage[], options: ChatOptions = {}): Promise<ChatResult> {
    checkImages(images);
    const maxNewTokens = options.maxNewTokens ?? 128;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new Error(`LlavaPretrained.chat: options.maxNewTokens must be a positive integer, got ${maxNewTokens}`);
    const { inputIds, stopIds } = llavaPrompt(this.tokenizer, this.conversation, question, images.length);
    const start = performance.now();
    // prefill: until the first token is out (preprocessing, image encoding, the prompt); decode: from
    // there to the last answer token, i.e. the `tokens.length − 1` steps that produced the others
    // (a final step that produced only a stop token is not counted).
    let firstTokenAt: number | undefined;
    let lastTokenAt: number | undefined;
    const tokens: number[] = [];
    const pixelValues = images.length > 0 ? this.imageProcessor.preprocess(images) : null; // [N, 3, S, S]
    try {
      this.model.generate([inputIds], {
        pixelValues,
        maxNewTokens,
        eosTokenId: stopIds,
        onToken: ([token]) => {
          const time = performance.now(); // one reading: one token gives decodeMs 0
          firstTokenAt ??= time;
          if (token == null || stopIds.includes(token)) return;
          tokens.push(token);
          lastTokenAt = time;
          options.onToken?.({ tokens: tokens.length, text: this.tokenizer.decode(tokens, { skipSpecialTokens: true }) });
        },
      });
    } finally {
      pixelValues?.dispose();
    }
    const end = performance.now();
    return {
      text: this.tokenizer.decode(tokens, { skipSpecialTokens: true }).trim(),
      tokens,
      promptTokens: inputIds.length + images.length * (this.imageTokensPerImage - 1),
      prefillMs: (firstTokenAt ?? end) - start,
      decodeMs: (lastTokenAt ?? end) - (firstTokenAt ?? end),
    };
  }

  /**
   * Rows each image becomes where its placeholder is spliced: the tower's patches, plus CLS for
   * `mm_vision_select_feature: cls_patch` (the projectors keep the row count).
   */
  get imageTokensPerImage(): number {
    return this.model.visionTower.numPatches + (this.model.visionSelectFeature === 'cls_patch' ? 1 : 0);
  }

  dispose(): void {
    this.model.dispose();
  }
}

/**
 * Loads a plain LLaVA-style checkpoint directory (see the module comment) as a {@link PretrainedMLLM}
 * of kind `'llava'`. Errors: an unknown option key, a missing tower directory, tokenizer or
 * `preprocessor_config.json`, an unknown projector or tower type, any weight mismatch (nothing is returned and nothing leaks).
 */
export async function loadLlava(dir: string, options: LoadLlavaOptions = {}): Promise<LlavaPretrained> {
  assertOptionsObject(OWNER, 'options', options as unknown); // a cast: keep options' own type
  assertKnownKeys(OWNER, options, OPTION_KEYS, { layerKeys: false }); // loader options never reach a tfjs Layer
  if (options.conversation !== undefined && !LLAVA_CONVERSATION_STYLES.includes(options.conversation)) {
    throw new Error(`${OWNER}: options.conversation must be one of ${LLAVA_CONVERSATION_STYLES.join(', ')}, got ${JSON.stringify(options.conversation)}`);
  }
  const { config, visionConfig, visionTowerDir } = await readLlavaConfigs(dir, { visionTowerDir: options.visionTowerDir, config: probedConfig(options) }, OWNER);
  const tokenizer = await readCheckpointTokenizer(OWNER, dir, options.tokenizerDir);
  if (!tokenizer) {
    throw new Error(
      `${OWNER}: ${JSON.stringify(dir)} has no tokenizer.json; copy the checkpoint's tokenizer files (tokenizer.json, ` +
        `tokenizer_config.json) there or load with { tokenizerDir } naming the directory that holds them`,
    );
  }
  const processor = await loadProcessor([visionTowerDir, dir], config.image_aspect_ratio === 'pad');
  const conversation = options.conversation ?? pickLlavaConversation(config, tokenizer);
  // What loadLlavaModel does, from the configs read above (not read again).
  const model = await loadLlavaWeights(new LlavaModel({ config, visionConfig }), dir, visionTowerDir); // strict; disposes the model on any error
  return new LlavaPretrained(dir, model, tokenizer, processor, conversation);
}
