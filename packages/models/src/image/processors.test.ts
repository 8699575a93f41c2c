import * as tf from '@tensorflow/tfjs';
import { expectNoLeaks } from '@mllm/core/testing';
import { describe, expect, it } from 'vitest';
import {
  blip2ImageEvalProcessor,
  centerCropRgbBytes,
  clipImageProcessor,
  expandToSquare,
  ImageProcessor,
  llavaPadColor,
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  shortestEdgeSize,
  siglipImageProcessor,
} from './processors.js';
import { rgbBytesToPixelImage, type RgbBytes } from './resize.js';

/** An image whose level encodes (row, column, channel), so crops and pastes can be read back. */
function indexed(height: number, width: number): RgbBytes {
  const data = new Uint8Array(height * width * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = 10 * y + x + 100 * c;
  return { height, width, data };
}
const at = (image: RgbBytes, y: number, x: number) => Array.from(image.data.subarray((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));

describe('reference preprocessing steps (values against the references in reference-fixtures.test.ts)', () => {
  it("shortestEdgeSize is HF's get_resize_output_image_size: short side S, long side ⌊S · long / short⌋", () => {
    expect(shortestEdgeSize(480, 640, 224)).toEqual({ height: 224, width: 298 }); // 298.67 → 298
    expect(shortestEdgeSize(640, 480, 336)).toEqual({ height: 448, width: 336 });
    expect(shortestEdgeSize(7, 7, 3)).toEqual({ height: 3, width: 3 });
    expect(() => shortestEdgeSize(7, 7, 0)).toThrow(/shortestEdge must be a positive integer, got 0/);
  });

  it("centerCropRgbBytes takes the window at ⌊(H − h) / 2⌋; a larger crop pads with zeros as HF's center_crop does", () => {
    const image = indexed(5, 6);
    const crop = centerCropRgbBytes(image, 2, 3); // top ⌊3/2⌋ = 1, left ⌊3/2⌋ = 1
    expect([crop.height, crop.width]).toEqual([2, 3]);
    expect(at(crop, 0, 0)).toEqual(at(image, 1, 1));
    expect(at(crop, 1, 2)).toEqual(at(image, 2, 3));
    // 2×3 image, crop 4×7 (even differences): canvas 4×7 with the image at rows 1–2, cols 2–4; window = the canvas.
    const padded = centerCropRgbBytes(indexed(2, 3), 4, 7);
    expect([padded.height, padded.width]).toEqual([4, 7]);
    expect(at(padded, 0, 0)).toEqual([0, 0, 0]);
    expect(at(padded, 1, 2)).toEqual(at(indexed(2, 3), 0, 0));
    expect(at(padded, 2, 4)).toEqual(at(indexed(2, 3), 1, 2));
    expect(at(padded, 3, 6)).toEqual([0, 0, 0]);
    // Crop 4×6 (odd width difference): HF's window is cols −1…4 of a 6-wide canvas, clipped to 0…4: 5 wide.
    const odd = centerCropRgbBytes(indexed(2, 3), 4, 6);
    expect([odd.height, odd.width]).toEqual([4, 5]);
    expect(at(odd, 1, 1)).toEqual(at(indexed(2, 3), 0, 0));
    expect(at(odd, 2, 3)).toEqual(at(indexed(2, 3), 1, 2));
  });

  it("expandToSquare pastes at ⌊(side − W) / 2⌋ on a square of the background colour; llavaPadColor truncates", () => {
    expect(llavaPadColor(OPENAI_CLIP_MEAN)).toEqual([122, 116, 104]); // 122.77, 116.75, 104.09
    expect(llavaPadColor([0.5, 0.5, 0.5])).toEqual([127, 127, 127]);
    const tall = indexed(5, 2); // left offset ⌊3 / 2⌋ = 1
    const square = expandToSquare(tall, [1, 2, 3]);
    expect([square.height, square.width]).toEqual([5, 5]);
    expect(at(square, 0, 0)).toEqual([1, 2, 3]);
    expect(at(square, 4, 1)).toEqual(at(tall, 4, 0));
    expect(at(square, 4, 2)).toEqual(at(tall, 4, 1));
    expect(at(square, 4, 3)).toEqual([1, 2, 3]);
    const wide = expandToSquare(indexed(2, 5), [9, 9, 9]); // top offset 1
    expect(at(wide, 1, 0)).toEqual(at(indexed(2, 5), 0, 0));
    const already = indexed(3, 3);
    expect(expandToSquare(already, [0, 0, 0])).toBe(already);
    expect(() => expandToSquare(tall, [1, 2, 256])).toThrow(/background must be 3 integer levels 0–255, got \[1,2,256\]/);
  });

  it("HF's float64 rescale `v · (1/255)` and torchvision's float32 `v / 255` give the same float32 for all 256 levels", () => {
    // Why one rescale serves the HF processors and BLIP-2's ToTensor.
    const f32 = new Float32Array(1);
    for (let v = 0; v < 256; v++) {
      f32[0] = v;
      const torchvision = Math.fround(f32[0] / Math.fround(255));
      expect(Math.fround(v * (1 / 255))).toBe(torchvision);
    }
  });

  it('normalises as float32 (x − mean) / std, channels first, matching a float64 restatement to float32 rounding', () => {
    const processor = clipImageProcessor({ shortestEdge: 4, cropSize: 4 });
    const image = indexed(4, 4); // no resize (already 4 × 4), no crop offset
    const { data } = processor.pixelValues(image);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 16; p++) {
        const level = image.data[p * 3 + c];
        const reference = (level / 255 - OPENAI_CLIP_MEAN[c]) / OPENAI_CLIP_STD[c];
        expect(Math.abs(data[c * 16 + p] - reference)).toBeLessThan(1e-6);
      }
    }
  });

  it('defaults follow the reference classes', () => {
    expect(clipImageProcessor().options).toMatchObject({ resize: { shortestEdge: 224 }, centerCrop: { height: 224, width: 224 }, resample: 3 });
    expect(siglipImageProcessor().options).toMatchObject({ resize: { height: 384, width: 384 }, centerCrop: null, normalize: { mean: [0.5, 0.5, 0.5] } });
    expect(siglipImageProcessor().padColor).toEqual([127, 127, 127]);
    expect(blip2ImageEvalProcessor().options).toMatchObject({ resize: { height: 224, width: 224 }, normalize: { mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD } });
    expect(blip2ImageEvalProcessor().kind).toBe('blip2');
  });

  it('preprocess accepts one image or a list of float or 8-bit images, without leaks', async () => {
    const processor = siglipImageProcessor({ size: 6 });
    const bytes = indexed(5, 7);
    await expectNoLeaks(async () => {
      const one = processor.preprocess(bytes);
      const two = processor.preprocess([rgbBytesToPixelImage(bytes), bytes]);
      expect(one.shape).toEqual([1, 3, 6, 6]);
      expect(two.shape).toEqual([2, 3, 6, 6]);
      const values = two.dataSync();
      expect(Array.from(values.subarray(0, 108))).toEqual(Array.from(one.dataSync()));
      expect(Array.from(values.subarray(108))).toEqual(Array.from(one.dataSync()));
      tf.dispose([one, two]);
    });
  });

  it('rejects [0, 255] floats, mixed output sizes and bad options with clear errors', () => {
    const processor = siglipImageProcessor({ size: 4 });
    const data = new Float32Array(2 * 2 * 3).fill(200);
    expect(() => processor.preprocess([{ height: 2, width: 2, data }])).toThrow(/images\[0\]: expected RGB values in \[0, 1\], got 200 at index 0 \(values in \[0, 255\]\? divide by 255 first\)/);
    expect(() => processor.preprocess([])).toThrow(/at least one image/);
    expect(() => processor.preprocess(indexed(4, 4), { layout: 'CHW' as never })).toThrow(/layout must be 'NCHW' or 'NHWC', got "CHW"/);
    const keepAspect = new ImageProcessor('clip', { ...clipImageProcessor().options, resize: { shortestEdge: 4 }, centerCrop: null });
    expect(() => keepAspect.preprocess([indexed(4, 8), indexed(8, 4)])).toThrow(/images\[1\] comes out 8×4, images\[0\] 4×8/);
    const base = siglipImageProcessor().options;
    expect(() => new ImageProcessor('siglip', { ...base, normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0, 0.5] } })).toThrow(/normalize.std must be 3 finite numbers > 0 .*got \[0.5,0,0.5\]/);
    expect(() => new ImageProcessor('siglip', { ...base, resample: 0 as never })).toThrow(/resample must be a PIL filter code 1–5 .*got 0 \(NEAREST is not implemented\)/);
    expect(() => new ImageProcessor('siglip', { ...base, resize: { height: 0, width: 4 } })).toThrow(/resize.height must be a positive integer, got 0/);
    expect(() => new ImageProcessor('vit' as never, base)).toThrow(/kind must be 'clip', 'siglip' or 'blip2', got "vit"/);
    expect(() => new ImageProcessor('siglip', { ...base, rescaleFactor: -1 })).toThrow(/rescaleFactor must be a finite number > 0 or null, got -1/);
  });
});
