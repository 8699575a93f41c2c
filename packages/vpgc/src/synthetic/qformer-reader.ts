/**
 * The default attention reader: the VPG's own (first-pass) Q-Former cross-attention, averaged over
 * cross-attention layers, heads and queries, per image patch.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { QFormerVPG } from '../qformer-vpg.js';
import type { PatchAttentionReader } from './generator.js';

/** images `[n, S, S, C]` → raw patch pixels `[n, (S/p)², p·p·C]` (row-major patches, each patch row-major, channels last). */
export function patchPixels(images: tf.Tensor4D, patchSize: number): tf.Tensor3D {
  const [n, S, S2, C] = images.shape;
  if (S !== S2 || S % patchSize !== 0) throw new Error(`patchPixels: images must be square with side divisible by ${patchSize}, got [${images.shape}]`);
  const P = S / patchSize;
  return tf.tidy(() => {
    const grid = tf.reshape(images, [n, P, patchSize, P, patchSize, C]); // [n, P, p, P, p, C]
    const patches = tf.transpose(grid, [0, 1, 3, 2, 4, 5]); // [n, P, P, p, p, C]
    return tf.reshape(patches, [n, P * P, patchSize * patchSize * C]) as tf.Tensor3D; // [n, P², p²·C]
  });
}

export interface QFormerReaderOptions {
  /**
   * Pixels `[n, S, S, 3]` → vision features `[n, Nv, Dv]` for the VPG (a vision encoder). Default:
   * raw patch pixels (`patchPixels`, Dv = patchSize²·3) for VPGs trained on pixels directly.
   */
  featurize?: (images: tf.Tensor4D) => tf.Tensor3D;
  /** Patch side in pixels (default: image side / patchGrid). */
  patchSize?: number;
  /** Patches per side the features cover. */
  patchGrid: number;
  /** The features start with a CLS token (dropped from the map; default false). */
  hasClsToken?: boolean;
}

/** A `PatchAttentionReader` backed by `vpg.crossAttentionMap`. */
export function qformerAttentionReader(vpg: QFormerVPG, options: QFormerReaderOptions): PatchAttentionReader {
  const skip = options.hasClsToken ? 1 : 0;
  return (images: Float32Array[], size: number) => {
    const patchSize = options.patchSize ?? size / options.patchGrid;
    const map = tf.tidy(() => {
      const pixels = tf.tensor4d(concat(images), [images.length, size, size, 3]);
      const features = options.featurize ? options.featurize(pixels) : patchPixels(pixels, patchSize);
      const expected = options.patchGrid * options.patchGrid + skip;
      if (features.shape[1] !== expected) {
        throw new Error(`qformerAttentionReader: features must have ${expected} tokens (patchGrid² + CLS), got [${features.shape}]`);
      }
      return vpg.crossAttentionMap(features); // [n, Nv]
    });
    const data = map.dataSync();
    const Nv = map.shape[1];
    map.dispose();
    return images.map((_, i) => data.slice(i * Nv + skip, (i + 1) * Nv));
  };
}

function concat(images: Float32Array[]): Float32Array {
  const out = new Float32Array(images.reduce((n, image) => n + image.length, 0));
  let offset = 0;
  for (const image of images) {
    out.set(image, offset);
    offset += image.length;
  }
  return out;
}
