import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdamW, CHECKPOINT_FILES, SeededRandom, Trainer, cosineScheduleWithWarmup, readSafetensorsFile, resumeFromCheckpoint,
  saveCheckpoint, setSeed, type BatchSource, type StepMetrics,
} from '../index.js';
import { TinyMlp, fixedMatrix, meanSquaredError } from './test-fixtures.js';

const dataX = fixedMatrix(16, 3, 11);
const dataY = fixedMatrix(16, 2, 12);

/** Batches of 2 rows drawn with the trainer's data rng (so the data order depends on its state). */
const batches: BatchSource<{ x: tf.Tensor2D; y: tf.Tensor2D }> = (_step, _micro, rng) => {
  const rows = [rng.nextInt(16), rng.nextInt(16)];
  return { x: tf.tensor2d(rows.map((r) => dataX[r])), y: tf.tensor2d(rows.map((r) => dataY[r])) };
};

function setup(seed: number, rngSeed: number) {
  setSeed(seed);
  const model = new TinyMlp(3, 6, 2);
  const optimizer = new AdamW(model, { lr: 0.03, weightDecay: 0.05, groups: [{ name: 'head', params: ['fc2'], lr: 0.01 }] });
  const trainer = new Trainer({
    model, optimizer, progress: false, gradientAccumulationSteps: 2, maxGradNorm: 0.5,
    schedule: cosineScheduleWithWarmup({ warmupSteps: 2, totalSteps: 6 }), rng: new SeededRandom(rngSeed),
    config: { run: 'test' },
  });
  const lossFn = (b: { x: tf.Tensor2D; y: tf.Tensor2D }) => meanSquaredError(model.forward(b.x), b.y);
  return { model, optimizer, trainer, lossFn, dispose: () => { optimizer.dispose(); model.dispose(); } };
}

const paramsOf = (model: TinyMlp) => model.namedParameters().map(([, p]) => Array.from(p.variable.read().dataSync()));

describe('checkpoints', () => {
  it('resuming at step k reproduces the uninterrupted loss curve bitwise', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mllm-ckpt-'));
    const full = setup(1, 99);
    const fullMetrics = await full.trainer.fit({ steps: 6, batches, lossFn: full.lossFn, checkpoint: { dir: (s) => join(root, `step-${s}`), every: 3 } });
    expect(readdirSync(root).sort()).toEqual(['step-3', 'step-6']);
    expect(readdirSync(join(root, 'step-3')).sort()).toEqual([CHECKPOINT_FILES.model, CHECKPOINT_FILES.optimizer, CHECKPOINT_FILES.trainerState].sort());

    // A different init and data seed: everything must come from the checkpoint.
    const resumed = setup(2, 7);
    const before = tf.memory().numTensors;
    const { trainerState, loadedKeys } = await resumeFromCheckpoint(join(root, 'step-3'), { model: resumed.model, optimizer: resumed.optimizer, trainer: resumed.trainer });
    expect(tf.memory().numTensors).toBe(before + 8); // the optimizer's m and v for 4 parameters
    expect(loadedKeys).toEqual(['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']);
    expect(trainerState!.step).toBe(3);
    expect(trainerState!.config).toEqual({ run: 'test' });
    expect(resumed.trainer.step).toBe(3);
    expect(resumed.optimizer.stepCount('fc1.weight')).toBe(3);
    const resumedMetrics = await resumed.trainer.fit({ steps: 6, batches, lossFn: resumed.lossFn });
    const curve = (m: StepMetrics[]) => m.map((s) => [s.step, s.loss, s.gradNorm, s.lr]);
    expect(curve(resumedMetrics)).toEqual(curve(fullMetrics.slice(3)));
    expect(paramsOf(resumed.model)).toEqual(paramsOf(full.model));
    full.dispose();
    resumed.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  it('writes reference names and layouts, optimizer state by name and JSON state; no temp files; no leaks', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mllm-ckpt-')), 'nested', 'ckpt');
    const run = setup(3, 1);
    await run.trainer.fit({ steps: 1, batches, lossFn: run.lossFn });
    const before = tf.memory().numTensors;
    await saveCheckpoint(dir, { model: run.model, optimizer: run.optimizer, trainerState: run.trainer.state() });
    expect(tf.memory().numTensors).toBe(before);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const weights = await readSafetensorsFile(join(dir, CHECKPOINT_FILES.model));
    const shapes = Object.fromEntries([...weights.tensors].map(([k, t]) => [k, t.shape]));
    expect(shapes).toEqual({ 'fc1.weight': [6, 3], 'fc1.bias': [6], 'fc2.weight': [2, 6], 'fc2.bias': [2] });
    // [out, in] at the boundary: the transpose of the internal kernel
    expect(weights.tensors.get('fc1.weight')!.arraySync()).toEqual((run.model.fc1.kernelValue.transpose().arraySync()));
    expect(weights.metadata).toMatchObject({ format: 'pt', weights: 'all', step: '1' });
    const optimizerFile = await readSafetensorsFile(join(dir, CHECKPOINT_FILES.optimizer));
    expect([...optimizerFile.tensors.keys()]).toContain('fc2.weight.exp_avg_sq');
    expect(optimizerFile.tensors.get('fc2.weight.exp_avg')!.shape).toEqual([2, 6]);
    expect(JSON.parse(optimizerFile.metadata!.config).groups).toEqual([{ name: 'head', lr: 0.01 }]);
    const state = JSON.parse(readFileSync(join(dir, CHECKPOINT_FILES.trainerState), 'utf8'));
    expect(state).toMatchObject({ version: 1, step: 1, gradientAccumulationSteps: 2, maxGradNorm: 0.5, schedule: { type: 'cosine', warmupSteps: 2, totalSteps: 6 } });
    expect(state.rngState).toBe(run.trainer.rng.getState());
    tf.dispose([...weights.tensors.values(), ...optimizerFile.tensors.values()]);
    run.dispose();
  });

  it('trainable-only weights resume non-strictly; a changed config is refused with nothing loaded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mllm-ckpt-'));
    const run = setup(4, 1);
    run.model.fc1.setTrainable(false);
    await run.trainer.fit({ steps: 1, batches, lossFn: run.lossFn });
    await saveCheckpoint(dir, { model: run.model, optimizer: run.optimizer, trainerState: run.trainer.state(), modelWeights: 'trainable' });
    const weights = await readSafetensorsFile(join(dir, CHECKPOINT_FILES.model));
    expect([...weights.tensors.keys()].sort()).toEqual(['fc2.bias', 'fc2.weight']);
    tf.dispose([...weights.tensors.values()]);

    const other = setup(4, 1); // same seed: same frozen fc1
    const { loadedKeys } = await resumeFromCheckpoint(dir, { model: other.model, optimizer: other.optimizer, trainer: other.trainer });
    expect(loadedKeys).toEqual(['fc2.weight', 'fc2.bias']);
    expect(paramsOf(other.model)).toEqual(paramsOf(run.model));

    setSeed(9);
    const changed = setup(5, 1);
    const mismatched = new Trainer({ model: changed.model, optimizer: changed.optimizer, progress: false, gradientAccumulationSteps: 4, maxGradNorm: 0.5,
      schedule: cosineScheduleWithWarmup({ warmupSteps: 2, totalSteps: 6 }) });
    const untouched = paramsOf(changed.model);
    await expect(resumeFromCheckpoint(dir, { model: changed.model, optimizer: changed.optimizer, trainer: mismatched }))
      .rejects.toThrow(/gradientAccumulationSteps differs: checkpoint 2, trainer 4/);
    expect(paramsOf(changed.model)).toEqual(untouched);
    expect(mismatched.step).toBe(0);
    await expect(resumeFromCheckpoint(join(dir, 'absent'), { model: changed.model })).rejects.toThrow(/absent/);
    for (const r of [run, other, changed]) r.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
});
