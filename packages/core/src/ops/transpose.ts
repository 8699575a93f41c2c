/**
 * Fast transposes of the last two axes on wasm.
 *
 * tfjs-wasm's Transpose walks the output in order and reads the input with a stride of one row; for
 * power-of-two-ish widths those reads collide in the cache (1024×1024: 9.5 ms, 4096×4096: 244 ms here).
 * Transposing in 16×16 tiles in two passes — gather each tile's rows, then transpose tile-major —
 * keeps reads local: 3.2 ms and 81 ms (docs/performance.md). Same values (a permutation), differentiable.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hostTransposeAvailable, runHostTranspose } from '../kernels/cpu/host-transpose.js';

/** Tile side of the two-pass transpose. */
export const TRANSPOSE_TILE = 16;
/** Matrices with fewer elements than this use one plain Transpose (the tiled one wins from ~256×256). */
export const TILED_TRANSPOSE_MIN_ELEMENTS = 256 * 256;

/** Whether `[..., R, C]` is transposed in tiles on the active backend. */
export function prefersTiledTranspose(rows: number, columns: number, backend = tf.getBackend()): boolean {
  return backend === 'wasm' && rows % TRANSPOSE_TILE === 0 && columns % TRANSPOSE_TILE === 0 && rows * columns >= TILED_TRANSPOSE_MIN_ELEMENTS;
}

/**
 * `tf.transpose(x, perm)`: `out[i₀, …, iₙ] = x[…]` with `out.shape[a] = x.shape[perm[a]]`. On cpu (float32,
 * rank ≥ 2) through a JavaScript kernel ~20× faster than tfjs-cpu's (`host-transpose.ts`); elsewhere tfjs'
 * own. Exact either way (a permutation); differentiable.
 * @throws when `perm` is not a permutation of `0 … x.rank − 1`
 */
export function transposeAxes<T extends tf.Tensor>(x: T, perm: number[]): T {
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== x.rank || sorted.some((axis, i) => axis !== i)) {
    throw new Error(`transposeAxes: perm must be a permutation of 0..${x.rank - 1} for x [${x.shape}], got [${perm}]`);
  }
  if (x.rank >= 2 && x.dtype === 'float32' && hostTransposeAvailable()) return runHostTranspose(x, perm) as T;
  return tf.transpose(x, perm) as T;
}

/** `[R, C] → [C, R]` or `[G, R, C] → [G, C, R]`. */
export function transposeLastTwo<T extends tf.Tensor2D | tf.Tensor3D>(x: T): T {
  if (x.rank !== 2 && x.rank !== 3) throw new Error(`transposeLastTwo: x must be [R, C] or [G, R, C], got [${x.shape}]`);
  const batched = x.rank === 3;
  const [G, R, C] = batched ? (x.shape as [number, number, number]) : [1, x.shape[0], x.shape[1]];
  if (!prefersTiledTranspose(R, C)) return transposeAxes(x, batched ? [0, 2, 1] : [1, 0]);
  const t = TRANSPOSE_TILE;
  return tf.tidy(() => {
    const tiles = tf.reshape(x, [G, R / t, t, C / t, t]); // [G, R1, r2, C1, c2], r = R1·t + r2
    const gathered = tf.transpose(tiles, [0, 1, 3, 2, 4]); // [G, R1, C1, r2, c2]: each tile's rows together
    const swapped = tf.transpose(gathered, [0, 2, 4, 1, 3]); // [G, C1, c2, R1, r2]
    return tf.reshape(swapped, batched ? [G, C, R] : [C, R]) as T; // [G, C, R]
  });
}
