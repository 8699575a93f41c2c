/**
 * A browser-safe subset of @mllm/core's backend tests, run by `checks.html` on every backend the
 * page can start (webgpu, wasm) and reported to the browser test. Each check compares the active
 * backend against an independent float64 computation in plain JS loops (or against the cpu
 * backend for the cross-backend check); gradients are compared with their closed forms.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Linear, batchMatMul, createRng, gelu, loadSafetensors, loadStateDict, maskedSoftmax, matMul2d, rmsNorm, saveSafetensors, scaledDotProductAttention, setSeed, silu,
} from '@mllm/core';
import { HostMLLM, type HostMLLMConfig } from '@mllm/models';

export interface CheckOutcome {
  name: string;
  passed: boolean;
  /** Largest |actual − expected| seen (when numeric). */
  maxError?: number;
  message?: string;
  ms: number;
}

export interface ChecksReport {
  backend: string;
  passed: number;
  failed: number;
  /** Tensors alive after the checks minus before (must be 0). */
  leakedTensors: number;
  outcomes: CheckOutcome[];
}

type Check = { name: string; run: (tolerance: number) => Promise<number | void> };

/** Deterministic values in [-1, 1). */
function randomValues(count: number, seed: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, () => rng() * 2 - 1);
}

async function values(t: tf.Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

/** Max |a − b|; throws naming the check when above `atol + rtol·|b|` anywhere or shapes differ. */
function compare(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number): number {
  if (actual.length !== expected.length) throw new Error(`${what}: expected ${expected.length} values, got ${actual.length}`);
  let maxError = 0;
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i]! - expected[i]!);
    if (!(error <= tolerance + tolerance * Math.abs(expected[i]!))) {
      throw new Error(`${what}[${i}]: got ${actual[i]}, expected ${expected[i]} (|diff| ${error.toExponential(2)} > tolerance ${tolerance})`);
    }
    maxError = Math.max(maxError, error);
  }
  return maxError;
}

/** Float64 `a [m, k] · b [k, n]`, row-major. */
function matMulF64(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const out = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!;
    out[i * n + j] = s;
  }
  return out;
}

function transposeF64(a: number[], rows: number, cols: number): number[] {
  const out = new Array<number>(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j]!;
  return out;
}

/** Float64 softmax of one row with a keep-mask; an all-masked row is zeros. */
function maskedSoftmaxRow(row: number[], keep: boolean[]): number[] {
  const kept = row.filter((_, i) => keep[i]);
  if (kept.length === 0) return row.map(() => 0);
  const m = Math.max(...kept);
  const e = row.map((v, i) => (keep[i] ? Math.exp(v - m) : 0));
  const z = e.reduce((s, v) => s + v, 0);
  return e.map((v) => v / z);
}

/** erf to ~1e-12 (series for |x| < 3, continued fraction beyond). */
function erfF64(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    return sign * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz)
  let f = ax;
  let c = ax;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    d = ax + an * d;
    d = 1 / d;
    c = ax + an / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  return sign * (1 - erfc);
}

const CHECKS: Check[] = [
  {
    name: 'the comparison itself rejects a perturbed value (control)',
    run: async (tol) => {
      const expected = randomValues(8, 21);
      const perturbed = expected.map((v, i) => (i === 5 ? v + 20 * tol + 1e-3 : v));
      try {
        compare('control', perturbed, expected, tol);
      } catch {
        return 0;
      }
      throw new Error('compare accepted a value off by more than its tolerance');
    },
  },
  {
    name: 'matMul2d [5,7]·[7,3] vs float64',
    run: async (tol) => {
      const a = randomValues(35, 1);
      const b = randomValues(21, 2);
      const out = tf.tidy(() => matMul2d(tf.tensor2d(a, [5, 7]), tf.tensor2d(b, [7, 3])));
      try {
        return compare('matMul2d', await values(out), matMulF64(a, b, 5, 7, 3), tol);
      } finally {
        out.dispose();
      }
    },
  },
  {
    name: 'batchMatMul [2,4,5]·[2,5,3] vs float64',
    run: async (tol) => {
      const a = randomValues(40, 3);
      const b = randomValues(30, 4);
      const out = tf.tidy(() => batchMatMul(tf.tensor3d(a, [2, 4, 5]), tf.tensor3d(b, [2, 5, 3])));
      try {
        const expected = [0, 1].flatMap((i) => matMulF64(a.slice(i * 20, i * 20 + 20), b.slice(i * 15, i * 15 + 15), 4, 5, 3));
        return compare('batchMatMul', await values(out), expected, tol);
      } finally {
        out.dispose();
      }
    },
  },
  {
    name: 'matMul2d gradients = closed form (dA = G·Bᵀ, dB = Aᵀ·G)',
    run: async (tol) => {
      const a = randomValues(12, 5);
      const b = randomValues(20, 6);
      const g = randomValues(15, 7);
      const grads = tf.tidy(() => {
        const weight = tf.tensor2d(g, [3, 5]);
        const f = (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(matMul2d(x as tf.Tensor2D, y as tf.Tensor2D), weight));
        return tf.grads(f)([tf.tensor2d(a, [3, 4]), tf.tensor2d(b, [4, 5])]);
      });
      try {
        const dA = matMulF64(g, transposeF64(b, 4, 5), 3, 5, 4);
        const dB = matMulF64(transposeF64(a, 3, 4), g, 4, 3, 5);
        return Math.max(compare('dA', await values(grads[0]!), dA, tol), compare('dB', await values(grads[1]!), dB, tol));
      } finally {
        tf.dispose(grads);
      }
    },
  },
  {
    name: 'maskedSoftmax (with an all-masked row) vs float64',
    run: async (tol) => {
      const logits = randomValues(24, 8).map((v) => v * 4);
      const mask = Array.from({ length: 24 }, (_, i) => (i >= 6 && i < 12 ? 0 : (i * 7) % 5 === 0 ? 0 : 1)); // row 1 all masked
      const out = tf.tidy(() => maskedSoftmax(tf.tensor2d(logits, [4, 6]), tf.tensor2d(mask, [4, 6])));
      try {
        const expected = [0, 1, 2, 3].flatMap((r) =>
          maskedSoftmaxRow(logits.slice(r * 6, r * 6 + 6), mask.slice(r * 6, r * 6 + 6).map((m) => m !== 0)),
        );
        const got = await values(out);
        if (got.some((v) => !Number.isFinite(v))) throw new Error(`maskedSoftmax produced a non-finite value: [${got.join(', ')}]`);
        return compare('maskedSoftmax', got, expected, tol);
      } finally {
        out.dispose();
      }
    },
  },
  {
    name: 'scaledDotProductAttention (causal) output and probs vs float64',
    run: async (tol) => {
      const [B, h, L, d] = [1, 2, 4, 3];
      const q = randomValues(B * h * L * d, 9);
      const k = randomValues(B * h * L * d, 10);
      const v = randomValues(B * h * L * d, 11);
      const result = tf.tidy(() => {
        const mask = tf.reshape(tf.linalg.bandPart(tf.ones([L, L]), -1, 0), [1, 1, L, L]); // [1, 1, L, L] causal
        const r = scaledDotProductAttention(tf.tensor4d(q, [B, h, L, d]), tf.tensor4d(k, [B, h, L, d]), tf.tensor4d(v, [B, h, L, d]), mask);
        return [r.output, r.probs];
      });
      try {
        const probs: number[] = [];
        const output: number[] = [];
        for (let head = 0; head < h; head++) {
          const base = head * L * d;
          for (let i = 0; i < L; i++) {
            const scores = Array.from({ length: L }, (_, j) => {
              let s = 0;
              for (let c = 0; c < d; c++) s += q[base + i * d + c]! * k[base + j * d + c]!;
              return s / Math.sqrt(d);
            });
            const p = maskedSoftmaxRow(scores, scores.map((_, j) => j <= i));
            probs.push(...p);
            for (let c = 0; c < d; c++) output.push(p.reduce((s, pj, j) => s + pj * v[base + j * d + c]!, 0));
          }
        }
        return Math.max(compare('output', await values(result[0]!), output, tol), compare('probs', await values(result[1]!), probs, tol));
      } finally {
        tf.dispose(result);
      }
    },
  },
  {
    name: 'Linear forward with a PyTorch-layout [out, in] state dict vs float64',
    run: async (tol) => {
      const [N, I, O] = [3, 5, 4];
      const weight = randomValues(O * I, 12);
      const bias = randomValues(O, 13);
      const x = randomValues(N * I, 14);
      const layer = new Linear({ inFeatures: I, outFeatures: O });
      try {
        const dict = new Map<string, tf.Tensor>([['weight', tf.tensor2d(weight, [O, I])], ['bias', tf.tensor1d(bias)]]);
        loadStateDict(layer, dict);
        tf.dispose([...dict.values()]);
        const out = tf.tidy(() => layer.forward(tf.tensor2d(x, [N, I])));
        const expected = matMulF64(x, transposeF64(weight, O, I), N, I, O).map((v, i) => v + bias[i % O]!);
        try {
          return compare('Linear', await values(out), expected, tol);
        } finally {
          out.dispose();
        }
      } finally {
        layer.dispose();
      }
    },
  },
  {
    name: 'Linear gradients (x, kernel, bias) = closed form',
    run: async (tol) => {
      const [N, I, O] = [4, 3, 5];
      const x = randomValues(N * I, 15);
      const r = randomValues(N * O, 16);
      const layer = new Linear({ inFeatures: I, outFeatures: O });
      try {
        const kernel = await values(layer.kernelValue); // [I, O]
        const variables = new Map(layer.namedParameters().map(([name, p]) => [name, p.variable.read() as tf.Variable]));
        const grads = tf.tidy(() => {
          const input = tf.tensor2d(x, [N, I]);
          const weight = tf.tensor2d(r, [N, O]);
          const dx = tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(layer.forward(xx), weight)))(input);
          const vg = tf.variableGrads(() => tf.sum(tf.mul(layer.forward(input), weight)) as tf.Scalar, [...variables.values()]);
          return [dx, vg.grads[variables.get('weight')!.name]!, vg.grads[variables.get('bias')!.name]!];
        });
        try {
          const dx = matMulF64(r, transposeF64(kernel, I, O), N, O, I);
          const dKernel = matMulF64(transposeF64(x, N, I), r, I, N, O); // [I, O], the stored layout
          const dBias = Array.from({ length: O }, (_, o) => r.filter((_, i) => i % O === o).reduce((s, v) => s + v, 0));
          return Math.max(
            compare('dx', await values(grads[0]!), dx, tol),
            compare('dKernel', await values(grads[1]!), dKernel, tol),
            compare('dBias', await values(grads[2]!), dBias, tol),
          );
        } finally {
          tf.dispose(grads);
        }
      } finally {
        layer.dispose();
      }
    },
  },
  {
    name: 'rmsNorm, gelu (exact erf), silu vs float64',
    run: async (tol) => {
      const x = randomValues(12, 17).map((v) => v * 3);
      const w = randomValues(4, 18);
      const eps = 1e-6;
      const outs = tf.tidy(() => {
        const t = tf.tensor2d(x, [3, 4]);
        return [rmsNorm(t, tf.tensor1d(w), eps), gelu(t), silu(t)];
      });
      try {
        const norm = x.map((v, i) => {
          const row = Math.floor(i / 4);
          const ms = x.slice(row * 4, row * 4 + 4).reduce((s, u) => s + u * u, 0) / 4;
          return (v / Math.sqrt(ms + eps)) * w[i % 4]!;
        });
        const g = x.map((v) => 0.5 * v * (1 + erfF64(v / Math.SQRT2)));
        const s = x.map((v) => v / (1 + Math.exp(-v)));
        return Math.max(
          compare('rmsNorm', await values(outs[0]!), norm, tol),
          compare('gelu', await values(outs[1]!), g, tol),
          compare('silu', await values(outs[2]!), s, tol),
        );
      } finally {
        tf.dispose(outs);
      }
    },
  },
  {
    name: 'safetensors save → load round trip (F32, I32)',
    run: async () => {
      const a = randomValues(6, 19);
      const tensors = new Map<string, tf.Tensor>([['a.weight', tf.tensor2d(a, [2, 3])], ['ids', tf.tensor1d([3, -1, 7], 'int32')]]);
      try {
        const bytes = saveSafetensors(tensors, { format: 'pt' });
        const loaded = loadSafetensors(bytes);
        try {
          const back = loaded.tensors.get('a.weight');
          const ids = loaded.tensors.get('ids');
          if (!back || !ids) throw new Error(`round trip lost tensors: got [${[...loaded.tensors.keys()].join(', ')}]`);
          if (back.shape.join() !== '2,3' || ids.dtype !== 'int32') throw new Error(`round trip changed shape/dtype: [${back.shape}] ${ids.dtype}`);
          compare('a.weight', await values(back), Float32Array.from(a), 0);
          compare('ids', await values(ids), [3, -1, 7], 0);
          if (loaded.metadata?.format !== 'pt') throw new Error(`metadata lost: ${JSON.stringify(loaded.metadata)}`);
          return 0;
        } finally {
          for (const t of loaded.tensors.values()) t.dispose();
        }
      } finally {
        tf.dispose([...tensors.values()]);
      }
    },
  },
  {
    name: 'tiny HostMLLM forward: this backend vs cpu',
    run: async (tol) => {
      const config: HostMLLMConfig = {
        text: { vocabSize: 262, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 24, maxLength: 64 },
        vision: { imageSize: 8, patchSize: 4, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16 },
      };
      const ids = [260, 117, 115, 101, 114, 10, 259, 10, 72, 105, 261, 10];
      const pixels = randomValues(8 * 8 * 3, 20).map((v) => (v + 1) / 2);
      const run = async (): Promise<number[]> => {
        setSeed(42);
        const model = new HostMLLM({ config });
        try {
          const inputIds = tf.tensor2d([ids], [1, ids.length], 'int32');
          const images = tf.tensor4d(pixels, [1, 8, 8, 3]);
          try {
            const out = model.forward({ inputIds, images });
            try {
              return await values(out.logits);
            } finally {
              for (const t of [out.logits, out.labels, out.attentionMask]) t?.dispose();
            }
          } finally {
            tf.dispose([inputIds, images]);
          }
        } finally {
          model.dispose();
        }
      };
      const active = tf.getBackend();
      const here = await run();
      await tf.setBackend('cpu');
      let reference: number[];
      try {
        reference = await run();
      } finally {
        await tf.setBackend(active);
      }
      return compare('logits', here, reference, tol * 10);
    },
  },
];

/** Runs every check on the active backend; `tolerance` is both the absolute and relative bound. */
export async function runCoreChecks(tolerance = 1e-4): Promise<ChecksReport> {
  const backend = tf.getBackend();
  const before = tf.memory().numTensors;
  const outcomes: CheckOutcome[] = [];
  for (const check of CHECKS) {
    const started = performance.now();
    try {
      const maxError = await check.run(tolerance);
      outcomes.push({ name: check.name, passed: true, maxError: maxError ?? undefined, ms: performance.now() - started });
    } catch (error) {
      outcomes.push({ name: check.name, passed: false, message: error instanceof Error ? error.message : String(error), ms: performance.now() - started });
    }
  }
  const leakedTensors = tf.memory().numTensors - before;
  return {
    backend,
    passed: outcomes.filter((o) => o.passed).length,
    failed: outcomes.filter((o) => !o.passed).length,
    leakedTensors,
    outcomes,
  };
}

/** Number of checks `runCoreChecks` runs. */
export const CORE_CHECK_COUNT = CHECKS.length;
