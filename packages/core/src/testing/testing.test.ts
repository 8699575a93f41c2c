import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  BACKEND_TOLERANCES,
  backendTolerance,
  checkGradients,
  checkVariableGradients,
  collectTensors,
  expectClose,
  expectNoLeaks,
  skipOnBackend,
  testBackend,
  toFloat64,
  withLeakCheck,
} from './index.js';

describe('testBackend / skipOnBackend', () => {
  it('is the project backend named by MLLM_TEST_BACKEND, and tfjs is really on it', () => {
    expect(process.env.MLLM_TEST_BACKEND).toBeDefined();
    expect(testBackend()).toBe(process.env.MLLM_TEST_BACKEND);
    expect(tf.getBackend()).toBe(testBackend());
  });

  it('skipOnBackend is true exactly on the listed backends and needs a reason', () => {
    const current = testBackend();
    expect(skipOnBackend([current], 'test')).toBe(true);
    expect(skipOnBackend(['cpu', 'wasm', 'webgpu', 'tensorflow'].filter((b) => b !== current) as never, 'test')).toBe(false);
    expect(() => skipOnBackend([current], ' ')).toThrow('skipOnBackend: reason must be a non-empty string');
    expect(backendTolerance()).toBe(BACKEND_TOLERANCES[current]);
  });
});

describe('expectClose / toFloat64', () => {
  it('accepts values within atol + rtol·|expected| and reads tensors as float64', () => {
    const t = tf.tensor2d([[1, 2], [3, 1e6]]);
    expect(toFloat64(t)).toEqual(Float64Array.from([1, 2, 3, 1e6]));
    expectClose(t, [[1, 2], [3, 1e6 + 5]], { rtol: 1e-5, atol: 0 });
    expectClose(t, new Float64Array([1, 2, 3, 1e6]));
    expectClose([0.5, 0.5], 0.5);
    t.dispose();
  });

  it('reports mismatches with index, values and tolerance', () => {
    expect(() => expectClose([1, 2, 3], [1, 2.001, 3], { rtol: 1e-5, atol: 1e-6, label: 'probe' })).toThrow(
      /probe: expectClose: 1 of 3 elements differ \(rtol 0.00001, atol 0.000001\):\n {2}\[1\] actual 2 expected 2.001/,
    );
    expect(() => expectClose([1, Number.NaN], [1, 1])).toThrow(/\[1\] actual NaN expected 1/);
    expect(() => expectClose([1, Number.NaN], [1, Number.NaN])).not.toThrow();
    expect(() => expectClose([Number.POSITIVE_INFINITY], [Number.NEGATIVE_INFINITY])).toThrow(/1 of 1/);
  });

  it('checks shapes and sizes', () => {
    const t = tf.zeros([2, 3]);
    expect(() => expectClose(t, [[0, 0], [0, 0], [0, 0]])).toThrow('expectClose: shape mismatch, actual [2,3] vs expected [3,2]');
    expect(() => expectClose(t, [0, 0, 0])).toThrow('expectClose: size mismatch, actual has 6 elements, expected 3');
    expect(() => expectClose([1, 2], [[1], [2, 3]] as never)).toThrow(/ragged nested array/);
    t.dispose();
  });
});

describe('expectNoLeaks / withLeakCheck', () => {
  it('passes when only returned tensors remain, disposing them', () => {
    const before = tf.memory().numTensors;
    expectNoLeaks(() => tf.tidy(() => ({ y: tf.add(tf.ones([3]), 1), list: [tf.zeros([2])] })));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('detects a leaked intermediate', () => {
    let leaked: tf.Tensor | undefined;
    expect(() =>
      expectNoLeaks(() => {
        leaked = tf.ones([2]);
        return tf.add(leaked, 1);
      }),
    ).toThrow('expectNoLeaks: 1 tensor(s) leaked');
    leaked!.dispose();
  });

  it('does not dispose inputs that are returned unchanged', () => {
    const input = tf.ones([2]);
    expectNoLeaks(() => input);
    expect(input.isDisposed).toBe(false);
    input.dispose();
  });

  it('works with async functions', async () => {
    await expectNoLeaks(async () => {
      const x = tf.ones([4]);
      const sum = x.sum();
      const total = (await sum.data())[0];
      tf.dispose([x, sum]);
      return total;
    });
    let leaked: tf.Tensor | undefined;
    await expect(
      expectNoLeaks(async () => {
        leaked = tf.ones([1]);
      }),
    ).rejects.toThrow(/1 tensor\(s\) leaked/);
    leaked!.dispose();
  });

  it('withLeakCheck returns the result and allows exactly the returned new tensors', () => {
    const result = withLeakCheck(() => tf.tidy(() => [tf.ones([2]), tf.ones([3])]));
    expect(result.map((t) => t.size)).toEqual([2, 3]);
    tf.dispose(result);
    let extra: tf.Tensor | undefined;
    expect(() =>
      withLeakCheck(() => {
        extra = tf.ones([1]);
        return tf.zeros([1]);
      }),
    ).toThrow('withLeakCheck: 1 tensor(s) leaked (numTensors');
    tf.dispose(extra!);
    const nested = tf.scalar(1);
    expect([...collectTensors(new Map([['a', { b: [nested, nested] }]])).values()]).toEqual([nested]);
    nested.dispose();
  });
});

/** x² with a custom gradient factor·x (correct for factor 2). */
function squareWithGradientFactor(factor: number): (x: tf.Tensor) => tf.Tensor {
  return tf.customGrad(((x: tf.Tensor, save: tf.GradSaveFunc) => {
    save([x]);
    return { value: tf.square(x), gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.mul(saved[0]!, factor)) };
  }) as never) as (x: tf.Tensor) => tf.Tensor;
}

describe('checkGradients', () => {
  /** f(x, w) = Σ softmax(tanh(x·w))² over rows: exercises matMul, tanh, softmax and a reduction. */
  const composite = (x: tf.Tensor, w: tf.Tensor) => tf.sum(tf.square(tf.softmax(tf.tanh(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D)))));

  it('accepts tfjs’ gradients of a composite function, without leaking', () => {
    const x = tf.tensor2d([[0.3, -0.2, 0.5], [0.1, 0.4, -0.6]]);
    const w = tf.tensor2d([[0.2, -0.1], [0.7, 0.3], [-0.5, 0.25]]);
    const before = tf.memory().numTensors;
    const report = checkGradients(composite, [x, w]);
    expect(tf.memory().numTensors).toBe(before);
    expect(report.checked).toBe(12);
    expect(report.maxRelativeError).toBeLessThan(1e-2);
    tf.dispose([x, w]);
  });

  it('rejects a gradient that is wrong by a factor of 2', () => {
    const wrongSquare = squareWithGradientFactor(4);
    const x = tf.tensor1d([0.5, -1.5, 2]);
    expect(() => checkGradients((v) => tf.sum(wrongSquare(v)), [x], { label: 'square' })).toThrow(
      /square: checkGradients: 3 of 3 partial derivatives disagree[\s\S]*inputs\[0\]\[2\]: numeric 4\.0+\d* analytic 8\.0+/,
    );
    // A tiny error is also caught once the tolerance is tight.
    const slightlyOff = squareWithGradientFactor(2.02);
    expect(() => checkGradients((v) => tf.sum(slightlyOff(v)), [x], { rtol: 1e-3, atol: 1e-4 })).toThrow(/disagree/);
    x.dispose();
  });

  it('requires a scalar function and float inputs', () => {
    const x = tf.tensor1d([1, 2]);
    expect(() => checkGradients((v) => tf.mul(v, 2), [x])).toThrow('checkGradients: f must return a scalar, got shape [2]');
    const ints = tf.tensor1d([1, 2], 'int32');
    expect(() => checkGradients((v) => tf.sum(v), [ints])).toThrow('checkGradients: inputs[0] must be float32 to be differentiated, got int32');
    expect(() => checkGradients((v) => tf.sum(v), [x], { epsilon: 0 })).toThrow('epsilon must be > 0');
    tf.dispose([x, ints]);
  });

  it('checks variable gradients and restores the variables', () => {
    const weight = tf.variable(tf.tensor2d([[0.2, -0.4], [0.1, 0.3]]), true, 'checkGradients-test-weight');
    const bias = tf.variable(tf.tensor1d([0.05, -0.1]), true, 'checkGradients-test-bias');
    const x = tf.tensor2d([[1, -2], [0.5, 0.25], [-1, 1]]);
    const f = () => tf.sum(tf.sigmoid(tf.add(tf.matMul(x, weight), bias)));
    const weightBefore = weight.dataSync().slice();
    const before = tf.memory().numTensors;
    const report = checkVariableGradients(f, [weight, bias], { maxElementsPerInput: 3 });
    expect(report.checked).toBe(5);
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(weight.dataSync())).toEqual(Array.from(weightBefore));
    tf.dispose([weight, bias, x]);
  });
});
