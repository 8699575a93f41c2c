/**
 * The safetensors format (https://github.com/huggingface/safetensors), read and written defensively.
 *
 * Layout: `N` (u64, little-endian) · `N` bytes of UTF-8 JSON header · data section. The header maps
 * tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the data
 * section) plus an optional `__metadata__` object of string → string. Writers pad the header with
 * spaces so the data section starts at a multiple of 8.
 *
 * Reading validates everything the format promises before a single tensor is created: bounded
 * header length, UTF-8, strict JSON without duplicated keys, known dtypes, non-negative integer
 * shapes without overflow, byte counts equal to dtype size × element count, offsets inside the data
 * section, tensors neither overlapping nor leaving gaps, and (for integer narrowing) values inside
 * int32. Each defect throws a `SafetensorsError` with its own `code`; nothing leaks on error.
 *
 * Loaded dtypes: F32, F16, BF16, F64 → `float32` (F16/BF16 exact, F64 rounded); I32, I64, U8, I8,
 * I16, U16, U32, U64 → `int32` (64-bit and U32 values range-checked); BOOL → `bool`.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  decodeBfloat16Array,
  decodeFloat16Array,
  encodeBfloat16Array,
  encodeFloat16Array,
} from './half-float.js';
import { describeJsonValue, isJsonObject, parseStrictJson, StrictJsonError, type JsonValue } from './strict-json.js';

/** What went wrong, one code per kind of defect. */
export type SafetensorsErrorCode =
  /** Fewer bytes than the format needs (under 8, or a file shorter than its header says). */
  | 'TRUNCATED'
  /** The header length exceeds `maxHeaderBytes` (100 MB by default, as the reference). */
  | 'HEADER_TOO_LARGE'
  /** The bytes are text (e.g. a JSON config or sharded index), not a safetensors file. */
  | 'NOT_SAFETENSORS'
  /** The argument is not bytes (a path string, a plain array, …). */
  | 'INVALID_ARGUMENT'
  /** The header length points past the end of the file. */
  | 'HEADER_OUT_OF_BOUNDS'
  | 'INVALID_UTF8'
  | 'INVALID_JSON'
  /** The header (or index) is valid JSON but not an object. */
  | 'HEADER_NOT_OBJECT'
  /** A key appears twice in one JSON object. */
  | 'DUPLICATE_KEY'
  /** `__metadata__` is not an object of string → string. */
  | 'INVALID_METADATA'
  /** A tensor entry is not an object or lacks `dtype`, `shape` or `data_offsets`. */
  | 'INVALID_ENTRY'
  | 'UNKNOWN_DTYPE'
  /** A valid safetensors dtype this library cannot turn into a tensor (or a tensor dtype it cannot save). */
  | 'UNSUPPORTED_DTYPE'
  /** Shape is not an array of non-negative safe integers. */
  | 'INVALID_SHAPE'
  /** Element or byte count exceeds `Number.MAX_SAFE_INTEGER`. */
  | 'SHAPE_OVERFLOW'
  /** `data_offsets` is not `[begin, end]` of non-negative safe integers with begin ≤ end. */
  | 'INVALID_OFFSETS'
  /** `data_offsets` reach past the end of the data section. */
  | 'OFFSET_OUT_OF_RANGE'
  /** `end - begin` differs from dtype size × element count. */
  | 'BYTE_LENGTH_MISMATCH'
  | 'OVERLAP'
  /** Bytes of the data section not covered by any tensor. */
  | 'GAP'
  /** An integer value that does not fit int32. */
  | 'VALUE_OUT_OF_RANGE'
  /** Bad argument on the writing side (name, metadata, tensor). */
  | 'INVALID_ARGUMENT'
  /** Sharded checkpoints: malformed `model.safetensors.index.json`. */
  | 'INVALID_INDEX'
  /** Sharded checkpoints: a shard file name that leaves the checkpoint directory. */
  | 'PATH_ESCAPE'
  /** Sharded checkpoints: a mapped tensor absent from its shard. */
  | 'MISSING_TENSOR'
  /** Sharded checkpoints: a tensor stored in two shards. */
  | 'DUPLICATE_TENSOR'
  /** Sharded checkpoints: a tensor in a shard that the weight map does not list. */
  | 'UNMAPPED_TENSOR'
  /** File-system failure (wraps the underlying error as `cause`). */
  | 'IO_ERROR';

export class SafetensorsError extends Error {
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
    /** The tensor the defect concerns, when there is one. */
    readonly tensorName?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SafetensorsError';
  }
}

/** Every dtype of the safetensors format with a whole-byte element size. */
export type SafetensorsDtype =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E5M2' | 'F8_E4M3' | 'F8_E8M0'
  | 'I16' | 'U16' | 'F16' | 'BF16'
  | 'I32' | 'U32' | 'F32'
  | 'I64' | 'U64' | 'F64' | 'C64';

const DTYPE_BYTES: ReadonlyMap<string, number> = new Map<SafetensorsDtype, number>([
  ['BOOL', 1], ['U8', 1], ['I8', 1], ['F8_E5M2', 1], ['F8_E4M3', 1], ['F8_E8M0', 1],
  ['I16', 2], ['U16', 2], ['F16', 2], ['BF16', 2],
  ['I32', 4], ['U32', 4], ['F32', 4],
  ['I64', 8], ['U64', 8], ['F64', 8], ['C64', 8],
]);

/** Safetensors dtypes `loadSafetensors` turns into tensors, with the tfjs dtype they become. */
const LOADABLE: ReadonlyMap<string, 'float32' | 'int32' | 'bool'> = new Map([
  ['F32', 'float32'], ['F16', 'float32'], ['BF16', 'float32'], ['F64', 'float32'],
  ['I32', 'int32'], ['I64', 'int32'], ['U8', 'int32'], ['I8', 'int32'], ['I16', 'int32'], ['U16', 'int32'],
  ['U32', 'int32'], ['U64', 'int32'],
  ['BOOL', 'bool'],
] as const);

/** Element size in bytes of a safetensors dtype, or `undefined` if unknown. */
export function safetensorsDtypeByteSize(dtype: string): number | undefined {
  return DTYPE_BYTES.get(dtype);
}

/** The reference implementation's limit on the header length. */
export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;

/** One tensor's header entry. */
export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** `[begin, end)` relative to the start of the data section. */
  dataOffsets: [number, number];
  byteLength: number;
}

/** A validated header. */
export interface SafetensorsHeader {
  /** `N`, the header's byte length (excluding the 8-byte length prefix). */
  headerByteLength: number;
  /** Absolute offset of the data section in the file: `8 + N`. */
  dataOffset: number;
  /** Byte length of the data section. */
  dataByteLength: number;
  /** `__metadata__` as a null-prototype object, or `null` when absent. */
  metadata: Record<string, string> | null;
  /** Entries in header order. */
  tensors: Map<string, SafetensorsTensorInfo>;
}

export interface ReadSafetensorsOptions {
  /** Upper bound on the header length in bytes (default 100 MB). */
  maxHeaderBytes?: number;
}

export interface LoadSafetensorsOptions extends ReadSafetensorsOptions {
  /** Only tensors whose name passes are created (the whole file is still validated). */
  filter?: (name: string) => boolean;
}

export interface LoadedSafetensors {
  tensors: Map<string, tf.Tensor>;
  metadata: Record<string, string> | null;
}

export type FloatStorageDtype = 'F32' | 'F16' | 'BF16';

export interface SaveSafetensorsOptions {
  /** Storage of `float32` tensors: `F32` (default), or `F16`/`BF16` rounded to nearest even. */
  floatDtype?: FloatStorageDtype;
}

const isLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function quote(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);
}

/**
 * Read the 8-byte little-endian header length and check it against the limit and the file size.
 * @param prefix at least the first 8 bytes of the file.
 * @param fileByteLength total size of the file.
 * @returns `N`, the header length.
 */
export function readSafetensorsHeaderLength(
  prefix: Uint8Array,
  fileByteLength: number,
  options: ReadSafetensorsOptions = {},
): number {
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (fileByteLength < 8 || prefix.length < 8) {
    throw new SafetensorsError(
      'TRUNCATED',
      `safetensors data is ${Math.min(fileByteLength, prefix.length)} bytes; at least 8 (the header length) are required`,
    );
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const length = view.getBigUint64(0, true);
  if (8n + length > BigInt(fileByteLength) && looksLikeText(prefix)) {
    // A JSON file's first 8 bytes read as a length of ~10^18: name what the bytes are instead.
    const start = new TextDecoder().decode(prefix.subarray(0, Math.min(prefix.length, 24))).replace(/\s+/g, ' ');
    throw new SafetensorsError(
      'NOT_SAFETENSORS',
      `not a safetensors file: it starts with the text '${start}…'${/^\s*[{[]/.test(start) ? ' (JSON)' : ''} where a safetensors ` +
        `file starts with an 8-byte header length; a sharded checkpoint's *.index.json is read with readShardedIndex / loadShardedCheckpoint`,
    );
  }
  if (length > BigInt(maxHeaderBytes)) {
    throw new SafetensorsError(
      'HEADER_TOO_LARGE',
      `safetensors header length is ${length} bytes; the limit is ${maxHeaderBytes}`,
    );
  }
  const headerByteLength = Number(length);
  if (8 + headerByteLength > fileByteLength) {
    throw new SafetensorsError(
      'HEADER_OUT_OF_BOUNDS',
      `safetensors header length is ${headerByteLength} bytes but only ${fileByteLength - 8} bytes follow the length prefix`,
    );
  }
  return headerByteLength;
}

function parseMetadata(value: JsonValue): Record<string, string> | null {
  if (value === null) return null;
  if (!isJsonObject(value)) {
    throw new SafetensorsError('INVALID_METADATA', `__metadata__ must be an object of string → string, got ${describeJsonValue(value)}`);
  }
  const metadata: Record<string, string> = Object.create(null);
  for (const [key, entry] of value) {
    if (typeof entry !== 'string') {
      throw new SafetensorsError(
        'INVALID_METADATA',
        `__metadata__[${quote(key)}] must be a string, got ${describeJsonValue(entry)}`,
      );
    }
    Object.defineProperty(metadata, key, { value: entry, enumerable: true, writable: true, configurable: true });
  }
  return metadata;
}

function parseEntry(name: string, value: JsonValue, dataByteLength: number): SafetensorsTensorInfo {
  if (!isJsonObject(value)) {
    throw new SafetensorsError('INVALID_ENTRY', `tensor ${quote(name)}: entry must be an object, got ${describeJsonValue(value)}`, name);
  }
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!value.has(field)) {
      throw new SafetensorsError('INVALID_ENTRY', `tensor ${quote(name)}: entry lacks "${field}"`, name);
    }
  }
  const dtype = value.get('dtype')!;
  const elementBytes = typeof dtype === 'string' ? DTYPE_BYTES.get(dtype) : undefined;
  if (elementBytes === undefined) {
    throw new SafetensorsError(
      'UNKNOWN_DTYPE',
      `tensor ${quote(name)}: unknown dtype ${describeJsonValue(dtype)}; expected one of ${[...DTYPE_BYTES.keys()].join(', ')}`,
      name,
    );
  }
  const shapeValue = value.get('shape')!;
  if (!Array.isArray(shapeValue)) {
    throw new SafetensorsError('INVALID_SHAPE', `tensor ${quote(name)}: shape must be an array, got ${describeJsonValue(shapeValue)}`, name);
  }
  const shape: number[] = [];
  let elements = 1;
  for (const dim of shapeValue) {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(
        'INVALID_SHAPE',
        `tensor ${quote(name)}: shape must hold non-negative integers, got ${describeJsonValue(shapeValue)}`,
        name,
      );
    }
    shape.push(dim === 0 ? 0 : dim); // normalise -0
    elements *= dim;
  }
  // Each dimension is safe; the product may not be. Check it (and the byte count) exactly.
  let exactElements = 1n;
  for (const dim of shape) exactElements *= BigInt(dim);
  if (exactElements * BigInt(elementBytes) > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SafetensorsError(
      'SHAPE_OVERFLOW',
      `tensor ${quote(name)}: shape [${shape.join(', ')}] × ${elementBytes} bytes overflows safe integers`,
      name,
    );
  }
  const offsets = value.get('data_offsets')!;
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new SafetensorsError(
      'INVALID_OFFSETS',
      `tensor ${quote(name)}: data_offsets must be [begin, end] of non-negative integers, got ${describeJsonValue(offsets)}`,
      name,
    );
  }
  const begin = (offsets[0] as number) + 0; // normalise -0
  const end = (offsets[1] as number) + 0;
  if (begin > end) {
    throw new SafetensorsError('INVALID_OFFSETS', `tensor ${quote(name)}: data_offsets begin ${begin} > end ${end}`, name);
  }
  if (end > dataByteLength) {
    throw new SafetensorsError(
      'OFFSET_OUT_OF_RANGE',
      `tensor ${quote(name)}: data_offsets [${begin}, ${end}] reach past the data section of ${dataByteLength} bytes`,
      name,
    );
  }
  const byteLength = elements * elementBytes;
  if (end - begin !== byteLength) {
    throw new SafetensorsError(
      'BYTE_LENGTH_MISMATCH',
      `tensor ${quote(name)}: ${dtype} × shape [${shape.join(', ')}] needs ${byteLength} bytes, data_offsets [${begin}, ${end}] span ${end - begin}`,
      name,
    );
  }
  return { name, dtype: dtype as SafetensorsDtype, shape, dataOffsets: [begin, end], byteLength };
}

/** Tensors must tile the data section exactly: sorted by offset, each begins where the previous ended. */
function checkCoverage(tensors: Iterable<SafetensorsTensorInfo>, dataByteLength: number): void {
  const sorted = [...tensors].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let expectedBegin = 0;
  let previous: SafetensorsTensorInfo | undefined;
  for (const info of sorted) {
    const [begin, end] = info.dataOffsets;
    if (begin < expectedBegin) {
      throw new SafetensorsError(
        'OVERLAP',
        `tensor ${quote(info.name)}: data_offsets [${begin}, ${end}] overlap tensor ${quote(previous!.name)} ` +
          `at [${previous!.dataOffsets[0]}, ${previous!.dataOffsets[1]}]`,
        info.name,
      );
    }
    if (begin > expectedBegin) {
      throw new SafetensorsError(
        'GAP',
        `tensor ${quote(info.name)}: data_offsets begin at ${begin} but the data section is covered only up to ${expectedBegin} ` +
          `(${begin - expectedBegin} unused bytes)`,
        info.name,
      );
    }
    expectedBegin = end;
    previous = info;
  }
  if (expectedBegin !== dataByteLength) {
    throw new SafetensorsError(
      'GAP',
      `the data section has ${dataByteLength} bytes but tensors cover only ${expectedBegin} (${dataByteLength - expectedBegin} trailing bytes)`,
    );
  }
}

/**
 * Validate a header given its `N` JSON bytes and the data section's length.
 * Building block for file readers that never hold the whole file.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataByteLength: number): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch (error) {
    throw new SafetensorsError('INVALID_UTF8', `safetensors header is not valid UTF-8`, undefined, { cause: error });
  }
  let json: JsonValue;
  try {
    json = parseStrictJson(text);
  } catch (error) {
    if (error instanceof StrictJsonError && error.kind === 'duplicate-key') {
      const tensorName = error.keyPath.length ? error.keyPath[0] : undefined;
      throw new SafetensorsError('DUPLICATE_KEY', `safetensors header has a ${error.message}`, tensorName, { cause: error });
    }
    throw new SafetensorsError('INVALID_JSON', `safetensors header is not valid JSON: ${(error as Error).message}`, undefined, { cause: error });
  }
  if (!isJsonObject(json)) {
    throw new SafetensorsError('HEADER_NOT_OBJECT', `safetensors header must be a JSON object, got ${describeJsonValue(json)}`);
  }
  let metadata: Record<string, string> | null = null;
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const [name, value] of json) {
    if (name === '__metadata__') metadata = parseMetadata(value);
    else tensors.set(name, parseEntry(name, value, dataByteLength));
  }
  checkCoverage(tensors.values(), dataByteLength);
  const headerByteLength = headerBytes.length;
  return { headerByteLength, dataOffset: 8 + headerByteLength, dataByteLength, metadata, tensors };
}

/** Whether the first 8 bytes are printable ASCII or whitespace (a text file, never a plausible length). */
function looksLikeText(prefix: Uint8Array): boolean {
  for (let i = 0; i < 8; i++) {
    const b = prefix[i];
    if (!(b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127))) return false;
  }
  return true;
}

/**
 * The bytes of a safetensors file from what callers pass: a `Uint8Array` (Node's `Buffer` is one) or an
 * `ArrayBuffer` (e.g. `await (await fetch(url)).arrayBuffer()`), viewed without a copy.
 * @throws SafetensorsError `INVALID_ARGUMENT` naming what was passed and what to pass instead
 */
export function safetensorsBytes(value: unknown, argument = 'bytes'): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  const got = typeof value === 'string'
    ? `the string ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)}; to load a file by path read it first: loadSafetensors(await readFile(path)) with readFile from 'node:fs/promises'`
    : value === null ? 'null' : Array.isArray(value) ? 'a plain array' : typeof value === 'object' ? `an object (${value.constructor?.name ?? 'no prototype'})` : `${typeof value} ${String(value)}`;
  throw new SafetensorsError('INVALID_ARGUMENT', `${argument} must be the file's bytes (Uint8Array, Buffer or ArrayBuffer), got ${got}`);
}

/** Validate the header of a complete safetensors file held in memory; creates no tensors. */
export function readSafetensorsHeader(data: Uint8Array | ArrayBuffer, options: ReadSafetensorsOptions = {}): SafetensorsHeader {
  const bytes = safetensorsBytes(data);
  const headerByteLength = readSafetensorsHeaderLength(bytes, bytes.length, options);
  return parseSafetensorsHeader(bytes.subarray(8, 8 + headerByteLength), bytes.length - 8 - headerByteLength);
}

/** A view (no copy) of one tensor's bytes inside a complete file. */
export function safetensorsTensorBytes(bytes: Uint8Array, header: SafetensorsHeader, info: SafetensorsTensorInfo): Uint8Array {
  return bytes.subarray(header.dataOffset + info.dataOffsets[0], header.dataOffset + info.dataOffsets[1]);
}

/**
 * `bytes` in host byte order at an offset aligned to `elementBytes`, copying only when needed: when
 * unaligned, on a big-endian host, or when `copy` is asked (the caller will keep or mutate it).
 */
function hostOrderBytes(bytes: Uint8Array, elementBytes: number, copy: boolean): Uint8Array {
  const aligned = bytes.byteOffset % elementBytes === 0;
  if (isLittleEndian && aligned && !copy) return bytes;
  const out = Uint8Array.prototype.slice.call(bytes); // a real copy even for a Node Buffer (whose slice() is a view)
  if (!isLittleEndian && elementBytes > 1) {
    for (let i = 0; i < out.length; i += elementBytes) out.subarray(i, i + elementBytes).reverse();
  }
  return out;
}

function outOfRange(info: SafetensorsTensorInfo, index: number, value: bigint | number): SafetensorsError {
  return new SafetensorsError(
    'VALUE_OUT_OF_RANGE',
    `tensor ${quote(info.name)}: ${info.dtype} value ${value} at flat index ${index} is outside int32 [-2147483648, 2147483647]`,
    info.name,
  );
}

/**
 * Check that narrowing to int32 is exact (I64, U64, U32); other dtypes always pass.
 * Reads `bytes` without allocating proportional memory.
 */
export function checkSafetensorsValueRange(info: SafetensorsTensorInfo, bytes: Uint8Array): void {
  if (info.dtype !== 'I64' && info.dtype !== 'U64' && info.dtype !== 'U32') return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (info.dtype === 'U32') {
    for (let i = 0; i < bytes.length / 4; i++) {
      const value = view.getUint32(i * 4, true);
      if (value > 0x7fffffff) throw outOfRange(info, i, value);
    }
    return;
  }
  const signed = info.dtype === 'I64';
  for (let i = 0; i < bytes.length / 8; i++) {
    const low = view.getInt32(i * 8, true);
    const high = view.getInt32(i * 8 + 4, true);
    const fits = signed ? high === low >> 31 : high === 0 && low >= 0;
    if (!fits) throw outOfRange(info, i, signed ? view.getBigInt64(i * 8, true) : view.getBigUint64(i * 8, true));
  }
}

/** The tfjs dtype `info` loads as; throws `UNSUPPORTED_DTYPE` for dtypes that cannot be loaded. */
export function safetensorsLoadDtype(info: SafetensorsTensorInfo): 'float32' | 'int32' | 'bool' {
  const dtype = LOADABLE.get(info.dtype);
  if (!dtype) {
    throw new SafetensorsError(
      'UNSUPPORTED_DTYPE',
      `tensor ${quote(info.name)}: dtype ${info.dtype} cannot be loaded; supported: ${[...LOADABLE.keys()].join(', ')}`,
      info.name,
    );
  }
  return dtype;
}

/**
 * Decode one tensor's raw bytes into values of its tfjs dtype. Range-checks narrowing dtypes.
 * With `bytesAreOwned` (a fresh buffer nobody else holds, e.g. just read from a file) F32, I32 and
 * BOOL data are used in place instead of copied.
 */
export function decodeSafetensorsValues(
  info: SafetensorsTensorInfo,
  bytes: Uint8Array,
  bytesAreOwned = false,
): { dtype: 'float32' | 'int32' | 'bool'; values: Float32Array | Int32Array | Uint8Array } {
  const dtype = safetensorsLoadDtype(info);
  if (bytes.length !== info.byteLength) {
    throw new SafetensorsError(
      'TRUNCATED',
      `tensor ${quote(info.name)}: expected ${info.byteLength} bytes, got ${bytes.length}`,
      info.name,
    );
  }
  checkSafetensorsValueRange(info, bytes);
  const elementBytes = DTYPE_BYTES.get(info.dtype)!;
  // F32, I32 and BOOL values become the tensor's storage: never alias the caller's bytes.
  const keepsStorage = info.dtype === 'F32' || info.dtype === 'I32' || info.dtype === 'BOOL';
  const host = hostOrderBytes(bytes, elementBytes, keepsStorage && !bytesAreOwned);
  const count = host.length / elementBytes;
  const { buffer, byteOffset } = host;
  switch (info.dtype) {
    case 'F32': return { dtype, values: new Float32Array(buffer, byteOffset, count) };
    case 'F16': return { dtype, values: decodeFloat16Array(new Uint16Array(buffer, byteOffset, count)) };
    case 'BF16': return { dtype, values: decodeBfloat16Array(new Uint16Array(buffer, byteOffset, count)) };
    case 'F64': return { dtype, values: Float32Array.from(new Float64Array(buffer, byteOffset, count)) };
    case 'I32': return { dtype, values: new Int32Array(buffer, byteOffset, count) };
    case 'U32': return { dtype, values: Int32Array.from(new Int32Array(buffer, byteOffset, count)) }; // range-checked
    case 'I64':
    case 'U64': {
      // Range-checked: each value equals its low 32 bits read as int32.
      const words = new Int32Array(buffer, byteOffset, count * 2);
      const values = new Int32Array(count);
      for (let i = 0; i < count; i++) values[i] = words[2 * i];
      return { dtype, values };
    }
    case 'U8': return { dtype, values: Int32Array.from(host) };
    case 'I8': return { dtype, values: Int32Array.from(new Int8Array(buffer, byteOffset, count)) };
    case 'I16': return { dtype, values: Int32Array.from(new Int16Array(buffer, byteOffset, count)) };
    case 'U16': return { dtype, values: Int32Array.from(new Uint16Array(buffer, byteOffset, count)) };
    case 'BOOL': {
      for (let i = 0; i < host.length; i++) host[i] = host[i] === 0 ? 0 : 1;
      return { dtype, values: host };
    }
    default:
      throw new SafetensorsError('UNSUPPORTED_DTYPE', `tensor ${quote(info.name)}: dtype ${info.dtype} cannot be loaded`, info.name);
  }
}

/**
 * Decode one tensor's raw bytes (exactly `info.byteLength`) into a new tensor.
 * `bytesAreOwned`: see `decodeSafetensorsValues`.
 */
export function decodeSafetensorsTensor(info: SafetensorsTensorInfo, bytes: Uint8Array, bytesAreOwned = false): tf.Tensor {
  const { dtype, values } = decodeSafetensorsValues(info, bytes, bytesAreOwned);
  return tf.tensor(values, info.shape, dtype);
}

/** Dispose every tensor in `tensors` (used to undo partial loads). */
export function disposeTensorMap(tensors: Map<string, tf.Tensor>): void {
  for (const t of tensors.values()) t.dispose();
  tensors.clear();
}

/**
 * Parse a complete safetensors file (its bytes: a `Uint8Array`, a Node `Buffer` or an `ArrayBuffer`;
 * read a path first with `readFile`). Validates the header, the layout and the value ranges of all
 * selected tensors before creating any tensor; on error nothing is returned and nothing leaks.
 */
export function loadSafetensors(data: Uint8Array | ArrayBuffer, options: LoadSafetensorsOptions = {}): LoadedSafetensors {
  const bytes = safetensorsBytes(data);
  const header = readSafetensorsHeader(bytes, options);
  const selected = [...header.tensors.values()].filter((info) => !options.filter || options.filter(info.name));
  for (const info of selected) {
    safetensorsLoadDtype(info);
    checkSafetensorsValueRange(info, safetensorsTensorBytes(bytes, header, info));
  }
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const info of selected) tensors.set(info.name, decodeSafetensorsTensor(info, safetensorsTensorBytes(bytes, header, info)));
  } catch (error) {
    disposeTensorMap(tensors);
    throw error;
  }
  return { tensors, metadata: header.metadata };
}

// ---------------------------------------------------------------------------------------------
// Writing

/** One tensor of a planned file. */
export interface SafetensorsPlanEntry {
  name: string;
  tensor: tf.Tensor;
  dtype: 'F32' | 'F16' | 'BF16' | 'I32' | 'BOOL';
  byteLength: number;
}

/** A planned file: the 8-byte prefix and padded header, then each entry's bytes in order. */
export interface SafetensorsPlan {
  /** Length prefix + header (+ space padding to a multiple of 8). */
  head: Uint8Array;
  entries: SafetensorsPlanEntry[];
  /** Total file size. */
  byteLength: number;
}

/**
 * Rank of the written dtypes in the reference `Dtype` enum; the reference writer orders tensors by
 * descending rank, then name. For these dtypes that is also descending element size, so every
 * tensor starts at a multiple of its element size.
 */
const WRITE_ORDER: Record<SafetensorsPlanEntry['dtype'], number> = { BOOL: 0, F16: 11, BF16: 12, I32: 13, F32: 15 };

/** Compare strings by code point (= UTF-8 byte order, as the reference writer sorts names). */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return (x.done ? 0 : 1) - (y.done ? 0 : 1);
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

function normaliseMetadata(metadata: Record<string, string> | Map<string, string> | null | undefined): Array<[string, string]> | null {
  if (metadata === null || metadata === undefined) return null;
  const entries = metadata instanceof Map ? [...metadata] : Object.entries(metadata);
  for (const [key, value] of entries) {
    if (typeof value !== 'string') {
      throw new SafetensorsError('INVALID_ARGUMENT', `metadata[${quote(key)}] must be a string, got ${typeof value}`);
    }
  }
  return entries;
}

/**
 * Lay out a file: validate names/dtypes, order tensors as the reference writer does (by dtype:
 * F32, I32, BF16, F16, BOOL; then by name), build the header. Reads no tensor data.
 */
export function planSafetensors(
  tensors: Map<string, tf.Tensor> | Iterable<[string, tf.Tensor]>,
  metadata?: Record<string, string> | Map<string, string> | null,
  options: SaveSafetensorsOptions = {},
): SafetensorsPlan {
  const floatDtype = options.floatDtype ?? 'F32';
  if (floatDtype !== 'F32' && floatDtype !== 'F16' && floatDtype !== 'BF16') {
    throw new SafetensorsError('INVALID_ARGUMENT', `floatDtype must be 'F32', 'F16' or 'BF16', got ${JSON.stringify(floatDtype)}`);
  }
  const metadataEntries = normaliseMetadata(metadata);
  const entries: SafetensorsPlanEntry[] = [];
  const seen = new Set<string>();
  for (const [name, tensor] of tensors) {
    if (typeof name !== 'string') throw new SafetensorsError('INVALID_ARGUMENT', `tensor names must be strings, got ${typeof name}`);
    if (name === '__metadata__') {
      throw new SafetensorsError('INVALID_ARGUMENT', `"__metadata__" is reserved and cannot name a tensor`, name);
    }
    if (seen.has(name)) throw new SafetensorsError('INVALID_ARGUMENT', `tensor ${quote(name)} appears twice`, name);
    seen.add(name);
    if (!(tensor instanceof tf.Tensor)) {
      throw new SafetensorsError('INVALID_ARGUMENT', `tensor ${quote(name)}: expected a tf.Tensor, got ${typeof tensor}`, name);
    }
    let dtype: SafetensorsPlanEntry['dtype'];
    if (tensor.dtype === 'float32') dtype = floatDtype;
    else if (tensor.dtype === 'int32') dtype = 'I32';
    else if (tensor.dtype === 'bool') dtype = 'BOOL';
    else {
      throw new SafetensorsError(
        'UNSUPPORTED_DTYPE',
        `tensor ${quote(name)}: dtype ${tensor.dtype} cannot be saved; expected float32, int32 or bool`,
        name,
      );
    }
    entries.push({ name, tensor, dtype, byteLength: tensor.size * DTYPE_BYTES.get(dtype)! });
  }
  entries.sort((a, b) => WRITE_ORDER[b.dtype] - WRITE_ORDER[a.dtype] || compareCodePoints(a.name, b.name));

  const parts: string[] = [];
  if (metadataEntries) {
    const inner = metadataEntries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
    parts.push(`"__metadata__":{${inner}}`);
  }
  let offset = 0;
  for (const entry of entries) {
    const info = { dtype: entry.dtype, shape: entry.tensor.shape, data_offsets: [offset, offset + entry.byteLength] };
    parts.push(`${JSON.stringify(entry.name)}:${JSON.stringify(info)}`);
    offset += entry.byteLength;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padding = (8 - (json.length % 8)) % 8;
  const head = new Uint8Array(8 + json.length + padding);
  new DataView(head.buffer).setBigUint64(0, BigInt(json.length + padding), true);
  head.set(json, 8);
  head.fill(0x20, 8 + json.length);
  return { head, entries, byteLength: head.length + offset };
}

/** A copy of a typed array's bytes (a memcpy). */
function copyBytes(array: ArrayBufferView): Uint8Array {
  return Uint8Array.prototype.slice.call(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
}

/** Encode one entry's values (as returned by `dataSync`/`data`) into little-endian bytes. */
export function encodeSafetensorsEntry(entry: SafetensorsPlanEntry, values: ArrayLike<number>): Uint8Array {
  const floats = () => (values instanceof Float32Array ? values : Float32Array.from(values));
  let out: Uint8Array;
  switch (entry.dtype) {
    case 'F32': out = copyBytes(floats()); break;
    case 'F16': out = new Uint8Array(encodeFloat16Array(floats()).buffer); break;
    case 'BF16': out = new Uint8Array(encodeBfloat16Array(floats()).buffer); break;
    case 'I32': out = copyBytes(values instanceof Int32Array ? values : Int32Array.from(values)); break;
    case 'BOOL': out = Uint8Array.from(values, (v) => (v ? 1 : 0)); break;
  }
  if (!isLittleEndian && entry.dtype !== 'BOOL') {
    const size = DTYPE_BYTES.get(entry.dtype)!;
    for (let i = 0; i < out.length; i += size) out.subarray(i, i + size).reverse();
  }
  if (out.length !== entry.byteLength) {
    throw new SafetensorsError(
      'INVALID_ARGUMENT',
      `tensor ${quote(entry.name)}: produced ${out.length} bytes, expected ${entry.byteLength}`,
      entry.name,
    );
  }
  return out;
}

/** Read an entry's values synchronously, naming the tensor if that fails (e.g. disposed). */
export function readEntryValuesSync(entry: SafetensorsPlanEntry): ArrayLike<number> {
  try {
    return entry.tensor.dataSync() as ArrayLike<number>;
  } catch (error) {
    throw new SafetensorsError('INVALID_ARGUMENT', `tensor ${quote(entry.name)} could not be read: ${(error as Error).message}`, entry.name, { cause: error });
  }
}

/** Read an entry's values asynchronously (GPU-friendly), naming the tensor if that fails. */
export async function readEntryValues(entry: SafetensorsPlanEntry): Promise<ArrayLike<number>> {
  try {
    return (await entry.tensor.data()) as ArrayLike<number>;
  } catch (error) {
    throw new SafetensorsError('INVALID_ARGUMENT', `tensor ${quote(entry.name)} could not be read: ${(error as Error).message}`, entry.name, { cause: error });
  }
}

/**
 * Serialise tensors to safetensors bytes: float32 → F32 (or `floatDtype`), int32 → I32, bool → BOOL;
 * header padded with spaces to a multiple of 8; tensors ordered as the reference writer orders them,
 * so the bytes equal the reference's for the same tensors (metadata keys keep the given order).
 */
export function saveSafetensors(
  tensors: Map<string, tf.Tensor> | Iterable<[string, tf.Tensor]>,
  metadata?: Record<string, string> | Map<string, string> | null,
  options: SaveSafetensorsOptions = {},
): Uint8Array {
  const plan = planSafetensors(tensors, metadata, options);
  const out = new Uint8Array(plan.byteLength);
  out.set(plan.head, 0);
  let offset = plan.head.length;
  for (const entry of plan.entries) {
    out.set(encodeSafetensorsEntry(entry, readEntryValuesSync(entry)), offset);
    offset += entry.byteLength;
  }
  return out;
}

/** `saveSafetensors` reading tensor data asynchronously (preferred on GPU backends). */
export async function saveSafetensorsAsync(
  tensors: Map<string, tf.Tensor> | Iterable<[string, tf.Tensor]>,
  metadata?: Record<string, string> | Map<string, string> | null,
  options: SaveSafetensorsOptions = {},
): Promise<Uint8Array> {
  const plan = planSafetensors(tensors, metadata, options);
  const out = new Uint8Array(plan.byteLength);
  out.set(plan.head, 0);
  let offset = plan.head.length;
  for (const entry of plan.entries) {
    out.set(encodeSafetensorsEntry(entry, await readEntryValues(entry)), offset);
    offset += entry.byteLength;
  }
  return out;
}
