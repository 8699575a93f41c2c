import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import {
  loadSafetensors,
  readSafetensorsHeader,
  saveSafetensors,
  saveSafetensorsAsync,
  safetensorsTensorBytes,
  SafetensorsError,
  type SafetensorsErrorCode,
} from './safetensors.js';
import { expectError } from './safetensors-errors.testutil.js';

// ---------------------------------------------------------------------------------------------
// Helpers: files are assembled by hand from the format spec (u64 LE length · JSON · data).

function assemble(header: string, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(header);
  return assembleRaw(json, data, lengthOverride);
}

function assembleRaw(json: Uint8Array, data: Uint8Array, lengthOverride?: bigint): Uint8Array {
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Little-endian bytes written value by value with DataView (independent of the library). */
function leBytes(kind: 'f32' | 'i32' | 'u16' | 'i64' | 'u32' | 'u64' | 'f64', values: Array<number | bigint>): Uint8Array {
  const size = { f32: 4, i32: 4, u16: 2, i64: 8, u32: 4, u64: 8, f64: 8 }[kind];
  const out = new Uint8Array(values.length * size);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => {
    if (kind === 'f32') view.setFloat32(i * size, v as number, true);
    if (kind === 'f64') view.setFloat64(i * size, v as number, true);
    if (kind === 'i32') view.setInt32(i * size, v as number, true);
    if (kind === 'u32') view.setUint32(i * size, v as number, true);
    if (kind === 'u16') view.setUint16(i * size, v as number, true);
    if (kind === 'i64') view.setBigInt64(i * size, BigInt(v), true);
    if (kind === 'u64') view.setBigUint64(i * size, BigInt(v), true);
  });
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function base64(text: string): Uint8Array {
  return Uint8Array.from(Buffer.from(text, 'base64'));
}

const entry = (dtype: string, shape: unknown, offsets: unknown) =>
  JSON.stringify({ dtype, shape, data_offsets: offsets });

// ---------------------------------------------------------------------------------------------
// Fixtures written by the reference implementation (Python safetensors 0.8.0, numpy 2.4), base64.

/**
 * `serialize({...}, metadata={"format": "pt", "note": "made by safetensors 0.8.0"})` of
 * f32 [[1.5,-2],[0.25,1e-3]], f16 [1,-0.5,6.1035156e-5], bf16 bits [0x3f80,0xc020,0x4049],
 * i64 [-7, 2147483647], i32 [[-2147483648, 5]], u8 [0,255], mask (bool) [T,F,T], scalar f32 42,
 * empty f32 [0,3].
 */
const REFERENCE_ALL_DTYPES =
  'UAIAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJub3RlIjoibWFkZSBieSBzYWZldGVuc29ycyAwLjguMCIsImZvcm1hdCI6InB0In0sImk2NCI6eyJkdHlwZSI6Ikk2NCIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzAsMTZdfSwiZW1wdHkiOnsiZHR5cGUiOiJGMzIiLCJzaGFwZSI6WzAsM10sImRhdGFfb2Zmc2V0cyI6WzE2LDE2XX0sImYzMiI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMiwyXSwiZGF0YV9vZmZzZXRzIjpbMTYsMzJdfSwic2NhbGFyIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOltdLCJkYXRhX29mZnNldHMiOlszMiwzNl19LCJpMzIiOnsiZHR5cGUiOiJJMzIiLCJzaGFwZSI6WzEsMl0sImRhdGFfb2Zmc2V0cyI6WzM2LDQ0XX0sImJmMTYiOnsiZHR5cGUiOiJCRjE2Iiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNDQsNTBdfSwiZjE2Ijp7ImR0eXBlIjoiRjE2Iiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNTAsNTZdfSwidTgiOnsiZHR5cGUiOiJVOCIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzU2LDU4XX0sIm1hc2siOnsiZHR5cGUiOiJCT09MIiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNTgsNjFdfX0g+f////////////9/AAAAAAAAwD8AAADAAACAPm8SgzoAAChCAAAAgAUAAACAPyDASUAAPAC4AAQA/wEAAQ==';

/**
 * `safetensors.numpy.save` of w f32 [[0.1,-1/3,1e-6],[70000,1+2^-11,-0]], bias f32 [1.5,2.5,-3.25],
 * ids i32 [3,-1,2147483647,0], mask bool [T,F], "__proto__" f32 [7] (no metadata) …
 */
const REFERENCE_F32 =
  'KAEAAAAAAAB7Il9fcHJvdG9fXyI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbMV0sImRhdGFfb2Zmc2V0cyI6WzAsNF19LCJiaWFzIjp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpbNCwxNl19LCJ3Ijp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlsyLDNdLCJkYXRhX29mZnNldHMiOlsxNiw0MF19LCJpZHMiOnsiZHR5cGUiOiJJMzIiLCJzaGFwZSI6WzRdLCJkYXRhX29mZnNldHMiOls0MCw1Nl19LCJtYXNrIjp7ImR0eXBlIjoiQk9PTCIsInNoYXBlIjpbMl0sImRhdGFfb2Zmc2V0cyI6WzU2LDU4XX19ICAgIAAA4EAAAMA/AAAgQAAAUMDNzMw9q6qqvr03hjUAuIhHABCAPwAAAIADAAAA/////////38AAAAAAQA=';
/** … and the same with the float tensors cast by numpy `astype(float16)` (round to nearest even). */
const REFERENCE_F16 =
  'KAEAAAAAAAB7ImlkcyI6eyJkdHlwZSI6IkkzMiIsInNoYXBlIjpbNF0sImRhdGFfb2Zmc2V0cyI6WzAsMTZdfSwiX19wcm90b19fIjp7ImR0eXBlIjoiRjE2Iiwic2hhcGUiOlsxXSwiZGF0YV9vZmZzZXRzIjpbMTYsMThdfSwiYmlhcyI6eyJkdHlwZSI6IkYxNiIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzE4LDI0XX0sInciOnsiZHR5cGUiOiJGMTYiLCJzaGFwZSI6WzIsM10sImRhdGFfb2Zmc2V0cyI6WzI0LDM2XX0sIm1hc2siOnsiZHR5cGUiOiJCT09MIiwic2hhcGUiOlsyXSwiZGF0YV9vZmZzZXRzIjpbMzYsMzhdfX0gIAMAAAD/////////fwAAAAAARwA+AEGAwmYuVbURAAB8ADwAgAEA';

function referenceTensors(): Map<string, tf.Tensor> {
  return new Map<string, tf.Tensor>([
    ['w', tf.tensor2d([[0.1, -1 / 3, 1e-6], [70000, 1 + 2 ** -11, -0]])],
    ['bias', tf.tensor1d([1.5, 2.5, -3.25])],
    ['ids', tf.tensor1d([3, -1, 2147483647, 0], 'int32')],
    ['mask', tf.tensor1d([true, false], 'bool')],
    ['__proto__', tf.tensor1d([7])],
  ]);
}

function disposeAll(map: Map<string, tf.Tensor>): void {
  for (const t of map.values()) t.dispose();
}

// ---------------------------------------------------------------------------------------------

describe('safetensors: compatibility with the format and the reference implementation', () => {
  it('loads a file written by the reference implementation, every dtype', () => {
    const before = tf.memory().numTensors;
    const { tensors, metadata } = loadSafetensors(base64(REFERENCE_ALL_DTYPES));
    expect(metadata).toEqual(Object.assign(Object.create(null), { format: 'pt', note: 'made by safetensors 0.8.0' }));
    expect(Object.getPrototypeOf(metadata)).toBeNull();
    const f32 = tensors.get('f32')!;
    expect([f32.dtype, f32.shape]).toEqual(['float32', [2, 2]]);
    expect(Array.from(f32.dataSync())).toEqual([1.5, -2, 0.25, Math.fround(1e-3)]);
    expect(Array.from(tensors.get('f16')!.dataSync())).toEqual([1, -0.5, 2 ** -14]);
    expect(Array.from(tensors.get('bf16')!.dataSync())).toEqual([1, -2.5, 3.140625]);
    expect(tensors.get('i64')!.dtype).toBe('int32');
    expect(Array.from(tensors.get('i64')!.dataSync())).toEqual([-7, 2147483647]);
    expect(Array.from(tensors.get('i32')!.dataSync())).toEqual([-2147483648, 5]);
    expect(tensors.get('u8')!.dtype).toBe('int32');
    expect(Array.from(tensors.get('u8')!.dataSync())).toEqual([0, 255]);
    expect(tensors.get('mask')!.dtype).toBe('bool');
    expect(Array.from(tensors.get('mask')!.dataSync())).toEqual([1, 0, 1]);
    expect(tensors.get('scalar')!.shape).toEqual([]);
    expect(tensors.get('scalar')!.dataSync()[0]).toBe(42);
    expect(tensors.get('empty')!.shape).toEqual([0, 3]);
    disposeAll(tensors);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('writes byte-identical files to the reference for F32/I32/BOOL and F16 (numpy rounding)', () => {
    const tensors = referenceTensors();
    expect(Buffer.from(saveSafetensors(tensors)).toString('base64')).toBe(REFERENCE_F32);
    expect(Buffer.from(saveSafetensors(tensors, null, { floatDtype: 'F16' })).toString('base64')).toBe(REFERENCE_F16);
    disposeAll(tensors);
  });

  it('loads a hand-assembled file (unpadded header, all loadable dtypes, values from DataView)', () => {
    // bf16 patterns by hand: 0x3f80 = 1, 0xc0a0 = -5, 0x0001 = 2^-133 (subnormal), 0x7f80 = +Inf
    // f16 patterns by hand: 0x3555 = 0.333251953125, 0x0001 = 2^-24, 0xfc00 = -Inf, 0x7e00 = NaN
    const parts: Array<[string, string, number[], Uint8Array]> = [
      ['a.f32', 'F32', [3], leBytes('f32', [0.5, -1.25, 3e38])],
      ['b.bf16', 'BF16', [2, 2], leBytes('u16', [0x3f80, 0xc0a0, 0x0001, 0x7f80])],
      ['c.f16', 'F16', [4], leBytes('u16', [0x3555, 0x0001, 0xfc00, 0x7e00])],
      ['d.i64', 'I64', [3], leBytes('i64', [-2147483648n, 0n, 123456789n])],
      ['e.i32', 'I32', [2], leBytes('i32', [-5, 77])],
      ['f.u8', 'U8', [3], Uint8Array.from([0, 128, 255])],
      ['g.bool', 'BOOL', [2], Uint8Array.from([1, 0])],
      ['h.f64', 'F64', [1], leBytes('f64', [0.1])],
      ['i.u32', 'U32', [1], leBytes('u32', [2147483647])],
    ];
    let offset = 0;
    const fields: string[] = [];
    for (const [name, dtype, shape, bytes] of parts) {
      fields.push(`${JSON.stringify(name)}: ${entry(dtype, shape, [offset, offset + bytes.length])}`);
      offset += bytes.length;
    }
    const header = `{ ${fields.join(', ')} }`; // spaces, no padding to 8: still valid
    const file = assemble(header, concat(...parts.map((p) => p[3])));
    const { tensors, metadata } = loadSafetensors(file);
    expect(metadata).toBeNull();
    expect(Array.from(tensors.get('a.f32')!.dataSync())).toEqual([0.5, -1.25, Math.fround(3e38)]);
    expect(Array.from(tensors.get('b.bf16')!.dataSync())).toEqual([1, -5, 2 ** -133, Infinity]);
    expect(tensors.get('b.bf16')!.shape).toEqual([2, 2]);
    const f16 = Array.from(tensors.get('c.f16')!.dataSync());
    expect(f16.slice(0, 3)).toEqual([0.333251953125, 2 ** -24, -Infinity]);
    expect(f16[3]).toBeNaN();
    expect(Array.from(tensors.get('d.i64')!.dataSync())).toEqual([-2147483648, 0, 123456789]);
    expect(Array.from(tensors.get('e.i32')!.dataSync())).toEqual([-5, 77]);
    expect(Array.from(tensors.get('f.u8')!.dataSync())).toEqual([0, 128, 255]);
    expect(Array.from(tensors.get('g.bool')!.dataSync())).toEqual([1, 0]);
    expect(tensors.get('h.f64')!.dataSync()[0]).toBe(Math.fround(0.1));
    expect(tensors.get('i.u32')!.dataSync()[0]).toBe(2147483647);
    disposeAll(tensors);
  });

  it('accepts what the reference accepts: null metadata, leading spaces, unknown fields, empty tensors sharing an offset', () => {
    const file = assemble(
      ` {"__metadata__": null, "e1": ${entry('F32', [0], [4, 4])}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}, ` +
        `"e2": ${entry('I32', [2, 0], [4, 4])}}`,
      leBytes('f32', [2.5]),
    );
    const { tensors, metadata } = loadSafetensors(file);
    expect(metadata).toBeNull();
    expect([...tensors.keys()]).toEqual(['e1', 'a', 'e2']);
    expect(tensors.get('e2')!.shape).toEqual([2, 0]);
    expect(tensors.get('a')!.dataSync()[0]).toBe(2.5);
    disposeAll(tensors);
    // NUL padding instead of spaces is not JSON (the reference rejects it too).
    expectError(() => loadSafetensors(assembleRaw(Uint8Array.from([0x7b, 0x7d, 0, 0]), new Uint8Array(0))), 'INVALID_JSON');
  });

  it('saves the documented layout: u64 LE length, space-padded JSON header, aligned data', () => {
    const tensors = new Map<string, tf.Tensor>([
      ['z', tf.tensor1d([true, false, true], 'bool')],
      ['y', tf.tensor2d([[1, 2], [3, 4]], [2, 2], 'int32')],
      ['x', tf.tensor1d([0.5, -2])],
    ]);
    const bytes = saveSafetensors(tensors, { format: 'pt' });
    const view = new DataView(bytes.buffer);
    const n = Number(view.getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    expect(headerText).toMatch(/^\{.*\} *$/);
    const header = JSON.parse(headerText);
    expect(header.__metadata__).toEqual({ format: 'pt' });
    expect(header.x).toEqual({ dtype: 'F32', shape: [2], data_offsets: [0, 8] });
    expect(header.y).toEqual({ dtype: 'I32', shape: [2, 2], data_offsets: [8, 24] });
    expect(header.z).toEqual({ dtype: 'BOOL', shape: [3], data_offsets: [24, 27] });
    expect(bytes.length).toBe(8 + n + 27);
    const data = 8 + n;
    expect([view.getFloat32(data, true), view.getFloat32(data + 4, true)]).toEqual([0.5, -2]);
    expect([0, 1, 2, 3].map((i) => view.getInt32(data + 8 + 4 * i, true))).toEqual([1, 2, 3, 4]);
    expect(Array.from(bytes.subarray(data + 24))).toEqual([1, 0, 1]);
    disposeAll(tensors);
  });
});

describe('safetensors: round trips', () => {
  it('round-trips float32, int32 and bool exactly (including scalars, empty tensors, odd names)', () => {
    const tensors = new Map<string, tf.Tensor>([
      ['model.layers.0.weight', tf.tensor2d([[1e-30, -3.5e38], [Math.PI, -0]])],
      ['ids', tf.tensor1d([-2147483648, 2147483647, 0], 'int32')],
      ['mask', tf.tensor2d([[true], [false]], [2, 1], 'bool')],
      ['scalar', tf.scalar(-7.25)],
      ['empty', tf.zeros([0, 4])],
      ['ünïcödé 😀', tf.tensor1d([1])],
      ['constructor', tf.tensor1d([2])],
      ['__proto__', tf.tensor1d([3])],
    ]);
    const before = tf.memory().numTensors;
    const bytes = saveSafetensors(tensors, { note: 'x', __proto__: 'kept as a key' } as Record<string, string>);
    const { tensors: loaded } = loadSafetensors(bytes);
    expect(tf.memory().numTensors).toBe(before + tensors.size);
    expect([...loaded.keys()].sort()).toEqual([...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const l = loaded.get(name)!;
      expect([l.dtype, l.shape], name).toEqual([t.dtype, t.shape]);
      expect(Array.from(l.dataSync()), name).toEqual(Array.from(t.dataSync()));
    }
    disposeAll(loaded);
    expect(tf.memory().numTensors).toBe(before);
    disposeAll(tensors);
  });

  it('saves float32 as F16 or BF16 when asked, rounding to nearest even', () => {
    // 1 + 2^-11 is a tie in F16 (→ 1); 1 + 3·2^-8 is a tie in BF16 (1.5 ulp → 2 ulp = 1 + 2^-6).
    const values = [1, 1 + 2 ** -11, 1 + 3 * 2 ** -8, -65504, 2 ** -24, 0.1];
    const t = new Map([['v', tf.tensor1d(values)]]);
    const f16 = saveSafetensors(t, null, { floatDtype: 'F16' });
    const bf16 = saveSafetensors(t, null, { floatDtype: 'BF16' });
    const h16 = readSafetensorsHeader(f16);
    expect(h16.tensors.get('v')!.dtype).toBe('F16');
    expect(h16.tensors.get('v')!.byteLength).toBe(12);
    const hb = readSafetensorsHeader(bf16);
    expect(hb.tensors.get('v')!.dtype).toBe('BF16');
    const f16Bits = Array.from(new Uint16Array(safetensorsTensorBytes(f16, h16, h16.tensors.get('v')!).slice().buffer));
    // Expected bit patterns by hand: 1 → 0x3c00, tie → 0x3c00, 1+3·2^-8 = 1+12/1024 → 0x3c0c,
    // -65504 → 0xfbff, 2^-24 → 0x0001, 0.1 → 0x2e66.
    expect(f16Bits).toEqual([0x3c00, 0x3c00, 0x3c0c, 0xfbff, 0x0001, 0x2e66]);
    const bBits = Array.from(new Uint16Array(safetensorsTensorBytes(bf16, hb, hb.tensors.get('v')!).slice().buffer));
    // 1 → 0x3f80, 1+2^-11 → 0x3f80, tie 1+3·2^-8 → 0x3f82 (even), -65504 → 0xc780 (rounds to -65536),
    // 2^-24 → 0x3380, 0.1 → 0x3dcd.
    expect(bBits).toEqual([0x3f80, 0x3f80, 0x3f82, 0xc780, 0x3380, 0x3dcd]);
    const loaded = loadSafetensors(bf16).tensors;
    expect(Array.from(loaded.get('v')!.dataSync())).toEqual([1, 1, 1 + 2 ** -6, -65536, 2 ** -24, 0.10009765625]);
    disposeAll(loaded);
    disposeAll(t);
  });

  it('saveSafetensorsAsync produces the same bytes', async () => {
    const tensors = referenceTensors();
    expect(Buffer.from(await saveSafetensorsAsync(tensors)).toString('base64')).toBe(REFERENCE_F32);
    disposeAll(tensors);
  });

  it('filter creates only the selected tensors but validates the whole file', () => {
    const tensors = referenceTensors();
    const bytes = saveSafetensors(tensors);
    const before = tf.memory().numTensors;
    const { tensors: loaded } = loadSafetensors(bytes, { filter: (name) => name.startsWith('b') || name === 'ids' });
    expect([...loaded.keys()].sort()).toEqual(['bias', 'ids']);
    expect(tf.memory().numTensors).toBe(before + 2);
    disposeAll(loaded);
    // A defect in an unselected tensor still fails the load.
    const bad = assemble(`{"keep": ${entry('F32', [1], [0, 4])}, "skip": ${entry('F32', [1], [4, 9])}}`, new Uint8Array(9));
    expectError(() => loadSafetensors(bad, { filter: (n) => n === 'keep' }), 'BYTE_LENGTH_MISMATCH', /"skip"/);
    disposeAll(tensors);
  });

  it('readSafetensorsHeader returns entries and byte views without creating tensors', () => {
    const file = base64(REFERENCE_ALL_DTYPES);
    const before = tf.memory().numTensors;
    const header = readSafetensorsHeader(file);
    expect(tf.memory().numTensors).toBe(before);
    expect(header.headerByteLength).toBe(592);
    expect(header.dataOffset).toBe(600);
    expect(header.dataByteLength).toBe(61);
    expect([...header.tensors.keys()]).toEqual(['i64', 'empty', 'f32', 'scalar', 'i32', 'bf16', 'f16', 'u8', 'mask']);
    const u8 = header.tensors.get('u8')!;
    expect(u8).toEqual({ name: 'u8', dtype: 'U8', shape: [2], dataOffsets: [56, 58], byteLength: 2 });
    expect(Array.from(safetensorsTensorBytes(file, header, u8))).toEqual([0, 255]);
  });

  it('rejects unsaveable input with a named error', () => {
    const c = tf.tensor(['text'], [1], 'string');
    expectError(() => saveSafetensors(new Map([['c', c]])), 'UNSUPPORTED_DTYPE', /"c".*string/);
    c.dispose();
    const t = tf.tensor1d([1]);
    expectError(() => saveSafetensors(new Map([['__metadata__', t]])), 'INVALID_ARGUMENT', /reserved/);
    expectError(() => saveSafetensors([['a', t], ['a', t]]), 'INVALID_ARGUMENT', /appears twice/);
    expectError(() => saveSafetensors(new Map([['a', t]]), { k: 3 } as unknown as Record<string, string>), 'INVALID_ARGUMENT', /metadata\["k"\]/);
    expectError(() => saveSafetensors(new Map([['a', t]]), null, { floatDtype: 'F8' as 'F16' }), 'INVALID_ARGUMENT', /floatDtype/);
    t.dispose();
    const disposed = tf.tensor1d([1]);
    disposed.dispose();
    expectError(() => saveSafetensors(new Map([['gone', disposed]])), 'INVALID_ARGUMENT', /"gone" could not be read/);
  });
});

describe('safetensors: malformed files', () => {
  const f32x2 = leBytes('f32', [1, 2]);
  const cases: Array<[string, Uint8Array, SafetensorsErrorCode, RegExp?]> = [
    ['fewer than 8 bytes', Uint8Array.from([1, 0, 0, 0, 0]), 'TRUNCATED', /5 bytes/],
    ['empty input', new Uint8Array(0), 'TRUNCATED'],
    ['header length past the end', assemble('{}', new Uint8Array(0), 100n), 'HEADER_OUT_OF_BOUNDS', /100 bytes but only 2/],
    ['header length 2^40', assemble('{}', new Uint8Array(0), 2n ** 40n), 'HEADER_TOO_LARGE', /1099511627776/],
    ['header length 2^64-1', assemble('{}', new Uint8Array(0), 2n ** 64n - 1n), 'HEADER_TOO_LARGE'],
    ['header length 0', assemble(''), 'INVALID_JSON'],
    ['invalid JSON', assemble('{"a": '), 'INVALID_JSON'],
    ['trailing garbage after JSON', assemble('{} x'), 'INVALID_JSON'],
    ['header is an array', assemble('[]'), 'HEADER_NOT_OBJECT', /\[\]/],
    ['header is a number', assemble('42'), 'HEADER_NOT_OBJECT', /42/],
    ['header is null', assemble('null'), 'HEADER_NOT_OBJECT', /null/],
    ['header is a string', assemble('"{}"'), 'HEADER_NOT_OBJECT'],
    ['invalid UTF-8', assembleRaw(Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), new Uint8Array(0)), 'INVALID_UTF8'],
    ['overlong UTF-8 encoding', assembleRaw(Uint8Array.from([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d]), new Uint8Array(0)), 'INVALID_UTF8'],
    ['unknown dtype', assemble(`{"t": ${entry('F31', [2], [0, 8])}}`, f32x2), 'UNKNOWN_DTYPE', /"t".*"F31"/],
    ['dtype not a string', assemble(`{"t": ${entry(4 as unknown as string, [2], [0, 8])}}`, f32x2), 'UNKNOWN_DTYPE'],
    ['entry not an object', assemble('{"t": 3}'), 'INVALID_ENTRY', /"t"/],
    ['entry without data_offsets', assemble('{"t": {"dtype": "F32", "shape": [2]}}', f32x2), 'INVALID_ENTRY', /data_offsets/],
    ['negative dimension', assemble(`{"t": ${entry('F32', [-2], [0, 8])}}`, f32x2), 'INVALID_SHAPE', /"t".*-2/],
    ['fractional dimension', assemble(`{"t": ${entry('F32', [1.5], [0, 8])}}`, f32x2), 'INVALID_SHAPE', /1\.5/],
    ['shape not an array', assemble(`{"t": ${entry('F32', '2', [0, 8])}}`, f32x2), 'INVALID_SHAPE'],
    ['dimension beyond 2^53', assemble(`{"t": {"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}`, f32x2), 'INVALID_SHAPE'],
    ['shape product overflows', assemble(`{"t": ${entry('F32', [2 ** 26, 2 ** 26, 2 ** 26], [0, 8])}}`, f32x2), 'SHAPE_OVERFLOW', /"t"/],
    ['begin > end', assemble(`{"t": ${entry('F32', [2], [8, 0])}}`, f32x2), 'INVALID_OFFSETS', /begin 8 > end 0/],
    ['negative offset', assemble(`{"t": ${entry('F32', [2], [-8, 0])}}`, f32x2), 'INVALID_OFFSETS'],
    ['offsets of length 1', assemble(`{"t": ${entry('F32', [2], [8])}}`, f32x2), 'INVALID_OFFSETS'],
    ['non-integer offsets', assemble(`{"t": ${entry('F32', [2], [0, 8.5])}}`, f32x2), 'INVALID_OFFSETS'],
    ['offsets past the data', assemble(`{"t": ${entry('F32', [16], [0, 64])}}`, f32x2), 'OFFSET_OUT_OF_RANGE', /\[0, 64\].*8 bytes/],
    ['huge offsets', assemble(`{"t": ${entry('F32', [2], [2 ** 50, 2 ** 50 + 8])}}`, f32x2), 'OFFSET_OUT_OF_RANGE'],
    ['wrong byte count', assemble(`{"t": ${entry('F32', [2], [0, 6])}}`, f32x2.subarray(0, 6)), 'BYTE_LENGTH_MISMATCH', /needs 8 bytes.*span 6/],
    ['wrong byte count (I64)', assemble(`{"t": ${entry('I64', [2], [0, 8])}}`, f32x2), 'BYTE_LENGTH_MISMATCH', /needs 16/],
    [
      'overlapping tensors',
      assemble(`{"a": ${entry('F32', [2], [0, 8])}, "b": ${entry('F32', [2], [4, 12])}}`, new Uint8Array(12)),
      'OVERLAP',
      /"b".*overlap.*"a"/,
    ],
    [
      'identical offsets',
      assemble(`{"a": ${entry('F32', [2], [0, 8])}, "b": ${entry('F32', [2], [0, 8])}}`, f32x2),
      'OVERLAP',
    ],
    [
      'gap between tensors',
      assemble(`{"a": ${entry('F32', [1], [0, 4])}, "b": ${entry('F32', [1], [8, 12])}}`, new Uint8Array(12)),
      'GAP',
      /"b".*begin at 8.*up to 4/,
    ],
    ['trailing unused bytes', assemble(`{"a": ${entry('F32', [2], [0, 8])}}`, new Uint8Array(12)), 'GAP', /4 trailing/],
    ['data without tensors', assemble('{}', new Uint8Array(4)), 'GAP'],
    ['duplicated tensor key', assemble(`{"a": ${entry('F32', [2], [0, 8])}, "a": ${entry('F32', [2], [0, 8])}}`, f32x2), 'DUPLICATE_KEY', /"a"/],
    ['duplicated field in an entry', assemble('{"a": {"dtype": "F32", "dtype": "I32", "shape": [2], "data_offsets": [0, 8]}}', f32x2), 'DUPLICATE_KEY', /"dtype".*"a"/],
    ['duplicated __metadata__', assemble('{"__metadata__": {}, "__metadata__": {}}'), 'DUPLICATE_KEY'],
    ['metadata value not a string', assemble('{"__metadata__": {"a": 1}}'), 'INVALID_METADATA', /"a".*1/],
    ['metadata an array', assemble('{"__metadata__": ["a"]}'), 'INVALID_METADATA'],
    ['metadata nested object', assemble('{"__metadata__": {"a": {"b": "c"}}}'), 'INVALID_METADATA'],
    ['I64 above int32', assemble(`{"t": ${entry('I64', [2], [0, 16])}}`, leBytes('i64', [1n, 2147483648n])), 'VALUE_OUT_OF_RANGE', /"t".*2147483648 at flat index 1/],
    ['I64 below int32', assemble(`{"t": ${entry('I64', [1], [0, 8])}}`, leBytes('i64', [-2147483649n])), 'VALUE_OUT_OF_RANGE', /-2147483649/],
    ['I64 huge', assemble(`{"t": ${entry('I64', [1], [0, 8])}}`, leBytes('i64', [-(2n ** 63n)])), 'VALUE_OUT_OF_RANGE'],
    ['U64 above int32', assemble(`{"t": ${entry('U64', [1], [0, 8])}}`, leBytes('u64', [2n ** 64n - 1n])), 'VALUE_OUT_OF_RANGE', /18446744073709551615/],
    ['U32 above int32', assemble(`{"t": ${entry('U32', [1], [0, 4])}}`, leBytes('u32', [2 ** 31])), 'VALUE_OUT_OF_RANGE'],
    ['known but unloadable dtype', assemble(`{"t": ${entry('F8_E4M3', [2], [0, 2])}}`, new Uint8Array(2)), 'UNSUPPORTED_DTYPE', /"t".*F8_E4M3/],
    ['deeply nested header', assemble('{"__metadata__": ' + '['.repeat(5000) + ']'.repeat(5000) + '}'), 'INVALID_JSON', /nesting/],
  ];

  it.each(cases.map(([label, bytes, code, message]) => ({ label, bytes, code, message })))('$label → $code', ({ bytes, code, message }) => {
    const before = tf.memory().numTensors;
    expectError(() => loadSafetensors(bytes), code, message);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('covers at least 15 distinct error codes', () => {
    expect(new Set(cases.map((c) => c[2])).size).toBeGreaterThanOrEqual(15);
  });

  it('fails all-or-nothing when a late tensor is out of range (no tensor created or leaked)', () => {
    const data = concat(leBytes('f32', [1, 2]), leBytes('i64', [5n, 2n ** 40n]));
    const file = assemble(`{"a": ${entry('F32', [2], [0, 8])}, "z": ${entry('I64', [2], [8, 24])}}`, data);
    const before = tf.memory().numTensors;
    const error = expectError(() => loadSafetensors(file), 'VALUE_OUT_OF_RANGE');
    expect(error.tensorName).toBe('z');
    expect(tf.memory().numTensors).toBe(before);
    // Skipping the bad tensor through the filter loads the rest.
    const { tensors } = loadSafetensors(file, { filter: (n) => n !== 'z' });
    expect([...tensors.keys()]).toEqual(['a']);
    disposeAll(tensors);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('keeps __proto__ and constructor as ordinary names; Object.prototype stays clean', () => {
    const data = leBytes('f32', [1, 2, 3]);
    const file = assemble(
      `{"__metadata__": {"__proto__": "meta", "polluted": "no"}, "__proto__": ${entry('F32', [1], [0, 4])}, ` +
        `"constructor": ${entry('F32', [1], [4, 8])}, "toString": ${entry('F32', [1], [8, 12])}}`,
      data,
    );
    const { tensors, metadata } = loadSafetensors(file);
    expect([...tensors.keys()]).toEqual(['__proto__', 'constructor', 'toString']);
    expect(tensors.get('__proto__')!.dataSync()[0]).toBe(1);
    expect(Object.getPrototypeOf(metadata)).toBeNull();
    expect(Object.keys(metadata!)).toEqual(['__proto__', 'polluted']);
    expect(metadata!['__proto__']).toBe('meta');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    disposeAll(tensors);
    // A tensor entry whose *value* tries to set a prototype is just an invalid entry.
    const hostile = assemble(`{"__proto__": {"polluted": "yes"}}`);
    expectError(() => loadSafetensors(hostile), 'INVALID_ENTRY', /"__proto__".*lacks "dtype"/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('honours maxHeaderBytes', () => {
    const file = assemble(`{"a": ${entry('F32', [2], [0, 8])}}`, leBytes('f32', [1, 2]));
    expectError(() => loadSafetensors(file, { maxHeaderBytes: 16 }), 'HEADER_TOO_LARGE', /limit is 16/);
  });

  it('loaded tensors never alias the input bytes', () => {
    const tensors = referenceTensors();
    const bytes = saveSafetensors(tensors);
    const { tensors: loaded } = loadSafetensors(bytes);
    bytes.fill(0xff, 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true)));
    expect(Array.from(loaded.get('bias')!.dataSync())).toEqual([1.5, 2.5, -3.25]);
    expect(Array.from(loaded.get('ids')!.dataSync())).toEqual([3, -1, 2147483647, 0]);
    expect(Array.from(loaded.get('mask')!.dataSync())).toEqual([1, 0]);
    disposeAll(loaded);
    disposeAll(tensors);
  });

  it('loads from a Node Buffer that is a view into a larger pooled buffer', () => {
    const tensors = referenceTensors();
    const bytes = saveSafetensors(tensors);
    const pool = Buffer.alloc(bytes.length + 13);
    pool.set(bytes, 13);
    const { tensors: loaded } = loadSafetensors(pool.subarray(13));
    expect(Array.from(loaded.get('bias')!.dataSync())).toEqual([1.5, 2.5, -3.25]);
    disposeAll(loaded);
    disposeAll(tensors);
  });
});

describe('loadSafetensors: what it is given', () => {
  const codeOf = (fn: () => unknown): SafetensorsErrorCode | undefined => {
    try {
      fn();
    } catch (error) {
      return error instanceof SafetensorsError ? error.code : undefined;
    }
    return undefined;
  };

  it('says a JSON file is not a safetensors file (not a header length of ~10^18 bytes)', () => {
    const json = new TextEncoder().encode('{\n  "architectures": ["ParrotQwen2ForCausalLM"],\n  "hidden_size": 4096\n}\n');
    expect(() => loadSafetensors(json)).toThrow(
      `not a safetensors file: it starts with the text '{ "architectures": ["P…' (JSON) where a safetensors file starts with an 8-byte header length`,
    );
    expect(codeOf(() => loadSafetensors(json))).toBe('NOT_SAFETENSORS');
    // A binary prefix that is too long is still reported as the length it reads.
    expect(codeOf(() => loadSafetensors(assemble('{}', new Uint8Array(0), 1000n)))).toBe('HEADER_OUT_OF_BOUNDS');
  });

  it('accepts a Node Buffer, an ArrayBuffer and a typed-array view of the same file alike', () => {
    const file = base64(REFERENCE_F32);
    const expected = loadSafetensors(file);
    const fromBuffer = loadSafetensors(Buffer.from(file));
    const fromArrayBuffer = loadSafetensors(file.slice().buffer);
    // a view into a larger buffer (offset 3): only the viewed bytes are the file
    const padded = new Uint8Array(file.length + 5);
    padded.set(file, 3);
    const fromView = loadSafetensors(new DataView(padded.buffer, 3, file.length) as unknown as Uint8Array);
    for (const loaded of [fromBuffer, fromArrayBuffer, fromView]) {
      expect([...loaded.tensors.keys()].sort()).toEqual([...expected.tensors.keys()].sort());
      for (const [name, tensor] of expected.tensors) expect(loaded.tensors.get(name)!.arraySync()).toEqual(tensor.arraySync());
    }
    for (const loaded of [expected, fromBuffer, fromArrayBuffer, fromView]) for (const t of loaded.tensors.values()) t.dispose();
  });

  it('names what to pass for a path string or a plain array, creating no tensors', () => {
    const before = tf.memory().numTensors;
    expect(() => loadSafetensors('model.safetensors' as unknown as Uint8Array)).toThrow(
      `bytes must be the file's bytes (Uint8Array, Buffer or ArrayBuffer), got the string "model.safetensors"; to load a file by path read it first: loadSafetensors(await readFile(path))`,
    );
    expect(() => loadSafetensors([1, 2, 3] as unknown as Uint8Array)).toThrow(/got a plain array/);
    expect(codeOf(() => loadSafetensors(undefined as unknown as Uint8Array))).toBe('INVALID_ARGUMENT');
    expect(tf.memory().numTensors).toBe(before);
  });
});
