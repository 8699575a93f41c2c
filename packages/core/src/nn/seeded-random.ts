/**
 * A seeded random stream for data order whose state can be saved and restored, so a run resumed
 * from a checkpoint draws exactly the batches an uninterrupted run would have drawn.
 *
 * Same generator (mulberry32) and seeding as core `createRng(seed)`: `new SeededRandom(s).next()`
 * yields the same sequence as `createRng(s)()`.
 *
 * Why not `seedrandom`: its generators differ from `createRng`'s mulberry32, so seeded data orders (and
 * the data-order state inside saved checkpoints) would change; the state here is one uint32, saved and
 * restored as a number, and @mllm/core keeps no runtime dependency besides its tfjs peers.
 */
import { MULBERRY32_INCREMENT, mulberry32, rngStartState } from '../nn/random.js';

export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new Error(`SeededRandom: seed must be a finite number, got ${seed}`);
    this.state = rngStartState(seed);
  }

  /** A float in [0, 1). */
  next(): number {
    this.state = (this.state + MULBERRY32_INCREMENT) >>> 0;
    return mulberry32(this.state) / 4294967296;
  }

  /** An integer in [0, n). */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`SeededRandom.nextInt: n must be a positive integer, got ${n}`);
    return Math.floor(this.next() * n);
  }

  /** Shuffle `items` in place (Fisher–Yates) and return it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const swap = items[i];
      items[i] = items[j];
      items[j] = swap;
    }
    return items;
  }

  /** The full generator state (a uint32). */
  getState(): number {
    return this.state;
  }

  /** Restore a state from `getState()`. */
  setState(state: number): void {
    if (!Number.isInteger(state) || state < 0 || state > 0xffffffff) {
      throw new Error(`SeededRandom.setState: state must be a uint32 integer, got ${state}`);
    }
    this.state = state >>> 0;
  }
}
