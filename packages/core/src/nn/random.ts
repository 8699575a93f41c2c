/**
 * Deterministic seeding. Every initializer in @mllm draws its seed from one global stream
 * (mulberry32), so `setSeed(n)` before building a model makes its weights reproducible on
 * every backend: tfjs fills random tensors on the CPU side from the seed, then uploads.
 */
let state = 0x9e3779b9 >>> 0;

/** Reset the global seed stream. */
export function setSeed(seed: number): void {
  if (!Number.isFinite(seed)) throw new Error(`setSeed: seed must be a finite number, got ${seed}`);
  state = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
}

/** The global seed stream's state (save it in a checkpoint to resume dropout/init draws exactly). */
export function getSeedState(): number {
  return state;
}

/** Restore a state returned by `getSeedState()`. */
export function setSeedState(saved: number): void {
  if (!Number.isInteger(saved) || saved < 0 || saved > 0xffffffff) {
    throw new Error(`setSeedState: state must be an unsigned 32-bit integer, got ${saved}`);
  }
  state = saved >>> 0;
}

/** Next 32-bit seed from the global stream (mulberry32 step). */
export function nextSeed(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) % 2147483647;
}

/** A small seeded PRNG for data generation: returns floats in [0, 1). */
export function createRng(seed: number): () => number {
  let s = (Math.floor(seed) ^ 0x85ebca6b) >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
