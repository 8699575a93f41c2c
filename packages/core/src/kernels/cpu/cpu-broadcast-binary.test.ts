/**
 * The cpu backend's broadcasting Add/Sub/Multiply/RealDiv replacement: installed by initBackend on request
 * (`fastCpuKernels`, which the test setup passes), removed by uninstallFastCpuBroadcast,
 * bitwise equal to `fround(a op b)` computed by an independent index loop for every broadcast pattern,
 * gradients and other dtypes unchanged.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { installFastCpuBroadcast, uninstallFastCpuBroadcast } from './cpu-broadcast-binary.js';
import { initBackend } from '../../backend/init-backend.js';
import { checkGradients, skipOnBackend } from '../../testing/index.js';

const skip = skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'the replacement is installed for the cpu backend only');

function values(seed: number, n: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296) * 4 - 2 || 0.5);
}

/** float32 `op(a, b)` with numpy broadcasting, by coordinates (independent of the kernel's walk). */
function reference(op: (x: number, y: number) => number, a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], outShape: number[]): Float32Array {
  const out = new Float32Array(outShape.reduce((x, y) => x * y, 1));
  const offsetOf = (coords: number[], shape: number[]) => {
    let offset = 0;
    shape.forEach((size, axis) => {
      const c = coords[axis + coords.length - shape.length]!;
      offset = offset * size + (size === 1 ? 0 : c);
    });
    return offset;
  };
  for (let i = 0; i < out.length; i++) {
    const coords: number[] = [];
    for (let axis = outShape.length - 1, rest = i; axis >= 0; axis--) {
      coords[axis] = rest % outShape[axis]!;
      rest = Math.floor(rest / outShape[axis]!);
    }
    out[i] = op(a[offsetOf(coords, aShape)]!, b[offsetOf(coords, bShape)]!);
  }
  return out;
}

describe.skipIf(skip)('cpu broadcasting binary kernels', () => {
  it('are opt-in: initBackend installs them only with fastCpuKernels, uninstallFastCpuBroadcast puts tfjs\' back', async () => {
    const fast = () => ['Add', 'Sub', 'Multiply', 'RealDiv'].map((name) => (tf.getKernel(name, 'cpu')?.kernelFunc as { fastBroadcast?: boolean }).fastBroadcast === true);
    const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [2, 3]);
    const b = tf.tensor2d([10, 20], [2, 1]);
    const sumWithFast = await tf.add(a, b).data();
    try {
      expect(uninstallFastCpuBroadcast()).toEqual(['Add', 'Sub', 'Multiply', 'RealDiv']);
      expect(fast()).toEqual([false, false, false, false]);
      expect(uninstallFastCpuBroadcast()).toEqual([]); // idempotent
      await initBackend('cpu');
      expect(fast()).toEqual([false, false, false, false]); // not without asking
      expect(Array.from(await tf.add(a, b).data())).toEqual(Array.from(sumWithFast)); // tfjs' own kernel, same values
      await initBackend('cpu', { fastCpuKernels: true });
      expect(fast()).toEqual([true, true, true, true]);
    } finally {
      installFastCpuBroadcast(); // the state the test setup left for the rest of this file
      tf.dispose([a, b]);
    }
  });

  it('are installed by initBackend with fastCpuKernels (idempotently)', () => {
    for (const name of ['Add', 'Sub', 'Multiply', 'RealDiv']) {
      expect((tf.getKernel(name, 'cpu')?.kernelFunc as { fastBroadcast?: boolean }).fastBroadcast).toBe(true);
    }
    expect(installFastCpuBroadcast()).toEqual(['Add', 'Sub', 'Multiply', 'RealDiv']);
  });

  const patterns: Array<[number[], number[]]> = [
    [[5, 7], [5, 1]], // LayerNorm x − mean
    [[1, 6, 8], [1, 6, 1]], // per-token router weight
    [[1, 1, 1], [1, 9, 4]], // a routing weight per expert
    [[2, 3, 4, 5], [1, 3, 1, 5]],
    [[3, 1, 4], [1, 5, 1]], // both stretched
    [[4, 3], [3]], // missing leading axis
    [[], [2, 3]], // scalar
    [[2, 1, 3], [2, 4, 3]],
  ];
  const ops: Array<[string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, (x: number, y: number) => number]> = [
    ['add', tf.add, (x, y) => x + y],
    ['sub', tf.sub, (x, y) => x - y],
    ['mul', tf.mul, (x, y) => x * y],
    ['div', tf.div, (x, y) => x / y],
  ];
  for (const [aShape, bShape] of patterns) {
    it(`[${aShape}] with [${bShape}]: every op bitwise fround(a op b), both operand orders`, () => {
      const outShape = tf.backend_util.assertAndGetBroadcastShape(aShape, bShape);
      const av = values(aShape.length * 17 + 1, aShape.reduce((x, y) => x * y, 1));
      const bv = values(bShape.length * 29 + 2, bShape.reduce((x, y) => x * y, 1));
      const a = tf.tensor(av, aShape);
      const b = tf.tensor(bv, bShape);
      for (const [name, fn, op] of ops) {
        const before = tf.memory().numTensors;
        const ab = fn(a, b);
        const ba = fn(b, a);
        expect(ab.shape, name).toEqual(outShape);
        expect(Array.from(ab.dataSync()), `${name}(a, b)`).toEqual(Array.from(reference(op, av, aShape, bv, bShape, outShape)));
        expect(Array.from(ba.dataSync()), `${name}(b, a)`).toEqual(Array.from(reference(op, bv, bShape, av, aShape, outShape)));
        tf.dispose([ab, ba]);
        expect(tf.memory().numTensors).toBe(before);
      }
      tf.dispose([a, b]);
    });
  }

  it('leaves other dtypes and equal shapes to the original kernels', () => {
    const ints = tf.add(tf.tensor2d([[1, 2], [3, 4]], undefined, 'int32'), tf.tensor2d([[10], [20]], undefined, 'int32'));
    expect(ints.dtype).toBe('int32');
    expect(Array.from(ints.dataSync())).toEqual([11, 12, 23, 24]);
    const mixed = tf.mul(tf.tensor2d([[1.5, 2]]), tf.tensor2d([[2], [3]], undefined, 'int32'));
    expect(Array.from(mixed.dataSync())).toEqual([3, 4, 4.5, 6]);
    const same = tf.sub(tf.tensor1d([5, 6]), tf.tensor1d([1, 2]));
    expect(Array.from(same.dataSync())).toEqual([4, 4]);
    tf.dispose([ints, mixed, same]);
  });

  it('gradients through broadcast ops are unchanged (central differences)', () => {
    const x = tf.tensor(values(3, 12), [3, 4]);
    const mean = tf.tensor(values(4, 3), [3, 1]);
    const scale = tf.tensor(values(5, 4), [4]);
    checkGradients((p, m, s) => tf.sum(tf.mul(tf.div(tf.sub(p!, m!), tf.add(tf.abs(m!), 1)), s!)), [x, mean, scale]);
    tf.dispose([x, mean, scale]);
  });
});
