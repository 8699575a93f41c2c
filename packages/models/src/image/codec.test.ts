import * as tf from '@tensorflow/tfjs';
import { encode as encodeRawPng } from 'fast-png';
import { describe, expect, it } from 'vitest';
import {
  decodeImage,
  encodeJpeg,
  encodePng,
  ImageDecodeError,
  pixelImageToTensor,
  sniffImageFormat,
  type PixelImage,
} from './codec.js';

/** A deterministic 8-bit-exact RGB image. */
function testImage(height: number, width: number): PixelImage {
  const data = new Float32Array(height * width * 3);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 37 + 11) % 256) / 255;
  return { height, width, data };
}

describe('image codec', () => {
  it('PNG round-trips 8-bit pixels exactly', () => {
    const image = testImage(3, 5);
    const bytes = encodePng(image);
    expect(sniffImageFormat(bytes)).toBe('png');
    const decoded = decodeImage(bytes);
    expect([decoded.height, decoded.width]).toEqual([3, 5]);
    expect(Array.from(decoded.data)).toEqual(Array.from(image.data));
  });

  it('decodes grey, grey+alpha, RGBA, 16-bit and indexed PNGs to RGB in [0, 1]', () => {
    // grey 8-bit: pixel values 0, 51, 255
    const grey = decodeImage(encodeRawPng({ width: 3, height: 1, data: Uint8Array.from([0, 51, 255]), channels: 1, depth: 8 }));
    expect(Array.from(grey.data)).toEqual([0, 0, 0, 0.2, 0.2, 0.2, 1, 1, 1].map((v) => Math.fround(v)));
    // grey + alpha: alpha dropped
    const greyAlpha = decodeImage(encodeRawPng({ width: 1, height: 1, data: Uint8Array.from([102, 7]), channels: 2, depth: 8 }));
    expect(Array.from(greyAlpha.data)).toEqual([0.4, 0.4, 0.4].map((v) => Math.fround(v)));
    // RGBA: alpha dropped
    const rgba = decodeImage(encodeRawPng({ width: 1, height: 1, data: Uint8Array.from([255, 0, 51, 0]), channels: 4, depth: 8 }));
    expect(Array.from(rgba.data)).toEqual([1, 0, 0.2].map((v) => Math.fround(v)));
    // 16-bit RGB: 65535 → 1, 13107 → 0.2
    const deep = decodeImage(encodeRawPng({ width: 1, height: 1, data: Uint16Array.from([65535, 13107, 0]), channels: 3, depth: 16 }));
    expect(Array.from(deep.data)).toEqual([1, 0.2, 0].map((v) => Math.fround(v)));
    // indexed: palette [[255,0,0],[0,0,255]], pixels [1, 0]
    const indexed = decodeImage(
      encodeRawPng({ width: 2, height: 1, data: Uint8Array.from([1, 0]), channels: 1, depth: 8, palette: [[255, 0, 0], [0, 0, 255]] }),
    );
    expect(Array.from(indexed.data)).toEqual([0, 0, 1, 1, 0, 0]);
  });

  it('JPEG decodes close to the encoded pixels', () => {
    // A smooth image: JPEG at quality 100 stays within a few levels.
    const height = 8;
    const width = 8;
    const data = new Float32Array(height * width * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const offset = (y * width + x) * 3;
        data[offset] = x / 7;
        data[offset + 1] = y / 7;
        data[offset + 2] = 0.5;
      }
    }
    const bytes = encodeJpeg({ height, width, data }, 100);
    expect(sniffImageFormat(bytes)).toBe('jpeg');
    const decoded = decodeImage(bytes);
    expect([decoded.height, decoded.width]).toEqual([8, 8]);
    let worst = 0;
    for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(decoded.data[i] - data[i]));
    expect(worst).toBeLessThan(0.05);
  });

  it('rejects unknown formats and corrupt data with ImageDecodeError', () => {
    expect(() => decodeImage(Uint8Array.from([1, 2, 3, 4]))).toThrow(ImageDecodeError);
    expect(() => decodeImage(new TextEncoder().encode('GIF89a....'))).toThrow(/unsupported image format 'gif'/);
    const truncated = encodePng(testImage(4, 4)).slice(0, 40);
    expect(() => decodeImage(truncated)).toThrow(/corrupt PNG/);
    const badJpeg = Uint8Array.from([0xff, 0xd8, 0xff, 0x00, 0x01, 0x02]);
    expect(() => decodeImage(badJpeg)).toThrow(/corrupt JPEG/);
    const jpegBytes = encodeJpeg(testImage(16, 16), 90);
    expect(() => decodeImage(jpegBytes.slice(0, Math.floor(jpegBytes.length / 2)))).toThrow(/corrupt JPEG/);
  });

  it('pixelImageToTensor gives a [H, W, 3] float32 tensor with the pixels, and validates input', () => {
    const image = testImage(2, 3);
    const before = tf.memory().numTensors;
    const tensor = pixelImageToTensor(image);
    expect(tensor.shape).toEqual([2, 3, 3]);
    expect(tensor.dtype).toBe('float32');
    expect(Array.from(tensor.dataSync())).toEqual(Array.from(image.data));
    tensor.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => pixelImageToTensor({ height: 2, width: 3, data: new Float32Array(5) })).toThrow(/height·width·3 = 18 values, got 5/);
    expect(() => pixelImageToTensor({ height: 0, width: 3, data: new Float32Array(0) })).toThrow(/positive integer height and width/);
  });
});
