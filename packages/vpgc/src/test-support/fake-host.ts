/**
 * A minimal decoder-like host for hook tests (until/besides the real host): per layer
 * `h ← beforeLayer hooks(h)`, then `h = h + tanh(M·h·W1)·W2` with M the causal running mean over
 * positions (so image-token changes reach later tokens, as through attention); logits = h·W_out.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, type Module } from '@mllm/core';
import type { VPGCDecoderHooks, VPGCForwardContext } from '../hook-types.js';
import type { QFormerVPG } from '../qformer-vpg.js';

export class FakeHost {
  readonly blocks: Array<[Linear, Linear]> = [];
  readonly lmHead: Linear;
  readonly config: { text: { numLayers: number } };
  readonly hooks: VPGCDecoderHooks[] = [];
  /** Layer inputs (after hooks) of the last forward, when recording. */
  recorded: tf.Tensor3D[] = [];

  constructor(readonly hiddenSize: number, numLayers: number, vocab: number, readonly projector: QFormerVPG) {
    this.config = { text: { numLayers } };
    for (let i = 0; i < numLayers; i++) {
      this.blocks.push([new Linear({ inFeatures: hiddenSize, outFeatures: 2 * hiddenSize }), new Linear({ inFeatures: 2 * hiddenSize, outFeatures: hiddenSize })]);
    }
    this.lmHead = new Linear({ inFeatures: hiddenSize, outFeatures: vocab, bias: false });
  }

  modules(): Module[] {
    return [...this.blocks.flat(), this.lmHead, this.projector];
  }

  setTrainable(trainable: boolean): void {
    for (const m of this.modules()) m.setTrainable(trainable);
  }

  addHooks(hooks: VPGCDecoderHooks): { remove(): void } {
    this.hooks.push(hooks);
    return { remove: () => void this.hooks.splice(this.hooks.indexOf(hooks), 1) };
  }

  /** embeddings `[B, L, H]` → logits `[B, L, V]`. */
  forward(embeddings: tf.Tensor3D, ctx: VPGCForwardContext, record = false): tf.Tensor3D {
    const [B, L] = embeddings.shape;
    return tf.tidy(() => {
      const mix = tf.tensor2d(
        Array.from({ length: L * L }, (_, k) => (Math.floor(k / L) >= k % L ? 1 / (Math.floor(k / L) + 1) : 0)),
        [L, L],
      );
      const mixB = tf.tile(tf.expandDims(mix, 0), [B, 1, 1]) as tf.Tensor3D; // [B, L, L]
      let h = embeddings;
      this.blocks.forEach(([w1, w2], layer) => {
        for (const hook of this.hooks) h = hook.beforeLayer(layer, h, ctx) ?? h;
        if (record) this.recorded.push(tf.keep(h.clone()));
        const mixed = tf.matMul(mixB, h); // [B, L, H]
        h = tf.add(h, w2.forward(tf.tanh(w1.forward(mixed)))) as tf.Tensor3D;
      });
      return this.lmHead.forward(h) as tf.Tensor3D;
    });
  }

  clearRecorded(): void {
    tf.dispose(this.recorded);
    this.recorded = [];
  }

  dispose(): void {
    this.clearRecorded();
    for (const [a, b] of this.blocks) {
      a.dispose();
      b.dispose();
    }
    this.lmHead.dispose();
  }
}
