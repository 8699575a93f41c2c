/**
 * Element-wise comparison of a tfjs result with a float64 reference.
 */
import * as tf from '@tensorflow/tfjs-core';
import { backendTolerance, type Tolerance } from './test-backend.js';

/** Nested arrays of numbers (any depth), as `arraySync()` returns. */
export type NestedNumbers = number | readonly NestedNumbers[];

/** Something `expectClose` can read numbers from. */
export type Numeric = tf.Tensor | ArrayLike<number> | NestedNumbers;

/** A tensor's values as a Float64Array (synchronous read; works on every @mllm backend). */
export function toFloat64(tensor: tf.Tensor): Float64Array {
  if (tensor.dtype === 'string') throw new Error('toFloat64: tensor dtype is string, expected a numeric tensor');
  return Float64Array.from(tensor.dataSync() as ArrayLike<number>);
}

/** Shape of a nested array (`[]` for a number), checking it is rectangular. */
function nestedShape(value: NestedNumbers, path = 'value'): number[] {
  if (typeof value === 'number') return [];
  if (value.length === 0) return [0];
  const inner = nestedShape(value[0]!, `${path}[0]`);
  for (let i = 1; i < value.length; i++) {
    const other = nestedShape(value[i]!, `${path}[${i}]`);
    if (other.join(',') !== inner.join(',')) {
      throw new Error(`expectClose: ragged nested array at ${path}[${i}]: shape [${other}] vs [${inner}]`);
    }
  }
  return [value.length, ...inner];
}

function flattenNested(value: NestedNumbers, out: number[]): void {
  if (typeof value === 'number') out.push(value);
  else for (const item of value) flattenNested(item, out);
}

/** Reads values and (when known) shape from a tensor, typed array, flat or nested array. */
export function readNumeric(value: Numeric): { values: Float64Array; shape?: number[] } {
  if (value instanceof tf.Tensor) return { values: toFloat64(value), shape: value.shape.slice() };
  if (typeof value === 'number') return { values: Float64Array.of(value), shape: [] };
  if (Array.isArray(value)) {
    const shape = nestedShape(value as NestedNumbers);
    const flat: number[] = [];
    flattenNested(value as NestedNumbers, flat);
    return { values: Float64Array.from(flat), shape: shape.length > 1 ? shape : undefined };
  }
  return { values: Float64Array.from(value as ArrayLike<number>) };
}

/** Options of `expectClose`. */
export interface ExpectCloseOptions extends Partial<Tolerance> {
  /** Prefix for the error message (what is being compared). */
  label?: string;
  /** How many mismatching elements to list (default 5). */
  maxReported?: number;
}

/**
 * Asserts `|actual[i] − expected[i]| ≤ atol + rtol·|expected[i]|` for every element (NaN only
 * matches NaN, ±Infinity only itself). `expected` may be a single number (compared with every
 * element), a flat array (sizes must match) or a nested array (shapes must match a tensor's).
 * Tolerances default to the current test backend's (`backendTolerance()`).
 * @throws Error listing the number of mismatches and the worst elements
 */
export function expectClose(actual: Numeric, expected: Numeric, options: ExpectCloseOptions = {}): void {
  const defaults = backendTolerance();
  const rtol = options.rtol ?? defaults.rtol;
  const atol = options.atol ?? defaults.atol;
  const label = options.label ? `${options.label}: ` : '';
  const a = readNumeric(actual);
  const e = readNumeric(expected);
  const broadcast = typeof expected === 'number';
  if (!broadcast) {
    if (a.shape && e.shape && a.shape.join(',') !== e.shape.join(',')) {
      throw new Error(`${label}expectClose: shape mismatch, actual [${a.shape}] vs expected [${e.shape}]`);
    }
    if (a.values.length !== e.values.length) {
      throw new Error(`${label}expectClose: size mismatch, actual has ${a.values.length} elements, expected ${e.values.length}`);
    }
  }
  const mismatches: Array<{ index: number; actual: number; expected: number; error: number; allowed: number }> = [];
  for (let i = 0; i < a.values.length; i++) {
    const x = a.values[i]!;
    const y = broadcast ? e.values[0]! : e.values[i]!;
    const allowed = atol + rtol * Math.abs(y);
    const ok = Number.isNaN(y) ? Number.isNaN(x) : Number.isFinite(y) ? Math.abs(x - y) <= allowed : x === y;
    if (!ok) mismatches.push({ index: i, actual: x, expected: y, error: Math.abs(x - y), allowed });
  }
  if (mismatches.length > 0) {
    const score = (m: { error: number; allowed: number }) => (Number.isNaN(m.error) ? Infinity : m.error / m.allowed);
    const worst = [...mismatches].sort((p, q) => score(q) - score(p));
    const shown = worst.slice(0, options.maxReported ?? 5).map(
      (m) => `  [${m.index}] actual ${m.actual} expected ${m.expected} (|diff| ${m.error.toExponential(3)} > ${m.allowed.toExponential(3)})`,
    );
    throw new Error(
      `${label}expectClose: ${mismatches.length} of ${a.values.length} elements differ (rtol ${rtol}, atol ${atol}):\n${shown.join('\n')}`,
    );
  }
}
