import { describe, expect, it } from 'vitest';
import {
  bfloat16BitsToNumber,
  decodeBfloat16Array,
  decodeFloat16Array,
  decodeHalfInPlace,
  encodeBfloat16Array,
  encodeFloat16Array,
  float16BitsToNumber,
  numberToBfloat16Bits,
  numberToFloat16Bits,
} from './half-float.js';

/** Hand-written binary16 patterns and their values (from the IEEE 754 layout, not from the code). */
const F16_CASES: Array<[number, number]> = [
  [0x0000, 0],
  [0x3c00, 1],
  [0xbc00, -1],
  [0x4000, 2],
  [0xc000, -2],
  [0x3800, 0.5],
  [0x3e00, 1.5],
  [0x3c01, 1 + 1 / 1024],
  [0x7bff, 65504], // largest finite
  [0x0400, 2 ** -14], // smallest normal
  [0x03ff, 1023 * 2 ** -24], // largest subnormal
  [0x0001, 2 ** -24], // smallest subnormal
  [0x8001, -(2 ** -24)],
  [0x0200, 2 ** -15],
  [0x7c00, Infinity],
  [0xfc00, -Infinity],
  [0x4248, 3.140625],
  [0x5640, 100],
];

/** bfloat16 patterns: the top 16 bits of float32 patterns written by hand. */
const BF16_CASES: Array<[number, number]> = [
  [0x3f80, 1], // float32 0x3f800000
  [0xbf80, -1],
  [0x4000, 2],
  [0xc020, -2.5], // 0xc0200000
  [0x4049, 3.140625], // 0x40490000 = 1.5703125 · 2
  [0x3f00, 0.5],
  [0x7f7f, (1 + 127 / 128) * 2 ** 127], // largest finite
  [0x0080, 2 ** -126], // smallest normal
  [0x0001, 2 ** -133], // smallest subnormal: 2^-126 · 2^-7
  [0x007f, 127 * 2 ** -133],
  [0x7f80, Infinity],
  [0xff80, -Infinity],
  [0x4348, 200], // 0x43480000
];

/** All finite values of a 16-bit format, ascending, with their patterns (positive only). */
function positiveFinite(decode: (bits: number) => number, exponentMask: number): Array<{ value: number; bits: number }> {
  const out: Array<{ value: number; bits: number }> = [];
  for (let bits = 0; bits < 0x8000; bits++) {
    if ((bits & exponentMask) === exponentMask) continue; // Inf/NaN
    out.push({ value: decode(bits), bits });
  }
  return out.sort((a, b) => a.value - b.value);
}

/**
 * Independent round-to-nearest-even reference: binary search the sorted finite values; overflow
 * beyond the largest finite + half an ulp goes to Infinity.
 */
function nearestEven(table: Array<{ value: number; bits: number }>, x: number, infinityBits: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  const last = table[table.length - 1];
  const ulpAtTop = last.value - table[table.length - 2].value;
  if (a >= last.value + ulpAtTop / 2) {
    // exactly halfway rounds to even: the next value would be 2^k (even mantissa 0) = Infinity
    return sign | infinityBits;
  }
  if (a >= last.value) return sign | last.bits;
  let lo = 0;
  let hi = table.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (table[mid].value <= a) lo = mid;
    else hi = mid;
  }
  const below = table[lo];
  const above = table[hi];
  if (a - below.value < above.value - a) return sign | below.bits;
  if (a - below.value > above.value - a) return sign | above.bits;
  return sign | ((below.bits & 1) === 0 ? below.bits : above.bits);
}

function randomFloat32s(count: number, seed: number): number[] {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const magnitude = 2 ** (next() * 60 - 30);
    out.push(Math.fround((next() < 0.5 ? -1 : 1) * magnitude));
  }
  return out;
}

describe('binary16', () => {
  it('decodes hand-written bit patterns, subnormals, ±0, ±Inf and NaN', () => {
    for (const [bits, value] of F16_CASES) expect(float16BitsToNumber(bits)).toBe(value);
    expect(Object.is(float16BitsToNumber(0x8000), -0)).toBe(true);
    expect(float16BitsToNumber(0x7e00)).toBeNaN();
    expect(float16BitsToNumber(0xfc01)).toBeNaN();
    const decoded = decodeFloat16Array(Uint16Array.from(F16_CASES.map(([b]) => b)));
    F16_CASES.forEach(([, value], i) => expect(decoded[i]).toBe(value));
  });

  it('encode ∘ decode is the identity on every non-NaN pattern', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeFloat16Array(all);
    const encoded = encodeFloat16Array(decoded);
    for (let bits = 0; bits < 65536; bits++) {
      const isNaN = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
      if (isNaN) expect((encoded[bits] & 0x7c00) === 0x7c00 && (encoded[bits] & 0x3ff) !== 0).toBe(true);
      else expect(encoded[bits]).toBe(bits);
    }
  });

  it('rounds to nearest, ties to even, including subnormals and overflow', () => {
    expect(numberToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even (down)
    expect(numberToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (up)
    expect(numberToFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just above tie
    expect(numberToFloat16Bits(65519)).toBe(0x7bff);
    expect(numberToFloat16Bits(65520)).toBe(0x7c00); // tie at the top → Infinity
    expect(numberToFloat16Bits(-1e6)).toBe(0xfc00);
    expect(numberToFloat16Bits(2 ** -25)).toBe(0x0000); // tie between 0 and min subnormal → 0
    expect(numberToFloat16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(numberToFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // 1.5 units: tie → 2
    expect(numberToFloat16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the normals
    expect(numberToFloat16Bits(-0)).toBe(0x8000);
    expect(numberToFloat16Bits(NaN) & 0x7e00).toBe(0x7e00);
    const table = positiveFinite(float16BitsToNumber, 0x7c00);
    for (const x of randomFloat32s(3000, 7)) {
      expect(numberToFloat16Bits(x)).toBe(nearestEven(table, x, 0x7c00));
    }
  });
});

describe('bfloat16', () => {
  it('decodes hand-written bit patterns, subnormals, ±0, ±Inf and NaN', () => {
    for (const [bits, value] of BF16_CASES) expect(bfloat16BitsToNumber(bits)).toBe(value);
    expect(Object.is(bfloat16BitsToNumber(0x8000), -0)).toBe(true);
    expect(bfloat16BitsToNumber(0x7fc0)).toBeNaN();
    const decoded = decodeBfloat16Array(Uint16Array.from(BF16_CASES.map(([b]) => b)));
    BF16_CASES.forEach(([, value], i) => expect(decoded[i]).toBe(value));
  });

  it('encode ∘ decode is the identity on every non-NaN pattern', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const encoded = encodeBfloat16Array(decodeBfloat16Array(all));
    for (let bits = 0; bits < 65536; bits++) {
      const isNaN = (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0;
      if (isNaN) expect((encoded[bits] & 0x7f80) === 0x7f80 && (encoded[bits] & 0x7f) !== 0).toBe(true);
      else expect(encoded[bits]).toBe(bits);
    }
  });

  it('rounds to nearest, ties to even', () => {
    expect(numberToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie → even (down)
    expect(numberToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(numberToBfloat16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(numberToBfloat16Bits(3.4e38)).toBe(0x7f80); // above max + half ulp → Infinity
    expect(numberToBfloat16Bits(NaN) & 0x7fc0).toBe(0x7fc0);
    const table = positiveFinite(bfloat16BitsToNumber, 0x7f80);
    for (const x of randomFloat32s(3000, 11)) {
      expect(numberToBfloat16Bits(x)).toBe(nearestEven(table, x, 0x7f80));
    }
  });
});

describe('decodeHalfInPlace', () => {
  it('decodes every binary16 and bfloat16 pattern held in the upper half of its float32 storage, as the array decoders do', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => (i * 40503) & 0xffff); // every pattern, shuffled
    for (const [format, decode] of [['BF16', decodeBfloat16Array], ['F16', decodeFloat16Array]] as const) {
      for (const n of [1, 2, 3, 65536]) {
        const bits = all.subarray(0, n);
        const buffer = new ArrayBuffer(8 + 4 * n); // storage at an offset, as a view into a larger heap
        const out = new Float32Array(buffer, 4, n);
        new Uint16Array(buffer, 4 + 2 * n, n).set(bits);
        decodeHalfInPlace(out, format);
        const expected = decode(bits);
        expect(Array.from(new Uint32Array(buffer, 4, n)), `${format} n=${n}`).toEqual(Array.from(new Uint32Array(expected.buffer))); // bitwise: NaN payloads too
      }
    }
  });
});
