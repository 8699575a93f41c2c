import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom, readSafetensorsFile, setSeed } from '@mllm/core';
import {
  AdamW, CHECKPOINT_FILES, CheckpointError, Trainer, cosineScheduleWithWarmup, resumeFromCheckpoint, saveCheckpoint, type BatchSource, type StepMetrics,
} from './index.js';
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
    expect(readdirSync(join(root, 'step-3')).sort()).toEqual(Object.values(CHECKPOINT_FILES).sort());
    expect(readdirSync(root).filter((f) => f.startsWith('.'))).toEqual([]); // no lock or temporaries left

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

  it('a mixed or incomplete set is refused with nothing assigned; an interrupted swap is recovered; orphans, stale locks', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mllm-ckpt-'));
    const run = setup(6, 1);
    await run.trainer.fit({ steps: 4, batches, lossFn: run.lossFn, checkpoint: { dir: (s) => join(root, `step-${s}`), every: 1 } });
    const fresh = setup(7, 1);
    const untouched = paramsOf(fresh.model);
    const expectRefused = async (dir: string, pattern: RegExp) => {
      const error = await resumeFromCheckpoint(dir, { model: fresh.model, optimizer: fresh.optimizer, trainer: fresh.trainer }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CheckpointError);
      expect((error as Error).message).toMatch(pattern);
      expect(paramsOf(fresh.model)).toEqual(untouched);
      expect(fresh.trainer.step).toBe(0);
      expect(fresh.optimizer.stepCount('fc1.weight')).toBe(0);
    };
    // The model of step 4 with the optimizer and trainer state of step 3 (what a crash between renames left before).
    copyFileSync(join(root, 'step-4', CHECKPOINT_FILES.model), join(root, 'step-3', CHECKPOINT_FILES.model));
    await expectRefused(join(root, 'step-3'), /model\.safetensors does not match checkpoint\.json \(expected \d+ bytes, sha256 [0-9a-f]{64}; found \d+ bytes, sha256 [0-9a-f]{64}\): a mixed or damaged checkpoint set/);
    // The trainer state of another step, with a manifest rewritten to match its hash: the step cross-check.
    const manifest2 = JSON.parse(readFileSync(join(root, 'step-2', CHECKPOINT_FILES.manifest), 'utf8'));
    copyFileSync(join(root, 'step-1', CHECKPOINT_FILES.trainerState), join(root, 'step-2', CHECKPOINT_FILES.trainerState));
    manifest2.files[CHECKPOINT_FILES.trainerState] = JSON.parse(readFileSync(join(root, 'step-1', CHECKPOINT_FILES.manifest), 'utf8')).files[CHECKPOINT_FILES.trainerState];
    writeFileSync(join(root, 'step-2', CHECKPOINT_FILES.manifest), JSON.stringify(manifest2));
    await expectRefused(join(root, 'step-2'), /trainer_state\.json is at step 1, checkpoint\.json at step 2: a mixed checkpoint set/);
    // No manifest: the set was never completed.
    unlinkSync(join(root, 'step-1', CHECKPOINT_FILES.manifest));
    await expectRefused(join(root, 'step-1'), /has no checkpoint\.json: not a complete checkpoint/);
    await expectRefused(join(root, 'step-9'), /step-9 does not exist/);

    // A swap killed between its renames: the set is beside dir as `.old`; resume moves it back.
    renameSync(join(root, 'step-4'), join(root, '.step-4.123.456.abc.old'));
    mkdirSync(join(root, '.step-4.123.789.def.tmp')); // an incomplete staging directory: an orphan
    writeFileSync(join(root, '.step-4.123.789.def.tmp', CHECKPOINT_FILES.model), 'truncated');
    const { trainerState } = await resumeFromCheckpoint(join(root, 'step-4'), { model: fresh.model, optimizer: fresh.optimizer, trainer: fresh.trainer });
    expect(trainerState!.step).toBe(4);
    expect(paramsOf(fresh.model)).toEqual(paramsOf(run.model));
    // The next save removes the orphans: the staging directory and a stray temporary file inside dir.
    writeFileSync(join(root, 'step-4', '.model.safetensors.1.2.x.tmp'), 'half');
    // A lock left by a killed process (a pid that has exited) is taken over.
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid;
    writeFileSync(join(root, '.step-4.lock'), JSON.stringify({ pid: deadPid, host: (await import('node:os')).hostname(), token: 'x' }));
    await saveCheckpoint(join(root, 'step-4'), { model: run.model, optimizer: run.optimizer, trainerState: run.trainer.state() });
    expect(readdirSync(root).filter((e) => e.includes('step-4')).sort()).toEqual(['step-4']);
    expect(readdirSync(join(root, 'step-4')).sort()).toEqual(Object.values(CHECKPOINT_FILES).sort());
    // A live writer's lock (this process) is waited for, then reported.
    writeFileSync(join(root, '.step-4.lock'), JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname(), token: 'y' }));
    await expect(saveCheckpoint(join(root, 'step-4'), { model: run.model, lockTimeoutMs: 50 })).rejects.toThrow(/step-4 is locked by another writer .* for more than 50 ms/);
    unlinkSync(join(root, '.step-4.lock'));
    // A directory with other files is not replaced.
    writeFileSync(join(root, 'step-4', 'metrics.jsonl'), '{}\n');
    await expect(saveCheckpoint(join(root, 'step-4'), { model: run.model })).rejects.toThrow(/holds files that are not part of a checkpoint \(metrics\.jsonl\)/);
    expect(readFileSync(join(root, 'step-4', 'metrics.jsonl'), 'utf8')).toBe('{}\n');
    run.dispose();
    fresh.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  // Root ignores directory permissions, so this runs only as an ordinary user (as in CI).
  it.skipIf(process.getuid?.() === 0)('a checkpoint in a read-only location (no lock can be created) is still resumed', async () => {
    const root = mkdtempSync(join(tmpdir(), 'mllm-ckpt-'));
    const run = setup(6, 1);
    await run.trainer.fit({ steps: 2, batches, lossFn: run.lossFn, checkpoint: { dir: join(root, 'ckpt'), every: 2 } });
    chmodSync(root, 0o555);
    try {
      const other = setup(8, 1);
      const resumed = await resumeFromCheckpoint(join(root, 'ckpt'), { model: other.model, optimizer: other.optimizer, trainer: other.trainer });
      expect(resumed.trainerState!.step).toBe(2);
      expect(paramsOf(other.model)).toEqual(paramsOf(run.model));
      expect(readdirSync(root)).toEqual(['ckpt']);
      other.dispose();
    } finally {
      chmodSync(root, 0o755);
    }
    run.dispose();
    rmSync(root, { recursive: true, force: true });
  });
});
