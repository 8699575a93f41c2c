import { describe, expect, it } from 'vitest';
import { pixelImageToRgbBytes, resizeRgbBytes, rgbBytesToPixelImage, PIL_RESAMPLE, type RgbBytes } from './resize.js';

/** Seeded 8-bit noise (a small LCG, so the test needs no fixture). */
function noise(height: number, width: number, seed = 7): RgbBytes {
  const data = new Uint8Array(height * width * 3);
  let state = seed;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    data[i] = state >> 23;
  }
  return { height, width, data };
}

describe('resizeRgbBytes (Pillow resampling; levels against Pillow itself in reference-fixtures.test.ts)', () => {
  it('keeps a constant image constant under every filter, up and down', () => {
    const constant: RgbBytes = { height: 9, width: 14, data: new Uint8Array(9 * 14 * 3).fill(201) };
    for (const resample of [1, 2, 3, 4, 5] as const) {
      for (const [w, h] of [[5, 3], [31, 20], [14, 4], [2, 9]]) {
        const out = resizeRgbBytes(constant, w, h, resample);
        expect(out.data.every((v) => v === 201), `filter ${resample} → ${w}×${h}`).toBe(true);
      }
    }
  });

  it('returns a copy at the same size, and resamples only the axis that changes', () => {
    const image = noise(6, 8);
    const same = resizeRgbBytes(image, 8, 6);
    expect(same.data).not.toBe(image.data);
    expect(Array.from(same.data)).toEqual(Array.from(image.data));
    // Width only: each row is resampled on its own, so swapping rows commutes with the resize.
    const swapped: RgbBytes = { height: 6, width: 8, data: new Uint8Array(image.data.length) };
    for (let y = 0; y < 6; y++) swapped.data.set(image.data.subarray((5 - y) * 24, (6 - y) * 24), y * 24);
    const a = resizeRgbBytes(image, 13, 6);
    const b = resizeRgbBytes(swapped, 13, 6);
    for (let y = 0; y < 6; y++) {
      expect(Array.from(a.data.subarray(y * 39, (y + 1) * 39))).toEqual(Array.from(b.data.subarray((5 - y) * 39, (6 - y) * 39)));
    }
  });

  it('bicubic upscaling by 2 reproduces the hand-computed taps of one pixel (a = −0.5, half-pixel centres)', () => {
    // A 1-row image 0, 0, 255, 0, 0 → width 10. Output x = 5: centre 2.75, taps at j − 2.75 + 0.5 for
    // j ∈ [1, 5): distances 1.25, 0.25, 0.75, 1.75 → weights (−0.0703125, 0.8671875, 0.2265625, −0.0234375).
    const data = new Uint8Array(15);
    data.set([255, 255, 255], 6);
    const out = resizeRgbBytes({ height: 1, width: 5, data }, 10, 1);
    const w = 0.8671875; // the centre tap, the only non-zero input
    const fixed = Math.trunc(0.5 + w * 2 ** 22);
    expect(out.data[15]).toBe(Math.floor((2 ** 21 + 255 * fixed) / 2 ** 22));
    expect(out.data[15]).toBe(221);
    // Negative lobes clip at 0.
    expect(out.data[0 * 3]).toBe(0);
  });

  it('rejects bad sizes, NEAREST and malformed images', () => {
    const image = noise(3, 3);
    expect(() => resizeRgbBytes(image, 0, 3)).toThrow(/width must be a positive integer, got 0/);
    expect(() => resizeRgbBytes(image, 3, 2.5)).toThrow(/height must be a positive integer, got 2.5/);
    expect(() => resizeRgbBytes(image, 3, 3, 0 as never)).toThrow(/resample must be one of .* got 0 \(NEAREST is not implemented\)/);
    expect(() => resizeRgbBytes({ height: 2, width: 2, data: new Uint8Array(5) }, 3, 3)).toThrow(/height·width·3 = 12 levels, got 5/);
    expect(() => resizeRgbBytes({ height: 1, width: 1, data: new Float32Array(3) as never }, 3, 3)).toThrow(/Uint8Array .* got Float32Array/);
    expect(PIL_RESAMPLE.BICUBIC).toBe(3);
  });
});

describe('pixelImageToRgbBytes / rgbBytesToPixelImage', () => {
  it('round-trips every level exactly (k / 255 as float32 → k)', () => {
    const levels = Uint8Array.from({ length: 256 * 3 }, (_, i) => i % 256);
    const image: RgbBytes = { height: 16, width: 16, data: levels };
    const floats = rgbBytesToPixelImage(image);
    expect(floats.data[255]).toBe(1);
    expect(Array.from(pixelImageToRgbBytes(floats).data)).toEqual(Array.from(levels));
  });

  it('rejects values outside [0, 1], naming the index and the [0, 255] fix', () => {
    const data = new Float32Array(12).fill(0.5);
    data[7] = 128;
    expect(() => pixelImageToRgbBytes({ height: 2, width: 2, data }, 'photo')).toThrow(
      /photo: expected RGB values in \[0, 1\], got 128 at index 7 \(values in \[0, 255\]\? divide by 255 first\)/,
    );
    data[7] = Number.NaN;
    expect(() => pixelImageToRgbBytes({ height: 2, width: 2, data })).toThrow(/got NaN at index 7/);
    data[7] = -0.1;
    expect(() => pixelImageToRgbBytes({ height: 2, width: 2, data })).toThrow(/got -0.1/);
    data[7] = 1.001; // within half a level: rounds to 255
    expect(pixelImageToRgbBytes({ height: 2, width: 2, data }).data[7]).toBe(255);
    expect(() => pixelImageToRgbBytes({ height: 2, width: 2, data: new Float32Array(3) })).toThrow(/height·width·3 = 12 values, got 3/);
  });
});
