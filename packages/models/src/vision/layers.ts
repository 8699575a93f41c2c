/**
 * Building blocks shared by the HF-format vision towers: the MLP activations, the conv patch embedding (kept
 * in PyTorch's `[D, C, p, p]` layout) and the CLIP / SigLIP pre-norm encoder layer under HF's names.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { Module, type ModuleArgs, zerosInit, normalInit } from '@mllm/core';
import { VisionEncoderBlock } from '../model/vision-encoder-block.js';
import { patchify } from '../model/patch-vision-encoder.js';
import type { VisionActivation } from './config.js';

export { quickGelu, geluTanh, visionActivation } from './activation.js';

/** Checks `pixels` is `[N, S, S, C]` (channels last) for a tower of image size S with C channels. */
export function assertPixels(owner: string, pixels: tf.Tensor, imageSize: number, numChannels: number): asserts pixels is tf.Tensor4D {
  if (!(pixels instanceof tf.Tensor) || pixels.rank !== 4 || pixels.shape[1] !== imageSize || pixels.shape[2] !== imageSize || pixels.shape[3] !== numChannels) {
    const got = pixels instanceof tf.Tensor ? `[${pixels.shape}]` : String(pixels);
    throw new Error(`${owner}: pixelValues must be [numImages, ${imageSize}, ${imageSize}, ${numChannels}] (normalised, channels last), got ${got}`);
  }
}

/**
 * Resolves a hidden-state index of a tower with `numLayers` layers (`numLayers + 1` states: the embeddings,
 * then one per layer; negative counts from the end as in Python) to the number of layers to run.
 */
export function hiddenStateIndex(owner: string, index: number, numLayers: number): number {
  if (!Number.isInteger(index) || index < -(numLayers + 1) || index > numLayers) {
    throw new Error(`${owner}: selectLayer must be an integer in [${-(numLayers + 1)}, ${numLayers}] (hidden states of ${numLayers} layers), got ${String(index)}`);
  }
  return index < 0 ? numLayers + 1 + index : index;
}

export interface ConvPatchEmbeddingArgs extends ModuleArgs {
  numChannels: number;
  hiddenSize: number;
  patchSize: number;
  bias: boolean;
}

/**
 * `nn.Conv2d(C, D, kernel = stride = p)` on channels-last pixels, weight `[D, C, p, p]` (PyTorch layout,
 * `weight`, optional `bias`):
 *
 *   out[n, (y, x), :] = W_flat · patch(n, y, x) + b      [N, P, D],  P = (S/p)², row-major over (y, x)
 *
 * A stride-p conv is a matmul over non-overlapping patches: `patchify` flattens each patch as (py, px, c), so
 * the weight is reordered to `[D, p, p, C]` and flattened the same way (one small transpose per call).
 */
export class ConvPatchEmbedding extends Module {
  static readonly className = 'ConvPatchEmbedding';
  readonly args: ConvPatchEmbeddingArgs;
  private weight!: tfl.LayerVariable;
  private biasVariable: tfl.LayerVariable | null = null;

  constructor(args: ConvPatchEmbeddingArgs) {
    super(args);
    this.args = { ...args };
    const { hiddenSize: D, numChannels: C, patchSize: p } = args;
    this.weight = this.addParameter('weight', [D, C, p, p], normalInit(0.02));
    if (args.bias) this.biasVariable = this.addParameter('bias', [D], zerosInit);
    this.built = true;
  }

  /** `pixels [N, S, S, C] → [N, ⌊S/p⌋², D]`. */
  forward(pixels: tf.Tensor4D): tf.Tensor3D {
    this.assertUsable();
    const { hiddenSize: D, numChannels: C, patchSize: p } = this.args;
    return tf.tidy(() => {
      const [N, Hs, Ws] = pixels.shape;
      const [gy, gx] = [Math.floor(Hs / p), Math.floor(Ws / p)];
      // a "valid" conv never reads the last S mod p rows / columns: crop them (no copy when none)
      const used = gy * p === Hs && gx * p === Ws ? pixels : tf.slice(pixels, [0, 0, 0, 0], [N, gy * p, gx * p, C]);
      const patches = patchify(used, p); // [N, P, p·p·C]
      const [, P, K] = patches.shape;
      const w = tf.reshape(tf.transpose(this.weight.read(), [0, 2, 3, 1]), [D, p * p * C]); // [D, p·p·C]
      let out = tf.matMul(tf.reshape(patches, [N * P, K]), w, false, true); // [N·P, D]
      if (this.biasVariable) out = tf.add(out, this.biasVariable.read());
      return tf.reshape(out, [N, P, D]) as tf.Tensor3D;
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return this.forward((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D);
  }

  override computeOutputShape(inputShape: tfl.Shape): tfl.Shape {
    const p = this.args.patchSize;
    return [inputShape[0], Math.floor((inputShape[1] as number) / p) * Math.floor((inputShape[2] as number) / p), this.args.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    const { name: _name, trainable: _trainable, ...rest } = this.args;
    return { ...super.getConfig(), ...rest };
  }
}
tf.serialization.registerClass(ConvPatchEmbedding, 'mllm');

export interface ViTEncoderLayerArgs extends ModuleArgs {
  hiddenSize: number;
  numHeads: number;
  intermediateSize: number;
  layerNormEps: number;
  hiddenAct: VisionActivation;
}

/**
 * HF `CLIPEncoderLayer` / `SiglipEncoderLayer` (children `layer_norm1`, `self_attn.{q,k,v,out}_proj`,
 * `layer_norm2`, `mlp.fc1`, `mlp.fc2`, all biased), bidirectional attention: the host's pre-norm
 * `VisionEncoderBlock` with the config's `hidden_act` and HF's `out_proj` name:
 *
 *   h = x + out_proj(attn(LN1(x)));  y = h + fc2(act(fc1(LN2(h))))        all [N, L, D]
 *   attn: softmax(q·kᵀ/√d)·v per head (HF scales q by d^−½ before the product: the same value)
 */
export class ViTEncoderLayer extends VisionEncoderBlock {
  static override readonly className: string = 'ViTEncoderLayer';

  constructor(args: ViTEncoderLayerArgs) {
    super({ ...args, outProj: true });
  }
}
tf.serialization.registerClass(ViTEncoderLayer, 'mllm');

/**
 * Runs `layers[0..count)` from `h` (taking ownership of it: intermediate states are disposed unless
 * collected). Returns the last state and, when `collect`, every state from `h` on (`count + 1` tensors).
 */
export function runEncoderLayers(layers: readonly { forward(x: tf.Tensor3D): tf.Tensor3D }[], h: tf.Tensor3D, count: number, collect: boolean): { last: tf.Tensor3D; states: tf.Tensor3D[] | null } {
  const states: tf.Tensor3D[] | null = collect ? [h] : null;
  let current = h;
  for (let i = 0; i < count; i++) {
    const next = layers[i]!.forward(current);
    if (!collect) current.dispose();
    current = next;
    states?.push(current);
  }
  return { last: current, states };
}
