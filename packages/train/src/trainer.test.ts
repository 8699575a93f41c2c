import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setSeed } from '@mllm/core';
import { skipOnBackend, testBackend } from '@mllm/core/testing';
import { AdamW, ProgressBar, Trainer, constantSchedule, openMetricsFile, parseJsonLines, type TextStream } from './index.js';
import { TinyMlp, fixedMatrix, meanSquaredError } from './test-fixtures.js';

/** Software WebGPU (SwiftShader) takes about a second per optimizer step of these tiny models. */
const slowBackend = testBackend() === 'webgpu';

function capture(isTTY: boolean): TextStream & { text: string } {
  const out = { text: '', isTTY, columns: 200, write(s: string) { out.text += s; return true; } };
  return out;
}

function values(model: TinyMlp): number[][] {
  return model.namedParameters().map(([, p]) => Array.from(p.variable.read().dataSync()));
}

describe('Trainer', () => {
  it('accumulating 2 micro-batches of size 1 equals one batch of size 2 (mean loss)', async () => {
    const x = fixedMatrix(2, 3, 1);
    const y = fixedMatrix(2, 2, 2);
    const run = async (accumulation: number) => {
      setSeed(21);
      const model = new TinyMlp(3, 5, 2);
      const optimizer = new AdamW(model, { lr: 0.05, weightDecay: 0.01 });
      const trainer = new Trainer({ model, optimizer, gradientAccumulationSteps: accumulation, maxGradNorm: 0.3, progress: false });
      const metrics = await trainer.fit({
        steps: 3,
        batches: (_step, micro) => accumulation === 1
          ? { x: tf.tensor2d(x), y: tf.tensor2d(y) }
          : { x: tf.tensor2d([x[micro]]), y: tf.tensor2d([y[micro]]) },
        lossFn: (b) => meanSquaredError(model.forward(b.x), b.y),
      });
      const out = { metrics, params: values(model) };
      optimizer.dispose();
      model.dispose();
      return out;
    };
    const accumulated = await run(2);
    const full = await run(1);
    for (let k = 0; k < 3; k++) {
      expect(accumulated.metrics[k].loss).toBeCloseTo(full.metrics[k].loss, 6);
      expect(accumulated.metrics[k].gradNorm).toBeCloseTo(full.metrics[k].gradNorm, 6);
    }
    accumulated.params.forEach((p, i) => p.forEach((v, j) => expect(Math.abs(v - full.params[i][j])).toBeLessThan(2e-6)));
  });

  it.skipIf(skipOnBackend(['webgpu'], 'software WebGPU needs ~1 s per step; 400 steps exceed the time budget'))(
    'a tiny MLP overfits a fixed batch (MSE < 1e-3, from > 0.1)', async () => {
    setSeed(3);
    const model = new TinyMlp(4, 16, 2);
    const optimizer = new AdamW(model, { lr: 0.02, weightDecay: 0 });
    const trainer = new Trainer({ model, optimizer, progress: false });
    const x = tf.tensor2d(fixedMatrix(8, 4, 5));
    const y = tf.tensor2d(fixedMatrix(8, 2, 6));
    const metrics = await trainer.fit({ steps: 400, batches: () => ({ x, y }), lossFn: (b) => meanSquaredError(model.forward(b.x), b.y) });
    expect(metrics[0].loss).toBeGreaterThan(0.1);
    expect(metrics[metrics.length - 1].loss).toBeLessThan(1e-3);
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  });

  it('many steps leak no tensors (batch tensors made by the source are disposed)', async () => {
    setSeed(4);
    const model = new TinyMlp(3, 4, 1);
    const optimizer = new AdamW(model);
    const trainer = new Trainer({ model, optimizer, gradientAccumulationSteps: 2, progress: false, metrics: capture(false) });
    const fit = (steps: number) => trainer.fit({
      steps,
      batches: (step, micro, rng) => ({ x: tf.tensor2d([[rng.next(), step, micro]]), y: tf.tensor2d([[1]]) }),
      lossFn: (b) => meanSquaredError(model.forward(b.x), b.y),
    });
    await fit(1); // creates the optimizer state
    const before = tf.memory().numTensors;
    await fit(slowBackend ? 6 : 40);
    expect(tf.memory().numTensors).toBe(before);
    optimizer.dispose();
    model.dispose();
  });

  it('writes one parseable JSON line per step (file and stream)', async () => {
    setSeed(5);
    const model = new TinyMlp(2, 3, 1);
    const optimizer = new AdamW(model, { lr: 0.01, groups: [{ name: 'head', params: ['fc2'], lr: 0.1 }] });
    const dir = mkdtempSync(join(tmpdir(), 'mllm-metrics-'));
    const file = await openMetricsFile(join(dir, 'logs', 'metrics.jsonl'), { truncate: true });
    const trainer = new Trainer({ model, optimizer, progress: false, metrics: file, schedule: constantSchedule({ warmupSteps: 2 }) });
    const x = tf.tensor2d([[1, 2]]);
    const metrics = await trainer.fit({ steps: 3, batches: () => x, lossFn: (b) => tf.sum(model.forward(b)) as tf.Scalar, tokens: () => 7 });
    const lines = parseJsonLines(readFileSync(file.path, 'utf8'));
    expect(lines).toHaveLength(3);
    lines.forEach((line, k) => {
      expect(Object.keys(line)).toEqual(expect.arrayContaining(['step', 'loss', 'lr', 'gradNorm', 'time', 'stepTime', 'tokens', 'lrs']));
      expect(line.step).toBe(k + 1);
      expect(line.loss).toBe(metrics[k].loss);
      expect(line.gradNorm).toBe(metrics[k].gradNorm);
      expect(line.tokens).toBe(7);
    });
    expect(lines.map((l) => l.lr)).toEqual([0, 0.005, 0.01]);
    expect(lines.map((l) => (l.lrs as Record<string, number>).head)).toEqual([0, 0.05, 0.1]);
    expect(() => parseJsonLines('{"a":1}\nnot json\n')).toThrow(/line 2 is not JSON/);
    rmSync(dir, { recursive: true, force: true });
    x.dispose();
    optimizer.dispose();
    model.dispose();
  });

  it('non-finite loss: error by default (nothing updated, no leak) or skip', async () => {
    setSeed(6);
    const model = new TinyMlp(2, 3, 1);
    const optimizer = new AdamW(model);
    const x = tf.tensor2d([[1, 2]]);
    const before = values(model);
    const trainer = new Trainer({ model, optimizer, progress: false });
    const count = tf.memory().numTensors;
    await expect(trainer.fit({ steps: 2, batches: () => x, lossFn: (b) => tf.mul(tf.sum(model.forward(b)), NaN) as tf.Scalar }))
      .rejects.toThrow(/non-finite loss \(NaN\) or gradient norm \(NaN\) at step 1; nothing was updated/);
    expect(tf.memory().numTensors).toBe(count);
    expect(values(model)).toEqual(before);
    expect(trainer.step).toBe(0);
    const skipping = new Trainer({ model, optimizer, progress: false, nonFinite: 'skip' });
    const metrics = await skipping.fit({ steps: 2, batches: () => x, lossFn: (b) => tf.mul(tf.sum(model.forward(b)), NaN) as tf.Scalar });
    expect(metrics.map((m) => m.skipped)).toEqual([true, true]);
    expect(values(model)).toEqual(before);
    x.dispose();
    optimizer.dispose();
    model.dispose();
  });

  it('reports bad batch sources and loss functions clearly; onStep can stop', async () => {
    const model = new TinyMlp(2, 3, 1);
    const optimizer = new AdamW(model);
    const trainer = new Trainer({ model, optimizer, progress: false, gradientAccumulationSteps: 2 });
    const x = tf.tensor2d([[1, 2]]);
    const lossFn = (b: tf.Tensor) => tf.sum(model.forward(b)) as tf.Scalar;
    await expect(trainer.fit({ steps: 3, batches: [x, x, x], lossFn })).rejects.toThrow(/batches ran out at step 1 micro-batch 1/);
    expect(trainer.step).toBe(1);
    await expect(trainer.fit({ steps: 3, batches: () => Promise.resolve(x) as unknown as tf.Tensor, lossFn }))
      .rejects.toThrow(/batches must be synchronous/);
    await expect(trainer.fit({ steps: 3, batches: () => x, lossFn: (b) => model.forward(b) as tf.Scalar }))
      .rejects.toThrow(/lossFn must return a scalar tensor, got shape \[1,1\]/);
    const stopped = await trainer.fit({ steps: 10, batches: () => x, lossFn, onStep: (m) => m.step < 3 });
    expect(stopped.map((m) => m.step)).toEqual([2, 3]);
    expect(() => new Trainer({ model, optimizer, gradientAccumulationSteps: 0 })).toThrow(/gradientAccumulationSteps must be a positive integer, got 0/);
    x.dispose();
    optimizer.dispose();
    model.dispose();
  });

  it('progress: redrawn line on a TTY, periodic plain lines otherwise', async () => {
    let now = 0;
    const clock = () => now;
    const plain = capture(false);
    const bar = new ProgressBar(10, { stream: plain, clock, logEvery: 4 });
    bar.start(0);
    for (let step = 1; step <= 10; step++) {
      now += 500;
      bar.update({ step, loss: 1 / step, lr: 1e-3, tokens: 100 });
    }
    bar.finish();
    const lines = plain.text.split('\n').filter(Boolean);
    expect(lines.map((l) => l.match(/^step (\d+)\/10/)?.[1])).toEqual(['1', '4', '8', '10']);
    expect(lines[1]).toBe('step 4/10 | loss 0.2500 | lr 1.00e-3 | 2.00 steps/s | 200 tokens/s | ETA 0:03');
    expect(plain.text).not.toMatch(/\r/);

    now = 0;
    const tty = capture(true);
    const ttyBar = new ProgressBar(4, { stream: tty, clock, redrawIntervalMs: 0, barWidth: 4 });
    ttyBar.start(0);
    for (let step = 1; step <= 4; step++) {
      now += 2000;
      ttyBar.update({ step, loss: 0.5 });
    }
    ttyBar.finish();
    const frames = tty.text.split('\r').filter(Boolean);
    expect(frames).toHaveLength(4);
    expect(frames[1]).toBe('[##..] 2/4  loss 0.5000  0.50 steps/s  ETA 0:04\x1b[K');
    expect(tty.text.endsWith('\x1b[K\n')).toBe(true);
    expect(tty.text.split('\n')).toHaveLength(2);

    // through the Trainer, with its stream's isTTY deciding the mode
    const model = new TinyMlp(2, 2, 1);
    const optimizer = new AdamW(model);
    const stream = capture(false);
    const trainer = new Trainer({ model, optimizer, progress: { stream, logEvery: 2 } });
    const x = tf.tensor2d([[1, 2]]);
    await trainer.fit({ steps: 5, batches: () => x, lossFn: (b) => tf.sum(model.forward(b)) as tf.Scalar });
    expect(stream.text.split('\n').filter(Boolean).map((l) => l.split(' ')[1])).toEqual(['1/5', '2/5', '4/5', '5/5']);
    x.dispose();
    optimizer.dispose();
    model.dispose();
  });
});
