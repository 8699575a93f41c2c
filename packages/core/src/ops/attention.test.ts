/**
 * positionCausalMask against a plain loop (every backend: JS-built on cpu/wasm, broadcast compare elsewhere);
 * scaledDotProductAttention's options (additive mask, fully masked rows, dropout) against float64 loops.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { positionCausalMask, scaledDotProductAttention, setSeed } from '../index.js';
import { expectClose, expectNoLeaks } from '../testing/index.js';

describe('positionCausalMask', () => {
  it('is keyPosition ≤ queryPosition per sample, with batch broadcasting, without leaks', () => {
    const queries = [[3, 0, 7], [1, 2, 5]];
    const keys = [[0, 1, 2, 3, 9], [4, 1, 0, 2, 2]];
    const q = tf.tensor2d(queries, [2, 3], 'int32');
    const k = tf.tensor2d(keys, [2, 5], 'int32');
    const mask = positionCausalMask(q, k);
    expect(mask.shape).toEqual([2, 1, 3, 5]);
    expect(mask.dtype).toBe('bool');
    const expected = queries.map((row, b) => [row.map((qp) => keys[b]!.map((kp) => (kp <= qp ? 1 : 0)))]);
    expect((mask.arraySync() as unknown as number[][][][]).map((s) => s.map((r) => r.map((c) => c.map(Number))))).toEqual(expected);

    const k1 = tf.tensor2d([keys[0]!], [1, 5], 'float32'); // one key row for both samples
    const broadcast = positionCausalMask(q, k1);
    expect(broadcast.shape).toEqual([2, 1, 3, 5]);
    expect((broadcast.arraySync() as unknown as number[][][][]).map((s) => s.map((r) => r.map((c) => c.map(Number))))).toEqual(
      queries.map((row) => [row.map((qp) => keys[0]!.map((kp) => (kp <= qp ? 1 : 0)))]),
    );
    expectNoLeaks(() => positionCausalMask(q, k));
    const mismatched = tf.zeros([3, 5]) as tf.Tensor2D;
    expect(() => positionCausalMask(q, mismatched)).toThrow(/positionCausalMask: queryPositions \[2,3\] and keyPositions \[3,5\]/);
    tf.dispose([q, k, k1, mask, broadcast, mismatched]);
  });
});

describe('scaledDotProductAttention options', () => {
  const [B, h, L, d] = [2, 2, 3, 4];
  const seq = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3) * 1.5);
  const q64 = seq(B * h * L * d, 1);
  const k64 = seq(B * h * L * d, 2);
  const v64 = seq(B * h * L * d, 3);
  const raw64 = seq(B * h * L * d, 4); // the 'uniform' rows' values
  const additive64 = seq(L * L, 5); // [L, L] broadcast over B, h
  // keep [B, 1, L, L]: sample 0 causal, sample 1 with query row 1 fully masked.
  const keep = [0, 1].map((b) => Array.from({ length: L }, (_, i) => Array.from({ length: L }, (_, j) => (b === 0 ? (j <= i ? 1 : 0) : i === 1 ? 0 : 1))));

  /** float64: softmax(q·kᵀ/√d + additive) over kept keys · v; fully masked rows: mean over keys of raw. */
  function reference(): number[] {
    const out: number[] = [];
    const at = (x: number[], b: number, hh: number, l: number, e: number) => x[((b * h + hh) * L + l) * d + e]!;
    for (let b = 0; b < B; b++) {
      for (let hh = 0; hh < h; hh++) {
        for (let i = 0; i < L; i++) {
          const allowed = keep[b]![i]!.map((m) => m === 1);
          const scores = Array.from({ length: L }, (_, j) => {
            let s = 0;
            for (let e = 0; e < d; e++) s += at(q64, b, hh, i, e) * at(k64, b, hh, j, e);
            return s / Math.sqrt(d) + additive64[i * L + j]!;
          });
          for (let e = 0; e < d; e++) {
            if (!allowed.some(Boolean)) {
              out.push(Array.from({ length: L }, (_, j) => at(raw64, b, hh, j, e)).reduce((a, v) => a + v, 0) / L);
              continue;
            }
            const max = Math.max(...scores.filter((_, j) => allowed[j]));
            const ex = scores.map((s, j) => (allowed[j] ? Math.exp(s - max) : 0));
            const z = ex.reduce((a, v) => a + v, 0);
            out.push(ex.reduce((acc, p, j) => acc + (p / z) * at(v64, b, hh, j, e), 0));
          }
        }
      }
    }
    return out;
  }

  it("adds the additive mask, and 'uniform' fills fully masked rows with the mean of uniformValues ('zero' with 0)", () => {
    const [q, k, v, raw] = [q64, k64, v64, raw64].map((x) => tf.tensor4d(x, [B, h, L, d]));
    const additive = tf.tensor2d(additive64, [L, L]);
    const mask = tf.tensor4d(keep.flat(2), [B, 1, L, L], 'bool');
    const uniform = scaledDotProductAttention(q!, k!, v!, mask, { additiveMask: additive, fullyMaskedRows: 'uniform', uniformValues: raw });
    expectClose(uniform.output, reference(), { label: "additive + 'uniform'" });
    const zero = scaledDotProductAttention(q!, k!, v!, mask, { additiveMask: additive });
    const zeroRows = (zero.output.arraySync() as number[][][][])[1]!.map((head) => head[1]!);
    expect(zeroRows.flat()).toEqual(new Array(h * d).fill(0));
    expectClose(tf.sum(zero.probs, -1), [0, 1].flatMap((b) => Array.from({ length: h * L }, (_, r) => (b === 1 && r % L === 1 ? 0 : 1))), { label: 'row sums' });
    expectNoLeaks(() => scaledDotProductAttention(q!, k!, v!, mask, { additiveMask: additive, fullyMaskedRows: 'uniform', uniformValues: raw }));
    expect(() => scaledDotProductAttention(q!, k!, v!, mask, { fullyMaskedRows: 'mean' as 'zero' })).toThrow(/fullyMaskedRows must be 'zero' or 'uniform', got mean/);
    expect(() => scaledDotProductAttention(q!, k!, v!, mask, { dropoutRate: 1 })).toThrow(/dropoutRate must be in \[0, 1\), got 1/);
    tf.dispose([q!, k!, v!, raw!, additive, mask, uniform.output, uniform.probs, zero.output, zero.probs]);
  });

  it('drops probabilities (not the returned ones) only when training, scaled by 1/(1 − rate), seeded by setSeed', () => {
    const [q, k] = [q64, k64].map((x) => tf.tensor4d(x, [B, h, L, d]));
    const eye = tf.tile(tf.reshape(tf.eye(L), [1, 1, L, L]), [B, h, 1, 1]); // v = I, so output = dropped probs
    const plain = scaledDotProductAttention(q!, k!, eye);
    const inference = scaledDotProductAttention(q!, k!, eye, null, { dropoutRate: 0.5, training: false });
    expect(Array.from(inference.output.dataSync())).toEqual(Array.from(plain.output.dataSync()));
    setSeed(3);
    const a = scaledDotProductAttention(q!, k!, eye, null, { dropoutRate: 0.5, training: true });
    setSeed(3);
    const b = scaledDotProductAttention(q!, k!, eye, null, { dropoutRate: 0.5, training: true });
    expect(Array.from(a.output.dataSync())).toEqual(Array.from(b.output.dataSync()));
    expect(Array.from(a.probs.dataSync())).toEqual(Array.from(plain.probs.dataSync()));
    const p = plain.probs.dataSync();
    const dropped = a.output.dataSync();
    let zeros = 0;
    dropped.forEach((y, i) => {
      if (y === 0) zeros++;
      else expect(Math.abs(y - p[i]! * 2)).toBeLessThan(1e-6);
    });
    expect(zeros).toBeGreaterThan(0);
    expect(zeros).toBeLessThan(dropped.length);
    tf.dispose([q!, k!, eye, plain.output, plain.probs, inference.output, inference.probs, a.output, a.probs, b.output, b.probs]);
  });
});
