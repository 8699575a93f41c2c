import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { loadStateDict, setSeed, disposeStateDict } from '@mllm/core';
import { QFormer, BLIP2_QFORMER_CONFIG, qformerConfig, type QFormerConfig } from './index.js';
import { qformer64 } from './test-support/float64-reference.js';
import { backendTolerance, useTestBackend } from './test-support/backend.js';
import { paramsF64, randomParams, randomValues, relativeError, toTensors } from './test-support/params.js';

useTestBackend();

const tiny: Partial<QFormerConfig> = {
  hiddenSize: 8,
  numHiddenLayers: 3,
  numAttentionHeads: 2,
  intermediateSize: 16,
  encoderWidth: 6,
  crossAttentionFreq: 2,
};

/** Reference (LAVIS) names below `Qformer.`, written from the checkpoint layout. */
function lavisNames(c: QFormerConfig): Array<[string, number[]]> {
  const D = c.hiddenSize;
  const out: Array<[string, number[]]> = [
    ['bert.embeddings.LayerNorm.weight', [D]],
    ['bert.embeddings.LayerNorm.bias', [D]],
  ];
  const block = (p: string, kw: number) => {
    out.push([`${p}.self.query.weight`, [D, D]], [`${p}.self.query.bias`, [D]]);
    out.push([`${p}.self.key.weight`, [D, kw]], [`${p}.self.key.bias`, [D]]);
    out.push([`${p}.self.value.weight`, [D, kw]], [`${p}.self.value.bias`, [D]]);
    out.push([`${p}.output.dense.weight`, [D, D]], [`${p}.output.dense.bias`, [D]]);
    out.push([`${p}.output.LayerNorm.weight`, [D]], [`${p}.output.LayerNorm.bias`, [D]]);
  };
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const l = `bert.encoder.layer.${i}`;
    block(`${l}.attention`, D);
    if (i % c.crossAttentionFreq === 0) block(`${l}.crossattention`, c.encoderWidth);
    out.push([`${l}.intermediate_query.dense.weight`, [c.intermediateSize, D]], [`${l}.intermediate_query.dense.bias`, [c.intermediateSize]]);
    out.push([`${l}.output_query.dense.weight`, [D, c.intermediateSize]], [`${l}.output_query.dense.bias`, [D]]);
    out.push([`${l}.output_query.LayerNorm.weight`, [D]], [`${l}.output_query.LayerNorm.bias`, [D]]);
  }
  return out;
}

describe('QFormer', () => {
  it('has exactly the LAVIS parameter names and shapes (BLIP-2 size: 105,137,664)', () => {
    const c = qformerConfig(tiny);
    const qformer = new QFormer({ config: tiny });
    const names = qformer.namedParameters().map(([n, p]) => [n, p.referenceShape] as [string, number[]]);
    expect(new Map(names)).toEqual(new Map(lavisNames(c)));
    qformer.dispose();
    // BLIP-2 size from the name list alone (no module built): the pruned Q-Former of the spec.
    const blip2 = lavisNames({ ...BLIP2_QFORMER_CONFIG }).reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0);
    expect(blip2).toBe(105_137_664);
  });

  it('matches an independent float64 computation (output and cross-attention map)', () => {
    const c = qformerConfig(tiny);
    const params = randomParams(lavisNames(c), 7);
    const qformer = new QFormer({ config: tiny });
    const tensors = toTensors(params);
    loadStateDict(qformer, tensors);
    disposeStateDict(tensors);
    const N = 2, Nq = 4, Nv = 5;
    const q = randomValues(11, Nq * c.hiddenSize);
    const x = randomValues(12, N * Nv * c.encoderWidth);
    const before = tf.memory().numTensors;
    const queries = tf.tensor3d(Float32Array.from(q), [1, Nq, c.hiddenSize]);
    const features = tf.tensor3d(Float32Array.from(x), [N, Nv, c.encoderWidth]);
    const out = qformer.forward(queries, features);
    const map = qformer.crossAttentionMap(queries, features);
    expect(out.shape).toEqual([N, Nq, c.hiddenSize]);
    expect(map.shape).toEqual([N, Nv]);
    const outData = out.dataSync();
    const mapData = map.dataSync();
    for (let n = 0; n < N; n++) {
      const ref = qformer64(params, '', c, q, Nq, x.slice(n * Nv * c.encoderWidth, (n + 1) * Nv * c.encoderWidth), Nv);
      const D = c.hiddenSize;
      expect(relativeError(outData.slice(n * Nq * D, (n + 1) * Nq * D), ref.output)).toBeLessThan(backendTolerance(1e-5));
      expect(relativeError(mapData.slice(n * Nv, (n + 1) * Nv), ref.attentionMass)).toBeLessThan(backendTolerance(1e-5));
      expect(ref.attentionMass.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    tf.dispose([queries, features, out, map]);
    expect(tf.memory().numTensors).toBe(before);
    qformer.dispose();
  });

  it('dropout is off unless training is explicit', () => {
    setSeed(3);
    const qformer = new QFormer({ config: { ...tiny, hiddenDropoutProb: 0.5, attentionProbsDropoutProb: 0.5 } });
    const queries = tf.randomNormal([1, 3, 8], 0, 1, 'float32', 1) as tf.Tensor3D;
    const features = tf.randomNormal([2, 5, 6], 0, 1, 'float32', 2) as tf.Tensor3D;
    const a = qformer.forward(queries, features);
    const b = qformer.forward(queries, features);
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    const c = qformer.forward(queries, features, { training: true });
    expect(relativeError(c.dataSync(), a.dataSync())).toBeGreaterThan(1e-3);
    qformer.training = true;
    const d = qformer.forward(queries, features);
    expect(relativeError(d.dataSync(), a.dataSync())).toBeGreaterThan(1e-3);
    tf.dispose([queries, features, a, b, c, d]);
    qformer.dispose();
  });

  it('rejects bad shapes and configs with clear errors', () => {
    const qformer = new QFormer({ config: tiny });
    const features = tf.zeros([2, 5, 6]) as tf.Tensor3D;
    const wrongWidth = tf.zeros([1, 3, 7]) as tf.Tensor3D;
    const wrongBatch = tf.zeros([3, 3, 8]) as tf.Tensor3D;
    expect(() => qformer.forward(wrongWidth, features)).toThrow(/queries must be \[N or 1, Nq, 8\], got \[1,3,7\]/);
    expect(() => qformer.forward(wrongBatch, features)).toThrow(/queries batch must be 1 or equal to imageFeatures batch 2/);
    expect(() => qformer.forward(tf.zeros([1, 3, 8]) as tf.Tensor3D, tf.zeros([2, 5, 4]) as tf.Tensor3D)).toThrow(/imageFeatures must be \[N, Nv, 6\], got \[2,5,4\]/);
    expect(() => new QFormer({ config: { hiddenSize: 10, numAttentionHeads: 3 } })).toThrow(/hiddenSize \(10\) must be divisible by numAttentionHeads \(3\)/);
    expect(() => qformerConfig({ hiddenDropoutProb: 1 })).toThrow(/hiddenDropoutProb must be in \[0, 1\), got 1/);
    tf.dispose([features, wrongWidth, wrongBatch]);
    qformer.dispose();
  });
});
