/**
 * Numerical gradient checks: tfjs' analytic gradients (`tf.grads`, `tf.variableGrads`) against
 * central differences
 *
 *   ∂f/∂xᵢ ≈ (f(x + ε·eᵢ) − f(x − ε·eᵢ)) / (x⁺ᵢ − x⁻ᵢ)
 *
 * where x⁺ᵢ = fround(xᵢ + ε), x⁻ᵢ = fround(xᵢ − ε) are the float32 values actually fed to tfjs, so the
 * step is exact; the difference quotient itself is formed in float64 in JavaScript. The evaluations
 * of f run in float32 on the backend, which bounds the achievable accuracy: the comparison allows
 *
 *   |numeric − analytic| ≤ atol + rtol·max(|numeric|, |analytic|) + 2⁻²⁰·max(|f⁺|, |f⁻|) / (x⁺ − x⁻)
 *
 * the last term being ~8 float32 ulps of f divided by the step (evaluation noise).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Options of the gradient checks. */
export interface GradientCheckOptions {
  /** Finite-difference step ε (default 1e-3). */
  epsilon?: number;
  /** Relative tolerance (default 1e-2). */
  rtol?: number;
  /** Absolute tolerance (default 1e-3). */
  atol?: number;
  /** Sets both `rtol` and `atol`. */
  tolerance?: number;
  /** Check at most this many elements per input, evenly spaced (default: all). */
  maxElementsPerInput?: number;
  /** Prefix for error messages. */
  label?: string;
}

/** What a passing check measured. */
export interface GradientCheckReport {
  /** Number of partial derivatives compared. */
  checked: number;
  maxAbsoluteError: number;
  /** Largest |numeric − analytic| / max(|numeric|, |analytic|), over entries larger than 1e-6. */
  maxRelativeError: number;
}

interface ResolvedOptions {
  epsilon: number;
  rtol: number;
  atol: number;
  maxElements: number;
  label: string;
}

function resolveOptions(options: GradientCheckOptions): ResolvedOptions {
  const epsilon = options.epsilon ?? 1e-3;
  if (!(epsilon > 0)) throw new Error(`checkGradients: epsilon must be > 0, got ${epsilon}`);
  return {
    epsilon,
    rtol: options.rtol ?? options.tolerance ?? 1e-2,
    atol: options.atol ?? options.tolerance ?? 1e-3,
    maxElements: options.maxElementsPerInput ?? Number.POSITIVE_INFINITY,
    label: options.label ? `${options.label}: ` : '',
  };
}

/** Indices to check: all, or `count` evenly spaced ones. */
function sampleIndices(size: number, count: number): number[] {
  if (count >= size) return Array.from({ length: size }, (_, i) => i);
  const step = size / count;
  return Array.from({ length: count }, (_, i) => Math.floor(i * step));
}

function scalarValue(y: tf.Tensor, label: string): number {
  if (y.rank !== 0) throw new Error(`${label}checkGradients: f must return a scalar, got shape [${y.shape}]`);
  return (y.dataSync() as Float32Array)[0]!;
}

interface Comparison {
  input: string;
  index: number;
  numeric: number;
  analytic: number;
  error: number;
  allowed: number;
}

/**
 * Compares the analytic gradient of one input with central differences.
 * @param evaluate f with that input replaced by a tensor of the given values
 */
function compareInput(
  name: string,
  base: Float32Array,
  analytic: Float64Array,
  evaluate: (values: Float32Array) => number,
  options: ResolvedOptions,
  out: Comparison[],
): void {
  const values = Float32Array.from(base);
  for (const index of sampleIndices(base.length, options.maxElements)) {
    const x = base[index]!;
    const plus = Math.fround(x + options.epsilon);
    const minus = Math.fround(x - options.epsilon);
    values[index] = plus;
    const fPlus = evaluate(values);
    values[index] = minus;
    const fMinus = evaluate(values);
    values[index] = x;
    const step = plus - minus;
    const numeric = (fPlus - fMinus) / step;
    const ana = analytic[index]!;
    const noise = (2 ** -20 * Math.max(Math.abs(fPlus), Math.abs(fMinus))) / step;
    const allowed = options.atol + options.rtol * Math.max(Math.abs(numeric), Math.abs(ana)) + noise;
    out.push({ input: name, index, numeric, analytic: ana, error: Math.abs(numeric - ana), allowed });
  }
}

function report(comparisons: Comparison[], options: ResolvedOptions): GradientCheckReport {
  const failures = comparisons.filter((c) => !(c.error <= c.allowed));
  if (failures.length > 0) {
    failures.sort((p, q) => q.error / q.allowed - p.error / p.allowed);
    const lines = failures
      .slice(0, 6)
      .map((c) => `  ${c.input}[${c.index}]: numeric ${c.numeric.toPrecision(7)} analytic ${c.analytic.toPrecision(7)} (|diff| ${c.error.toExponential(3)} > ${c.allowed.toExponential(3)})`);
    throw new Error(
      `${options.label}checkGradients: ${failures.length} of ${comparisons.length} partial derivatives disagree ` +
        `(epsilon ${options.epsilon}, rtol ${options.rtol}, atol ${options.atol}):\n${lines.join('\n')}`,
    );
  }
  let maxAbsoluteError = 0;
  let maxRelativeError = 0;
  for (const c of comparisons) {
    maxAbsoluteError = Math.max(maxAbsoluteError, c.error);
    const scale = Math.max(Math.abs(c.numeric), Math.abs(c.analytic));
    if (scale > 1e-6) maxRelativeError = Math.max(maxRelativeError, c.error / scale);
  }
  return { checked: comparisons.length, maxAbsoluteError, maxRelativeError };
}

function requireFloat(tensor: tf.Tensor, name: string, label: string): void {
  if (tensor.dtype !== 'float32') {
    throw new Error(`${label}checkGradients: ${name} must be float32 to be differentiated, got ${tensor.dtype}`);
  }
}

/**
 * Checks `tf.grads(f)` against central differences for every input.
 * @param f a scalar function of the inputs (it may create tensors; they are disposed)
 * @param inputs float32 tensors; not modified
 * @throws Error listing the worst disagreeing partial derivatives
 */
export function checkGradients(
  f: (...inputs: tf.Tensor[]) => tf.Tensor,
  inputs: tf.Tensor[],
  options: GradientCheckOptions = {},
): GradientCheckReport {
  const resolved = resolveOptions(options);
  inputs.forEach((x, k) => requireFloat(x, `inputs[${k}]`, resolved.label));
  tf.tidy(() => scalarValue(f(...inputs), resolved.label));
  const analytic = tf.tidy(() => tf.grads((...xs: tf.Tensor[]) => f(...xs))(inputs)).map((g) => {
    const values = Float64Array.from(g.dataSync() as Float32Array);
    g.dispose();
    return values;
  });
  const bases = inputs.map((x) => Float32Array.from(x.dataSync() as Float32Array));
  const comparisons: Comparison[] = [];
  inputs.forEach((input, k) => {
    const evaluate = (values: Float32Array) =>
      tf.tidy(() => {
        const replaced = inputs.map((x, j) => (j === k ? tf.tensor(values, input.shape, 'float32') : x));
        return scalarValue(f(...replaced), resolved.label);
      });
    compareInput(`inputs[${k}]`, bases[k]!, analytic[k]!, evaluate, resolved, comparisons);
  });
  return report(comparisons, resolved);
}

/**
 * Checks `tf.variableGrads(f, variables)` against central differences, perturbing each variable
 * in place with `assign` and restoring it afterwards.
 * @param f a scalar function reading the variables
 * @param variables trainable float32 variables
 * @throws Error listing the worst disagreeing partial derivatives
 */
export function checkVariableGradients(
  f: () => tf.Tensor,
  variables: tf.Variable[],
  options: GradientCheckOptions = {},
): GradientCheckReport {
  const resolved = resolveOptions(options);
  variables.forEach((v) => requireFloat(v, `variable ${v.name}`, resolved.label));
  tf.tidy(() => scalarValue(f(), resolved.label));
  const { value, grads } = tf.variableGrads(() => f() as tf.Scalar, variables);
  value.dispose();
  const analytic = variables.map((v) => {
    const gradient = grads[v.name];
    const values = gradient ? Float64Array.from(gradient.dataSync() as Float32Array) : new Float64Array(v.size);
    return values;
  });
  tf.dispose(grads);
  const comparisons: Comparison[] = [];
  variables.forEach((variable, k) => {
    const original = Float32Array.from(variable.dataSync() as Float32Array);
    const evaluate = (values: Float32Array) => {
      tf.tidy(() => variable.assign(tf.tensor(values, variable.shape, 'float32')));
      return tf.tidy(() => scalarValue(f(), resolved.label));
    };
    try {
      compareInput(variable.name, original, analytic[k]!, evaluate, resolved, comparisons);
    } finally {
      tf.tidy(() => variable.assign(tf.tensor(original, variable.shape, 'float32')));
    }
  });
  return report(comparisons, resolved);
}
