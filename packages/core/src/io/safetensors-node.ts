/**
 * Node.js file helpers for safetensors. `node:` modules are imported lazily inside each function,
 * so importing `@mllm/core` in a browser bundle never pulls in `node:fs`.
 *
 * Reading never loads a whole file: it reads the 8-byte prefix and the header, validates them
 * against the file size, then reads only the selected tensors' byte ranges (files larger than a
 * single ArrayBuffer and prefix-filtered loads of big checkpoints stay memory-bounded).
 * Writing is atomic: a temporary file in the same directory is written, fsynced and renamed over
 * the target; on any failure the previous file is untouched and the temporary file removed.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FileHandle } from 'node:fs/promises';
import {
  decodeSafetensorsTensor,
  disposeTensorMap,
  encodeSafetensorsEntry,
  parseSafetensorsHeader,
  planSafetensors,
  readEntryValues,
  readSafetensorsHeaderLength,
  safetensorsLoadDtype,
  SafetensorsError,
  type LoadedSafetensors,
  type LoadSafetensorsOptions,
  type ReadSafetensorsOptions,
  type SafetensorsHeader,
  type SafetensorsTensorInfo,
  type SaveSafetensorsOptions,
} from './safetensors.js';
import { syncDirectory } from './sync-directory.js';
import { decodeHalfInPlace } from './half-float.js';

const READ_CHUNK_BYTES = 1 << 30;

function ioError(action: string, path: string, error: unknown): SafetensorsError {
  if (error instanceof SafetensorsError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new SafetensorsError('IO_ERROR', `could not ${action} ${JSON.stringify(path)}: ${message}`, undefined, { cause: error });
}

/**
 * Read exactly `length` bytes at `position` (into `out` when given, which must hold `length` bytes); a short read
 * means the file shrank (`TRUNCATED`).
 */
async function readExactly(handle: FileHandle, position: number, length: number, what: string, out: Uint8Array = new Uint8Array(length)): Promise<Uint8Array> {
  let done = 0;
  while (done < length) {
    const chunk = Math.min(READ_CHUNK_BYTES, length - done);
    const { bytesRead } = await handle.read(out, done, chunk, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError('TRUNCATED', `${what}: expected ${length} bytes at offset ${position}, the file ended after ${done}`);
    }
    done += bytesRead;
  }
  return out;
}

/** An open safetensors file with a validated header. Close it with `close()`. */
export interface SafetensorsFile {
  path: string;
  header: SafetensorsHeader;
  /** Read one tensor's raw bytes. */
  readBytes(info: SafetensorsTensorInfo): Promise<Uint8Array>;
  /** Read one tensor's raw bytes into `target` (exactly `info.byteLength` bytes). */
  readInto(info: SafetensorsTensorInfo, target: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Open `path`, read and validate its header (reads only the prefix and header bytes). */
export async function openSafetensorsFile(path: string, options: ReadSafetensorsOptions = {}): Promise<SafetensorsFile> {
  const fs = await import('node:fs/promises');
  let handle: FileHandle;
  try {
    handle = await fs.open(path, 'r');
  } catch (error) {
    throw ioError('open', path, error);
  }
  try {
    const { size } = await handle.stat();
    const prefix = await readExactly(handle, 0, Math.min(8, size), path);
    const headerByteLength = readSafetensorsHeaderLength(prefix, size, options);
    const headerBytes = await readExactly(handle, 8, headerByteLength, path);
    const header = parseSafetensorsHeader(headerBytes, size - 8 - headerByteLength);
    const open = handle;
    return {
      path,
      header,
      readBytes: (info) => readExactly(open, header.dataOffset + info.dataOffsets[0], info.byteLength, `${path}: tensor ${JSON.stringify(info.name)}`),
      readInto: async (info, target) => {
        if (target.byteLength !== info.byteLength) throw new RangeError(`readInto: tensor ${JSON.stringify(info.name)} has ${info.byteLength} bytes, the target ${target.byteLength}`);
        await readExactly(open, header.dataOffset + info.dataOffsets[0], info.byteLength, `${path}: tensor ${JSON.stringify(info.name)}`, target);
      },
      close: () => open.close(),
    };
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw ioError('read', path, error);
  }
}

/** Read and validate only the header of a safetensors file. */
export async function readSafetensorsFileHeader(path: string, options: ReadSafetensorsOptions = {}): Promise<SafetensorsHeader> {
  const file = await openSafetensorsFile(path, options);
  await file.close();
  return file.header;
}

/**
 * Load tensors from an open file: checks every selected dtype first, then reads and decodes one
 * tensor at a time; on any error all tensors created so far are disposed.
 */
export async function loadFromSafetensorsFile(
  file: SafetensorsFile,
  filter?: (name: string) => boolean,
  into: Map<string, tf.Tensor> = new Map(),
): Promise<Map<string, tf.Tensor>> {
  const selected = [...file.header.tensors.values()].filter((info) => !filter || filter(info.name));
  for (const info of selected) safetensorsLoadDtype(info);
  const created = new Map<string, tf.Tensor>();
  try {
    for (const info of selected) {
      if ((info.dtype === 'BF16' || info.dtype === 'F16') && hostIsLittleEndian && info.byteLength > 0) {
        created.set(info.name, await readHalfTensor(file, info));
        continue;
      }
      const bytes = await file.readBytes(info);
      created.set(info.name, decodeSafetensorsTensor(info, bytes, true)); // freshly read: used in place
    }
  } catch (error) {
    disposeTensorMap(created);
    throw ioError('read', file.path, error);
  }
  for (const [name, tensor] of created) into.set(name, tensor);
  return into;
}

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A BF16 / F16 tensor read from the file straight into its float32 storage (its bytes into the storage's upper
 * half, then `decodeHalfInPlace`). Why: decoding a separate read buffer held 1.5× the tensor's float32 bytes in
 * JavaScript at once, and on wasm the decoded array was then copied into the heap: for a Qwen2-0.5B embedding
 * (545 MB as float32) that was 0.8 GB beside the heap, the peak of a whole checkpoint load
 * (docs/performance.md, real-size LLaVA). On wasm the storage is the tensor's own heap memory
 * (`typedArrayFromHeap`, tfjs-backend-wasm 4.x; elsewhere, or without it, a JavaScript array that becomes the
 * tensor's values). A heap grown by a concurrent tfjs call during the read keeps its contents (a single-threaded
 * heap's old buffer is detached, and a read into it fails with an error instead).
 */
async function readHalfTensor(file: SafetensorsFile, info: SafetensorsTensorInfo): Promise<tf.Tensor> {
  const format = info.dtype as 'BF16' | 'F16';
  const n = info.byteLength / 2;
  const upperHalf = (storage: Float32Array) => new Uint8Array(storage.buffer, storage.byteOffset + 2 * n, 2 * n);
  const backend = tf.backend() as { typedArrayFromHeap?: (t: tf.TensorInfo) => Float32Array };
  if (tf.getBackend() === 'wasm' && typeof backend.typedArrayFromHeap === 'function') {
    const tensor = tf.zeros(info.shape, 'float32');
    try {
      const storage = () => backend.typedArrayFromHeap!(tensor);
      await file.readInto(info, upperHalf(storage()));
      decodeHalfInPlace(storage(), format); // a fresh view: the heap's buffer may have been replaced (grown) meanwhile
      return tensor;
    } catch (error) {
      tensor.dispose();
      throw error;
    }
  }
  const values = new Float32Array(n);
  await file.readInto(info, upperHalf(values));
  decodeHalfInPlace(values, format);
  return tf.tensor(values, info.shape, 'float32');
}

/** Read a safetensors file (only the tensors passing `filter`). All-or-nothing, no leaks. */
export async function readSafetensorsFile(path: string, options: LoadSafetensorsOptions = {}): Promise<LoadedSafetensors> {
  const file = await openSafetensorsFile(path, options);
  try {
    const tensors = await loadFromSafetensorsFile(file, options.filter);
    return { tensors, metadata: file.header.metadata };
  } finally {
    await file.close();
  }
}

/**
 * Why not `write-file-atomic`: it takes the whole content as one buffer or string, while a checkpoint
 * shard is streamed tensor by tensor through `write` (a 7B-size shard is never held in memory at once).
 *
 * Write a file atomically: `write` fills a temporary file in the same directory, which is then
 * fsynced and renamed over `path` (and the directory fsynced where the platform allows). On any
 * failure the temporary file is removed and the previous `path` is left as it was.
 */
export async function writeFileAtomically(path: string, write: (handle: FileHandle) => Promise<void>): Promise<void> {
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  const directory = nodePath.dirname(path);
  const random = Math.random().toString(36).slice(2, 10);
  const temporary = nodePath.join(directory, `.${nodePath.basename(path)}.${process.pid}.${Date.now()}.${random}.tmp`);
  let handle: FileHandle | undefined;
  try {
    handle = await fs.open(temporary, 'wx', 0o644);
    await write(handle);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.rename(temporary, path);
  } catch (error) {
    if (handle) await handle.close().catch(() => undefined);
    await fs.rm(temporary, { force: true }).catch(() => undefined);
    throw ioError('write', path, error);
  }
  await syncDirectory(fs, directory); // make the rename durable
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Write tensors as a safetensors file, atomically (see `writeFileAtomically`). Tensor data is read
 * (`await tensor.data()`) and written one tensor at a time, so no full-file buffer is built.
 * @returns the file's size in bytes.
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Map<string, tf.Tensor> | Iterable<[string, tf.Tensor]>,
  metadata?: Record<string, string> | Map<string, string> | null,
  options: SaveSafetensorsOptions = {},
): Promise<number> {
  const plan = planSafetensors(tensors, metadata, options);
  await writeFileAtomically(path, async (handle) => {
    await writeAll(handle, plan.head, 0);
    let position = plan.head.length;
    for (const entry of plan.entries) {
      const bytes = encodeSafetensorsEntry(entry, await readEntryValues(entry));
      await writeAll(handle, bytes, position);
      position += bytes.length;
    }
  });
  return plan.byteLength;
}
