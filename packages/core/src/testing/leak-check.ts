/**
 * Tensor-leak assertions: every public @mllm call must keep `tf.memory().numTensors` flat apart
 * from the tensors it returns.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Collects the distinct tensors reachable in a result (tensors, arrays, Maps, Sets, plain objects). */
export function collectTensors(value: unknown, found = new Map<number, tf.Tensor>(), seen = new Set<unknown>()): Map<number, tf.Tensor> {
  if (value === null || typeof value !== 'object' || seen.has(value)) return found;
  seen.add(value);
  if (value instanceof tf.Tensor) {
    if (!value.isDisposed) found.set(value.id, value);
    return found;
  }
  if (Array.isArray(value) || value instanceof Set) {
    for (const item of value) collectTensors(item, found, seen);
  } else if (value instanceof Map) {
    for (const item of value.values()) collectTensors(item, found, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const item of Object.values(value)) collectTensors(item, found, seen);
  }
  return found;
}

/** The id of the most recently created tensor (tfjs ids increase monotonically). */
function lastTensorId(): number {
  const probe = tf.scalar(0);
  const id = probe.id;
  probe.dispose();
  return id;
}

interface Snapshot {
  numTensors: number;
  firstNewId: number;
}

function snapshot(): Snapshot {
  const firstNewId = lastTensorId() + 1;
  return { numTensors: tf.memory().numTensors, firstNewId };
}

/** Tensors in `result` created after `before` (inputs passed through are not counted). */
function newTensorsIn(result: unknown, before: Snapshot): tf.Tensor[] {
  return [...collectTensors(result).values()].filter((t) => t.id >= before.firstNewId);
}

function leakError(what: string, before: number, after: number, returned: number): Error {
  return new Error(
    `${what}: ${after - before - returned} tensor(s) leaked (numTensors ${before} before, ${after} after, ${returned} returned)`,
  );
}

function finishNoLeaks(result: unknown, before: Snapshot): void {
  const returned = newTensorsIn(result, before);
  for (const tensor of returned) tensor.dispose();
  const after = tf.memory().numTensors;
  if (after !== before.numTensors) throw leakError('expectNoLeaks', before.numTensors, after, 0);
}

/**
 * Runs `fn` and asserts it leaves no tensors behind. Tensors it returns (anywhere in arrays, Maps,
 * plain objects) that it created are disposed first; returned inputs are left alone.
 * Works with synchronous and asynchronous functions (then returns a Promise).
 * @throws Error with the number of leaked tensors
 */
export function expectNoLeaks(fn: () => Promise<unknown>): Promise<void>;
export function expectNoLeaks(fn: () => unknown): void;
export function expectNoLeaks(fn: () => unknown): void | Promise<void> {
  const before = snapshot();
  const result = fn();
  if (result instanceof Promise) return result.then((value) => finishNoLeaks(value, before));
  finishNoLeaks(result, before);
}

function finishLeakCheck<T>(result: T, before: Snapshot): T {
  const returned = newTensorsIn(result, before).length;
  const after = tf.memory().numTensors;
  if (after !== before.numTensors + returned) throw leakError('withLeakCheck', before.numTensors, after, returned);
  return result;
}

/**
 * Runs `fn`, asserts that the only tensors it left alive are the new ones it returns, and returns
 * its result (the caller then owns and disposes those tensors).
 * @throws Error with the number of leaked tensors
 */
export function withLeakCheck<T>(fn: () => Promise<T>): Promise<T>;
export function withLeakCheck<T>(fn: () => T): T;
export function withLeakCheck<T>(fn: () => T | Promise<T>): T | Promise<T> {
  const before = snapshot();
  const result = fn();
  if (result instanceof Promise) return result.then((value) => finishLeakCheck(value, before));
  return finishLeakCheck(result, before);
}
