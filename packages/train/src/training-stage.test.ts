import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Linear, setSeed } from '@mllm/core';
import { AdamW, Trainer, applyTrainingStage, describeTrainable, formatTrainableSummary } from './index.js';
import { TinyMultimodal, fixedMatrix, meanSquaredError } from './test-fixtures.js';

describe('training stages', () => {
  it('stage 1 (projector only) then stage 2 (all but vision): structural freezing and counts', () => {
    setSeed(4);
    const model = new TinyMultimodal(3);
    const stage1 = applyTrainingStage(model, { name: 'stage1', trainable: [model.projector] });
    expect(stage1.trainable).toEqual(['mm_projector.fc1.weight', 'mm_projector.fc1.bias', 'mm_projector.fc2.weight', 'mm_projector.fc2.bias']);
    const s1 = describeTrainable(model);
    expect(s1.rows.map((r) => [r.module, r.trainable, r.total])).toEqual([
      ['vision', 0, 12], ['mm_projector', 24, 24], ['moe', 0, 9], ['lm', 0, 21],
    ]);
    expect([s1.trainable, s1.total]).toEqual([24, 66]);
    expect(model.parameterCount()).toBe(66);
    const stage2 = applyTrainingStage(model, { name: 'stage2', trainable: [/./], frozen: [model.vision] });
    expect(stage2.frozen).toEqual(['vision.weight', 'vision.bias']);
    const s2 = describeTrainable(model, { depth: 2 });
    expect(s2.rows.find((r) => r.module === 'lm.fc1')).toMatchObject({ trainable: 16, total: 16, tensors: 2 });
    expect(s2.trainable).toBe(54);
    const table = formatTrainableSummary(s1);
    expect(table.split('\n')[0]).toMatch(/^module\s+trainable\s+total\s+share$/);
    expect(table).toMatch(/mm_projector\s+24\s+24\s+100\.0%/);
    expect(table).toMatch(/total\s+24\s+66\s+36\.4%/);
    model.dispose();
  });

  it('rejects patterns that match nothing and modules from elsewhere, changing nothing', () => {
    const model = new TinyMultimodal(3);
    const stranger = new Linear({ inFeatures: 1, outFeatures: 1 });
    applyTrainingStage(model, { name: 's', trainable: ['moe'] });
    expect(() => applyTrainingStage(model, { name: 'bad', trainable: ['mm_projektor', stranger] }))
      .toThrow(/training stage 'bad': trainable: "mm_projektor" matches no parameter of .*; trainable: module .* is not a part of/);
    expect(model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n)).toEqual(['moe.weight']);
    stranger.dispose();
    model.dispose();
  });

  it('frozen parameters do not change across trainer steps (bitwise)', async () => {
    setSeed(8);
    const model = new TinyMultimodal(3);
    const stage = { name: 'stage1', trainable: ['mm_projector', 'moe'] };
    const optimizer = new AdamW(model, { lr: 0.01, weightDecay: 0.1 });
    const trainer = new Trainer({ model, optimizer, stage, progress: false });
    const frozen = model.namedParameters().filter(([, p]) => !p.variable.trainable);
    expect(frozen.map(([n]) => n)).toEqual(['vision.weight', 'vision.bias', 'lm.fc1.weight', 'lm.fc1.bias', 'lm.fc2.weight', 'lm.fc2.bias']);
    const snapshot = (list: typeof frozen) => list.map(([, p]) => Array.from(p.variable.read().dataSync()));
    const trainable = model.namedParameters().filter(([, p]) => p.variable.trainable);
    const frozenBefore = snapshot(frozen);
    const trainableBefore = snapshot(trainable);
    const x = tf.tensor2d(fixedMatrix(4, 3, 1));
    const y = tf.tensor2d(fixedMatrix(4, 1, 2));
    await trainer.fit({ steps: 3, batches: () => ({ x, y }), lossFn: (b) => meanSquaredError(model.forward(b.x), b.y) });
    expect(snapshot(frozen)).toEqual(frozenBefore);
    snapshot(trainable).forEach((values, i) => expect(values).not.toEqual(trainableBefore[i]));
    expect(optimizer.stepCount('vision.weight')).toBe(0);
    expect(trainer.state().stage).toBe('stage1');
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  });
});
