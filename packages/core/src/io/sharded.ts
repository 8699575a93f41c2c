/**
 * Sharded safetensors checkpoints as written by Hugging Face `save_pretrained`:
 * `model-00001-of-00003.safetensors`, … plus `model.safetensors.index.json`
 * (`{"metadata": {"total_size": …}, "weight_map": {tensorName: shardFile}}`). Node.js only; `node:`
 * modules are imported lazily.
 *
 * Loading validates the index (strict JSON, shard names that stay inside the checkpoint directory)
 * and every shard's header — every mapped tensor present in its shard, no tensor in two shards, no
 * unlisted tensor — before reading any tensor data; then reads only the tensors passing `filter`.
 */
import type * as tf from '@tensorflow/tfjs-core';
import {
  disposeTensorMap,
  planSafetensors,
  SafetensorsError,
  DEFAULT_MAX_HEADER_BYTES,
  type SaveSafetensorsOptions,
} from './safetensors.js';
import {
  loadFromSafetensorsFile,
  openSafetensorsFile,
  writeFileAtomically,
  writeSafetensorsFile,
  type SafetensorsFile,
} from './safetensors-node.js';
import { describeJsonValue, isJsonObject, parseStrictJson, StrictJsonError, type JsonValue } from './strict-json.js';

/** The index file name `save_pretrained` uses. */
export const SAFETENSORS_INDEX_NAME = 'model.safetensors.index.json';
/** The single-file checkpoint name `save_pretrained` uses. */
export const SAFETENSORS_SINGLE_NAME = 'model.safetensors';

/** A parsed `model.safetensors.index.json`. */
export interface ShardedIndex {
  /** The index's `metadata` (e.g. `total_size`) as null-prototype objects, or `null`. */
  metadata: Record<string, unknown> | null;
  /** Tensor name → shard file name, in index order. */
  weightMap: Map<string, string>;
}

export interface LoadShardedCheckpointOptions {
  /** Only tensors passing `filter` are read (e.g. `(n) => n.startsWith('model.vision_tower.')`). */
  filter?: (name: string) => boolean;
  /** Bound on each shard header and on the index file size (default 100 MB). */
  maxHeaderBytes?: number;
}

export interface LoadedShardedCheckpoint {
  tensors: Map<string, tf.Tensor>;
  /** Index metadata (`null` for a single-file checkpoint). */
  metadata: Record<string, unknown> | null;
  weightMap: Map<string, string>;
  /** Each shard's `__metadata__`. */
  shardMetadata: Map<string, Record<string, string> | null>;
}

export interface SaveShardedCheckpointOptions extends SaveSafetensorsOptions {
  /** Largest shard data size in bytes (default 5 GB as `save_pretrained`); a bigger tensor gets its own shard. */
  maxShardBytes?: number;
  /** `__metadata__` of every shard (default `{format: 'pt'}`, which `transformers` requires). */
  metadata?: Record<string, string> | Map<string, string> | null;
  /** Shard name stem (default `model`). */
  filePrefix?: string;
}

export interface SavedShardedCheckpoint {
  /** Shard file names in order. */
  shardFiles: string[];
  indexPath: string;
  weightMap: Map<string, string>;
  /** Sum of the tensors' data bytes (the index's `total_size`). */
  totalSize: number;
}

function toPlain(value: JsonValue): unknown {
  if (isJsonObject(value)) {
    const out: Record<string, unknown> = Object.create(null);
    for (const [key, entry] of value) {
      Object.defineProperty(out, key, { value: toPlain(entry), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  if (Array.isArray(value)) return value.map(toPlain);
  return value;
}

/** Parse and validate the text of a `model.safetensors.index.json`. */
export function parseShardedIndex(text: string): ShardedIndex {
  let json: JsonValue;
  try {
    json = parseStrictJson(text);
  } catch (error) {
    if (error instanceof StrictJsonError && error.kind === 'duplicate-key') {
      throw new SafetensorsError('DUPLICATE_KEY', `sharded index has a ${error.message}`, error.keyPath.at(-1), { cause: error });
    }
    throw new SafetensorsError('INVALID_JSON', `sharded index is not valid JSON: ${(error as Error).message}`, undefined, { cause: error });
  }
  if (!isJsonObject(json)) {
    throw new SafetensorsError('HEADER_NOT_OBJECT', `sharded index must be a JSON object, got ${describeJsonValue(json)}`);
  }
  const metadataValue = json.get('metadata');
  if (metadataValue !== undefined && metadataValue !== null && !isJsonObject(metadataValue)) {
    throw new SafetensorsError('INVALID_INDEX', `sharded index "metadata" must be an object, got ${describeJsonValue(metadataValue)}`);
  }
  const weightMapValue = json.get('weight_map');
  if (!isJsonObject(weightMapValue)) {
    throw new SafetensorsError('INVALID_INDEX', `sharded index "weight_map" must be an object of tensor name → shard file, got ${describeJsonValue(weightMapValue)}`);
  }
  const weightMap = new Map<string, string>();
  for (const [name, file] of weightMapValue) {
    if (typeof file !== 'string') {
      throw new SafetensorsError('INVALID_INDEX', `sharded index weight_map[${JSON.stringify(name)}] must be a file name, got ${describeJsonValue(file)}`, name);
    }
    checkShardFileName(file, name);
    weightMap.set(name, file);
  }
  const metadata = metadataValue ? (toPlain(metadataValue) as Record<string, unknown>) : null;
  return { metadata, weightMap };
}

/**
 * A shard file name must be a relative path that stays inside the checkpoint directory: not empty,
 * not absolute, no `..` segment, no backslash or NUL. Throws `PATH_ESCAPE`.
 */
export function checkShardFileName(file: string, tensorName?: string): void {
  const segments = file.split('/');
  const problem =
    file.length === 0 ? 'is empty'
    : file.includes('\0') ? 'contains NUL'
    : file.includes('\\') ? 'contains a backslash'
    : file.startsWith('/') || /^[A-Za-z]:/.test(file) ? 'is absolute'
    : segments.some((s) => s === '..') ? 'contains a ".." segment'
    : segments.some((s) => s === '' || s === '.') ? 'contains an empty or "." segment'
    : undefined;
  if (problem) {
    throw new SafetensorsError(
      'PATH_ESCAPE',
      `shard file ${JSON.stringify(file)}${tensorName !== undefined ? ` (for tensor ${JSON.stringify(tensorName)})` : ''} ${problem}; ` +
        `shards must be relative paths inside the checkpoint directory`,
      tensorName,
    );
  }
}

async function readIndexFile(indexPath: string, maxBytes: number): Promise<ShardedIndex> {
  const fs = await import('node:fs/promises');
  let text: string;
  try {
    const { size } = await fs.stat(indexPath);
    if (size > maxBytes) {
      throw new SafetensorsError('HEADER_TOO_LARGE', `sharded index ${JSON.stringify(indexPath)} is ${size} bytes; the limit is ${maxBytes}`);
    }
    const bytes = await fs.readFile(indexPath);
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (error) {
    if (error instanceof SafetensorsError) throw error;
    if (error instanceof TypeError) {
      throw new SafetensorsError('INVALID_UTF8', `sharded index ${JSON.stringify(indexPath)} is not valid UTF-8`, undefined, { cause: error });
    }
    throw new SafetensorsError('IO_ERROR', `could not read ${JSON.stringify(indexPath)}: ${(error as Error).message}`, undefined, { cause: error });
  }
  return parseShardedIndex(text);
}

/** Read and validate a sharded index file. */
export async function readShardedIndex(indexPath: string, options: { maxBytes?: number } = {}): Promise<ShardedIndex> {
  return readIndexFile(indexPath, options.maxBytes ?? DEFAULT_MAX_HEADER_BYTES);
}

/**
 * Load a checkpoint from a directory (its `model.safetensors.index.json`, else `model.safetensors`),
 * an index file, or a single `.safetensors` file. All headers are validated before any tensor data
 * is read; on any error nothing is returned and no tensor leaks.
 */
export async function loadShardedCheckpoint(
  dirOrIndexPath: string,
  options: LoadShardedCheckpointOptions = {},
): Promise<LoadedShardedCheckpoint> {
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  const maxBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  let stats;
  try {
    stats = await fs.stat(dirOrIndexPath);
  } catch (error) {
    throw new SafetensorsError('IO_ERROR', `could not read ${JSON.stringify(dirOrIndexPath)}: ${(error as Error).message}`, undefined, { cause: error });
  }
  let indexPath: string;
  if (stats.isDirectory()) {
    indexPath = nodePath.join(dirOrIndexPath, SAFETENSORS_INDEX_NAME);
    const hasIndex = await fs.stat(indexPath).then(() => true, () => false);
    if (!hasIndex) return loadSingle(nodePath.join(dirOrIndexPath, SAFETENSORS_SINGLE_NAME), options);
  } else if (dirOrIndexPath.endsWith('.json')) {
    indexPath = dirOrIndexPath;
  } else {
    return loadSingle(dirOrIndexPath, options);
  }

  const index = await readIndexFile(indexPath, maxBytes);
  const directory = nodePath.resolve(nodePath.dirname(indexPath));
  const shardNames = [...new Set(index.weightMap.values())];
  for (const shard of shardNames) {
    const resolved = nodePath.resolve(directory, shard);
    if (!resolved.startsWith(directory + nodePath.sep)) {
      throw new SafetensorsError('PATH_ESCAPE', `shard file ${JSON.stringify(shard)} resolves outside ${JSON.stringify(directory)}`);
    }
  }

  const files = new Map<string, SafetensorsFile>();
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const shard of shardNames) {
      files.set(shard, await openSafetensorsFile(nodePath.resolve(directory, shard), { maxHeaderBytes: maxBytes }));
    }
    const foundIn = new Map<string, string>();
    for (const [shard, file] of files) {
      for (const name of file.header.tensors.keys()) {
        const other = foundIn.get(name);
        if (other !== undefined) {
          throw new SafetensorsError('DUPLICATE_TENSOR', `tensor ${JSON.stringify(name)} is stored in both ${JSON.stringify(other)} and ${JSON.stringify(shard)}`, name);
        }
        foundIn.set(name, shard);
        if (!index.weightMap.has(name)) {
          throw new SafetensorsError('UNMAPPED_TENSOR', `tensor ${JSON.stringify(name)} in shard ${JSON.stringify(shard)} is not listed in the index's weight_map`, name);
        }
      }
    }
    for (const [name, shard] of index.weightMap) {
      if (!files.get(shard)!.header.tensors.has(name)) {
        const actual = foundIn.get(name);
        throw new SafetensorsError(
          'MISSING_TENSOR',
          `tensor ${JSON.stringify(name)} is mapped to shard ${JSON.stringify(shard)} but that shard does not contain it` +
            (actual !== undefined ? ` (it is in ${JSON.stringify(actual)})` : ''),
          name,
        );
      }
    }
    for (const file of files.values()) await loadFromSafetensorsFile(file, options.filter, tensors);
  } catch (error) {
    disposeTensorMap(tensors);
    throw error;
  } finally {
    for (const file of files.values()) await file.close().catch(() => undefined);
  }
  const shardMetadata = new Map<string, Record<string, string> | null>();
  for (const [shard, file] of files) shardMetadata.set(shard, file.header.metadata);
  return { tensors, metadata: index.metadata, weightMap: index.weightMap, shardMetadata };
}

async function loadSingle(path: string, options: LoadShardedCheckpointOptions): Promise<LoadedShardedCheckpoint> {
  const nodePath = await import('node:path');
  const file = await openSafetensorsFile(path, { maxHeaderBytes: options.maxHeaderBytes });
  try {
    const tensors = await loadFromSafetensorsFile(file, options.filter);
    const name = nodePath.basename(path);
    const weightMap = new Map([...file.header.tensors.keys()].map((k) => [k, name] as [string, string]));
    return { tensors, metadata: null, weightMap, shardMetadata: new Map([[name, file.header.metadata]]) };
  } finally {
    await file.close();
  }
}

/** `model-00001-of-00003.safetensors` */
export function shardFileName(prefix: string, index: number, count: number): string {
  const pad = (n: number) => String(n).padStart(5, '0');
  return `${prefix}-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/**
 * Save tensors as shards of at most `maxShardBytes` data bytes (greedy, in the given order, as
 * `save_pretrained`) plus `model.safetensors.index.json`. Each file is written atomically and the
 * index last; the checkpoint as a whole is not atomic (an interrupted save can leave new shards
 * next to the old index).
 */
export async function saveShardedCheckpoint(
  dir: string,
  tensors: Map<string, tf.Tensor> | Iterable<[string, tf.Tensor]>,
  options: SaveShardedCheckpointOptions = {},
): Promise<SavedShardedCheckpoint> {
  const fs = await import('node:fs/promises');
  const nodePath = await import('node:path');
  const maxShardBytes = options.maxShardBytes ?? 5_000_000_000;
  if (!(maxShardBytes > 0)) {
    throw new SafetensorsError('INVALID_ARGUMENT', `maxShardBytes must be positive, got ${maxShardBytes}`);
  }
  const filePrefix = options.filePrefix ?? 'model';
  checkShardFileName(`${filePrefix}.safetensors`);
  const metadata = options.metadata === undefined ? { format: 'pt' } : options.metadata;
  const entries = [...tensors];
  // Validates names, dtypes and metadata before anything is written.
  const plan = planSafetensors(entries, metadata, options);
  const bytesOf = new Map(plan.entries.map((e) => [e.name, e.byteLength]));

  const groups: Array<Array<[string, tf.Tensor]>> = [];
  let current: Array<[string, tf.Tensor]> = [];
  let currentBytes = 0;
  for (const entry of entries) {
    const bytes = bytesOf.get(entry[0])!;
    if (current.length > 0 && currentBytes + bytes > maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(entry);
    currentBytes += bytes;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);

  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (error) {
    throw new SafetensorsError('IO_ERROR', `could not create ${JSON.stringify(dir)}: ${(error as Error).message}`, undefined, { cause: error });
  }
  const shardFiles = groups.map((_, i) => shardFileName(filePrefix, i, groups.length));
  const weightMap = new Map<string, string>();
  for (let i = 0; i < groups.length; i++) {
    await writeSafetensorsFile(nodePath.join(dir, shardFiles[i]), groups[i], metadata, options);
    for (const [name] of groups[i]) weightMap.set(name, shardFiles[i]);
  }
  const totalSize = plan.entries.reduce((sum, e) => sum + e.byteLength, 0);
  const sortedNames = [...weightMap.keys()].sort();
  const mapLines = sortedNames.map((name) => `    ${JSON.stringify(name)}: ${JSON.stringify(weightMap.get(name))}`);
  const text = `{\n  "metadata": {\n    "total_size": ${totalSize}\n  },\n  "weight_map": {\n${mapLines.join(',\n')}\n  }\n}\n`;
  const indexPath = nodePath.join(dir, SAFETENSORS_INDEX_NAME);
  const bytes = new TextEncoder().encode(text);
  await writeFileAtomically(indexPath, (handle) => handle.writeFile(bytes));
  return { shardFiles, indexPath, weightMap, totalSize };
}
