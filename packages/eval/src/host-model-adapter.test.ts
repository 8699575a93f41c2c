import * as tf from '@tensorflow/tfjs';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { setSeed } from '@mllm/core';
import { HostMLLM, loadHostModel, saveHostModel } from '@mllm/models';
import { runCli } from './cli-main.js';
import { adaptHostModel, CLIP_IMAGE_MEAN, padToSquare, preprocessImage, type HostModelLike } from './host-model-adapter.js';
import { writeTsv } from './tsv-writer.js';

/** Deterministic pixels in [0, 1], `[H, W, 3]` row-major. */
function pixels(H: number, W: number): Float64Array {
  const data = new Float64Array(H * W * 3);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 29 + 5) % 97) / 96;
  return data;
}

/** Float64 reference of padding to a square around the centred image. */
function padReference(data: Float64Array, H: number, W: number, color: readonly number[]): { data: Float64Array; M: number } {
  const M = Math.max(H, W);
  const top = Math.floor((M - H) / 2);
  const left = Math.floor((M - W) / 2);
  const out = new Float64Array(M * M * 3);
  for (let y = 0; y < M; y++) {
    for (let x = 0; x < M; x++) {
      for (let c = 0; c < 3; c++) {
        const inside = y >= top && y < top + H && x >= left && x < left + W;
        out[(y * M + x) * 3 + c] = inside ? data[((y - top) * W + (x - left)) * 3 + c] : color[c];
      }
    }
  }
  return { data: out, M };
}

/** Float64 reference of bilinear resizing with half-pixel centres (source clamped to the image). */
function resizeReference(data: Float64Array, M: number, S: number): Float64Array {
  const out = new Float64Array(S * S * 3);
  const source = (d: number) => Math.min(M - 1, Math.max(0, (d + 0.5) * (M / S) - 0.5));
  for (let y = 0; y < S; y++) {
    const sy = source(y);
    const y0 = Math.floor(sy);
    const y1 = Math.min(M - 1, y0 + 1);
    const fy = sy - y0;
    for (let x = 0; x < S; x++) {
      const sx = source(x);
      const x0 = Math.floor(sx);
      const x1 = Math.min(M - 1, x0 + 1);
      const fx = sx - x0;
      for (let c = 0; c < 3; c++) {
        const at = (yy: number, xx: number) => data[(yy * M + xx) * 3 + c];
        const top = at(y0, x0) + (at(y0, x1) - at(y0, x0)) * fx;
        const bottom = at(y1, x0) + (at(y1, x1) - at(y1, x0)) * fx;
        out[(y * S + x) * 3 + c] = top + (bottom - top) * fy;
      }
    }
  }
  return out;
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThan(tolerance);
}

describe('image preprocessing', () => {
  const color = [0.25, 0.5, 0.75] as const;

  it('pads wide and tall images to a centred square with the colour', () => {
    for (const [H, W] of [[2, 5], [5, 2], [3, 4], [3, 3]]) {
      const data = pixels(H, W);
      const image = tf.tensor3d(Float32Array.from(data), [H, W, 3]);
      const padded = padToSquare(image, color);
      const expected = padReference(data, H, W, color);
      expect(padded.shape).toEqual([expected.M, expected.M, 3]);
      expectClose(padded.dataSync(), expected.data);
      tf.dispose([image, padded]);
    }
  });

  it('resizes like a float64 half-pixel bilinear reference, without leaking', () => {
    const before = tf.memory().numTensors;
    for (const [H, W, S] of [[3, 5, 4], [4, 4, 7], [6, 2, 3], [4, 4, 4]]) {
      const data = pixels(H, W);
      const image = tf.tensor3d(Float32Array.from(data), [H, W, 3]);
      const out = preprocessImage(image, S, { padColor: color, padToSquare: true });
      expect(out.shape).toEqual([1, S, S, 3]);
      const padded = padReference(data, H, W, color);
      expectClose(out.dataSync(), resizeReference(padded.data, padded.M, S));
      tf.dispose([image, out]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('can skip the padding (plain resize) and validates input', () => {
    const data = pixels(2, 4);
    const image = tf.tensor3d(Float32Array.from(data), [2, 4, 3]);
    const out = preprocessImage(image, 4, { padColor: color, padToSquare: false });
    expect(out.shape).toEqual([1, 4, 4, 3]);
    const grey = tf.zeros([2, 2, 1]) as tf.Tensor3D;
    expect(() => preprocessImage(grey, 4, { padColor: color, padToSquare: true })).toThrow(/must be \[H, W, 3\], got \[2,2,1\]/);
    expect(() => preprocessImage(image, 0, { padColor: color, padToSquare: true })).toThrow(/size must be a positive integer/);
    tf.dispose([image, out, grey]);
  });
});

describe('adaptHostModel', () => {
  function fakeHost(withScores: boolean) {
    const calls: Array<{ prompt: string; shape: number[] | null; padCorner: number[] | null; options: unknown }> = [];
    const host: HostModelLike & { disposed: boolean } = {
      disposed: false,
      visionTower: { visionConfig: { imageSize: 6, imageMean: [0.5, 0.6, 0.7] } },
      generate(prompt, images, options) {
        calls.push({ prompt, shape: images ? images.shape : null, padCorner: images ? Array.from(images.dataSync().slice(0, 3)) : null, options });
        return { texts: ['B'] };
      },
      ...(withScores
        ? {
            scoreOptions(prompt: string, images: tf.Tensor4D | null, options: string[]) {
              calls.push({ prompt, shape: images ? images.shape : null, padCorner: null, options });
              return options.map((_, i) => -i);
            },
          }
        : {}),
      dispose() {
        this.disposed = true;
      },
    };
    return { host, calls };
  }

  it('prefixes the image placeholder, preprocesses to the tower size and pads with floor(mean·255)/255', async () => {
    const { host, calls } = fakeHost(true);
    const model = adaptHostModel(host, { maxNewTokens: 5, scoreTarget: 'letter-text', name: 'tiny' });
    expect(model.name).toBe('tiny');
    const image = tf.ones([2, 4, 3]) as tf.Tensor3D; // wide: rows 0 of the padded square are padding
    const before = tf.memory().numTensors;
    expect(await model.generate('Q?', [image])).toBe('B');
    expect(calls[0].prompt).toBe('<image>\nQ?');
    expect(calls[0].shape).toEqual([1, 6, 6, 3]);
    expect(calls[0].options).toEqual({ maxNewTokens: 5 });
    expectClose(calls[0].padCorner!, [127 / 255, 153 / 255, 178 / 255]);
    const scores = await model.scoreOptions!('Q?', [image], [{ letter: 'A', text: 'x' }, { letter: 'B', text: 'y' }]);
    expect(scores).toEqual([-0, -1]);
    expect(calls[1].options).toEqual(['A. x', 'B. y']);
    expect(tf.memory().numTensors).toBe(before);
    expect(await model.generate('text only', [])).toBe('B');
    expect(calls[2]).toMatchObject({ prompt: 'text only', shape: null });
    await model.dispose?.();
    expect(host.disposed).toBe(true);
    image.dispose();
  });

  it('scores letters by default, omits scoreOptions when the host has none, and needs an image size', async () => {
    const { host, calls } = fakeHost(true);
    await adaptHostModel(host).scoreOptions!('Q', [], [{ letter: 'A', text: 'x' }, { letter: 'C', text: 'z' }]);
    expect(calls[0].options).toEqual(['A', 'C']);
    expect(adaptHostModel(fakeHost(false).host).scoreOptions).toBeUndefined();
    const noSize: HostModelLike = { generate: () => ({ texts: ['A'] }) };
    const image = tf.ones([2, 2, 3]) as tf.Tensor3D;
    expect(() => adaptHostModel(noSize).generate('Q', [image])).toThrow(/pass options.imageSize/);
    image.dispose();
    expect(CLIP_IMAGE_MEAN[0]).toBeCloseTo(0.48145466, 8);
  });
});

// End to end with the real host model of @mllm/models.
describe('CLI with an @mllm/models host checkpoint', () => {
  it('loads a saved tiny HostMLLM, generates for every row and scores options, without leaking', async () => {
    setSeed(3);
    const host = new HostMLLM({
      config: {
        text: { vocabSize: 262, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 24, maxLength: 512 },
        vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16 },
      },
    });
    const directory = mkdtempSync(join(tmpdir(), 'mllm-eval-host-'));
    const checkpoint = join(directory, 'tiny-host');
    await saveHostModel(host, checkpoint);
    host.dispose();
    const image = { height: 3, width: 5, data: Float32Array.from({ length: 45 }, (_, i) => (i % 11) / 10) };
    const tsv = join(directory, 'mmmb_en.tsv');
    writeFileSync(
      tsv,
      writeTsv([
        { index: 0, question: 'Colour?', options: { A: 'red', B: 'blue' }, answer: 'A', language: 'en', image },
        { index: 1, question: 'Shape?', options: { A: 'round', B: 'square', C: 'flat' }, answer: 'C', language: 'en', image: { reference: 0 } },
      ]),
    );
    const out: string[] = [];
    const err: string[] = [];
    const before = tf.memory().numTensors;
    const code = await runCli(['--model', checkpoint, '--out', join(directory, 'out'), '--max-new-tokens', '3', '--no-progress', tsv], {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
      hostLoader: async () => loadHostModel,
    });
    expect(err.join('')).toBe('');
    expect(code).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
    const predictions = readFileSync(join(directory, 'out', 'predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(predictions).toHaveLength(2);
    // Recompute row 0's option scores directly on the host, with float64-reference preprocessing:
    // padding colour floor(0.5·255)/255 (the host's default mean 0.5), centred, bilinear to 8×8.
    const reloaded = (await loadHostModel(checkpoint)) as {
      scoreOptions(prompt: string, images: tf.Tensor4D, options: string[]): number[];
      dispose(): void;
    };
    const padded = padReference(Float64Array.from(image.data), 3, 5, [127 / 255, 127 / 255, 127 / 255]);
    const pixelsIn = tf.tensor4d(Float32Array.from(resizeReference(padded.data, padded.M, 8)), [1, 8, 8, 3]);
    const direct = reloaded.scoreOptions(`<image>\n${predictions[0].prompt}`, pixelsIn, ['A', 'B']);
    tf.dispose(pixelsIn);
    reloaded.dispose();
    expect(predictions[0].method).toBe('loglikelihood');
    expectClose(predictions[0].optionScores, direct, 1e-4);
    for (const row of predictions) {
      expect(typeof row.generation).toBe('string');
      expect(row.prompt.startsWith('Colour?') || row.prompt.startsWith('Shape?')).toBe(true);
      // A random tiny model rarely names a unique option: then its option log-likelihoods decide.
      if (row.method === 'loglikelihood') {
        expect(row.optionScores.every((score: number) => Number.isFinite(score) && score < 0)).toBe(true);
      }
    }
    const report = JSON.parse(readFileSync(join(directory, 'out', 'report.json'), 'utf8'));
    expect(report.model).toBe('tiny-host');
    expect(report.overall.total).toBe(2);
  });
});
