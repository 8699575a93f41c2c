/**
 * A minimal decoder-like host for hook tests (until/besides the real host): per layer
 * `h ← beforeLayer hooks(h)`, then `h = h + tanh(M·h·W1)·W2` with M the causal running mean over
 * positions (so image-token changes reach later tokens, as through attention); logits = h·W_out.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, type BaseModelShape, type DecoderHooks, type ForwardContext, type HookHandle, type Module, type ModuleHost } from '@mllm/core';
import type { VPGCForwardContext } from '../hook-types.js';
import type { QFormerVPG } from '../qformer-vpg.js';

export class FakeHost implements ModuleHost {
  readonly blocks: Array<[Linear, Linear]> = [];
  readonly lmHead: Linear;
  readonly config: { text: { numLayers: number } };
  readonly hooks: DecoderHooks[] = [];
  /** Layer inputs (after hooks) of the last forward, when recording. */
  recorded: tf.Tensor3D[] = [];

  constructor(readonly hiddenSize: number, readonly numLayers: number, readonly vocab: number, readonly projector: QFormerVPG) {
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

  /** Hooks run in attach order; their modules are not registered (this host has no state dict). */
  addHooks(hooks: DecoderHooks): HookHandle {
    this.hooks.push(hooks);
    return {
      remove: () => {
        const i = this.hooks.indexOf(hooks);
        if (i >= 0) this.hooks.splice(i, 1);
      },
    };
  }

  baseModelShape(): BaseModelShape {
    return {
      model_type: 'fake-host', hidden_size: this.hiddenSize, num_hidden_layers: this.numLayers, num_attention_heads: 1,
      num_key_value_heads: 1, rope_theta: 1e4, vocab_size: this.vocab,
    };
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
        for (const hook of this.hooks) h = hook.beforeLayer?.(layer, h, ctx as ForwardContext) ?? h;
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
