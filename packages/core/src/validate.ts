/**
 * Argument checks shared by every public constructor and `forward`: a bad argument is an `Error`
 * naming the owner (`ParrotMoE.forward`), the argument, what was expected and what was given —
 * never a bare `TypeError` from deep inside (`Cannot read properties of undefined`).
 */
import * as tf from '@tensorflow/tfjs-core';

/** A short, bounded description of any value for error messages (strings quoted, so `"64"` ≠ `64`). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (value instanceof tf.Tensor) return `${value.isDisposed ? 'a disposed ' : 'a '}${value.dtype} tensor [${value.shape.join(', ')}]`;
  if (Array.isArray(value)) return `a plain array (length ${value.length})`;
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (typeof value === 'function') return 'a function';
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/** `value` must be a plain options object (not undefined, an array or a tensor). */
export function assertOptionsObject(owner: string, name: string, value: unknown): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof tf.Tensor) {
    throw new Error(`${owner}: ${name} must be an object, got ${describeValue(value)}`);
  }
}

/**
 * A constructor's options, checked before `super` sees them: an object (not undefined, an array or
 * a tensor) and, with `known`, no unknown keys. Returns `options` (for `super(checkedOptions(…))`).
 */
export function checkedOptions<T>(owner: string, options: T, known?: readonly string[]): T {
  assertOptionsObject(owner, 'args', options);
  if (known) assertKnownKeys(owner, options, known);
  return options;
}

/**
 * Options tfjs layers accept besides a module's own (`name`, `trainable`, and the Layer ones `getConfig` round-trips;
 * `customObjects` is what `tf.loadLayersModel`'s deserialiser adds to every layer config).
 */
const LAYER_KEYS = ['name', 'trainable', 'dtype', 'inputShape', 'batchInputShape', 'batchSize', 'inputDType', 'weights', 'customObjects'];

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

/**
 * Unknown keys of an options object are an error naming each (and the nearest known key, for a
 * typo such as `numExpert`). `known` lists the module's own keys; the Layer keys (`name`, `trainable`,
 * `dtype`, …) are allowed too, for options a tfjs Layer constructor receives. `layerKeys: false` is for
 * options that never reach one (attach configs, loader options), where such a key would be ignored
 * silently: there it is unknown like any other.
 */
export function assertKnownKeys(owner: string, options: object, known: readonly string[], { layerKeys = true }: { layerKeys?: boolean } = {}): void {
  const allowed = new Set(layerKeys ? [...known, ...LAYER_KEYS] : known);
  const unknown = Object.keys(options).filter((k) => !allowed.has(k));
  if (!unknown.length) return;
  const hints = unknown.map((key) => {
    const nearest = [...known].sort((x, y) => editDistance(key, x) - editDistance(key, y))[0];
    return nearest !== undefined && editDistance(key, nearest) <= Math.max(2, Math.floor(key.length / 3)) ? `"${key}" (did you mean "${nearest}"?)` : `"${key}"`;
  });
  throw new Error(`${owner}: unknown option${unknown.length > 1 ? 's' : ''} ${hints.join(', ')}; known: ${known.join(', ')}`);
}

/** `value` must be a boolean (a string such as `'no'` is truthy and would silently mean true). */
export function assertBoolean(owner: string, name: string, value: unknown): asserts value is boolean {
  if (typeof value !== 'boolean') throw new Error(`${owner}: ${name} must be true or false, got ${describeValue(value)}`);
}

/** `value` must be a finite number (not NaN, not ±Infinity, not a numeric string). */
export function assertFiniteNumber(owner: string, name: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${owner}: ${name} must be a finite number, got ${describeValue(value)}`);
}

export interface TensorExpectation {
  /** Required rank. */
  rank?: number;
  /** Allowed dtypes. */
  dtypes?: readonly tf.DataType[];
}

/** `value` must be a live `tf.Tensor` (of the given rank and dtypes). */
export function assertTensor(owner: string, name: string, value: unknown, expect: TensorExpectation = {}): asserts value is tf.Tensor {
  const wanted = `a tf.Tensor${expect.rank !== undefined ? ` of rank ${expect.rank}` : ''}${expect.dtypes ? ` (${expect.dtypes.join(' or ')})` : ''}`;
  if (!(value instanceof tf.Tensor) || value.isDisposed) throw new Error(`${owner}: ${name} must be ${wanted}, got ${describeValue(value)}`);
  if (expect.rank !== undefined && value.rank !== expect.rank) throw new Error(`${owner}: ${name} must be ${wanted}, got ${describeValue(value)}`);
  if (expect.dtypes && !expect.dtypes.includes(value.dtype)) throw new Error(`${owner}: ${name} must be ${wanted}, got ${describeValue(value)}`);
}

/**
 * A mask must hold only 0 and 1 (or be bool): a NaN or 0.5 entry has no meaning, and backends
 * disagree on it (`NaN ≠ 0` keeps it on one, drops it on another). Reads the mask's values
 * (a synchronous download on GPU backends; masks are small, `[B, T]`).
 */
export function assertBinaryMask(owner: string, name: string, mask: tf.Tensor): void {
  assertTensor(owner, name, mask, { dtypes: ['bool', 'float32', 'int32'] });
  if (mask.dtype === 'bool') return;
  const values = mask.dataSync();
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== 0 && v !== 1) {
      const index: number[] = [];
      let rest = i;
      for (let axis = mask.rank - 1; axis >= 0; axis--) {
        index.unshift(rest % mask.shape[axis]);
        rest = Math.floor(rest / mask.shape[axis]);
      }
      throw new Error(`${owner}: ${name} must hold only 0 and 1 (or be bool), got ${v} at [${index.join(', ')}]`);
    }
  }
}

/**
 * `where(keep, x, 0)` with `keep [..., 1]`-style broadcasting: values at dropped positions become
 * exactly 0, so a NaN or Inf there cannot reach any output (`0 · NaN = NaN`: multiplying by a
 * mask is not enough). `keep` is bool or 0/1 and broadcasts against `x` from the left-aligned
 * leading axes (e.g. `[B, T]` against `[B, T, D]`).
 */
export function zeroMasked(x: tf.Tensor, keep: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const condition = keep.dtype === 'bool' ? keep : tf.notEqual(keep, 0);
    const expanded = condition.rank < x.rank ? tf.reshape(condition, [...condition.shape, ...Array(x.rank - condition.rank).fill(1)]) : condition;
    return tf.where(tf.broadcastTo(expanded, x.shape), x, tf.zerosLike(x));
  });
}
