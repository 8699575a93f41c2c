/**
 * Reading an HF-layout checkpoint directory (`config.json` + `model.safetensors`, or shards with
 * `model.safetensors.index.json`), shared by the decoder and vision-tower loaders. Node only; no network.
 */
import {
  loadShardedCheckpoint, loadStateDict, nodeFilePromises, readSafetensorsFileHeader, readShardedIndex,
  safetensorsLoadDtype, SAFETENSORS_INDEX_NAME, SAFETENSORS_SINGLE_NAME, StateDictError, suggestStateDictPrefix,
  type Module, type SafetensorsTensorInfo,
} from '@mllm/core';

/** The HF config file name. */
export const HF_CONFIG_FILE = 'config.json';

/**
 * Reads and parses `<dir>/config.json` (errors name `owner` and the path); `undefined` when the file is
 * absent and `optional`.
 */
export async function readCheckpointConfig(owner: string, dir: string, optional = false): Promise<Record<string, unknown> | undefined> {
  if (typeof dir !== 'string' || dir.length === 0) throw new Error(`${owner}: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const { fs, path } = await nodeFilePromises(owner);
  const configPath = path.join(dir, HF_CONFIG_FILE);
  let text: string;
  try {
    text = await fs.readFile(configPath, 'utf8');
  } catch (error) {
    if (optional && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${owner}: could not read ${JSON.stringify(configPath)}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`${owner}: ${JSON.stringify(configPath)} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * A second directory whose tensors join a checkpoint's under `prefix` (e.g. a vision tower directory beside a LLaVA
 * checkpoint that does not carry the tower's weights).
 */
export interface ExtraCheckpointSource {
  dir: string;
  /** Prepended to each tensor name of `dir` (e.g. `model.vision_tower.vision_tower.`). */
  prefix: string;
  /** Tensors of `dir` that are skipped (before the prefix is added). */
  ignore?: (name: string) => boolean;
}

/** A checkpoint tensor to read: its model name, and where it is stored under which name. */
interface PlannedTensor {
  /** The name in the model's state dict. */
  name: string;
  dir: string;
  /** The name in `dir`'s files. */
  stored: string;
  info: SafetensorsTensorInfo;
}

/**
 * Loads `dir`'s weights into `model` (strict by default: a missing parameter, an unknown tensor other than
 * those `ignore` names, or a wrong shape is a `StateDictError` listing them all, raised from the shard
 * headers before any tensor data is read). `extra`, given the (not ignored) names in `dir`, may name a second
 * directory whose tensors are added under a prefix (replacing same-named ones of `dir`). On any error the model
 * is disposed, nothing is returned and nothing leaks.
 *
 * Memory: the tensors are read in batches of at most `batchBytes` float32 bytes (a bigger tensor alone), in
 * shard order; each batch is assigned and disposed before the next is read. Reading the whole checkpoint
 * first would hold the float32 weights twice (the model's initial values plus the decoded checkpoint: 2× at
 * the peak, more for BF16/F16 files); batched, the peak is the model plus one batch plus one tensor's
 * layout copy (a Linear's `[out, in]` → `[in, out]` transpose). `bench/llava-real.ts` measures it.
 */
export async function loadCheckpointWeights<M extends Module>(
  dir: string,
  model: M,
  options: { strict?: boolean },
  ignore: (name: string) => boolean = () => false,
  extra?: (names: ReadonlySet<string>) => ExtraCheckpointSource | null,
  batchBytes: number = CHECKPOINT_BATCH_BYTES,
): Promise<M> {
  try {
    const planned = new Map<string, PlannedTensor>();
    for (const info of await readCheckpointTensorInfos(dir)) {
      if (!ignore(info.name)) planned.set(info.name, { name: info.name, dir, stored: info.name, info });
    }
    const more = extra?.(new Set(planned.keys()));
    if (more) {
      for (const info of await readCheckpointTensorInfos(more.dir)) {
        if (more.ignore?.(info.name)) continue;
        const name = more.prefix + info.name;
        planned.delete(name); // re-inserted: read in the extra directory's order
        planned.set(name, { name, dir: more.dir, stored: info.name, info });
      }
    }
    const toRead = checkCheckpointAgainstModel(model, planned, options.strict ?? true);
    for (const batch of checkpointBatches(toRead, batchBytes)) {
      const stored = new Map(batch.map((t) => [t.stored, t.name]));
      const { tensors } = await loadShardedCheckpoint(batch[0]!.dir, { filter: (name) => stored.has(name) });
      try {
        const named = new Map([...tensors].map(([name, t]) => [stored.get(name)!, t]));
        loadStateDict(model, named, { strict: false }); // names and shapes were checked above
      } finally {
        for (const t of tensors.values()) t.dispose();
      }
    }
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/** Float32 bytes read per batch by `loadCheckpointWeights` (64 MiB: ~3 % of a 0.5B model's weights). */
export const CHECKPOINT_BATCH_BYTES = 64 * 1024 * 1024;

/**
 * The tensors of `dir`'s checkpoint (`model.safetensors.index.json` and its shards, else `model.safetensors`)
 * from the headers alone, in shard order then header order; no tensor data is read. `loadShardedCheckpoint`
 * validates the index and shards fully when the data is read.
 */
async function readCheckpointTensorInfos(dir: string): Promise<SafetensorsTensorInfo[]> {
  const { fs, path } = await nodeFilePromises('loadCheckpointWeights');
  const indexPath = path.join(dir, SAFETENSORS_INDEX_NAME);
  const hasIndex = await fs.stat(indexPath).then(() => true, () => false);
  const files = hasIndex
    ? [...new Set((await readShardedIndex(indexPath)).weightMap.values())].map((shard) => path.join(dir, shard)) // names checked by readShardedIndex
    : [path.join(dir, SAFETENSORS_SINGLE_NAME)];
  const infos: SafetensorsTensorInfo[] = [];
  for (const file of files) infos.push(...(await readSafetensorsFileHeader(file)).tensors.values());
  return infos;
}

/**
 * What `loadStateDict` checks, from the headers: every parameter present (when strict), no unknown tensor
 * (when strict), every shape the parameter's reference shape, every dtype loadable. All problems in one
 * `StateDictError` (an unloadable dtype throws `SafetensorsError`).
 * @returns the tensors to read: those the model has (a loose load skips the others unread).
 */
function checkCheckpointAgainstModel(model: Module, available: Map<string, PlannedTensor>, strict: boolean): PlannedTensor[] {
  const expected = new Map(model.namedParameters());
  for (const { info } of available.values()) safetensorsLoadDtype(info);
  const missingKeys = [...expected.keys()].filter((k) => !available.has(k));
  const unexpectedKeys = [...available.keys()].filter((k) => !expected.has(k));
  const mismatchedKeys: StateDictError['mismatchedKeys'] = [];
  for (const [key, parameter] of expected) {
    const info = available.get(key)?.info;
    if (!info) continue;
    const same = info.shape.length === parameter.referenceShape.length && info.shape.every((d, i) => d === parameter.referenceShape[i]);
    if (!same) mismatchedKeys.push({ key, expected: parameter.referenceShape, actual: info.shape });
  }
  if (mismatchedKeys.length || (strict && (missingKeys.length || unexpectedKeys.length))) {
    throw new StateDictError(
      model.name,
      strict ? missingKeys : [],
      strict ? unexpectedKeys : [],
      mismatchedKeys,
      [],
      strict && missingKeys.length ? suggestStateDictPrefix(missingKeys, available) : undefined,
    );
  }
  return [...available.values()].filter((t) => expected.has(t.name));
}

/** The tensors to read in batches of ≤ `batchBytes` float32 bytes (a bigger tensor alone), each from one directory. */
function checkpointBatches(tensors: PlannedTensor[], batchBytes: number): PlannedTensor[][] {
  const batches: PlannedTensor[][] = [];
  let current: PlannedTensor[] = [];
  let bytes = 0;
  for (const t of tensors) {
    const size = 4 * t.info.shape.reduce((a, b) => a * b, 1); // decoded as float32 (or int32 / bool: ≤ 4 bytes)
    if (current.length > 0 && (bytes + size > batchBytes || t.dir !== current[0]!.dir)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(t);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
