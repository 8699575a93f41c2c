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

/** The mulberry32 counter increment: each draw first advances the state by it (mod 2³²). */
export const MULBERRY32_INCREMENT = 0x6d2b79f5;

/**
 * The mulberry32 output mix of an (already advanced) uint32 counter state → a uint32. The one copy of
 * the generator: `nextSeed`, `createRng` and `SeededRandom` all draw `mulberry32(state += increment)`.
 */
export function mulberry32(state: number): number {
  let t = state >>> 0;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return (t ^ (t >>> 14)) >>> 0;
}

/** Next 32-bit seed from the global stream (mulberry32 step). */
export function nextSeed(): number {
  state = (state + MULBERRY32_INCREMENT) >>> 0;
  return mulberry32(state) % 2147483647;
}

/** The counter state `createRng(seed)` / `SeededRandom(seed)` start from. */
export function rngStartState(seed: number): number {
  return (Math.floor(seed) ^ 0x85ebca6b) >>> 0;
}

/** A small seeded PRNG for data generation: returns floats in [0, 1). */
export function createRng(seed: number): () => number {
  let s = rngStartState(seed);
  return () => {
    s = (s + MULBERRY32_INCREMENT) >>> 0;
    return mulberry32(s) / 4294967296;
  };
}
