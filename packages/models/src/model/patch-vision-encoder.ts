/**
 * Small ViT image encoder. Pixels `[N, S, S, C]` in [0, 1] (channels last):
 *
 *   x = (pixels − mean) / std
 *   patches = patchify_p(x)                        [N, P, p·p·C]   P = (S/p)², patch rows (py, px, c)
 *   e = [cls ; patches·W_pe + b_pe] + pos          [N, 1+P, D]
 *   e ← block_k(e) for each block;  out = LN(e)    [N, 1+P, D]     row 0 = CLS
 *
 * Names: `embeddings.patch_embedding.{weight,bias}`, `embeddings.class_embedding`,
 * `embeddings.position_embedding.weight`, `encoder.layers.{k}.…`, `post_layernorm.{weight,bias}`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, Linear, LayerNorm, normalInit, type VisionSelectFeature } from '@mllm/core';
import { VisionEncoderBlock } from './vision-encoder-block.js';
import { resolveVisionConfig, type ResolvedVisionConfig, type VisionConfig } from './config.js';

export interface PatchVisionEncoderArgs extends ModuleArgs {
  config: VisionConfig;
}

/** `x [N, S, S, C] → [N, (S/p)², p·p·C]`, each patch flattened in (row, column, channel) order. */
export function patchify(x: tf.Tensor4D, patchSize: number): tf.Tensor3D {
  const [N, S, W, C] = x.shape;
  const p = patchSize;
  return tf.tidy(() => {
    const grid = tf.reshape(x, [N, S / p, p, W / p, p, C]); // [N, gy, p, gx, p, C]
    const ordered = tf.transpose(grid, [0, 1, 3, 2, 4, 5]); // [N, gy, gx, p, p, C]
    return tf.reshape(ordered, [N, (S / p) * (W / p), p * p * C]) as tf.Tensor3D; // [N, P, p·p·C]
  });
}

/** `'patch'`: drop row 0 (CLS) → `[N, P, D]`; `'cls_patch'`: keep all `[N, 1+P, D]`. */
export function selectVisionFeature(hidden: tf.Tensor3D, select: VisionSelectFeature): tf.Tensor3D {
  if (select === 'cls_patch') return hidden.clone();
  const [N, P1, D] = hidden.shape;
  return tf.slice(hidden, [0, 1, 0], [N, P1 - 1, D]);
}

export class PatchVisionEncoder extends Module {
  static readonly className = 'PatchVisionEncoder';
  readonly visionConfig: ResolvedVisionConfig;
  readonly numPatches: number;
  readonly patchEmbedding: Linear;
  readonly blocks: VisionEncoderBlock[];
  readonly postLayernorm: LayerNorm;
  private classEmbedding!: tfl.LayerVariable;
  private positionEmbedding!: tfl.LayerVariable;

  constructor(args: PatchVisionEncoderArgs) {
    super(args);
    const c = (this.visionConfig = resolveVisionConfig(args.config));
    this.numPatches = (c.imageSize / c.patchSize) ** 2;
    const patchDim = c.patchSize * c.patchSize * c.numChannels;
    this.patchEmbedding = this.addModule('embeddings.patch_embedding', new Linear({ inFeatures: patchDim, outFeatures: c.hiddenSize }));
    this.classEmbedding = this.addParameter('embeddings.class_embedding', [c.hiddenSize], normalInit(0.02));
    this.positionEmbedding = this.addParameter('embeddings.position_embedding.weight', [1 + this.numPatches, c.hiddenSize], normalInit(0.02));
    this.blocks = [];
    for (let k = 0; k < c.numLayers; k++) {
      this.blocks.push(this.addModule(`encoder.layers.${k}`, new VisionEncoderBlock({
        hiddenSize: c.hiddenSize, numHeads: c.numHeads, intermediateSize: c.intermediateSize, layerNormEps: c.layerNormEps,
      })));
    }
    this.postLayernorm = this.addModule('post_layernorm', new LayerNorm({ dim: c.hiddenSize, eps: c.layerNormEps }));
    this.built = true;
  }

  /** Rows per image in `encode`'s output (1 + P) and in `forward`'s (P or 1 + P). */
  get numFeatureTokens(): number {
    return this.visionConfig.selectFeature === 'cls_patch' ? 1 + this.numPatches : this.numPatches;
  }

  /** `pixels [N, S, S, C]` in [0, 1] → `[N, 1+P, D]`, row 0 = CLS. */
  encode(pixels: tf.Tensor4D): tf.Tensor3D {
    this.assertUsable();
    const c = this.visionConfig;
    if (pixels.rank !== 4 || pixels.shape[1] !== c.imageSize || pixels.shape[2] !== c.imageSize || pixels.shape[3] !== c.numChannels) {
      throw new Error(`PatchVisionEncoder: images must be [numImages, ${c.imageSize}, ${c.imageSize}, ${c.numChannels}], got [${pixels.shape}]`);
    }
    return tf.tidy(() => {
      const N = pixels.shape[0];
      const x = tf.div(tf.sub(tf.cast(pixels, 'float32'), tf.tensor1d(c.imageMean)), tf.tensor1d(c.imageStd)); // [N, S, S, C]
      const patches = this.patchEmbedding.forward(patchify(x as tf.Tensor4D, c.patchSize)); // [N, P, D]
      const cls = tf.tile(tf.reshape(this.classEmbedding.read(), [1, 1, c.hiddenSize]), [N, 1, 1]); // [N, 1, D]
      let h = tf.add(tf.concat([cls, patches], 1), this.positionEmbedding.read()) as tf.Tensor3D; // [N, 1+P, D]
      for (const block of this.blocks) h = block.forward(h);
      return this.postLayernorm.forward(h) as tf.Tensor3D; // [N, 1+P, D]
    });
  }

  /** `pixels [N, S, S, C] → [N, Nv, D]` with the configured feature selection. */
  forward(pixels: tf.Tensor4D): tf.Tensor3D {
    return tf.tidy(() => selectVisionFeature(this.encode(pixels), this.visionConfig.selectFeature));
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    return [inputShape[0], this.numFeatureTokens, this.visionConfig.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), config: { ...this.visionConfig } };
  }
}
tf.serialization.registerClass(PatchVisionEncoder, 'mllm');
