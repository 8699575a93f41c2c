/**
 * `loadCheetah`: Cheetah (VPG-C, DCDmllm/Cheetah) from its released files, as `test_cheetah_vicuna.py` builds it
 * (`Config.build_model_config` → `Cheetah_Vicuna.from_config` / `Cheetah_Llama2.from_config` → `Chat`), with
 * every switch the reference implies set here:
 *
 * - update layer 16 (`Chat.answer` / `batch_answer`'s default, which the reference passes to `generate` whatever
 *   the YAML's `update_layer` says); `updateLayer` sets another;
 * - the guidance token is the last context position (`input_part_targets_len = L − 1` in `Chat`);
 * - Q-Former dropout: the reference never calls `.eval()`, so it keeps dropout 0.1 at inference (its answers are
 *   random); here it is off unless `dropoutAtInference: true`;
 * - precision: the reference runs the ViT in fp16 (`vit_precision`) and the LLM in fp16; here everything runs in
 *   float32 (F16 weights are read exactly);
 * - decoding is greedy (`Chat` samples with `top_p` 0.9, temperature 1);
 * - `chat` preprocesses images with the BLIP-2 eval transform of the config (`blip2_image_eval`, `image_size`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { assertKnownKeys, assertOptionsObject, assertTensor, describeValue, nodeFilePromises } from '@mllm/core';
import { CHEETAH_IMAGE, ModelInputError, blip2ImageEvalProcessor, cheetahPrompt, loadTokenizer, type ImageProcessor, type EVAVisionConfigJson, type HFTokenizer } from '@mllm/models';
import type { QFormerConfig } from '@mllm/vpgc';
import type { ChatOptions, ChatResult, PretrainedMLLM, RgbImage } from '../pretrained-model.js';
import { CHEETAH_MODEL_CONFIGS, readCheetahConfig, type CheetahArch, type CheetahConfig, type CheetahStyle } from './config.js';
import { CheetahModel, CHEETAH_UPDATE_LAYER } from './model.js';
import { loadCheetahWeights, type CheetahWeightFiles } from './weights.js';
import { checkTokenizerDirOption, hasTokenizerJson } from '../tokenizer-dir.js';

/** Where LAVIS caches ViT-g and BLIP-2 (`download_cached_file`'s file names): the defaults beside the config. */
export const CHEETAH_EVA_FILE = 'eva_vit_g.pth';
export const CHEETAH_BLIP2_FILE = 'blip2_pretrained_flant5xxl.pth';

export interface LoadCheetahOptions {
  /**
   * The eval YAML (`eval_configs/cheetah_eval_vicuna.yaml` / `cheetah_eval_llama2.yaml`), merged over its model
   * YAML (`modelConfig`). Its `llama_model`, `q_former_model` and `ckpt` give the weight paths unless the options
   * below do. Without it, give `arch` and the paths explicitly.
   */
  config?: string;
  /** The model YAML (`cheetah/configs/models/cheetah_vicuna.yaml`); default: that file beside `config`, if there. */
  modelConfig?: string;
  /**
   * Base of the YAML's relative paths and of the default file names (`eva_vit_g.pth`, `blip2_pretrained_flant5xxl.pth`).
   * Default: `config`'s directory, else the working directory. Paths given in these options resolve as Node resolves them.
   */
  root?: string;
  /** The arch when there is no `config` (default `cheetah_vicuna`); with a `config`, it must agree. */
  arch?: CheetahArch;
  /** LAVIS' `eva_vit_g.pth` (default `<root>/eva_vit_g.pth`). */
  evaWeights?: string;
  /** BLIP-2's `blip2_pretrained_flant5xxl.pth` (default: the config's `q_former_model`, else `<root>/blip2_pretrained_flant5xxl.pth`). */
  qformerWeights?: string;
  /** The Vicuna / LLaMA-2 HF directory (default: the config's `llama_model`). */
  llamaModel?: string;
  /** The Cheetah checkpoint (default: the config's `ckpt`); `null`: none (VPG-C stays zero). */
  ckpt?: string | null;
  /** 0-based LLM layer at whose input VPG-C runs (default 16, the reference's hard-wired value). */
  updateLayer?: number;
  /** Q-Former dropout at inference, as the reference (default false: deterministic). */
  dropoutAtInference?: boolean;
  /** EVA ViT shape; default ViT-g as `create_eva_vit_g` builds it (hard-wired in the reference), at the config's `image_size`. */
  visionConfig?: EVAVisionConfigJson;
  /** Q-Former sizes; default BERT-base as `init_Qformer` reads it (hard-wired in the reference). */
  qformerConfig?: Partial<QFormerConfig>;
  /** `num_query_token` without a config (default 32). */
  numQueryTokens?: number;
  /**
   * Where `tokenizer.json` / `tokenizer_config.json` for `chat` are (default: the LLM directory), for a tokenizer
   * kept elsewhere (e.g. converted from the LLM's `tokenizer.model` into a separate directory).
   */
  tokenizerDir?: string;
}

/** What `loadCheetah` returns: a `PretrainedMLLM` plus the Cheetah-specific entry points. */
export interface PretrainedCheetah extends PretrainedMLLM {
  readonly kind: 'cheetah';
  readonly model: CheetahModel;
  /** The merged configuration (absent in the explicit form). */
  readonly config: CheetahConfig | null;
  /** Prompt style: Vicuna (`###Human:`) or LLaMA-2 (`[INST]`). */
  readonly style: CheetahStyle;
  /** The weight files it read. */
  readonly files: CheetahWeightFiles;
  /** What the loader skipped, file by file (the extra ViT block, BLIP-2's text side, …). */
  readonly notes: readonly string[];
  /** The BLIP-2 eval transform `chat` applies to its images (`pixel_values [n, 3, S, S]`). */
  readonly imageProcessor: ImageProcessor;
  /** The tokenizer (`tokenizer.json` of `options.tokenizerDir`, else of the LLM directory), loaded on first use. */
  tokenizer(): Promise<HFTokenizer>;
  /**
   * `Chat.answer(raw_img_list, context)` on preprocessed images: `context` holds `<Img><HereForImage></Img>` where
   * the images go (as the reference's examples), `pixelValues [n, 3, S, S]` the BLIP-2 eval transform's output.
   */
  answer(context: string, pixelValues: tf.Tensor4D | null, options?: ChatOptions): Promise<ChatResult>;
}

const OPTION_KEYS = ['config', 'modelConfig', 'root', 'arch', 'evaWeights', 'qformerWeights', 'llamaModel', 'ckpt', 'updateLayer',
  'dropoutAtInference', 'visionConfig', 'qformerConfig', 'numQueryTokens', 'tokenizerDir'] as const;

/**
 * Load Cheetah from local files: the LAVIS YAML config (`options.config`) and/or explicit paths of the four weight
 * files (ViT-g, BLIP-2, the LLaMA directory, the Cheetah checkpoint). No network. Node only.
 */
export async function loadCheetah(options: LoadCheetahOptions): Promise<PretrainedCheetah> {
  const owner = 'loadCheetah';
  assertOptionsObject(owner, 'options', options as unknown);
  assertKnownKeys(owner, options, OPTION_KEYS, { layerKeys: false }); // loader options never reach a tfjs Layer
  const { path } = await nodeFilePromises(owner);
  for (const key of ['config', 'modelConfig', 'root', 'evaWeights', 'qformerWeights', 'llamaModel'] as const) {
    const value = options[key];
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) throw new Error(`${owner}: options.${key} must be a path, got ${describeValue(value)}`);
  }
  if (options.ckpt !== undefined && options.ckpt !== null && (typeof options.ckpt !== 'string' || options.ckpt.length === 0)) {
    throw new Error(`${owner}: options.ckpt must be a path or null, got ${describeValue(options.ckpt)}`);
  }
  // The tokenizer is read when `chat` first needs it; a directory given for it must hold one already.
  const tokenizerDir = checkTokenizerDirOption(owner, options.tokenizerDir);
  if (tokenizerDir !== undefined && !(await hasTokenizerJson(owner, tokenizerDir))) {
    throw new Error(`${owner}: options.tokenizerDir ${JSON.stringify(tokenizerDir)} has no tokenizer.json`);
  }
  const config = options.config === undefined ? null : await readCheetahConfig(options.config, { modelConfig: options.modelConfig });
  const arch = options.arch ?? config?.arch ?? 'cheetah_vicuna';
  if (!(arch in CHEETAH_MODEL_CONFIGS)) throw new Error(`${owner}: options.arch must be 'cheetah_vicuna' or 'cheetah_llama2', got ${describeValue(arch)}`);
  if (config && arch !== config.arch) throw new Error(`${owner}: options.arch ${arch} differs from the config's model.arch ${config.arch}`);
  const root = path.resolve(options.root ?? (options.config !== undefined ? path.dirname(options.config) : '.'));
  // Paths from the YAML and the default file names resolve against `root`; paths given here as Node resolves them.
  const pick = (given: string | undefined, fromConfig: string | undefined, fallback?: string): string | undefined =>
    given !== undefined ? path.resolve(given) : fromConfig !== undefined ? path.resolve(root, fromConfig) : fallback === undefined ? undefined : path.resolve(root, fallback);
  const llama = pick(options.llamaModel, config?.llamaModel);
  if (llama === undefined) throw new Error(`${owner}: no LLaMA directory: give options.llamaModel${config ? ' (the config has no model.llama_model)' : ' (or a config)'}`);
  const ckpt = options.ckpt === null ? undefined : pick(options.ckpt, config?.ckpt);
  const files: CheetahWeightFiles = {
    eva: pick(options.evaWeights, undefined, CHEETAH_EVA_FILE)!,
    blip2: pick(options.qformerWeights, config?.qFormerModel, CHEETAH_BLIP2_FILE)!,
    llama,
    ...(ckpt === undefined ? {} : { cheetah: ckpt }),
  };
  if (/^https?:\/\//.test(options.qformerWeights ?? config?.qFormerModel ?? '')) {
    throw new Error(`${owner}: q_former_model is a URL; download it and give its local path (options.qformerWeights): nothing is fetched at run time`);
  }
  const llmConfig = await readLlmConfig(owner, files.llama);
  const model = new CheetahModel({
    llmConfig,
    visionConfig: options.visionConfig,
    imageSize: config?.imageSize,
    qformerConfig: options.qformerConfig,
    numQueryTokens: options.numQueryTokens ?? config?.numQueryToken,
    updateLayer: options.updateLayer ?? CHEETAH_UPDATE_LAYER,
    dropoutAtInference: options.dropoutAtInference,
    // llama_tokenizer.pad_token: eos for Vicuna, unk (0) for LLaMA-2
    padTokenId: CHEETAH_MODEL_CONFIGS[arch].style === 'llama2' ? 0 : undefined,
  });
  let notes: string[];
  try {
    notes = await loadCheetahWeights(model, files);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return new LoadedCheetah(root, model, config, CHEETAH_MODEL_CONFIGS[arch].style, files, notes, tokenizerDir === undefined ? files.llama : path.resolve(tokenizerDir));
}

/** `<dir>/config.json` of the LLM (HF LLaMA, snake_case). */
async function readLlmConfig(owner: string, dir: string): Promise<Record<string, unknown>> {
  const { fs, path } = await nodeFilePromises(owner);
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`${owner}: could not read the LLM's ${JSON.stringify(file)}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not a JSON object');
    return json as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${owner}: ${JSON.stringify(file)} is not a JSON object: ${(error as Error).message}`, { cause: error });
  }
}

/** Vicuna's stop sign `###` as its tokenizer encodes it (`Chat`'s stopping criteria). */
const VICUNA_STOPS = [[835], [2277, 29937]];

class LoadedCheetah implements PretrainedCheetah {
  readonly kind = 'cheetah' as const;
  private tokenizerPromise: Promise<HFTokenizer> | null = null;

  constructor(
    readonly directory: string,
    readonly model: CheetahModel,
    readonly config: CheetahConfig | null,
    readonly style: CheetahStyle,
    readonly files: CheetahWeightFiles,
    readonly notes: readonly string[],
    /** Where `tokenizer()` reads `tokenizer.json`: `options.tokenizerDir`, else the LLM directory. */
    readonly tokenizerDir: string,
  ) {}

  tokenizer(): Promise<HFTokenizer> {
    this.tokenizerPromise ??= loadTokenizer(this.tokenizerDir).catch((error: unknown) => {
      this.tokenizerPromise = null;
      throw new ModelInputError(`loadCheetah: chat needs a tokenizer.json in ${this.tokenizerDir} (the LLM directory, or load with { tokenizerDir }); a LLaMA directory with only ` +
        `tokenizer.model can be converted with transformers: LlamaTokenizerFast.from_pretrained(dir).save_pretrained(dir). ` +
        `${(error as Error).message}`, { cause: error });
    });
    return this.tokenizerPromise;
  }

  answer(context: string, pixelValues: tf.Tensor4D | null, options: ChatOptions = {}): Promise<ChatResult> {
    return this.run(context, pixelValues, options, performance.now());
  }

  /** `answer` with its prefill clock started at `started` (chat starts it before preprocessing, as the other kinds do). */
  private async run(context: string, pixelValues: tf.Tensor4D | null, options: ChatOptions, started: number): Promise<ChatResult> {
    if (pixelValues !== null) assertTensor('PretrainedCheetah.answer', 'pixelValues', pixelValues, { rank: 4, dtypes: ['float32'] });
    const tokenizer = await this.tokenizer();
    const n = pixelValues ? pixelValues.shape[0] : 0;
    const { segments } = cheetahPrompt(tokenizer, context, n, this.style);
    const pixels = pixelValues ?? (tf.zeros([0, 3, this.model.imageSize, this.model.imageSize]) as tf.Tensor4D);
    // ChatResult's clocks (as LlavaPretrained.chat): prefill until the first token; decode from the first to the
    // last token that is not eos (a final eos-only step not counted). Progress counts those tokens.
    let firstTokenAt: number | undefined;
    let lastTokenAt: number | undefined;
    let decoded = '';
    const maxNewTokens = options.maxNewTokens ?? 128;
    const eos = this.model.eosTokenId;
    try {
      const [tokens] = this.model.generate({ segments: [segments], pixelValues: pixels }, {
        maxNewTokens,
        stopSequences: this.style === 'vicuna' ? VICUNA_STOPS : [],
        onStep: (rows) => {
          const time = performance.now();
          firstTokenAt ??= time;
          const row = rows[0]!;
          if (row.at(-1) === eos) return;
          lastTokenAt = time;
          options.onToken?.({ tokens: row.length, text: tokenizer.decode(row, { skipSpecialTokens: true }) });
        },
      });
      const end = performance.now();
      let out = [...tokens!];
      // Chat.answer: drop a leading <unk> (0) and <s> (1), decode, cut at the stop sign
      if (out[0] === 0) out = out.slice(1);
      if (out[0] === 1) out = out.slice(1);
      decoded = tokenizer.decode(out);
      const text = this.style === 'vicuna'
        ? (decoded.split('###')[0]!.split('Assistant:').pop() ?? '').trim()
        : decoded.split('</s>')[0]!;
      return {
        text,
        tokens: tokens!.filter((t) => t !== eos),
        promptTokens: segments.reduce((sum, s) => sum + s.length, 0) + n * this.model.numQueryTokens,
        prefillMs: (firstTokenAt ?? end) - started,
        decodeMs: (lastTokenAt ?? end) - (firstTokenAt ?? end),
      };
    } finally {
      if (!pixelValues) pixels.dispose();
    }
  }

  /**
   * `Chat.answer` from raw images: each goes through the BLIP-2 eval transform (`blip2_image_eval`: bicubic resize
   * to the config's eval `image_size`, CLIP mean / std), then `answer`. The images go where `question` has
   * `<Img><HereForImage></Img>` markers, or before it (as the reference's examples place them).
   */
  async chat(question: string, images: readonly RgbImage[], options: ChatOptions = {}): Promise<ChatResult> {
    if (typeof question !== 'string') throw new Error(`PretrainedCheetah.chat: question must be a string, got ${describeValue(question)}`);
    if (!Array.isArray(images)) throw new Error(`PretrainedCheetah.chat: images must be an array of RGB images, got ${describeValue(images)}`);
    const context = question.includes(CHEETAH_IMAGE) ? question : [...images.map(() => CHEETAH_IMAGE), question].join(' ');
    const started = performance.now();
    const pixels = images.length > 0 ? this.imageProcessor.preprocess(images) : null; // [n, 3, S, S]
    try {
      return await this.run(context, pixels, options, started);
    } finally {
      pixels?.dispose();
    }
  }

  /** The eval transform of the config (`preprocess.vis_processor.eval.image_size`, else the ViT's size). */
  get imageProcessor(): ImageProcessor {
    return blip2ImageEvalProcessor({ imageSize: this.config?.evalImageSize ?? this.model.imageSize });
  }

  dispose(): void {
    this.model.dispose();
  }
}
