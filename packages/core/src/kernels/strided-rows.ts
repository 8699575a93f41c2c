/**
 * Row offsets for JavaScript kernels that walk an output in order: for an output of `shape`, the
 * element offset in each operand of the start of every row (all axes but the last), given each
 * operand's element stride per output axis (0 along a broadcast axis, a permuted stride for a
 * transpose). One odometer pass instead of converting every element's index to coordinates.
 */

/** Offsets `[rows]` per operand; `strides[k][axis]` is operand k's step along output axis `axis`. */
export function rowOffsets(shape: readonly number[], strides: ReadonlyArray<readonly number[]>): Int32Array[] {
  const rank = shape.length;
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const offsets = strides.map(() => new Int32Array(rows));
  const current = strides.map(() => 0);
  const index = new Array<number>(Math.max(rank - 1, 0)).fill(0);
  for (let row = 0; row < rows; row++) {
    for (let k = 0; k < strides.length; k++) offsets[k]![row] = current[k]!;
    for (let axis = rank - 2; axis >= 0; axis--) {
      for (let k = 0; k < strides.length; k++) current[k] = current[k]! + strides[k]![axis]!;
      if (++index[axis]! < shape[axis]!) break;
      for (let k = 0; k < strides.length; k++) current[k] = current[k]! - strides[k]![axis]! * shape[axis]!;
      index[axis] = 0;
    }
  }
  return offsets;
}

/** Element strides of `shape` aligned to the right of `outShape`, 0 along stretched (size-1 or missing) axes. */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  for (let axis = shape.length - 1, stride = 1; axis >= 0; axis--) {
    const outAxis = axis + outShape.length - shape.length;
    strides[outAxis] = shape[axis] === 1 ? 0 : stride;
    stride *= shape[axis]!;
  }
  return strides;
}
