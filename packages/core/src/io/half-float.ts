/**
 * IEEE 754 binary16 (`F16`) and bfloat16 (`BF16`) ↔ float32 conversions, written out bit by bit.
 *
 * Decoding is exact (every half and bfloat16 value is representable in float32), including
 * subnormals, ±0, ±Infinity and NaN. Encoding rounds to nearest, ties to even; values too large
 * for the target format become ±Infinity, NaN stays NaN (quiet).
 *
 * Why not `@petamoriken/float16`: it converts binary16 only, and checkpoints also need bfloat16 (the
 * released Parrot/Wings weights are BF16); one rounding routine serves both here, and @mllm/core keeps
 * no runtime dependency besides its tfjs peers (it also runs in browsers).
 */

const float32Scratch = new Float32Array(1);
const uint32Scratch = new Uint32Array(float32Scratch.buffer);

/** The bit pattern of `value` rounded to float32 (an unsigned 32-bit integer). */
export function float32ToBits(value: number): number {
  float32Scratch[0] = value;
  return uint32Scratch[0];
}

/** The float32 whose bit pattern is the unsigned 32-bit integer `bits`. */
export function bitsToFloat32(bits: number): number {
  uint32Scratch[0] = bits >>> 0;
  return float32Scratch[0];
}

/**
 * binary16 bit pattern → number.
 * Layout `s eeeee mmmmmmmmmm`: normal `(-1)^s · 2^(e-15) · (1 + m/1024)`, subnormal (e = 0)
 * `(-1)^s · 2^-14 · m/1024`, e = 31 is ±Infinity (m = 0) or NaN.
 */
export function float16BitsToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 bit pattern → number: the upper 16 bits of a float32 (exact). */
export function bfloat16BitsToNumber(bits: number): number {
  return bitsToFloat32((bits & 0xffff) << 16);
}

/** number → binary16 bit pattern, via float32, rounding to nearest even. */
export function numberToFloat16Bits(value: number): number {
  return float32BitsToFloat16Bits(float32ToBits(value));
}

/** float32 bit pattern → binary16 bit pattern, rounding to nearest even. */
export function float32BitsToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) {
    // Infinity keeps a zero mantissa; NaN becomes a quiet NaN.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Result is subnormal (or zero): value = significand · 2^(halfExponent - 14) in units of 2^-24.
    if (halfExponent < -10) return sign; // below half the smallest subnormal (2^-25): rounds to ±0
    const significand = mantissa | 0x800000; // 24 bits with the implicit one
    const shift = 14 - halfExponent; // 14..24
    let half = significand >>> shift;
    const remainder = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && (half & 1) === 1)) half += 1;
    return sign | half; // a carry into bit 10 correctly yields the smallest normal
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && (half & 1) === 1)) half += 1; // carry may reach Infinity
  return sign | half;
}

/** number → bfloat16 bit pattern, via float32, rounding to nearest even. */
export function numberToBfloat16Bits(value: number): number {
  return float32BitsToBfloat16Bits(float32ToBits(value));
}

/** float32 bit pattern → bfloat16 bit pattern (upper half, rounded to nearest even). */
export function float32BitsToBfloat16Bits(bits: number): number {
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff && mantissa !== 0) return ((bits >>> 16) | 0x40) & 0xffff; // quiet NaN
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

let float16Table: Float32Array | undefined;

/** All 65 536 binary16 values as float32 (256 KiB, built on first use). */
function float16LookupTable(): Float32Array {
  if (!float16Table) {
    float16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) float16Table[bits] = float16BitsToNumber(bits);
  }
  return float16Table;
}

/** Decode binary16 bit patterns to float32 values. */
export function decodeFloat16Array(bits: Uint16Array): Float32Array {
  const table = float16LookupTable();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** Decode bfloat16 bit patterns to float32 values (each becomes the upper half of a float32). */
export function decodeBfloat16Array(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

/**
 * Decodes in place `n = out.length` binary16 (`F16`) or bfloat16 (`BF16`) bit patterns held, in host byte order,
 * in the upper half of `out`'s bytes (`[2n, 4n)`, i.e. 16-bit slots `n … 2n − 1`) into the float32 values `out`.
 * A half-precision tensor can so be read from a file straight into its float32 storage, without a second buffer.
 * Front to back is safe: value `i` overwrites slots `2i` and `2i + 1`, below slot `n + i + 1`, the next
 * pattern still to be read (`i < n`), and its own slot `n + i` is read before it is written.
 */
export function decodeHalfInPlace(out: Float32Array, format: 'F16' | 'BF16'): void {
  const n = out.length;
  const slots = new Uint16Array(out.buffer, out.byteOffset, 2 * n);
  if (format === 'BF16') {
    const outBits = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) outBits[i] = slots[n + i]! << 16;
  } else {
    const table = float16LookupTable();
    for (let i = 0; i < n; i++) out[i] = table[slots[n + i]!]!;
  }
}

/** Encode float32 values as binary16 bit patterns (round to nearest even). */
export function encodeFloat16Array(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32BitsToFloat16Bits(bits[i]);
  return out;
}

/** Encode float32 values as bfloat16 bit patterns (round to nearest even). */
export function encodeBfloat16Array(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = float32BitsToBfloat16Bits(bits[i]);
  return out;
}
