/**
 * Grouped / batched products against an independent float64 reference (plain JS loops), numerical
 * gradient checks, leak checks and shape errors. Runs on every test backend; on wasm the products go
 * through the zero-copy XNNPACK kernel of `wasm-grouped-matmul.ts`.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { batchMatMul, batchMatMulTransposeB, groupedMatMul, matMul2d, matMul2dTransposeB, MATMUL_2D_KERNEL, scaledDotProductAttention, UNCACHED_PACKING_MIN_ELEMENTS } from '../index.js';
import { checkGradients, expectClose, expectNoLeaks } from '../testing/index.js';
import { WASM_GROUPED_MATMUL } from '../kernels/wasm/wasm-grouped-matmul.js';
import { prefersTiledTranspose, transposeLastTwo } from './transpose.js';

function rngOf(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * 2 - 1;
}
const values = (rng: () => number, n: number) => Float64Array.from({ length: n }, rng);

/** float64 `[G, M, K]·[G, K, N]` over flat row-major arrays. */
function grouped64(a: Float64Array, b: Float64Array, G: number, M: number, K: number, N: number): Float64Array {
  const out = new Float64Array(G * M * N);
  for (let g = 0; g < G; g++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let sum = 0;
        for (let k = 0; k < K; k++) sum += a[(g * M + m) * K + k]! * b[(g * K + k) * N + n]!;
        out[(g * M + m) * N + n] = sum;
      }
    }
  }
  return out;
}

describe('groupedMatMul / batchMatMul', () => {
  const shapes: Array<[number, number, number, number]> = [
    [3, 5, 7, 2], // tiny
    [4, 33, 16, 29], // odd sizes, K = head dim
    [2, 20, 40, 24],
  ];
  for (const [G, M, K, N] of shapes) {
    it(`[${G}, ${M}, ${K}]·[${G}, ${K}, ${N}] matches a float64 loop, without leaks`, () => {
      const rng = rngOf(G * 1000 + M);
      const a64 = values(rng, G * M * K);
      const b64 = values(rng, G * K * N);
      const a = tf.tensor3d(Float32Array.from(a64), [G, M, K]);
      const b = tf.tensor3d(Float32Array.from(b64), [G, K, N]);
      const expected = grouped64(Float64Array.from(Float32Array.from(a64)), Float64Array.from(Float32Array.from(b64)), G, M, K, N);
      const viaGrouped = groupedMatMul(a, b);
      const viaBatch = batchMatMul(a, b);
      expect(viaGrouped.shape).toEqual([G, M, N]);
      expectClose(viaGrouped, expected, { label: 'groupedMatMul' });
      expectClose(viaBatch, expected, { label: 'batchMatMul' });
      if (tf.getBackend() === 'wasm') expect(tf.getKernel(WASM_GROUPED_MATMUL, 'wasm')).toBeDefined(); // the XNNPACK path ran
      expectNoLeaks(() => groupedMatMul(a, b));
      expectNoLeaks(() => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(batchMatMul(x as tf.Tensor3D, y as tf.Tensor3D)))([a, b]));
      tf.dispose([a, b, viaGrouped, viaBatch]);
    });
  }

  it('gradients of batchMatMul and groupedMatMul match central differences', () => {
    const a = tf.randomNormal([3, 4, 5], 0, 1, 'float32', 11);
    const b = tf.randomNormal([3, 5, 2], 0, 1, 'float32', 12);
    const w = tf.randomNormal([3, 4, 2], 0, 1, 'float32', 13);
    checkGradients((x, y) => tf.sum(tf.mul(batchMatMul(x as tf.Tensor3D, y as tf.Tensor3D), w)), [a, b]);
    checkGradients((x, y) => tf.sum(tf.mul(groupedMatMul(x as tf.Tensor3D, y as tf.Tensor3D), w)), [a, b]);
    tf.dispose([a, b, w]);
  });

  it('gradient of each operand equals the float64 dY·Bᵀ and Aᵀ·dY', () => {
    const [G, M, K, N] = [2, 6, 5, 7];
    const rng = rngOf(99);
    const a64 = Float64Array.from(Float32Array.from(values(rng, G * M * K)));
    const b64 = Float64Array.from(Float32Array.from(values(rng, G * K * N)));
    const dy64 = Float64Array.from(Float32Array.from(values(rng, G * M * N)));
    const transpose = (x: Float64Array, rows: number, cols: number) => {
      const t = new Float64Array(G * rows * cols);
      for (let g = 0; g < G; g++) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[(g * cols + c) * rows + r] = x[(g * rows + r) * cols + c]!;
      return t;
    };
    const da = grouped64(dy64, transpose(b64, K, N), G, M, N, K);
    const db = grouped64(transpose(a64, M, K), dy64, G, K, M, N);
    const [a, b, dy] = [tf.tensor3d(Float32Array.from(a64), [G, M, K]), tf.tensor3d(Float32Array.from(b64), [G, K, N]), tf.tensor3d(Float32Array.from(dy64), [G, M, N])];
    for (const product of [batchMatMul, groupedMatMul]) {
      const [ga, gb] = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(product(x as tf.Tensor3D, y as tf.Tensor3D), dy)))([a, b]);
      expectClose(ga!, da, { label: 'dA' });
      expectClose(gb!, db, { label: 'dB' });
      tf.dispose([ga!, gb!]);
    }
    tf.dispose([a, b, dy]);
  });

  it('names both shapes when they do not fit', () => {
    const a = tf.zeros([2, 3, 4]) as tf.Tensor3D;
    const b = tf.zeros([3, 4, 5]) as tf.Tensor3D;
    const c = tf.zeros([2, 5, 5]) as tf.Tensor3D;
    expect(() => groupedMatMul(a, b)).toThrow(/groupedMatMul: a must be \[B, M, K\] and b \[B, K, N\].*a \[2,3,4\] and b \[3,4,5\]/);
    expect(() => batchMatMul(a, c)).toThrow(/batchMatMul: .*a \[2,3,4\] and b \[2,5,5\]/);
    tf.dispose([a, b, c]);
  });

  it('attention at a host-decoder shape keeps its float64 value', () => {
    // B = 2, h = 3, L = 24, d = 8: the products run grouped (G = 6) on wasm.
    const [B, h, L, d] = [2, 3, 24, 8];
    const rng = rngOf(5);
    const [q64, k64, v64] = [0, 1, 2].map(() => Float64Array.from(Float32Array.from(values(rng, B * h * L * d))));
    const expected = new Float64Array(B * h * L * d);
    for (let g = 0; g < B * h; g++) {
      for (let i = 0; i < L; i++) {
        const scores = Array.from({ length: i + 1 }, (_, j) => {
          let s = 0;
          for (let c = 0; c < d; c++) s += q64[(g * L + i) * d + c]! * k64[(g * L + j) * d + c]!;
          return s / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const total = e.reduce((x, y) => x + y, 0);
        for (let c = 0; c < d; c++) {
          let o = 0;
          for (let j = 0; j <= i; j++) o += (e[j]! / total) * v64[(g * L + j) * d + c]!;
          expected[(g * L + i) * d + c] = o;
        }
      }
    }
    const [q, k, v] = [q64, k64, v64].map((x) => tf.tensor4d(Float32Array.from(x), [B, h, L, d]));
    const causal = tf.linalg.bandPart(tf.ones([L, L]), -1, 0).reshape([1, 1, L, L]);
    const { output, probs } = scaledDotProductAttention(q!, k!, v!, causal);
    expectClose(output, expected, { label: 'attention output' });
    tf.dispose([q!, k!, v!, causal, output, probs]);
  });

  for (const shape of [[256, 272], [2, 256, 256], [3, 5]] as const) {
    it(`transposeLastTwo of [${shape}] is the exact transpose, and its gradient is the transposed upstream gradient`, () => {
      const [G, R, C] = shape.length === 3 ? shape : [1, shape[0], shape[1]];
      const rng = rngOf(R * C);
      const x64 = Float32Array.from(values(rng, G * R * C));
      const w64 = Float32Array.from(values(rng, G * R * C).subarray(0, G * C * R));
      const transpose64 = (v: Float32Array, rows: number, cols: number) => {
        const out = new Float32Array(G * rows * cols);
        for (let g = 0; g < G; g++) for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[(g * cols + c) * rows + r] = v[(g * rows + r) * cols + c]!;
        return out;
      };
      const x = shape.length === 3 ? tf.tensor3d(x64, [G, R, C]) : tf.tensor2d(x64, [R, C]);
      const w = shape.length === 3 ? tf.tensor3d(w64, [G, C, R]) : tf.tensor2d(w64, [C, R]);
      const y = transposeLastTwo(x);
      expect(y.shape).toEqual(shape.length === 3 ? [G, C, R] : [C, R]);
      expect(Array.from(y.dataSync())).toEqual(Array.from(transpose64(x64, R, C)));
      const [g] = tf.grads((input: tf.Tensor) => tf.sum(tf.mul(transposeLastTwo(input as tf.Tensor2D), w)))([x]);
      expect(Array.from(g!.dataSync())).toEqual(Array.from(transpose64(w64, C, R)));
      expect(prefersTiledTranspose(R, C)).toBe(tf.getBackend() === 'wasm' && R * C >= 65536);
      expectNoLeaks(() => transposeLastTwo(x));
      tf.dispose([x, w, y, g!]);
    });
  }

  it('matMul2d with a right operand large enough to skip the packed-weight cache matches float64, gradients included', () => {
    const [M, K, N] = [3, 4096, UNCACHED_PACKING_MIN_ELEMENTS / 4096];
    const rng = rngOf(4096);
    const a32 = Float32Array.from(values(rng, M * K));
    const b32 = Float32Array.from(values(rng, K * N));
    const dy32 = Float32Array.from(values(rng, M * N));
    const a = tf.tensor2d(a32, [M, K]);
    const b = tf.tensor2d(b32, [K, N]);
    const dy = tf.tensor2d(dy32, [M, N]);
    const expected = grouped64(Float64Array.from(a32), Float64Array.from(b32), 1, M, K, N);
    const y = matMul2d(a, b);
    const sums4096 = { atol: 5e-4, rtol: 1e-4 }; // 4096-term float32 sums (|values| ≲ 40) against float64
    expectClose(y, expected, { label: 'matMul2d', ...sums4096 });
    const [, gb] = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(matMul2d(x as tf.Tensor2D, w as tf.Tensor2D), dy)))([a, b]);
    const db = new Float64Array(K * N); // Aᵀ·dY
    for (let k = 0; k < K; k++) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) db[k * N + n] += a32[m * K + k]! * dy32[m * N + n]!;
    expectClose(gb!, db, { label: 'dB' });
    if (tf.getBackend() === 'wasm') expect(tf.getKernel(WASM_GROUPED_MATMUL, 'wasm')).toBeDefined();
    expectNoLeaks(() => matMul2d(a, b));
    tf.dispose([a, b, dy, y, gb!]);
  });

  it('matMul2d computes only the gradients asked for: no Aᵀ·dY product for a frozen right operand', async () => {
    const x = tf.randomNormal([5, 6], 0, 1, 'float32', 21) as tf.Tensor2D;
    const w = tf.randomNormal([6, 4], 0, 1, 'float32', 22) as tf.Tensor2D;
    const products = async (f: () => void) => (await tf.profile(f)).kernels.filter((k) => k.name === MATMUL_2D_KERNEL).length;
    const onlyX = await products(() => tf.dispose(tf.grads((a: tf.Tensor) => tf.sum(matMul2d(a as tf.Tensor2D, w)))([x])));
    const both = await products(() => tf.dispose(tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(matMul2d(a as tf.Tensor2D, b as tf.Tensor2D)))([x, w])));
    expect(onlyX).toBe(2); // forward + dX
    expect(both).toBe(3); // forward + dX + dW
    checkGradients((a, b) => tf.sum(tf.square(matMul2d(a as tf.Tensor2D, b as tf.Tensor2D))), [x, w]);
    expect(() => matMul2d(x, x)).toThrow(/matMul2d: a must be \[M, K\] and b \[K, N\].*a \[5,6\] and b \[5,6\]/);
    tf.dispose([x, w]);
  });

  // Both forms of a·bᵀ: (b·aᵀ)ᵀ when M·(N + K) < K·N (few rows, large b), a·(bᵀ) otherwise.
  const transposeBShapes: Array<[number, number, number, string]> = [
    [4, 48, 64, '(b·aᵀ)ᵀ'], // 4·112 < 64·48
    [40, 16, 8, 'a·(bᵀ)'], // 40·24 > 8·16
    [32, 256, 256, '(b·aᵀ)ᵀ, tiled transposes on wasm'],
  ];
  for (const [M, N, K, form] of transposeBShapes) {
    it(`matMul2dTransposeB [${M}, ${N}]·[${K}, ${N}]ᵀ (${form}) matches float64, and the dY·Wᵀ gradient of matMul2d with it`, () => {
      const rng = rngOf(M * 1000 + K);
      const a32 = Float32Array.from(values(rng, M * N));
      const b32 = Float32Array.from(values(rng, K * N));
      const a = tf.tensor2d(a32, [M, N]);
      const b = tf.tensor2d(b32, [K, N]);
      const expected = new Float64Array(M * K);
      for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) {
        let sum = 0;
        for (let n = 0; n < N; n++) sum += a32[m * N + n]! * b32[k * N + n]!;
        expected[m * K + k] = sum;
      }
      const y = matMul2dTransposeB(a, b);
      expect(y.shape).toEqual([M, K]);
      expectClose(y, expected, { label: `a·bᵀ (${form})`, atol: 1e-5, rtol: 1e-5 });
      // As matMul2d's input gradient: x [M, K]·b [K, N] with upstream a [M, N] → dx = a·bᵀ [M, K]
      const x = tf.zeros([M, K]);
      const [dx] = tf.grads((v: tf.Tensor) => tf.sum(tf.mul(matMul2d(v as tf.Tensor2D, b), a)))([x]);
      x.dispose();
      expectClose(dx!, expected, { label: `dX = dY·Wᵀ (${form})`, atol: 1e-5, rtol: 1e-5 });
      expectNoLeaks(() => matMul2dTransposeB(a, b));
      tf.dispose([a, b, y, dx!]);
    });
  }

  // q·kᵀ for attention: small, odd, and a tiled-transpose shape on wasm ([16, 256, 256] dY).
  for (const [G, M, N, K] of [[3, 5, 4, 2], [2, 33, 17, 16], [2, 256, 256, 16]] as Array<[number, number, number, number]>) {
    it(`batchMatMulTransposeB [${G}, ${M}, ${K}]·[${G}, ${N}, ${K}]ᵀ and both gradients match float64`, () => {
      const rng = rngOf(G * 7919 + M * 31 + N);
      const a64 = Float64Array.from(Float32Array.from(values(rng, G * M * K)));
      const b64 = Float64Array.from(Float32Array.from(values(rng, G * N * K)));
      const dy64 = Float64Array.from(Float32Array.from(values(rng, G * M * N)));
      const y64 = new Float64Array(G * M * N); // a·bᵀ
      const da64 = new Float64Array(G * M * K); // dY·b
      const db64 = new Float64Array(G * N * K); // dYᵀ·a
      for (let g = 0; g < G; g++) {
        for (let m = 0; m < M; m++) {
          for (let n = 0; n < N; n++) {
            let sum = 0;
            for (let k = 0; k < K; k++) sum += a64[(g * M + m) * K + k]! * b64[(g * N + n) * K + k]!;
            y64[(g * M + m) * N + n] = sum;
            const upstream = dy64[(g * M + m) * N + n]!;
            for (let k = 0; k < K; k++) {
              da64[(g * M + m) * K + k] += upstream * b64[(g * N + n) * K + k]!;
              db64[(g * N + n) * K + k] += upstream * a64[(g * M + m) * K + k]!;
            }
          }
        }
      }
      const a = tf.tensor3d(Float32Array.from(a64), [G, M, K]);
      const b = tf.tensor3d(Float32Array.from(b64), [G, N, K]);
      const dy = tf.tensor3d(Float32Array.from(dy64), [G, M, N]);
      const y = batchMatMulTransposeB(a, b);
      expect(y.shape).toEqual([G, M, N]);
      expectClose(y, y64, { label: 'a·bᵀ' });
      const [da, db] = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.mul(batchMatMulTransposeB(x as tf.Tensor3D, w as tf.Tensor3D), dy)))([a, b]);
      expectClose(da!, da64, { label: 'dA = dY·b' });
      expectClose(db!, db64, { label: 'dB = dYᵀ·a' });
      expectNoLeaks(() => batchMatMulTransposeB(a, b));
      expectNoLeaks(() => tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(batchMatMulTransposeB(x as tf.Tensor3D, w as tf.Tensor3D)))([a, b]));
      tf.dispose([a, b, dy, y, da!, db!]);
    });
  }

  it('batchMatMulTransposeB gradients match central differences, and it names both shapes when K differs', () => {
    const a = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 21);
    const b = tf.randomNormal([2, 5, 4], 0, 1, 'float32', 22);
    const w = tf.randomNormal([2, 3, 5], 0, 1, 'float32', 23);
    checkGradients((x, y) => tf.sum(tf.mul(batchMatMulTransposeB(x as tf.Tensor3D, y as tf.Tensor3D), w)), [a, b]);
    const c = tf.zeros([2, 5, 3]) as tf.Tensor3D;
    expect(() => batchMatMulTransposeB(a as tf.Tensor3D, c)).toThrow(/batchMatMulTransposeB: a must be \[B, M, K\] and b \[B, N, K\].*a \[2,3,4\] and b \[2,5,3\]/);
    tf.dispose([a, b, w, c]);
  });

  it('matMul2dTransposeB names both shapes when N differs', () => {
    const a = tf.zeros([2, 3]) as tf.Tensor2D;
    const b = tf.zeros([4, 5]) as tf.Tensor2D;
    expect(() => matMul2dTransposeB(a, b)).toThrow(/a must be \[M, N\] and b \[K, N\] with equal N, got a \[2,3\] and b \[4,5\]/);
    tf.dispose([a, b]);
  });
});
