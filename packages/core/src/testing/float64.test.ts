/**
 * The float64 kit against values computed independently (closed forms, Python's math.erf, and
 * the identities each function must satisfy), so the packages' references built on it rest on checked ground.
 */
import { describe, expect, it } from 'vitest';
import {
  add64, attention64, centralDifferences64, erf64, gelu64, layerNorm64, linear64, maxRelativeError, randomArray, randomMatrix,
  rmsNorm64, rope64, silu64, softmax64, unflatten,
} from './index.js';

describe('float64 kit', () => {
  it('erf/gelu/silu match Python math.erf values and closed forms', () => {
    // math.erf(0.5), math.erf(-1.7), math.erf(3.5) from CPython (libm), 17 significant digits.
    expect(erf64(0.5)).toBeCloseTo(0.5204998778130465, 14);
    expect(erf64(-1.7)).toBeCloseTo(-0.9837904585907745, 14);
    expect(erf64(3.5)).toBeCloseTo(0.9999992569016276, 14);
    expect(gelu64(1)).toBeCloseTo(0.5 * (1 + 0.6826894921370859), 14); // math.erf(1/√2)
    expect(silu64(2)).toBeCloseTo(2 / (1 + Math.exp(-2)), 15);
  });

  it('softmax masks, sums to 1 and gives zeros for a fully masked row', () => {
    const p = softmax64([1, 2, 3], [true, false, true]);
    expect(p[1]).toBe(0);
    expect(p[0]! + p[2]!).toBeCloseTo(1, 15);
    expect(p[2]! / p[0]!).toBeCloseTo(Math.exp(2), 12);
    expect(softmax64([1, 2], [false, false])).toEqual([0, 0]);
  });

  it('linear, norms, rotary and attention follow their definitions', () => {
    expect(linear64([[1, 2]], [[3, 4], [5, 6], [7, 8]], [1, 0, -1])).toEqual([[12, 17, 22]]);
    expect(add64([[1, 2]], [[3, 4]])).toEqual([[4, 6]]);
    const ln = layerNorm64([1, 2, 3, 6], [1, 1, 1, 1], null, 0);
    expect(ln.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 14);
    expect(ln.reduce((a, b) => a + b * b, 0) / 4).toBeCloseTo(1, 14);
    expect(rmsNorm64([3, 4], [1, 2], 0)).toEqual([3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)]);
    // rotary at position 0 is the identity; for d = 2 it is a plain rotation by `pos` radians.
    expect(rope64([0.3, -0.2, 0.5, 0.1], 0, 10000)).toEqual([0.3, -0.2, 0.5, 0.1]);
    const r = rope64([1, 0], 0.7, 10000);
    expect(r[0]).toBeCloseTo(Math.cos(0.7), 15);
    expect(r[1]).toBeCloseTo(Math.sin(0.7), 15);
    // One key allowed → the output is that key's value; equal scores → the mean.
    const { output, probs } = attention64([[1, 0], [0, 0]], [[2, 0], [5, 1]], [[1, 2], [3, 4]], { allowed: (i, j) => i === 1 || j === 0 });
    expect(output[0]).toEqual([1, 2]);
    expect(probs[0]).toEqual([1, 0]);
    expect(output[1]).toEqual([2, 3]);
  });

  it('random data is reproducible mulberry32 in (−scale, scale); central differences and relative errors', () => {
    expect(randomArray(7, 5, 2)).toEqual(randomArray(7, 5, 2));
    expect(randomArray(7, 5)).not.toEqual(randomArray(8, 5));
    expect(randomArray(0, 1)[0]).toBeCloseTo(2 * (1144304738 / 4294967296) - 1, 15); // mulberry32(0) first draw
    expect(randomArray(3, 200, 0.5).every((v) => Math.abs(v) < 0.5)).toBe(true);
    expect(randomMatrix(7, 2, 3, 2)).toEqual(unflatten(randomArray(7, 6, 2), 2, 3));
    const values = new Map([['x', [0.5, -1.25]]]);
    const grads = centralDifferences64((v) => v.get('x')![0]! ** 3 + 2 * v.get('x')![1]!, values);
    expect(grads.get('x')![0]).toBeCloseTo(3 * 0.25, 8);
    expect(grads.get('x')![1]).toBeCloseTo(2, 8);
    expect(values.get('x')).toEqual([0.5, -1.25]);
    expect(maxRelativeError([[1, 2]], [[1, 4]])).toBe(0.5);
    expect(() => maxRelativeError([1], [1, 2])).toThrow(/length mismatch 1 vs 2/);
  });
});
