/**
 * Safe loading of PyTorch checkpoints (`.pth`, `pytorch_model.bin`) written by `torch.save` in its zip
 * format (PyTorch ≥ 1.6): `<archive>/data.pkl` (the pickled object), `<archive>/data/<key>` (one raw
 * little-endian storage per key), `<archive>/version`, `<archive>/byteorder`.
 *
 * Like `torch.load(weights_only=True)`, the pickle may only build tensors (`torch._utils.
 * _rebuild_tensor_v2`, `_rebuild_parameter`), typed storages (`torch.FloatStorage`, …, as persistent
 * ids `('storage', type, key, location, numel)`), `collections.OrderedDict`s and plain
 * dicts / lists / tuples / numbers / strings / None. Any other global is refused before anything is
 * called, so a malicious checkpoint cannot run code. The legacy non-zip format (PyTorch < 1.6) is not
 * read: re-save it with a current PyTorch.
 */
import * as tf from '@tensorflow/tfjs-core';
import { PickleTuple, unpickle, type PickleCallable, type PickleValue } from './pickle.js';
import {
  decodeSafetensorsValues,
  disposeTensorMap,
  safetensorsDtypeByteSize,
  SafetensorsError,
  type SafetensorsDtype,
} from './safetensors.js';
import {
  locateZipDirectory,
  parseZipDirectory,
  readZipDirectory,
  TorchCheckpointError,
  ZIP_TAIL_BYTES,
  zipEntryBytes,
  zipEntryDataOffset,
  type ZipEntry,
} from './zip.js';


/** One storage a checkpoint's tensors view. */
export interface TorchStorageRef {
  /** The storage's entry key: its bytes are `<archive>/data/<key>`. */
  key: string;
  /** Element type, in safetensors dtype names (`torch.FloatStorage` → `F32`, …). */
  dtype: SafetensorsDtype;
  /** `torch.save`'s device tag (`cpu`, `cuda:0`); data is always read to the host. */
  location: string;
  /** Number of elements. */
  numel: number;
}

/** A tensor as the pickle describes it: a strided view into a storage (no data read yet). */
export interface TorchTensorRef {
  storage: TorchStorageRef;
  /** Offset into the storage, in elements. */
  offset: number;
  shape: number[];
  /** Strides in elements. */
  stride: number[];
  requiresGrad: boolean;
}

/** A parsed checkpoint: the object tree (tensors as `TorchTensorRef`s) and the zip it came from. */
export interface TorchCheckpoint {
  /** The archive's top-level folder (`archive` for recent PyTorch, the file's stem for 1.x). */
  archive: string;
  /** The unpickled object: dicts are `Map`s, tuples `PickleTuple`s, tensors `TorchTensorRef`s. */
  object: PickleValue;
  /** Every tensor reachable through nested string-keyed dicts, by dotted name (`model.encoder.weight`). */
  tensors: Map<string, TorchTensorRef>;
}

export interface LoadTorchCheckpointOptions {
  /**
   * Load the sub-dict at this key path instead of the whole object, e.g. `'model'` for BLIP-2's
   * `{"model": state_dict}` (a string is one key; an array walks several).
   */
  select?: string | string[];
  /** Only tensors whose (flattened, post-`select`) name passes are created. */
  filter?: (name: string) => boolean;
}

/** `torch.<Name>Storage` → safetensors dtype. */
const STORAGE_DTYPES: ReadonlyMap<string, SafetensorsDtype> = new Map([
  ['FloatStorage', 'F32'], ['HalfStorage', 'F16'], ['BFloat16Storage', 'BF16'], ['DoubleStorage', 'F64'],
  ['LongStorage', 'I64'], ['IntStorage', 'I32'], ['ShortStorage', 'I16'], ['CharStorage', 'I8'],
  ['ByteStorage', 'U8'], ['BoolStorage', 'BOOL'],
] as const);

class StorageType implements PickleCallable {
  constructor(readonly qualifiedName: string, readonly dtype: SafetensorsDtype) {}
  call(): PickleValue {
    throw new Error(`${this.qualifiedName} may only appear in a storage persistent id, not be called`);
  }
}

function isSafeCount(value: PickleValue): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function intTuple(value: PickleValue, what: string): number[] {
  const items = value instanceof PickleTuple ? value.items : Array.isArray(value) ? value : null;
  if (!items || !items.every(isSafeCount)) throw new Error(`${what} must be a tuple of non-negative integers`);
  return items as number[];
}

/** Read the zip directory of a complete file, explaining what a non-zip file probably is. */
function directoryOf(bytes: Uint8Array, file: string): Map<string, ZipEntry> {
  try {
    return readZipDirectory(bytes);
  } catch (error) {
    throw notZip(error, bytes, file);
  }
}

function notZip(error: unknown, head: Uint8Array, file: string): TorchCheckpointError {
  const message = error instanceof Error ? error.message : String(error);
  const legacy = head.length >= 2 && head[0] === 0x80 ? ' (this looks like the legacy pre-1.6 torch.save format, which is not supported: re-save it with a current PyTorch)' : '';
  return new TorchCheckpointError(`${file}: not a torch.save zip checkpoint: ${message}${legacy}`, undefined, { cause: error });
}

/** The `<archive>/data.pkl` entry, the one pickle of a torch.save archive. */
function pickleEntry(entries: Map<string, ZipEntry>, file: string): ZipEntry {
  const pickles = [...entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickles.length !== 1) {
    throw new TorchCheckpointError(`${file}: expected exactly one <archive>/data.pkl entry, found ${pickles.length} (${pickles.join(', ') || 'none'})`);
  }
  return entries.get(pickles[0])!;
}

/** Unpickle `<archive>/data.pkl` with the allow-list; `entryBytes` reads data.pkl and byteorder. */
function parseCheckpoint(entries: Map<string, ZipEntry>, file: string, entryBytes: (entry: ZipEntry) => Uint8Array): TorchCheckpoint {
  const pickleName = pickleEntry(entries, file).name;
  const archive = pickleName.slice(0, -'/data.pkl'.length);
  const byteorder = entries.get(`${archive}/byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(entryBytes(byteorder)).trim();
    if (order !== 'little') {
      throw new TorchCheckpointError(`${file}: entry ${archive}/byteorder is ${JSON.stringify(order)}; only little-endian checkpoints are supported`, byteorder.name);
    }
  }
  const where = `${file}: ${pickleName}`;
  const refuse = (module: string, name: string): never => {
    throw new TorchCheckpointError(
      `refusing to load global '${module}.${name}' from ${where}: only tensors, storages and ordered dicts are allowed`,
      pickleName,
    );
  };
  const storages = new Map<string, TorchStorageRef>();
  const tensorRefs = new WeakSet<object>();
  const rebuildTensor: PickleCallable = {
    qualifiedName: 'torch._utils._rebuild_tensor_v2',
    call(args) {
      // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const [storage, offset, size, stride, requiresGrad] = args;
      if (args.length < 6 || args.length > 7) throw new Error(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
      if (!(storage && typeof storage === 'object' && 'key' in storage && storages.get((storage as TorchStorageRef).key) === storage)) {
        throw new Error('_rebuild_tensor_v2: first argument is not a storage');
      }
      if (!isSafeCount(offset)) throw new Error('_rebuild_tensor_v2: storage offset must be a non-negative integer');
      const shape = intTuple(size, '_rebuild_tensor_v2: size');
      const strides = intTuple(stride, '_rebuild_tensor_v2: stride');
      if (shape.length !== strides.length) throw new Error(`_rebuild_tensor_v2: size has ${shape.length} dims but stride has ${strides.length}`);
      const ref: TorchTensorRef = { storage: storage as TorchStorageRef, offset, shape, stride: strides, requiresGrad: requiresGrad === true };
      tensorRefs.add(ref);
      return ref;
    },
  };
  const rebuildParameter: PickleCallable = {
    qualifiedName: 'torch._utils._rebuild_parameter',
    call(args) {
      // _rebuild_parameter(data, requires_grad, backward_hooks): a Parameter is its data tensor here.
      if (args.length !== 3 || !tensorRefs.has(args[0] as object)) throw new Error('_rebuild_parameter expects (tensor, requires_grad, backward_hooks)');
      return args[0];
    },
  };
  const orderedDict: PickleCallable = {
    qualifiedName: 'collections.OrderedDict',
    call(args) {
      const map = new Map<PickleValue, PickleValue>();
      if (args.length === 0) return map;
      const pairs = args.length === 1 && Array.isArray(args[0]) ? args[0] : null;
      if (!pairs) throw new Error('collections.OrderedDict takes no arguments or one list of pairs');
      for (const pair of pairs) {
        if (!(pair instanceof PickleTuple) || pair.items.length !== 2) throw new Error('collections.OrderedDict: items must be (key, value) pairs');
        map.set(pair.items[0], pair.items[1]);
      }
      return map;
    },
    build(_object, state) {
      // state_dict()'s OrderedDict carries `_metadata` (module versions) as instance state: accepted, not kept.
      if (!(state instanceof Map)) throw new Error('BUILD of collections.OrderedDict needs a dict state');
    },
  };
  const resolveGlobal = (module: string, name: string): PickleCallable => {
    if (module === 'collections' && name === 'OrderedDict') return orderedDict;
    if (module === 'torch._utils' && name === '_rebuild_tensor_v2') return rebuildTensor;
    if (module === 'torch._utils' && name === '_rebuild_parameter') return rebuildParameter;
    const dtype = module === 'torch' ? STORAGE_DTYPES.get(name) : undefined;
    if (dtype) return new StorageType(`torch.${name}`, dtype);
    return refuse(module, name);
  };
  const persistentLoad = (pid: PickleValue): PickleValue => {
    // ('storage', storage_type, key, location, numel)
    const items = pid instanceof PickleTuple ? pid.items : [];
    const [tag, type, key, location, numel] = items;
    if (items.length !== 5 || tag !== 'storage' || !(type instanceof StorageType) || typeof key !== 'string' || typeof location !== 'string' || !isSafeCount(numel)) {
      throw new Error("persistent id must be ('storage', torch.<Type>Storage, key, location, numel)");
    }
    const seen = storages.get(key);
    if (seen) {
      if (seen.dtype !== type.dtype || seen.numel !== numel) throw new Error(`storage ${key} is described twice with different types or sizes`);
      return seen as unknown as PickleValue;
    }
    const ref: TorchStorageRef = { key, dtype: type.dtype, location, numel };
    storages.set(key, ref);
    return ref as unknown as PickleValue;
  };

  let object: PickleValue;
  try {
    object = unpickle(entryBytes(entries.get(pickleName)!), { source: where, resolveGlobal, persistentLoad });
  } catch (error) {
    if (error instanceof TorchCheckpointError) throw error;
    throw new TorchCheckpointError(`${where}: ${error instanceof Error ? error.message : String(error)}`, pickleName, { cause: error });
  }
  const tensors = new Map<string, TorchTensorRef>();
  const seen = new Set<Map<unknown, PickleValue>>(); // a pickle can make a dict contain itself
  const walk = (value: PickleValue, prefix: string): void => {
    if (value instanceof Map) {
      if (seen.has(value)) throw new TorchCheckpointError(`${where}: the dict at ${JSON.stringify(prefix)} contains itself`, pickleName);
      seen.add(value);
      for (const [key, child] of value) if (typeof key === 'string') walk(child, prefix ? `${prefix}.${key}` : key);
    } else if (tensorRefs.has(value as object)) {
      tensors.set(prefix, value as TorchTensorRef);
    }
  };
  walk(object, '');
  return { archive, object, tensors };
}

/**
 * Parse a checkpoint's zip directory and pickle without reading any tensor data (no tf tensors are
 * made). Throws `TorchCheckpointError` naming the refused global or the malformed entry.
 * @param file a name for error messages (e.g. the path).
 */
export function readTorchCheckpoint(bytes: Uint8Array, file = 'checkpoint'): TorchCheckpoint {
  const entries = directoryOf(bytes, file);
  return parseCheckpoint(entries, file, (entry) => zipEntryBytes(bytes, entry));
}

/** Contiguous (row-major) strides of `shape`. */
function contiguousStrides(shape: number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) { strides[i] = s; s *= shape[i]; }
  return strides;
}

type Values = Float32Array | Int32Array | Uint8Array;

/** Gather a strided view `values[offset + Σ index_d · stride_d]` into a new row-major array. */
function gather(values: Values, ref: TorchTensorRef, count: number): Values {
  const out = new (values.constructor as new (n: number) => Values)(count);
  const rank = ref.shape.length;
  const index = new Array<number>(rank).fill(0);
  let source = ref.offset;
  for (let i = 0; i < count; i++) {
    out[i] = values[source];
    // Odometer over the index, innermost dimension fastest; `source` follows by strides.
    for (let d = rank - 1; d >= 0; d--) {
      index[d]++;
      source += ref.stride[d];
      if (index[d] < ref.shape[d]) break;
      source -= ref.stride[d] * ref.shape[d];
      index[d] = 0;
    }
  }
  return out;
}

function selectTensors(checkpoint: TorchCheckpoint, file: string, options: LoadTorchCheckpointOptions): Map<string, TorchTensorRef> {
  const path = options.select === undefined ? [] : typeof options.select === 'string' ? [options.select] : options.select;
  if (path.length === 0) return new Map([...checkpoint.tensors].filter(([name]) => !options.filter || options.filter(name)));
  const prefix = `${path.join('.')}.`;
  let node: PickleValue = checkpoint.object;
  for (const key of path) {
    if (!(node instanceof Map) || !node.has(key)) {
      const keys = node instanceof Map ? [...node.keys()].filter((k) => typeof k === 'string').map((k) => JSON.stringify(k)).join(', ') : 'none (not a dict)';
      throw new TorchCheckpointError(`${file}: option select ${JSON.stringify(options.select)}: no key ${JSON.stringify(key)}; keys: ${keys}`);
    }
    node = node.get(key)!;
  }
  const out = new Map<string, TorchTensorRef>();
  for (const [name, ref] of checkpoint.tensors) {
    if (!name.startsWith(prefix)) continue;
    const short = name.slice(prefix.length);
    if (!options.filter || options.filter(short)) out.set(short, ref);
  }
  return out;
}

/**
 * Load a `torch.save` zip checkpoint's tensors as a name → tensor map (nested string-keyed dicts are
 * flattened with dots; use `select` to take a sub-dict such as `'model'`). Dtypes convert as in
 * `loadSafetensors`: F32/F16/BF16/F64 → float32, I64/I32/U8/… → int32 (range-checked), BOOL → bool.
 * Strided views (transposes, storage offsets) are materialised row-major; tensors sharing a storage
 * (tied weights) each get their own tensor. Everything is validated and decoded before any tensor is
 * created; on error nothing is returned and nothing leaks.
 * @param file a name for error messages (e.g. the path).
 */
export function loadTorchCheckpoint(bytes: Uint8Array, options: LoadTorchCheckpointOptions = {}, file = 'checkpoint'): Map<string, tf.Tensor> {
  const entries = directoryOf(bytes, file);
  const checkpoint = parseCheckpoint(entries, file, (entry) => zipEntryBytes(bytes, entry));
  return materialise(checkpoint, entries, selectTensors(checkpoint, file, options), file, (entry) => zipEntryBytes(bytes, entry));
}

/** Validate and decode every selected tensor, then create them all (nothing is created on error). */
function materialise(
  checkpoint: TorchCheckpoint,
  entries: Map<string, ZipEntry>,
  selected: Map<string, TorchTensorRef>,
  file: string,
  entryBytes: (entry: ZipEntry) => Uint8Array,
): Map<string, tf.Tensor> {
  const uses = new Map<string, number>();
  for (const ref of selected.values()) uses.set(ref.storage.key, (uses.get(ref.storage.key) ?? 0) + 1);
  const decoded = new Map<string, Values>();
  const planned: Array<[string, Values, number[], 'float32' | 'int32' | 'bool']> = [];
  for (const [name, ref] of selected) {
    const entryName = `${checkpoint.archive}/data/${ref.storage.key}`;
    const fail = (message: string): TorchCheckpointError =>
      new TorchCheckpointError(`${file}: tensor ${JSON.stringify(name)} (entry ${entryName}): ${message}`, entryName);
    const entry = entries.get(entryName);
    if (!entry) throw fail('storage entry is missing from the archive');
    const elementBytes = safetensorsDtypeByteSize(ref.storage.dtype)!;
    const count = ref.shape.reduce((a, b) => a * b, 1);
    // Typed arrays hold at most 2^31 − 1 elements here; stride-0 (expanded) views could otherwise ask for far more than the storage.
    if (count > 0x7fffffff) throw fail(`shape [${ref.shape.join(', ')}] has too many elements (${count})`);
    // Largest element the view touches: offset + Σ (size_d − 1) · stride_d.
    const last = ref.shape.reduce((acc, size, d) => acc + (size - 1) * ref.stride[d], ref.offset);
    if (count > 0 && last >= ref.storage.numel) {
      throw fail(`view (offset ${ref.offset}, shape [${ref.shape.join(', ')}], stride [${ref.stride.join(', ')}]) reaches element ${last} of a ${ref.storage.numel}-element storage`);
    }
    let values = decoded.get(ref.storage.key);
    if (!values) {
      const bytesWanted = ref.storage.numel * elementBytes;
      let data: Uint8Array;
      try {
        data = entryBytes(entry);
      } catch (error) {
        throw fail(error instanceof Error ? error.message : String(error));
      }
      if (data.length < bytesWanted) throw fail(`storage has ${data.length} bytes, its ${ref.storage.numel} ${ref.storage.dtype} elements need ${bytesWanted}`);
      const info = { name, dtype: ref.storage.dtype, shape: [ref.storage.numel], dataOffsets: [0, bytesWanted] as [number, number], byteLength: bytesWanted };
      try {
        values = decodeSafetensorsValues(info, data.subarray(0, bytesWanted)).values;
      } catch (error) {
        if (error instanceof SafetensorsError) throw fail(error.message);
        throw error;
      }
      decoded.set(ref.storage.key, values);
    }
    const contiguous = ref.stride.every((s, d) => ref.shape[d] <= 1 || s === contiguousStrides(ref.shape)[d]);
    // The decoded storage is used in place only when this tensor is its sole, whole, contiguous view.
    const whole = contiguous && ref.offset === 0 && count === ref.storage.numel && uses.get(ref.storage.key) === 1;
    const dtype = values instanceof Float32Array ? 'float32' : values instanceof Int32Array ? 'int32' : 'bool';
    planned.push([name, whole ? values : contiguous ? values.slice(ref.offset, ref.offset + count) : gather(values, ref, count), ref.shape, dtype]);
  }
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const [name, values, shape, dtype] of planned) tensors.set(name, tf.tensor(values, shape, dtype));
  } catch (error) {
    disposeTensorMap(tensors);
    throw error;
  }
  return tensors;
}

/**
 * Node.js: load a `torch.save` checkpoint from `path` (see `loadTorchCheckpoint`). Memory-bounded: it
 * reads the zip's end records, its central directory, `data.pkl`, and then only the storages that the
 * selected tensors view (so `select` / `filter` on a multi-GB `pytorch_model.bin` reads just those).
 * `node:fs` is imported lazily so browser bundles never pull it in.
 */
export async function loadTorchCheckpointFile(path: string, options: LoadTorchCheckpointOptions = {}): Promise<Map<string, tf.Tensor>> {
  const { open } = await import('node:fs/promises');
  const ioError = (error: unknown): TorchCheckpointError =>
    error instanceof TorchCheckpointError ? error
      : new TorchCheckpointError(`could not read ${JSON.stringify(path)}: ${error instanceof Error ? error.message : String(error)}`, undefined, { cause: error });
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw ioError(error);
  }
  try {
    const size = (await handle.stat()).size;
    /** Up to `length` bytes at `position` (fewer only at the end of the file). */
    const readAt = async (position: number, length: number): Promise<Uint8Array> => {
      const out = new Uint8Array(Math.max(0, Math.min(length, size - position)));
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await handle.read(out, done, out.length - done, position + done);
        if (bytesRead === 0) throw new TorchCheckpointError(`${path}: the file ended at ${position + done} while reading ${out.length} bytes at ${position} (it shrank?)`);
        done += bytesRead;
      }
      return out;
    };
    let entries: Map<string, ZipEntry>;
    const head = await readAt(0, 2);
    try {
      const tailStart = Math.max(0, size - ZIP_TAIL_BYTES);
      const tail = await readAt(tailStart, size - tailStart);
      const location = locateZipDirectory(tail, size, (offset, length) => {
        if (offset < tailStart || offset + length > size) throw new TorchCheckpointError(`zip: ZIP64 end record at ${offset} is not next to the end records`);
        return tail.subarray(offset - tailStart, offset - tailStart + length);
      });
      entries = parseZipDirectory(await readAt(location.offset, location.size), location);
    } catch (error) {
      throw notZip(error, head, path);
    }
    // Stored entries' bytes, read ahead asynchronously; a failed read is kept and rethrown where used.
    const cache = new Map<string, Uint8Array | Error>();
    const prefetch = async (entry: ZipEntry | undefined): Promise<void> => {
      if (!entry || cache.has(entry.name)) return;
      try {
        const start = zipEntryDataOffset(entry, await readAt(entry.localHeaderOffset, 30), size);
        cache.set(entry.name, await readAt(start, entry.uncompressedSize));
      } catch (error) {
        cache.set(entry.name, error instanceof Error ? error : new Error(String(error)));
      }
    };
    const cached = (entry: ZipEntry): Uint8Array => {
      const value = cache.get(entry.name);
      if (value instanceof Uint8Array) return value;
      throw value ?? new TorchCheckpointError(`zip entry ${JSON.stringify(entry.name)} was not read`, entry.name);
    };
    const pickle = pickleEntry(entries, path);
    const archive = pickle.name.slice(0, -'/data.pkl'.length);
    await prefetch(pickle);
    await prefetch(entries.get(`${archive}/byteorder`));
    const checkpoint = parseCheckpoint(entries, path, cached);
    const selected = selectTensors(checkpoint, path, options);
    for (const ref of selected.values()) await prefetch(entries.get(`${archive}/data/${ref.storage.key}`));
    return materialise(checkpoint, entries, selected, path, cached);
  } catch (error) {
    throw ioError(error);
  } finally {
    await handle.close();
  }
}
