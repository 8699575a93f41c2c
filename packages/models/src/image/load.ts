/**
 * `preprocessor_config.json` → {@link ImageProcessor}: the HF image-processor configs the reference
 * towers ship (`CLIPImageProcessor`, `SiglipImageProcessor`), snake_case as written. Every key read is
 * checked; a wrong value is an error naming the key, the expected and the actual value.
 */
import { describeValue, nodeFilePromises } from '@mllm/core';
import {
  ImageProcessor,
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  SIGLIP_MEAN,
  SIGLIP_STD,
  type ImageProcessorKind,
  type ResizeTarget,
} from './processors.js';
import { PIL_RESAMPLE, type PilResample } from './resize.js';

/** The image-processor config file of an HF checkpoint or tower directory. */
export const PREPROCESSOR_CONFIG_FILE = 'preprocessor_config.json';

/** `image_processor_type` (or the older `feature_extractor_type`) values read, and the pipeline each is. */
const PROCESSOR_TYPES: Record<string, Exclude<ImageProcessorKind, 'blip2'>> = {
  CLIPImageProcessor: 'clip',
  CLIPFeatureExtractor: 'clip',
  SiglipImageProcessor: 'siglip',
  SigLipImageProcessor: 'siglip',
};

/** Options of {@link imageProcessorFromConfig} / {@link loadImageProcessor}. */
export interface ImageProcessorConfigOptions {
  /**
   * LLaVA's `expand2square` before the processor: set it from the model config's `image_aspect_ratio`
   * (`'pad'` → true); the processor config does not record it. Default false.
   */
  padToSquare?: boolean;
}

type Json = Record<string, unknown>;

function fail(owner: string, key: string, expected: string, value: unknown): never {
  throw new Error(`${owner}: ${key} must be ${expected}, got ${describeValue(value)}`);
}

function flag(owner: string, json: Json, key: string, fallback: boolean): boolean {
  const value = json[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') fail(owner, key, 'true or false', value);
  return value;
}

function positive(owner: string, key: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1) fail(owner, key, 'a positive integer', value);
  return value as number;
}

function rgb(owner: string, key: string, value: unknown, fallback: readonly [number, number, number], positiveOnly: boolean) {
  if (value === undefined) return fallback;
  const list = typeof value === 'number' ? [value, value, value] : value; // HF accepts one number for every channel
  if (!Array.isArray(list) || list.length !== 3 || !list.every((v) => typeof v === 'number' && Number.isFinite(v) && (!positiveOnly || v > 0))) {
    fail(owner, key, `3 finite numbers${positiveOnly ? ' > 0' : ''} (R, G, B)`, value);
  }
  return list as unknown as readonly [number, number, number];
}

/** HF `size` / `crop_size`: an int, `{shortest_edge}` or `{height, width}`. */
function sizeDict(owner: string, key: string, value: unknown, intMeans: 'shortest' | 'square'): ResizeTarget {
  if (typeof value === 'number') {
    const side = positive(owner, key, value);
    return intMeans === 'shortest' ? { shortestEdge: side } : { height: side, width: side };
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const dict = value as Json;
    if ('shortest_edge' in dict) {
      if ('longest_edge' in dict) fail(owner, key, 'without longest_edge (not implemented)', value);
      return { shortestEdge: positive(owner, `${key}.shortest_edge`, dict.shortest_edge) };
    }
    if ('height' in dict || 'width' in dict) {
      return { height: positive(owner, `${key}.height`, dict.height), width: positive(owner, `${key}.width`, dict.width) };
    }
  }
  return fail(owner, key, 'a positive integer, {"shortest_edge": n} or {"height": h, "width": w}', value);
}

/**
 * The {@link ImageProcessor} an HF `preprocessor_config.json` describes. Missing keys take the HF class's
 * defaults (CLIP: shortest edge 224, centre crop 224, OpenAI mean/std; SigLIP: 224 × 224, no crop,
 * mean = std = 0.5); `resample` must be a PIL filter code 1–5 (3, BICUBIC, in the references).
 */
export function imageProcessorFromConfig(config: unknown, options: ImageProcessorConfigOptions = {}): ImageProcessor {
  const owner = 'imageProcessorFromConfig';
  if (!config || typeof config !== 'object' || Array.isArray(config)) fail(owner, 'config', 'a preprocessor_config.json object', config);
  const json = config as Json;
  const type = json.image_processor_type ?? json.feature_extractor_type;
  const kind = typeof type === 'string' ? PROCESSOR_TYPES[type] : undefined;
  if (kind === undefined) {
    fail(owner, 'image_processor_type', `one of ${Object.keys(PROCESSOR_TYPES).join(', ')}`, type);
  }
  const padToSquare = options.padToSquare ?? false;
  if (typeof padToSquare !== 'boolean') fail(owner, 'options.padToSquare', 'a boolean', padToSquare);
  const isClip = kind === 'clip';
  const resize = flag(owner, json, 'do_resize', true)
    ? sizeDict(owner, 'size', json.size ?? (isClip ? { shortest_edge: 224 } : { height: 224, width: 224 }), isClip ? 'shortest' : 'square')
    : null;
  const resample = json.resample ?? PIL_RESAMPLE.BICUBIC;
  if (![1, 2, 3, 4, 5].includes(resample as number)) {
    fail(owner, 'resample', `a PIL filter code 1–5 (3 = BICUBIC${resample === 0 ? '; NEAREST, 0, is not implemented' : ''})`, resample);
  }
  let centerCrop: { height: number; width: number } | null = null;
  if (flag(owner, json, 'do_center_crop', isClip)) {
    const crop = sizeDict(owner, 'crop_size', json.crop_size ?? 224, 'square');
    if ('shortestEdge' in crop) fail(owner, 'crop_size', 'an integer or {"height": h, "width": w}', json.crop_size);
    centerCrop = crop;
  }
  let rescaleFactor: number | null = null;
  if (flag(owner, json, 'do_rescale', true)) {
    rescaleFactor = (json.rescale_factor ?? 1 / 255) as number;
    if (typeof rescaleFactor !== 'number' || !Number.isFinite(rescaleFactor) || rescaleFactor <= 0) {
      fail(owner, 'rescale_factor', 'a finite number > 0', json.rescale_factor);
    }
  }
  const normalize = flag(owner, json, 'do_normalize', true)
    ? {
        mean: rgb(owner, 'image_mean', json.image_mean, isClip ? OPENAI_CLIP_MEAN : SIGLIP_MEAN, false),
        std: rgb(owner, 'image_std', json.image_std, isClip ? OPENAI_CLIP_STD : SIGLIP_STD, true),
      }
    : null;
  flag(owner, json, 'do_convert_rgb', true); // checked only: images are RGB already (the codec drops alpha)
  return new ImageProcessor(kind, {
    padToSquare,
    resize,
    resample: resample as PilResample,
    centerCrop,
    rescaleFactor,
    normalize,
  });
}

/**
 * Reads `<dir>/preprocessor_config.json` (an HF tower or checkpoint directory; Node only, no network)
 * into an {@link ImageProcessor}. Errors name the path.
 */
export async function loadImageProcessor(dir: string, options: ImageProcessorConfigOptions = {}): Promise<ImageProcessor> {
  const owner = 'loadImageProcessor';
  if (typeof dir !== 'string' || dir.length === 0) fail(owner, 'dir', 'a directory path', dir);
  const { fs, path } = await nodeFilePromises(owner);
  const file = path.join(dir, PREPROCESSOR_CONFIG_FILE);
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`${owner}: could not read ${JSON.stringify(file)}: ${(error as Error).message}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${owner}: ${JSON.stringify(file)} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  try {
    return imageProcessorFromConfig(json, options);
  } catch (error) {
    throw new Error(`${owner}: ${JSON.stringify(file)}: ${(error as Error).message}`, { cause: error });
  }
}
