/**
 * 8-bit RGB images and Pillow's resampling, restated in plain JS so that preprocessing gives the pixels
 * the references' PIL pipelines give (HF image processors and torchvision's `Resize` both call PIL's
 * `Image.resize` on PIL images).
 *
 * Pillow's `ImagingResample` (libImaging/Resample.c) for 8-bit images, per axis:
 *   scale = in / out,  filterscale = max(scale, 1),  support = filter.support · filterscale
 *   centre_i = (i + 0.5) · scale
 *   taps j ∈ [xmin, xmin + count) with xmin = trunc(centre − support + 0.5) ≥ 0, end = trunc(centre + support + 0.5) ≤ in
 *   w_ij = filter((j − centre + 0.5) / filterscale),   k_ij = w_ij / Σ_j w_ij          (double)
 *   K_ij = round_half_away(k_ij · 2²²)                                                (int32, 22 fraction bits)
 *   out_i = clamp(⌊(2²¹ + Σ_j K_ij · in_j) / 2²²⌋, 0, 255)                          (uint8 after each pass)
 * Downscaling stretches the filter by `filterscale` (antialiasing). Horizontal pass first, on the rows
 * the vertical pass reads, then the vertical pass; an axis whose size does not change is not resampled.
 */
import { assertPixelImage, type PixelImage } from './codec.js';

/**
 * An RGB image as 8-bit levels, row-major `[H, W, 3]`: what a PIL image in mode `'RGB'` holds and what
 * the references' preprocessing resizes, pads and crops.
 */
export interface RgbBytes {
  readonly height: number;
  readonly width: number;
  /** `height · width · 3` levels in 0–255. */
  readonly data: Uint8Array;
}

/** PIL's resampling filter codes (`PIL.Image.Resampling`), as `preprocessor_config.json`'s `resample` stores them. */
export const PIL_RESAMPLE = { NEAREST: 0, LANCZOS: 1, BILINEAR: 2, BICUBIC: 3, BOX: 4, HAMMING: 5 } as const;

/** The filters {@link resizeRgbBytes} implements (PIL codes 1–5; NEAREST, 0, takes another path in PIL and is not offered). */
export type PilResample = 1 | 2 | 3 | 4 | 5;

interface Filter {
  readonly support: number;
  readonly weight: (x: number) => number;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

// The filters of Resample.c, term for term (the polynomial ones are exact in double; the sin/cos ones
// can differ from the C library by an ulp, which moves a 22-bit coefficient only at a rounding tie).
const FILTERS: Record<PilResample, Filter> = {
  // LANCZOS: sinc(x)·sinc(x/3) on [−3, 3)
  1: { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
  // BILINEAR: the triangle 1 − |x| on [−1, 1]
  2: {
    support: 1,
    weight: (x) => {
      const ax = x < 0 ? -x : x;
      return ax < 1 ? 1 - ax : 0;
    },
  },
  // BICUBIC: Keys' cubic convolution with a = −0.5 (PIL's choice; HF and torchvision inherit it on PIL images)
  3: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const ax = x < 0 ? -x : x;
      if (ax < 1) return ((a + 2) * ax - (a + 3)) * ax * ax + 1;
      if (ax < 2) return (((ax - 5) * ax + 8) * ax - 4) * a;
      return 0;
    },
  },
  // BOX: 1 on (−0.5, 0.5]
  4: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  // HAMMING: sinc(x)·(0.54 + 0.46·cos(πx)) on (−1, 1)
  5: {
    support: 1,
    weight: (x) => {
      const ax = x < 0 ? -x : x;
      if (ax === 0) return 1;
      if (ax >= 1) return 0;
      const px = ax * Math.PI;
      return (Math.sin(px) / px) * (0.54 + 0.46 * Math.cos(px));
    },
  },
};

const PRECISION_BITS = 22; // 32 − 8 − 2 in Resample.c
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

interface Coefficients {
  /** Taps per output sample (the row stride of `weights`). */
  readonly taps: number;
  /** Per output sample: first input index, number of inputs used. */
  readonly bounds: Int32Array;
  /** Fixed-point weights (22 fraction bits), `taps` per output sample. */
  readonly weights: Int32Array;
}

/** Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc` for the box [0, inSize]. */
function precomputeCoefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * taps);
  const k = new Float64Array(taps);
  const ss = 1 / filterscale;
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5); // C's (int) cast truncates
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      total += w;
    }
    for (let x = 0; x < xmax; x++) {
      const normalized = total !== 0 ? k[x] / total : k[x];
      // (int)(±0.5 + k·2²²): round half away from zero, then truncate toward zero
      weights[i * taps + x] = normalized < 0 ? Math.trunc(-0.5 + normalized * ONE) : Math.trunc(0.5 + normalized * ONE);
    }
    bounds[i * 2] = xmin;
    bounds[i * 2 + 1] = xmax;
  }
  return { taps, bounds, weights };
}

/** Resample.c `clip8`: ⌊ss / 2²²⌋ clamped to 0–255 (a floor division, as C's arithmetic shift). */
function clip8(ss: number): number {
  const v = Math.floor(ss / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes 8-bit RGB pixels to `width × height` exactly as Pillow's `Image.resize((width, height), resample)`
 * does for an `'RGB'` image (default {@link PIL_RESAMPLE}.BICUBIC, Pillow's default and the references'
 * choice): separable fixed-point passes with antialiasing on downscale and rounding to uint8 after each pass.
 * Same size returns a copy. Checked against Pillow 9.4 on odd, non-square, up- and downscaled images
 * (`reference-fixtures.test.ts`; every level equal).
 */
export function resizeRgbBytes(image: RgbBytes, width: number, height: number, resample: PilResample = PIL_RESAMPLE.BICUBIC): RgbBytes {
  assertRgbBytes(image, 'resizeRgbBytes: image');
  for (const [name, value] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`resizeRgbBytes: ${name} must be a positive integer, got ${String(value)}`);
    }
  }
  const filter = FILTERS[resample as PilResample];
  if (filter === undefined) {
    throw new RangeError(
      `resizeRgbBytes: resample must be one of PIL's LANCZOS 1, BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5, got ${String(resample)}` +
        ((resample as number) === 0 ? ' (NEAREST is not implemented)' : ''),
    );
  }
  let source = image;
  const needHorizontal = width !== image.width;
  const needVertical = height !== image.height;
  const vertical = precomputeCoefficients(image.height, height, filter);
  if (needHorizontal) {
    // Only the rows the vertical pass reads: [first, last) of the input.
    const first = needVertical ? vertical.bounds[0] : 0;
    const last = needVertical ? vertical.bounds[(height - 1) * 2] + vertical.bounds[(height - 1) * 2 + 1] : image.height;
    if (needVertical) for (let i = 0; i < height; i++) vertical.bounds[i * 2] -= first;
    source = resampleHorizontal(image, first, last - first, width, precomputeCoefficients(image.width, width, filter));
  }
  if (needVertical) source = resampleVertical(source, height, vertical);
  return source === image ? { height: image.height, width: image.width, data: image.data.slice() } : source;
}

/** Rows `[offset, offset + rows)` of `input` → `rows × outWidth`: each output pixel from a run of input pixels in its row. */
function resampleHorizontal(input: RgbBytes, offset: number, rows: number, outWidth: number, c: Coefficients): RgbBytes {
  const out = new Uint8Array(rows * outWidth * 3);
  for (let y = 0; y < rows; y++) {
    const rowBase = (y + offset) * input.width * 3;
    for (let x = 0; x < outWidth; x++) {
      convolvePixel(input.data, rowBase + c.bounds[x * 2] * 3, 3, c, x, out, (y * outWidth + x) * 3);
    }
  }
  return { height: rows, width: outWidth, data: out };
}

/** `input` → `outHeight` rows: each output pixel from a run of input pixels in its column. */
function resampleVertical(input: RgbBytes, outHeight: number, c: Coefficients): RgbBytes {
  const width = input.width;
  const out = new Uint8Array(outHeight * width * 3);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < width; x++) {
      convolvePixel(input.data, (c.bounds[y * 2] * width + x) * 3, width * 3, c, y, out, (y * width + x) * 3);
    }
  }
  return { height: outHeight, width, data: out };
}

/**
 * Output pixel `i` of one pass (PIL's 8-bit inner loop): its `c.bounds[2i + 1]` taps `c.weights[i·taps + t]`
 * times the input pixels at `first + t·stride` (levels of R, G, B), summed per channel in PIL's fixed point from
 * `HALF` and clipped to 0..255, written at `out[o .. o + 2]`.
 */
function convolvePixel(src: Uint8Array, first: number, stride: number, c: Coefficients, i: number, out: Uint8Array, o: number): void {
  const count = c.bounds[i * 2 + 1];
  const kBase = i * c.taps;
  let s0 = HALF;
  let s1 = HALF;
  let s2 = HALF;
  for (let t = 0; t < count; t++) {
    const w = c.weights[kBase + t];
    const p = first + t * stride;
    s0 += src[p] * w;
    s1 += src[p + 1] * w;
    s2 += src[p + 2] * w;
  }
  out[o] = clip8(s0);
  out[o + 1] = clip8(s1);
  out[o + 2] = clip8(s2);
}

/** Checks that `image` is a well-formed {@link RgbBytes}; throws naming `name` otherwise. */
export function assertRgbBytes(image: RgbBytes, name = 'image'): void {
  if (!image || !Number.isInteger(image.height) || !Number.isInteger(image.width) || image.height < 1 || image.width < 1) {
    throw new TypeError(`${name}: expected positive integer height and width, got ${image?.height}×${image?.width}`);
  }
  if (!(image.data instanceof Uint8Array) || image.data.length !== image.height * image.width * 3) {
    throw new TypeError(
      `${name}: expected a Uint8Array of height·width·3 = ${image.height * image.width * 3} levels, ` +
        `got ${image.data instanceof Uint8Array ? image.data.length : (image.data as { constructor?: { name?: string } })?.constructor?.name ?? typeof image.data}`,
    );
  }
}

/**
 * A {@link PixelImage} (float RGB in [0, 1]) as 8-bit levels `round(v · 255)`, the levels a decoded 8-bit
 * image came from (the codec's `k / 255` round-trips exactly). Values outside [0, 1] (beyond half a level)
 * are an error: an image in [0, 255] passed where [0, 1] is expected names the fix.
 */
export function pixelImageToRgbBytes(image: PixelImage, name = 'image'): RgbBytes {
  assertPixelImage(image, name);
  const src = image.data;
  const data = new Uint8Array(src.length);
  const low = -0.5 / 255;
  const high = 1 + 0.5 / 255;
  for (let i = 0; i < src.length; i++) {
    const v = src[i];
    if (!(v >= low && v < high)) {
      const hint = v > 1 && v <= 255 ? ' (values in [0, 255]? divide by 255 first)' : '';
      throw new RangeError(`${name}: expected RGB values in [0, 1], got ${v} at index ${i}${hint}`);
    }
    const level = Math.round(v * 255);
    data[i] = level < 0 ? 0 : level > 255 ? 255 : level;
  }
  return { height: image.height, width: image.width, data };
}

/** 8-bit levels back to a {@link PixelImage}: `k / 255` as float32. */
export function rgbBytesToPixelImage(image: RgbBytes): PixelImage {
  assertRgbBytes(image);
  const data = new Float32Array(image.data.length);
  for (let i = 0; i < data.length; i++) data[i] = image.data[i] / 255;
  return { height: image.height, width: image.width, data };
}
