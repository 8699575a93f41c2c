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

/**
 * What every state-dict loader accepts: a {@link StateDict} (`Map`), any iterable of `[name, tensor]`
 * pairs, or a plain object of tensors (tfjs' `NamedTensorMap`, e.g. what `tf.io` handlers decode to).
 */
export type StateDictInput = StateDict | Iterable<readonly [string, tf.Tensor]> | tf.NamedTensorMap;

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
    /**
     * Set when every missing key is present in the dict under one other prefix (see
     * {@link suggestStateDictPrefix}): the `prefix` option that loads it (`''`: none).
     */
    readonly suggestedPrefix?: string,
  ) {
    const parts: string[] = [];
    if (missingKeys.length) parts.push(`missing keys: ${missingKeys.join(', ')}`);
    if (missingKeys.length && suggestedPrefix !== undefined) parts.push(prefixAdvice(missingKeys, suggestedPrefix));
    if (unexpectedKeys.length) parts.push(`unexpected keys: ${unexpectedKeys.join(', ')}`);
    for (const m of mismatchedKeys) {
      parts.push(`size mismatch for ${m.key}: expected [${m.expected}] (reference layout), got [${m.actual}]`);
    }
    for (const k of invalidKeys) parts.push(`invalid value for ${k.key}: ${k.problem}`);
    super(`Error(s) in loading state dict for ${moduleName}:\n  ${parts.join('\n  ')}`);
    this.name = 'StateDictError';
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value instanceof tf.Tensor) return `a tf.Tensor of shape [${value.shape}]`;
  if (Array.isArray(value)) return 'an array that is not of [name, tensor] pairs';
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'an unknown class'}`;
  return typeof value === 'string' ? 'a string' : typeof value;
}

/**
 * Normalise a state dict argument to a `Map` (the same `Map` when given one). Accepts a `Map`, an
 * iterable of `[name, tensor]` pairs and a plain object of tensors (`NamedTensorMap`); the values are
 * checked later by the loader. Anything else throws a TypeError naming `argument`.
 */
export function toStateDict(dict: StateDictInput, argument = 'dict'): StateDict {
  if (dict instanceof Map) return dict;
  const value = dict as unknown;
  const accepted = 'a Map<string, tf.Tensor>, an iterable of [name, tensor] pairs or a plain object of tensors (NamedTensorMap)';
  // A string is iterable (of characters), a tensor is not a dict: both are mistakes, not dicts.
  if (value !== null && typeof value === 'object' && !(value instanceof tf.Tensor)) {
    if (typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function') {
      const out: StateDict = new Map();
      let index = 0;
      for (const entry of value as Iterable<unknown>) {
        if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string') {
          throw new TypeError(`${argument}: expected ${accepted}; entry ${index} is not a [name, tensor] pair`);
        }
        out.set(entry[0], entry[1] as tf.Tensor);
        index++;
      }
      return out;
    }
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto === Object.prototype || proto === null) {
      // Own enumerable keys only (`Object.entries`), so an inherited property is never read as a tensor.
      return new Map(Object.entries(value as Record<string, tf.Tensor>));
    }
  }
  throw new TypeError(`${argument}: expected ${accepted}, got ${describeValue(value)}`);
}

function prefixAdvice(missingKeys: string[], suggested: string): string {
  const all = missingKeys.length === 1 ? 'the missing key appears' : `all ${missingKeys.length} missing keys appear`;
  return suggested === ''
    ? `${all} without a prefix: pass { prefix: '' }`
    : `${all} with the prefix '${suggested}': pass { prefix: '${suggested}' }`;
}

/**
 * When every one of `missing` (module names, without prefix) is among `available` under one common
 * prefix other than `prefix` (`''` or a dot-terminated string such as `model.moe_model.`), that prefix;
 * otherwise undefined. `available` is the dict's keys (a `Map` is read by its keys). Used to say which `prefix` option a failed load needed.
 */
export function suggestStateDictPrefix(
  missing: readonly string[],
  available: Iterable<string> | ReadonlyMap<string, unknown>,
  prefix = '',
): string | undefined {
  if (missing.length === 0) return undefined;
  const keys: { has(key: string): boolean; keys(): Iterable<string> } =
    available instanceof Set || available instanceof Map ? available : new Set(available as Iterable<string>);
  // Candidates come from the first missing key; each is then checked against all the others.
  const first = missing[0]!;
  const candidates = new Set<string>();
  for (const key of keys.keys()) {
    if (!key.endsWith(first)) continue;
    const candidate = key.slice(0, key.length - first.length);
    if (candidate !== prefix && (candidate === '' || candidate.endsWith('.'))) candidates.add(candidate);
  }
  // The longest common prefix wins over a shorter one that also matches (never happens with dot-terminated
  // prefixes of the same keys, but keeps the choice deterministic).
  const matching = [...candidates].filter((c) => missing.every((k) => keys.has(c + k)));
  return matching.sort((a, b) => b.length - a.length)[0];
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

/**
 * Load `dict` (reference names and layouts) into `module`'s parameters. `dict` is a `Map`, an iterable
 * of `[name, tensor]` pairs or a plain object of tensors. Keys are the module's own names, after
 * `options.prefix` (default none: what `stateDict(module)` writes). When strict loading finds keys
 * missing that the dict holds under another common prefix, the error says which `prefix` to pass.
 */
export function loadStateDict(module: Module, dict: StateDictInput, options: LoadStateDictOptions = {}): LoadStateDictResult {
  const prefix = options.prefix ?? '';
  const strict = options.strict ?? true;
  if (typeof prefix !== 'string') throw new TypeError(`options.prefix: expected a string, got ${describeValue(prefix)}`);
  const source = toStateDict(dict);
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
    const suggestedPrefix =
      strict && missingKeys.length
        ? suggestStateDictPrefix(missingKeys.map((k) => k.slice(prefix.length)), source, prefix)
        : undefined;
    throw new StateDictError(
      module.name,
      strict ? missingKeys : [],
      strict ? unexpectedKeys : [],
      mismatchedKeys,
      invalidKeys,
      suggestedPrefix,
    );
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

/**
 * The module's parameters in reference names and layouts (new tensors; the caller disposes them),
 * each name after `prefix` (default none). `loadStateDict(module, dict, { prefix })` reads it back.
 */
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
