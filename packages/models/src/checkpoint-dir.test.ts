/**
 * `loadCheckpointWeights` reads a checkpoint directory batch by batch: the same values as one whole-dict
 * `loadStateDict`, never the whole checkpoint in memory at once, every problem reported from the headers
 * before any data is read, and nothing assigned or leaked on failure.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadShardedCheckpoint, loadStateDict, saveShardedCheckpoint, setSeed, stateDict, disposeStateDict, StateDictError } from '@mllm/core';
import { HFCausalLM } from './hf/index.js';
import { loadCheckpointWeights } from './checkpoint-dir.js';

const CONFIG = {
  model_type: 'qwen2', hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, vocab_size: 64, rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: false,
};
const fresh = () => new HFCausalLM({ config: CONFIG });

/** A seeded model's weights saved as BF16 shards of ≤ 4 KiB (several shards, several tensors each). */
async function writeCheckpoint(dir: string, edit?: (tensors: Map<string, tf.Tensor>) => void): Promise<void> {
  setSeed(3);
  const source = fresh();
  const tensors = stateDict(source);
  source.dispose();
  edit?.(tensors);
  await saveShardedCheckpoint(dir, tensors, { maxShardBytes: 4096, floatDtype: 'BF16' });
  disposeStateDict(tensors);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'checkpoint-dir-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('loadCheckpointWeights (batched)', () => {
  it('loads the values a whole-dict loadStateDict loads, at any batch size, without holding the checkpoint at once', async () => {
    await withDir(async (dir) => {
      await writeCheckpoint(dir);
      const whole = fresh();
      const { tensors, weightMap } = await loadShardedCheckpoint(dir);
      expect(new Set(weightMap.values()).size).toBeGreaterThan(3);
      loadStateDict(whole, tensors);
      disposeStateDict(tensors);
      const expected = stateDict(whole);
      whole.dispose();
      for (const batchBytes of [1, 2048, 1 << 30]) {
        const before = tf.memory().numTensors;
        const model = fresh();
        const weightBytes = model.parameterCount() * 4;
        const bytesBefore = tf.memory().numBytes;
        const profile = await tf.profile(async () => {
          await loadCheckpointWeights(dir, model, {}, () => false, undefined, batchBytes);
        });
        const actual = stateDict(model);
        for (const [name, value] of expected) expect(Array.from(actual.get(name)!.dataSync()), name).toEqual(Array.from(value.dataSync()));
        disposeStateDict(actual);
        // Above the model's own weights: one batch and one tensor's transposed copy (the biggest tensor here,
        // the 64 × 32 embedding or lm_head, is 8 KiB); the whole checkpoint read first would add all of it.
        const extra = profile.peakBytes - bytesBefore;
        if (batchBytes === 1) expect(extra).toBeLessThanOrEqual(2 * 8192);
        if (batchBytes === 1 << 30) expect(extra).toBeGreaterThanOrEqual(weightBytes);
        model.dispose();
        expect(tf.memory().numTensors).toBe(before);
      }
      disposeStateDict(expected);
    });
  });

  it('reports missing, unexpected and mis-shaped tensors together from the headers; disposes the model; no leaks', async () => {
    await withDir(async (dir) => {
      await writeCheckpoint(dir, (tensors) => {
        tensors.get('model.norm.weight')!.dispose();
        tensors.delete('model.norm.weight');
        tensors.set('model.layers.0.self_attn.extra', tf.zeros([2]));
        tensors.get('lm_head.weight')!.dispose();
        tensors.set('lm_head.weight', tf.zeros([64, 16]));
      });
      const before = tf.memory().numTensors;
      const model = fresh();
      const error = await loadCheckpointWeights(dir, model, {}).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StateDictError);
      const { missingKeys, unexpectedKeys, mismatchedKeys } = error as StateDictError;
      expect(missingKeys).toEqual(['model.norm.weight']);
      expect(unexpectedKeys).toEqual(['model.layers.0.self_attn.extra']);
      expect(mismatchedKeys).toEqual([{ key: 'lm_head.weight', expected: [64, 32], actual: [64, 16] }]);
      expect(model.isDisposed).toBe(true);
      expect(tf.memory().numTensors).toBe(before);
    });
  });

  it('a loose load skips unknown and missing tensors (and `ignore`d ones) and loads the rest', async () => {
    await withDir(async (dir) => {
      await writeCheckpoint(dir, (tensors) => {
        tensors.get('model.norm.weight')!.dispose();
        tensors.delete('model.norm.weight');
        tensors.set('model.layers.0.self_attn.extra', tf.ones([2]));
      });
      const { tensors } = await loadShardedCheckpoint(dir);
      const model = fresh();
      const norm = Array.from(model.finalNorm.namedParameters()[0]![1].variable.read().dataSync());
      await loadCheckpointWeights(dir, model, { strict: false }, (name) => name === 'lm_head.weight', undefined, 1);
      const loaded = stateDict(model);
      expect(Array.from(loaded.get('model.embed_tokens.weight')!.dataSync())).toEqual(Array.from(tensors.get('model.embed_tokens.weight')!.dataSync()));
      expect(Array.from(loaded.get('model.norm.weight')!.dataSync())).toEqual(norm); // kept its initial value
      expect(Array.from(loaded.get('lm_head.weight')!.dataSync())).not.toEqual(Array.from(tensors.get('lm_head.weight')!.dataSync()));
      disposeStateDict(loaded);
      disposeStateDict(tensors);
      model.dispose();
    });
  });
});
