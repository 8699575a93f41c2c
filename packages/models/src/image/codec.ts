/**
 * Pure-JS image decoding (PNG via `fast-png`, JPEG via `jpeg-js`) to float RGB pixels, and PNG
 * encoding for writing benchmark files. No native dependencies, so it runs in Node and bundlers.
 */
import { decode as decodePngBytes, encode as encodePngBytes, convertIndexedToRgb } from 'fast-png';
import jpeg from 'jpeg-js';
import * as tf from '@tensorflow/tfjs-core';

/**
 * An RGB image as float pixels in [0, 1], row-major `[H, W, 3]` (height, width, channel), the
 * layout `tf.tensor3d(data, [height, width, 3])` expects.
 */
export interface PixelImage {
  readonly height: number;
  readonly width: number;
  /** `height · width · 3` values in [0, 1]. */
  readonly data: Float32Array;
}

/** Turns encoded image bytes (PNG, JPEG, …) into a {@link PixelImage}. */
export type ImageDecoder = (bytes: Uint8Array) => PixelImage;

/** Thrown for bytes that are not a decodable image. */
export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Detects the container format from magic bytes. */
export function sniffImageFormat(bytes: Uint8Array): 'png' | 'jpeg' | 'gif' | 'webp' | 'bmp' | 'unknown' {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((value, i) => bytes[i] === value)) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= 6 && bytes[0] === 0x47 && bytes[1] === 0x49 && bytes[2] === 0x46) return 'gif';
  if (bytes.length >= 12 && bytes[0] === 0x52 && bytes[1] === 0x49 && bytes[8] === 0x57 && bytes[9] === 0x45) {
    return 'webp';
  }
  if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d) return 'bmp';
  return 'unknown';
}

/**
 * Decodes PNG (any bit depth, grey/grey+alpha/RGB/RGBA/indexed) or baseline/progressive JPEG.
 * Alpha is dropped (no compositing), as PIL's `convert('RGB')` in the reference does.
 * Other formats throw {@link ImageDecodeError}; pass your own `decodeImage` to the reader for them.
 */
export const decodeImage: ImageDecoder = (bytes) => {
  const format = sniffImageFormat(bytes);
  if (format === 'png') return decodePng(bytes);
  if (format === 'jpeg') return decodeJpeg(bytes);
  throw new ImageDecodeError(
    `unsupported image format '${format}' (expected PNG or JPEG; pass a custom decodeImage for others)`,
  );
};

function decodePng(bytes: Uint8Array): PixelImage {
  let png;
  try {
    png = decodePngBytes(bytes);
  } catch (error) {
    throw new ImageDecodeError(`corrupt PNG: ${(error as Error).message}`);
  }
  const { width, height } = png;
  let samples: ArrayLike<number> = png.data;
  let channels = png.channels;
  let maxValue = 2 ** png.depth - 1;
  if (png.palette) {
    samples = convertIndexedToRgb(png);
    channels = png.palette[0]?.length ?? 3;
    maxValue = 255;
  }
  const data = new Float32Array(height * width * 3);
  for (let pixel = 0; pixel < height * width; pixel++) {
    const base = pixel * channels;
    if (channels >= 3) {
      data[pixel * 3] = samples[base] / maxValue;
      data[pixel * 3 + 1] = samples[base + 1] / maxValue;
      data[pixel * 3 + 2] = samples[base + 2] / maxValue;
    } else {
      const grey = samples[base] / maxValue;
      data[pixel * 3] = grey;
      data[pixel * 3 + 1] = grey;
      data[pixel * 3 + 2] = grey;
    }
  }
  return { height, width, data };
}

function decodeJpeg(bytes: Uint8Array): PixelImage {
  let decoded;
  try {
    // Strict decoding: a truncated or corrupt JPEG is an error, not a silently half-grey image.
    decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxMemoryUsageInMB: 1024 });
  } catch (error) {
    throw new ImageDecodeError(`corrupt JPEG: ${(error as Error).message ?? String(error)}`);
  }
  const { width, height, data: rgb } = decoded; // RGB bytes (grey JPEGs are expanded to RGB)
  const data = new Float32Array(height * width * 3);
  for (let i = 0; i < data.length; i++) data[i] = rgb[i] / 255;
  return { height, width, data };
}

/** Checks that `image` is a well-formed {@link PixelImage}; throws naming `name` otherwise. */
export function assertPixelImage(image: PixelImage, name = 'image'): void {
  if (!image || !Number.isInteger(image.height) || !Number.isInteger(image.width) || image.height < 1 || image.width < 1) {
    throw new TypeError(`${name}: expected positive integer height and width, got ${image?.height}×${image?.width}`);
  }
  if (!(image.data instanceof Float32Array) || image.data.length !== image.height * image.width * 3) {
    throw new TypeError(
      `${name}: expected a Float32Array of height·width·3 = ${image.height * image.width * 3} values, ` +
        `got ${image.data?.length ?? typeof image.data}`,
    );
  }
}

/**
 * Encodes a {@link PixelImage} as an 8-bit RGB PNG (values clamped to [0, 1] and rounded to
 * 1/255 steps, so 8-bit-exact images round-trip exactly).
 */
export function encodePng(image: PixelImage): Uint8Array {
  assertPixelImage(image);
  const bytes = new Uint8Array(image.data.length);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = Math.round(Math.min(1, Math.max(0, image.data[i])) * 255);
  }
  return encodePngBytes({ width: image.width, height: image.height, data: bytes, channels: 3, depth: 8 });
}

/** Encodes a {@link PixelImage} as a baseline JPEG of the given quality (1–100). */
export function encodeJpeg(image: PixelImage, quality = 90): Uint8Array {
  assertPixelImage(image);
  const rgba = new Uint8Array(image.height * image.width * 4);
  for (let pixel = 0; pixel < image.height * image.width; pixel++) {
    for (let channel = 0; channel < 3; channel++) {
      rgba[pixel * 4 + channel] = Math.round(Math.min(1, Math.max(0, image.data[pixel * 3 + channel])) * 255);
    }
    rgba[pixel * 4 + 3] = 255;
  }
  return new Uint8Array(jpeg.encode({ width: image.width, height: image.height, data: rgba }, quality).data);
}

/** A `[H, W, 3]` float32 tensor of the image; the caller owns (and disposes) it. */
export function pixelImageToTensor(image: PixelImage): tf.Tensor3D {
  assertPixelImage(image);
  return tf.tensor3d(image.data, [image.height, image.width, 3], 'float32'); // [H, W, 3]
}
