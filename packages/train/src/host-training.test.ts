import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipOnBackend } from '@mllm/core/testing';
import { type HostMLLM, collateChat, disposeBatch, type MultimodalBatch } from '@mllm/models';
import { tinyHost as sharedTinyHost } from '@mllm/models/testing';
import { AdamW, Trainer, applyTrainingStage, describeTrainable, resumeFromCheckpoint, saveCheckpoint } from './index.js';

/** The shared tiny host with one decoder layer and 128 positions. */
const tinyHost = (seed: number): HostMLLM => sharedTinyHost(seed, { numLayers: 1, maxLength: 128 });

function fixedBatch(model: HostMLLM): MultimodalBatch {
  const images = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const [a, b] = tf.unstack(images) as tf.Tensor3D[];
  const batch = collateChat(model.tokenizer, [
    { messages: [{ role: 'user', content: '<image>Q?' }, { role: 'assistant', content: 'Да.' }], images: [a] },
    { messages: [{ role: 'user', content: '<image>颜色' }, { role: 'assistant', content: 'red' }], images: [b] },
  ], { systemPrompt: null });
  tf.dispose([images, a, b]);
  return batch;
}

describe('training the host MLLM', () => {
  it.skipIf(skipOnBackend(['webgpu'], 'software WebGPU needs seconds per step of the host model'))(
    'stage 1 (projector only) lowers model.loss, leaves the rest bitwise unchanged, and resumes exactly', async () => {
      const model = tinyHost(3);
      const stage = applyTrainingStage(model, { name: 'stage1', trainable: ['model.mm_projector'] });
      expect(stage.trainable.every((n) => n.startsWith('model.mm_projector.'))).toBe(true);
      const summary = describeTrainable(model, { depth: 2 });
      expect(summary.rows.find((r) => r.module === 'model.mm_projector')!.trainable).toBeGreaterThan(0);
      expect(summary.trainable).toBe(summary.rows.find((r) => r.module === 'model.mm_projector')!.total);
      const frozenBefore = model.namedParameters().filter(([, p]) => !p.variable.trainable).map(([, p]) => Array.from(p.variable.read().dataSync()));
      const batch = fixedBatch(model);
      const optimizer = new AdamW(model, { lr: 0.01, weightDecay: 0 });
      const trainer = new Trainer({ model, optimizer, progress: false });
      const metrics = await trainer.fit({ steps: 8, batches: () => batch, lossFn: (b) => model.loss(b) });
      expect(metrics[7].loss).toBeLessThan(metrics[0].loss);
      expect(model.namedParameters().filter(([, p]) => !p.variable.trainable).map(([, p]) => Array.from(p.variable.read().dataSync()))).toEqual(frozenBefore);

      const dir = mkdtempSync(join(tmpdir(), 'mllm-host-'));
      await saveCheckpoint(dir, { model, optimizer, trainerState: trainer.state(), modelWeights: 'trainable' });
      const continued = await trainer.fit({ steps: 10, batches: () => batch, lossFn: (b) => model.loss(b) });

      const again = tinyHost(3); // same base weights; the projector comes from the checkpoint
      applyTrainingStage(again, { name: 'stage1', trainable: ['model.mm_projector'] });
      const optimizer2 = new AdamW(again, { lr: 0.01, weightDecay: 0 });
      const trainer2 = new Trainer({ model: again, optimizer: optimizer2, progress: false });
      await resumeFromCheckpoint(dir, { model: again, optimizer: optimizer2, trainer: trainer2 });
      const resumed = await trainer2.fit({ steps: 10, batches: () => batch, lossFn: (b) => again.loss(b) });
      expect(resumed.map((m) => m.loss)).toEqual(continued.map((m) => m.loss));
      rmSync(dir, { recursive: true, force: true });
      disposeBatch(batch);
      for (const o of [optimizer, optimizer2]) o.dispose();
      model.dispose();
      again.dispose();
    });
});
