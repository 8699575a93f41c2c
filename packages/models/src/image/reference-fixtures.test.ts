/**
 * The image pipelines against Pillow 9.4 and the references' own processors: the fixture
 * `__fixtures__/image-processors.safetensors` is written by `scripts/reference-fixtures/image_processors.py`
 * (Pillow's `Image.resize`, Parrot's `expand2square` and `SigLipImageProcessor`, Cheetah's
 * `Blip2ImageEvalProcessor`, HF 4.37's `CLIPImageProcessor` steps). Every level and every float32 value
 * must be equal: the measured difference is 0.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { readSafetensorsHeader, safetensorsTensorBytes } from '@mllm/core';
import { expectNoLeaks } from '@mllm/core/testing';
import { describe, expect, it } from 'vitest';
import {
  blip2ImageEvalProcessor,
  clipImageProcessor,
  expandToSquare,
  llavaPadColor,
  OPENAI_CLIP_MEAN,
  resizeRgbBytes,
  rgbBytesToPixelImage,
  siglipImageProcessor,
  type ImageProcessor,
  type PilResample,
  type RgbBytes,
} from './index.js';

const file = readFileSync(fileURLToPath(new URL('./__fixtures__/image-processors.safetensors', import.meta.url)));
const bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
const header = readSafetensorsHeader(bytes);
const metadata = header.metadata ?? {};

function raw(name: string): { shape: number[]; bytes: Uint8Array } {
  const info = header.tensors.get(name);
  if (!info) throw new Error(`fixture has no tensor ${name}`);
  return { shape: info.shape, bytes: safetensorsTensorBytes(bytes, header, info).slice() };
}
function u8Image(name: string): RgbBytes {
  const { shape, bytes: data } = raw(name);
  return { height: shape[0], width: shape[1], data };
}
function f32(name: string): { shape: number[]; data: Float32Array } {
  const { shape, bytes: data } = raw(name);
  return { shape, data: new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4) };
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const IMAGES = ['a', 'b', 'c', 'd', 'e'];
const resizeCases = JSON.parse(metadata.resize_cases) as Array<{ image: string; width: number; height: number; resample: PilResample }>;
const pipelines = JSON.parse(metadata.pipelines) as Record<string, { kind: string; shortest_edge?: number; crop?: number; size?: number; image_size?: number; pad?: boolean }>;

function processorFor(description: (typeof pipelines)[string]): ImageProcessor {
  const padToSquare = description.pad ?? false;
  if (description.kind === 'clip') return clipImageProcessor({ shortestEdge: description.shortest_edge, cropSize: description.crop, padToSquare });
  if (description.kind === 'siglip') return siglipImageProcessor({ size: description.size, padToSquare });
  return blip2ImageEvalProcessor({ imageSize: description.image_size });
}

describe('image preprocessing against Pillow 9.4 and the references (fixture)', () => {
  it(`resizeRgbBytes gives Pillow's levels exactly (${resizeCases.length} cases: bicubic up/down/one axis, and the other filters)`, () => {
    expect(resizeCases.length).toBeGreaterThan(20);
    resizeCases.forEach((c, i) => {
      const expected = u8Image(`resize.${i}`);
      const actual = resizeRgbBytes(u8Image(`image.${c.image}`), c.width, c.height, c.resample);
      expect([actual.height, actual.width], `case ${i}`).toEqual([c.height, c.width]);
      expect(maxAbsDiff(actual.data, expected.data), `case ${i} ${JSON.stringify(c)}: max level difference`).toBe(0);
    });
  });

  it("expandToSquare is LLaVA's expand2square with int(mean · 255)", () => {
    expect(llavaPadColor(OPENAI_CLIP_MEAN)).toEqual([122, 116, 104]);
    for (const name of IMAGES) {
      const expected = u8Image(`expand2square.${name}`);
      const actual = expandToSquare(u8Image(`image.${name}`), llavaPadColor(OPENAI_CLIP_MEAN));
      expect([actual.height, actual.width]).toEqual([expected.height, expected.width]);
      expect(Array.from(actual.data)).toEqual(Array.from(expected.data));
    }
  });

  for (const [pipeline, description] of Object.entries(pipelines)) {
    it(`${pipeline} (${JSON.stringify(description)}): pixel values equal the reference's float32 values`, () => {
      const processor = processorFor(description);
      for (const name of IMAGES) {
        const expected = f32(`pixel_values.${pipeline}.${name}`);
        // From the float image the codec would decode (k / 255), as a user passes it.
        const actual = processor.pixelValues(rgbBytesToPixelImage(u8Image(`image.${name}`)));
        expect([3, actual.height, actual.width], `${pipeline}.${name} shape`).toEqual(expected.shape);
        expect(maxAbsDiff(actual.data, expected.data), `${pipeline}.${name}: max abs difference`).toBe(0);
      }
    });
  }

  it('preprocess stacks a batch as [N, 3, S, S] (and NHWC on request) with the same values, without leaks', async () => {
    const processor = processorFor(pipelines.siglip_pad);
    const inputs = IMAGES.map((name) => rgbBytesToPixelImage(u8Image(`image.${name}`)));
    await expectNoLeaks(async () => {
      const nchw = processor.preprocess(inputs);
      const nhwc = processor.preprocess(inputs, { layout: 'NHWC' });
      expect(nchw.shape).toEqual([IMAGES.length, 3, 10, 10]);
      expect(nhwc.shape).toEqual([IMAGES.length, 10, 10, 3]);
      const values = nchw.dataSync();
      IMAGES.forEach((name, n) => {
        const expected = f32(`pixel_values.siglip_pad.${name}`).data;
        expect(maxAbsDiff(values.subarray(n * 300, (n + 1) * 300), expected)).toBe(0);
      });
      const transposed = tf.tidy(() => tf.transpose(nhwc, [0, 3, 1, 2]).dataSync());
      expect(Array.from(transposed)).toEqual(Array.from(values));
      tf.dispose([nchw, nhwc]);
    });
  });
});
