/**
 * The references' image preprocessing, step for step on 8-bit pixels as their PIL pipelines run it:
 *
 * - HF `CLIPImageProcessor` (Parrot, Wings, LLaVA): convert to RGB → resize the shortest edge to
 *   `size.shortest_edge` (PIL bicubic, the long edge `⌊S · long / short⌋`) → centre crop `crop_size` →
 *   rescale `· 1/255` → normalise `(x − mean) / std` → `[3, S, S]`.
 * - SigLIP as Parrot / Wings vendor it (`SigLipImageProcessor`): resize to `size × size` (no crop),
 *   mean = std = 0.5.
 * - LLaVA's `expand2square` (`image_aspect_ratio: pad`, before either processor): the image pasted at
 *   offset `⌊(M − side) / 2⌋` on an `M × M` canvas (M = the longer side) of colour `int(mean · 255)`.
 * - BLIP-2's eval transform as Cheetah uses it (`Blip2ImageEvalProcessor`): torchvision
 *   `Resize((S, S), BICUBIC)` (PIL's resize on a PIL image) → `ToTensor` → `Normalize` with the
 *   OpenAI CLIP mean / std.
 *
 * Floating-point steps reproduce the references' float32 arithmetic: HF's `rescale` multiplies the uint8
 * levels by the float64 factor and rounds to float32 (`fround(v · (1/255))`); torchvision's `ToTensor`
 * divides in float32 (`fround(v / 255)`), which gives the same float32 for all 256 levels (the tests check
 * it), so one rescale serves both; both normalise as `fround(fround(x − mean32) / std32)`. Resizing is
 * Pillow's integer algorithm ({@link resizeRgbBytes}).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PixelImage } from './codec.js';
import { assertRgbBytes, pixelImageToRgbBytes, resizeRgbBytes, PIL_RESAMPLE, type PilResample, type RgbBytes } from './resize.js';

/** OpenAI CLIP's normalisation (HF `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`; BLIP-2's defaults too). */
export const OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;
/** SigLIP's normalisation (HF `IMAGENET_STANDARD_MEAN` / `_STD`). */
export const SIGLIP_MEAN = [0.5, 0.5, 0.5] as const;
export const SIGLIP_STD = [0.5, 0.5, 0.5] as const;

type Rgb = readonly [number, number, number];

/** Which reference pipeline a processor follows (a label: the options hold every step). */
export type ImageProcessorKind = 'clip' | 'siglip' | 'blip2';

/** A resize target: the shortest edge (aspect ratio kept, HF `size.shortest_edge`) or an exact size. */
export type ResizeTarget = { readonly shortestEdge: number } | { readonly height: number; readonly width: number };

/** Every step of a processor, resolved. */
export interface ImageProcessorOptions {
  /** LLaVA's `expand2square` with the colour `int(imageMean · 255)` first (`image_aspect_ratio: pad`). */
  readonly padToSquare: boolean;
  /** `null`: no resize (`do_resize: false`). */
  readonly resize: ResizeTarget | null;
  /** PIL filter code (`resample`; 3 = BICUBIC). */
  readonly resample: PilResample;
  /** `null`: no centre crop. */
  readonly centerCrop: { readonly height: number; readonly width: number } | null;
  /** `v · rescaleFactor` (float64, rounded to float32, as HF's `rescale`); `null`: no rescale (`do_rescale: false`; the levels stay 0–255). */
  readonly rescaleFactor: number | null;
  /** `null`: no normalisation (`do_normalize: false`). */
  readonly normalize: { readonly mean: Rgb; readonly std: Rgb } | null;
}

/** The output layout of {@link ImageProcessor.preprocess}. */
export type PixelLayout = 'NCHW' | 'NHWC';

/**
 * A reference image preprocessor. Takes {@link PixelImage}s (float RGB in [0, 1], as the codec decodes
 * them; quantised to the 8-bit levels PIL works on) or {@link RgbBytes}, and gives HF-style
 * `pixel_values`. Build one with {@link clipImageProcessor}, {@link siglipImageProcessor},
 * {@link blip2ImageEvalProcessor} or `loadImageProcessor(dir)`.
 */
export class ImageProcessor {
  readonly kind: ImageProcessorKind;
  readonly options: ImageProcessorOptions;

  constructor(kind: ImageProcessorKind, options: ImageProcessorOptions) {
    if (kind !== 'clip' && kind !== 'siglip' && kind !== 'blip2') {
      throw new TypeError(`ImageProcessor: kind must be 'clip', 'siglip' or 'blip2', got ${JSON.stringify(kind)}`);
    }
    this.kind = kind;
    this.options = Object.freeze({ ...checkOptions(options) });
  }

  /** The pad colour LLaVA's `expand2square` uses with this processor: `int(mean · 255)` (0 without normalisation). */
  get padColor(): Rgb {
    return llavaPadColor(this.options.normalize?.mean ?? [0, 0, 0]);
  }

  /** The 8-bit image the float steps start from: optional pad to square → resize → centre crop. */
  prepare(image: PixelImage | RgbBytes, name = 'image'): RgbBytes {
    let bytes = toRgbBytes(image, name);
    const o = this.options;
    if (o.padToSquare) bytes = expandToSquare(bytes, this.padColor);
    if (o.resize !== null) {
      const size = 'shortestEdge' in o.resize ? shortestEdgeSize(bytes.height, bytes.width, o.resize.shortestEdge) : o.resize;
      bytes = resizeRgbBytes(bytes, size.width, size.height, o.resample);
    }
    if (o.centerCrop !== null) bytes = centerCropRgbBytes(bytes, o.centerCrop.height, o.centerCrop.width);
    return bytes;
  }

  /** One image's `pixel_values` as float32 `[3, H, W]` (channels first), without tfjs. */
  pixelValues(image: PixelImage | RgbBytes, name = 'image'): { height: number; width: number; data: Float32Array } {
    const bytes = this.prepare(image, name);
    const { height, width } = bytes;
    const plane = height * width;
    const data = new Float32Array(3 * plane);
    const o = this.options;
    for (let c = 0; c < 3; c++) {
      const mean = o.normalize === null ? 0 : Math.fround(o.normalize.mean[c]);
      const std = o.normalize === null ? 1 : Math.fround(o.normalize.std[c]);
      for (let p = 0; p < plane; p++) {
        const level = bytes.data[p * 3 + c];
        // HF rescale: float64 product → float32 (for 1/255 equal to torchvision's float32 `v / 255`)
        let x = o.rescaleFactor === null ? level : Math.fround(level * o.rescaleFactor);
        // float32 (x − mean) / std; each float64 op on float32 operands rounds to the float32 result
        if (o.normalize !== null) x = Math.fround(Math.fround(x - mean) / std);
        data[c * plane + p] = x;
      }
    }
    return { height, width, data };
  }

  /**
   * A batch's `pixel_values`: float32 `[N, 3, H, W]` (HF's layout; default) or `[N, H, W, 3]` (`layout:
   * 'NHWC'`, the input of this package's vision towers). Every image must come out the same size (a
   * processor without resize-to-square or crop keeps each image's aspect). The caller owns the tensor.
   */
  preprocess(images: PixelImage | RgbBytes | ReadonlyArray<PixelImage | RgbBytes>, options: { layout?: PixelLayout } = {}): tf.Tensor4D {
    const layout = options.layout ?? 'NCHW';
    if (layout !== 'NCHW' && layout !== 'NHWC') {
      throw new TypeError(`ImageProcessor.preprocess: layout must be 'NCHW' or 'NHWC', got ${JSON.stringify(layout)}`);
    }
    const list = Array.isArray(images) ? (images as ReadonlyArray<PixelImage | RgbBytes>) : [images as PixelImage | RgbBytes];
    if (list.length === 0) throw new RangeError('ImageProcessor.preprocess: images must hold at least one image, got none');
    const outputs = list.map((image, i) => this.pixelValues(image, list.length === 1 && !Array.isArray(images) ? 'image' : `images[${i}]`));
    const { height, width } = outputs[0];
    outputs.forEach((out, i) => {
      if (out.height !== height || out.width !== width) {
        throw new RangeError(
          `ImageProcessor.preprocess: images[${i}] comes out ${out.height}×${out.width}, images[0] ${height}×${width}; ` +
            'a batch needs one size (resize to a square or centre-crop)',
        );
      }
    });
    const plane = height * width;
    const batch = new Float32Array(list.length * 3 * plane);
    outputs.forEach((out, n) => {
      if (layout === 'NCHW') {
        batch.set(out.data, n * 3 * plane);
      } else {
        const base = n * 3 * plane;
        for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) batch[base + p * 3 + c] = out.data[c * plane + p];
      }
    });
    const shape: [number, number, number, number] = layout === 'NCHW' ? [list.length, 3, height, width] : [list.length, height, width, 3];
    return tf.tensor4d(batch, shape, 'float32');
  }
}

function toRgbBytes(image: PixelImage | RgbBytes, name: string): RgbBytes {
  if (image && (image as RgbBytes).data instanceof Uint8Array) {
    assertRgbBytes(image as RgbBytes, name);
    return image as RgbBytes;
  }
  return pixelImageToRgbBytes(image as PixelImage, name);
}

function positiveInt(owner: string, name: string, value: unknown): void {
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw new RangeError(`${owner}: ${name} must be a positive integer, got ${JSON.stringify(value)}`);
  }
}

function checkRgb(owner: string, name: string, value: unknown, positive: boolean): void {
  const ok =
    Array.isArray(value) &&
    value.length === 3 &&
    value.every((v) => typeof v === 'number' && Number.isFinite(v) && (!positive || v > 0));
  if (!ok) {
    throw new RangeError(`${owner}: ${name} must be 3 finite numbers${positive ? ' > 0' : ''} (R, G, B), got ${JSON.stringify(value)}`);
  }
}

function checkOptions(o: ImageProcessorOptions): ImageProcessorOptions {
  const owner = 'ImageProcessor';
  if (!o || typeof o !== 'object') throw new TypeError(`${owner}: options must be an object, got ${JSON.stringify(o)}`);
  if (typeof o.padToSquare !== 'boolean') throw new TypeError(`${owner}: padToSquare must be a boolean, got ${JSON.stringify(o.padToSquare)}`);
  if (o.resize !== null) {
    if (typeof o.resize !== 'object') throw new TypeError(`${owner}: resize must be { shortestEdge } or { height, width } or null, got ${JSON.stringify(o.resize)}`);
    if ('shortestEdge' in o.resize) positiveInt(owner, 'resize.shortestEdge', o.resize.shortestEdge);
    else {
      positiveInt(owner, 'resize.height', (o.resize as { height: unknown }).height);
      positiveInt(owner, 'resize.width', (o.resize as { width: unknown }).width);
    }
  }
  if (![1, 2, 3, 4, 5].includes(o.resample)) {
    throw new RangeError(
      `${owner}: resample must be a PIL filter code 1–5 (3 = BICUBIC), got ${JSON.stringify(o.resample)}${(o.resample as number) === 0 ? ' (NEAREST is not implemented)' : ''}`,
    );
  }
  if (o.centerCrop !== null) {
    if (typeof o.centerCrop !== 'object') throw new TypeError(`${owner}: centerCrop must be { height, width } or null, got ${JSON.stringify(o.centerCrop)}`);
    positiveInt(owner, 'centerCrop.height', o.centerCrop.height);
    positiveInt(owner, 'centerCrop.width', o.centerCrop.width);
  }
  if (o.rescaleFactor !== null && !(typeof o.rescaleFactor === 'number' && Number.isFinite(o.rescaleFactor) && o.rescaleFactor > 0)) {
    throw new RangeError(`${owner}: rescaleFactor must be a finite number > 0 or null, got ${JSON.stringify(o.rescaleFactor)}`);
  }
  if (o.normalize !== null) {
    if (typeof o.normalize !== 'object') throw new TypeError(`${owner}: normalize must be { mean, std } or null, got ${JSON.stringify(o.normalize)}`);
    checkRgb(owner, 'normalize.mean', o.normalize.mean, false);
    checkRgb(owner, 'normalize.std', o.normalize.std, true);
  }
  return o;
}

/**
 * HF `get_resize_output_image_size(default_to_square=False)`: the short side becomes `shortestEdge`, the
 * long side `⌊shortestEdge · long / short⌋` (Python's `int()` of the float64 quotient).
 */
export function shortestEdgeSize(height: number, width: number, shortestEdge: number): { height: number; width: number } {
  positiveInt('shortestEdgeSize', 'shortestEdge', shortestEdge);
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((shortestEdge * long) / short);
  return width <= height ? { height: newLong, width: shortestEdge } : { height: shortestEdge, width: newLong };
}

/**
 * HF `center_crop`: the window at `⌊(H − h) / 2⌋, ⌊(W − w) / 2⌋`. A crop larger than the image is taken
 * from the image centred on a zero canvas (level 0) of the crop's size, as HF does, including HF's clipping
 * of the window to that canvas: when `crop − side` is odd, that side comes out one pixel short of the
 * crop (HF 4.37 behaviour, kept for parity; it needs `shortest_edge < crop_size`, which no reference
 * config has).
 */
export function centerCropRgbBytes(image: RgbBytes, height: number, width: number): RgbBytes {
  assertRgbBytes(image, 'centerCropRgbBytes: image');
  positiveInt('centerCropRgbBytes', 'height', height);
  positiveInt('centerCropRgbBytes', 'width', width);
  const inside = image.height >= height && image.width >= width;
  // Per axis, on the canvas of size max(orig, crop) holding the image at offset `pad`:
  //   top = ⌊(orig − crop) / 2⌋ + pad, window [max(0, top), min(canvas, top + crop)).
  const axis = (orig: number, crop: number) => {
    const canvas = inside ? orig : Math.max(orig, crop);
    const pad = Math.floor((canvas - orig) / 2);
    const top = Math.floor((orig - crop) / 2) + pad;
    const start = Math.max(0, top);
    return { start, size: Math.min(canvas, top + crop) - start, pad };
  };
  const rows = axis(image.height, height);
  const cols = axis(image.width, width);
  const out = new Uint8Array(rows.size * cols.size * 3); // zeros where the window leaves the image
  for (let y = 0; y < rows.size; y++) {
    const sy = rows.start + y - rows.pad;
    if (sy < 0 || sy >= image.height) continue;
    for (let x = 0; x < cols.size; x++) {
      const sx = cols.start + x - cols.pad;
      if (sx < 0 || sx >= image.width) continue;
      const s = (sy * image.width + sx) * 3;
      const d = (y * cols.size + x) * 3;
      out[d] = image.data[s];
      out[d + 1] = image.data[s + 1];
      out[d + 2] = image.data[s + 2];
    }
  }
  return { height: rows.size, width: cols.size, data: out };
}

/** LLaVA's pad colour `tuple(int(x * 255) for x in image_processor.image_mean)` (truncation, as Python's `int`). */
export function llavaPadColor(imageMean: ReadonlyArray<number>): Rgb {
  checkRgb('llavaPadColor', 'imageMean', imageMean, false);
  return [Math.trunc(imageMean[0] * 255), Math.trunc(imageMean[1] * 255), Math.trunc(imageMean[2] * 255)];
}

/**
 * LLaVA's `expand2square(image, background)`: a square of side max(H, W) filled with `background` (three
 * levels 0–255), the image pasted at `⌊(side − W) / 2⌋, ⌊(side − H) / 2⌋`. A square image is returned as is.
 */
export function expandToSquare(image: RgbBytes, background: ReadonlyArray<number>): RgbBytes {
  assertRgbBytes(image, 'expandToSquare: image');
  if (!Array.isArray(background) || background.length !== 3 || !background.every((v) => Number.isInteger(v) && v >= 0 && v <= 255)) {
    throw new RangeError(`expandToSquare: background must be 3 integer levels 0–255, got ${JSON.stringify(background)}`);
  }
  const { height, width } = image;
  if (height === width) return image;
  const side = Math.max(height, width);
  const out = new Uint8Array(side * side * 3);
  for (let p = 0; p < side * side; p++) {
    out[p * 3] = background[0];
    out[p * 3 + 1] = background[1];
    out[p * 3 + 2] = background[2];
  }
  const top = Math.floor((side - height) / 2);
  const left = Math.floor((side - width) / 2);
  for (let y = 0; y < height; y++) {
    out.set(image.data.subarray(y * width * 3, (y + 1) * width * 3), ((top + y) * side + left) * 3);
  }
  return { height: side, width: side, data: out };
}

/**
 * HF `CLIPImageProcessor` (defaults: openai/clip-vit-large-patch14's 224 px; LLaVA-1.5 / Parrot use the
 * 336 px tower: `{ shortestEdge: 336, cropSize: 336 }`). `padToSquare` adds LLaVA's `expand2square` first.
 */
export function clipImageProcessor(
  options: { shortestEdge?: number; cropSize?: number; imageMean?: Rgb; imageStd?: Rgb; resample?: PilResample; padToSquare?: boolean } = {},
): ImageProcessor {
  const crop = options.cropSize ?? 224;
  return new ImageProcessor('clip', {
    padToSquare: options.padToSquare ?? false,
    resize: { shortestEdge: options.shortestEdge ?? 224 },
    resample: options.resample ?? PIL_RESAMPLE.BICUBIC,
    centerCrop: { height: crop, width: crop },
    rescaleFactor: 1 / 255,
    normalize: { mean: options.imageMean ?? OPENAI_CLIP_MEAN, std: options.imageStd ?? OPENAI_CLIP_STD },
  });
}

/**
 * SigLIP's processor as Parrot and Wings vendor it (`SigLipImageProcessor`: resize to `size × size`
 * bicubic, no crop, rescale 1/255, mean = std = 0.5; default 384 px, so400m's). `padToSquare` adds
 * LLaVA's `expand2square` (colour `int(0.5 · 255)` = 127) first.
 */
export function siglipImageProcessor(
  options: { size?: number; imageMean?: Rgb; imageStd?: Rgb; resample?: PilResample; padToSquare?: boolean } = {},
): ImageProcessor {
  const size = options.size ?? 384;
  return new ImageProcessor('siglip', {
    padToSquare: options.padToSquare ?? false,
    resize: { height: size, width: size },
    resample: options.resample ?? PIL_RESAMPLE.BICUBIC,
    centerCrop: null,
    rescaleFactor: 1 / 255,
    normalize: { mean: options.imageMean ?? SIGLIP_MEAN, std: options.imageStd ?? SIGLIP_STD },
  });
}

/**
 * BLIP-2's eval transform as Cheetah uses it (`Blip2ImageEvalProcessor`, `image_size` 224 in its configs):
 * torchvision `Resize((S, S), BICUBIC)` on the PIL image, `ToTensor` (float32 `/ 255`), `Normalize` with
 * the OpenAI CLIP mean / std unless given.
 */
export function blip2ImageEvalProcessor(options: { imageSize?: number; mean?: Rgb; std?: Rgb } = {}): ImageProcessor {
  const size = options.imageSize ?? 224;
  return new ImageProcessor('blip2', {
    padToSquare: false,
    resize: { height: size, width: size },
    resample: PIL_RESAMPLE.BICUBIC,
    centerCrop: null,
    rescaleFactor: 1 / 255, // ToTensor's float32 `/ 255`: the same float32 values (see the module comment)
    normalize: { mean: options.mean ?? OPENAI_CLIP_MEAN, std: options.std ?? OPENAI_CLIP_STD },
  });
}
