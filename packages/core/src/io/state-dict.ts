/**
 * State dicts with PyTorch's strict semantics, in the reference names and layouts.
 *
 * `loadStateDict` checks everything first (missing, unexpected and mis-shaped keys, values that
 * are not tensors, disposed tensors, string or complex dtypes), reports all problems in one
 * `StateDictError`, and only then assigns: a bad dict never leaves a module half-loaded.
 */
import * as tf from '@tensorflow/tfjs-core';
import { fromReferenceLayout, toReferenceLayout, type Module, type Parameter } from '../nn/module.js';

/** Tensors by name. A `Map` (never a plain object, so `__proto__` is an ordinary key). */
export type StateDict = Map<string, tf.Tensor>;

export interface LoadStateDictOptions {
  /** Only keys starting with this prefix are considered, and it is stripped (e.g. `model.moe_model.`). */
  prefix?: string;
  /** Missing or unexpected keys are an error (default true). Shape mismatches always are. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
  /** Keys that were assigned. */
  loadedKeys: string[];
}

export class StateDictError extends Error {
  constructor(
    readonly moduleName: string,
    readonly missingKeys: string[],
    readonly unexpectedKeys: string[],
    readonly mismatchedKeys: Array<{ key: string; expected: readonly number[]; actual: readonly number[] }>,
    /** Keys whose value cannot be loaded at all (not a tensor, disposed, a string or complex dtype). */
    readonly invalidKeys: Array<{ key: string; problem: string }> = [],
  ) {
    const parts: string[] = [];
    if (missingKeys.length) parts.push(`missing keys: ${missingKeys.join(', ')}`);
    if (unexpectedKeys.length) parts.push(`unexpected keys: ${unexpectedKeys.join(', ')}`);
    for (const m of mismatchedKeys) {
      parts.push(`size mismatch for ${m.key}: expected [${m.expected}] (reference layout), got [${m.actual}]`);
    }
    for (const k of invalidKeys) parts.push(`invalid value for ${k.key}: ${k.problem}`);
    super(`Error(s) in loading state dict for ${moduleName}:\n  ${parts.join('\n  ')}`);
    this.name = 'StateDictError';
  }
}

function toMap(dict: StateDict | Iterable<[string, tf.Tensor]>): StateDict {
  return dict instanceof Map ? dict : new Map(dict);
}

/** Why `value` cannot be assigned to a float32 parameter, or null when it can. */
function tensorProblem(value: unknown): string | null {
  if (!(value instanceof tf.Tensor)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'a plain array' : typeof value;
    return `expected a tf.Tensor, got ${kind}`;
  }
  if (value.isDisposed) return 'the tensor is disposed';
  if (value.dtype !== 'float32' && value.dtype !== 'int32' && value.dtype !== 'bool') {
    return `expected dtype float32, int32 or bool, got ${value.dtype}`;
  }
  return null;
}

/** Load `dict` (reference names and layouts) into `module`'s parameters. */
export function loadStateDict(
  module: Module,
  dict: StateDict | Iterable<[string, tf.Tensor]>,
  options: LoadStateDictOptions = {},
): LoadStateDictResult {
  const prefix = options.prefix ?? '';
  const strict = options.strict ?? true;
  const source = toMap(dict);
  const expected = new Map<string, Parameter>(module.namedParameters());
  const candidates = new Map<string, tf.Tensor>();
  for (const [key, value] of source) {
    if (key.startsWith(prefix)) candidates.set(key.slice(prefix.length), value);
  }
  const missingKeys = [...expected.keys()].filter((k) => !candidates.has(k)).map((k) => prefix + k);
  const unexpectedKeys = [...candidates.keys()].filter((k) => !expected.has(k)).map((k) => prefix + k);
  const mismatchedKeys: StateDictError['mismatchedKeys'] = [];
  const invalidKeys: StateDictError['invalidKeys'] = [];
  for (const [key, parameter] of expected) {
    const value = candidates.get(key);
    if (value === undefined) continue;
    const problem = tensorProblem(value);
    if (problem) {
      invalidKeys.push({ key: prefix + key, problem });
      continue;
    }
    const same =
      value.shape.length === parameter.referenceShape.length &&
      value.shape.every((d, i) => d === parameter.referenceShape[i]);
    if (!same) mismatchedKeys.push({ key: prefix + key, expected: parameter.referenceShape, actual: value.shape });
  }
  if (mismatchedKeys.length || invalidKeys.length || (strict && (missingKeys.length || unexpectedKeys.length))) {
    throw new StateDictError(module.name, strict ? missingKeys : [], strict ? unexpectedKeys : [], mismatchedKeys, invalidKeys);
  }
  const loadedKeys: string[] = [];
  for (const [key, parameter] of expected) {
    const value = candidates.get(key);
    if (!value) continue;
    tf.tidy(() => {
      const asFloat = value.dtype === 'float32' ? value : tf.cast(value, 'float32');
      parameter.variable.write(fromReferenceLayout(asFloat, parameter.layout));
    });
    loadedKeys.push(prefix + key);
  }
  return { missingKeys, unexpectedKeys, loadedKeys };
}

/** The module's parameters in reference names and layouts (new tensors; the caller disposes them). */
export function stateDict(module: Module, prefix = ''): StateDict {
  const out: StateDict = new Map();
  for (const [name, parameter] of module.namedParameters()) {
    out.set(prefix + name, tf.tidy(() => toReferenceLayout(parameter.variable.read(), parameter.layout)));
  }
  return out;
}

/** Dispose every tensor of a state dict. */
export function disposeStateDict(dict: StateDict): void {
  for (const value of dict.values()) value.dispose();
}
