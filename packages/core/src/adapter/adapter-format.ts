/**
 * One adapter format for every module package (PEFT's layout):
 *
 *   adapter_config.json        { module_type, module_package, module_version, adapter_format: 1,
 *                                base_model: BaseModelShape, config: { …reference-named fields } }
 *   adapter_model.safetensors  the module's parameters under their names in the host's state dict
 *                              (reference names, PyTorch layout)
 *
 * `saveAdapter(attached)` gives both as bytes (browser or Node); `loadAdapter(host, files)` is the
 * one-call loader (PEFT's `PeftModel.from_pretrained(base, dir)`): it reads the config, checks the
 * base model's shape, attaches the right module kind and loads its weights, all or nothing.
 * `saveAdapterFiles` / `loadAdapterFiles` do the same with a directory (Node).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { disposeStateDict } from '../io/state-dict.js';
import { loadSafetensors, saveSafetensors, disposeTensorMap, type FloatStorageDtype } from '../io/safetensors.js';
import { writeFileAtomically } from '../io/safetensors-node.js';
import { nodeFilePromises } from '../io/node-builtins.js';
import type { AttachedModule, ModuleRecord } from './attached-module.js';
import { assertModuleHost, type BaseModelShape, type ModuleHost } from './module-host.js';
import { resolveModuleKind } from './module-registry.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
/** Version of the adapter file layout written by this release. */
export const ADAPTER_FORMAT_VERSION = 1;

/** `adapter_config.json`. */
export interface AdapterConfig extends ModuleRecord {
  adapter_format: typeof ADAPTER_FORMAT_VERSION;
  /** The model the adapter was trained on (checked against the host on load). */
  base_model: BaseModelShape;
}

/** An adapter as bytes: `adapter_config.json`'s text and `adapter_model.safetensors`. */
export interface AdapterFiles {
  config: string;
  weights: Uint8Array;
}

export interface SaveAdapterOptions {
  /** Storage of float32 weights (default F32). */
  floatDtype?: FloatStorageDtype;
}

export interface LoadAdapterOptions {
  /**
   * Accept an adapter whose `base_model` differs from the host's shape (default false: a mismatch is
   * an error naming each differing field). The weights' shapes are still checked.
   */
  ignoreBaseModelMismatch?: boolean;
}

/** The `adapter_config.json` object of an attached module. */
export function adapterConfig(attached: AttachedModule): AdapterConfig {
  return { ...attached.moduleRecord(), adapter_format: ADAPTER_FORMAT_VERSION, base_model: attached.host.baseModelShape() };
}

/** Serialise an attached module as adapter files (bytes). */
export function saveAdapter(attached: AttachedModule, options: SaveAdapterOptions = {}): AdapterFiles {
  assertAttachedModule('saveAdapter', attached);
  const config = adapterConfig(attached);
  const dict = attached.stateDict();
  try {
    const weights = saveSafetensors(dict, { format: 'pt' }, { floatDtype: options.floatDtype });
    return { config: `${JSON.stringify(config, null, 2)}\n`, weights };
  } finally {
    disposeStateDict(dict);
  }
}

function assertAttachedModule(owner: string, attached: unknown): asserts attached is AttachedModule {
  const a = attached as Partial<AttachedModule> | null;
  if (!a || typeof a !== 'object' || typeof a.moduleRecord !== 'function' || typeof a.stateDict !== 'function' || !a.host) {
    throw new Error(`${owner}: attached must be what attachParrot / attachWings / attachVPGC returned, got ${a === null ? 'null' : typeof a}`);
  }
}

const text = (value: unknown): string | null =>
  typeof value === 'string' ? value : value instanceof Uint8Array ? new TextDecoder().decode(value) : null;

/** Parse and validate `adapter_config.json` (text or bytes). */
export function parseAdapterConfig(source: string | Uint8Array, where = ADAPTER_CONFIG_FILE): AdapterConfig {
  const body = text(source);
  if (body === null) throw new Error(`parseAdapterConfig: ${where} must be a string or bytes, got ${typeof source}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw new Error(`parseAdapterConfig: ${where} is not JSON: ${(error as Error).message}`);
  }
  const c = parsed as Partial<AdapterConfig> | null;
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw new Error(`parseAdapterConfig: ${where} must hold a JSON object`);
  if (c.adapter_format !== ADAPTER_FORMAT_VERSION) {
    throw new Error(
      `parseAdapterConfig: ${where} has adapter_format ${JSON.stringify(c.adapter_format)}; this release reads ${ADAPTER_FORMAT_VERSION}` +
        (c.adapter_format === undefined ? ' (not an @mllm adapter: no adapter_format field)' : ''),
    );
  }
  for (const field of ['module_type', 'module_package', 'module_version'] as const) {
    if (typeof c[field] !== 'string' || !c[field]) throw new Error(`parseAdapterConfig: ${where} field ${field} must be a non-empty string, got ${JSON.stringify(c[field])}`);
  }
  for (const field of ['config', 'base_model'] as const) {
    const v = c[field];
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`parseAdapterConfig: ${where} field ${field} must be an object, got ${JSON.stringify(v)}`);
  }
  return c as AdapterConfig;
}

/** Fields of `expected` whose value differs in `actual` (fields absent on either side are skipped). */
export function baseModelDifferences(expected: BaseModelShape, actual: BaseModelShape): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(expected)) {
    const other = (actual as unknown as Record<string, unknown>)[key];
    if (value === undefined || other === undefined) continue;
    if (value !== other) out.push(`${key}: adapter ${JSON.stringify(value)}, host ${JSON.stringify(other)}`);
  }
  return out;
}

/**
 * Attach the module an adapter describes to `host` and load its weights: the one-call loader.
 * Fails without changing the host when the config is bad, the base model differs, the module
 * kind is unknown or the weights do not fit (nothing attached, nothing assigned).
 */
export async function loadAdapter(host: ModuleHost, files: { config: string | Uint8Array | AdapterConfig; weights: Uint8Array | ArrayBuffer }, options: LoadAdapterOptions = {}): Promise<AttachedModule> {
  assertModuleHost('loadAdapter', host);
  if (!files || typeof files !== 'object') throw new Error(`loadAdapter: files must be { config, weights } (saveAdapter's result), got ${files === null ? 'null' : typeof files}`);
  const config =
    typeof files.config === 'object' && !(files.config instanceof Uint8Array) && files.config !== null
      ? parseAdapterConfig(JSON.stringify(files.config))
      : parseAdapterConfig(files.config as string | Uint8Array);
  if (!options.ignoreBaseModelMismatch) {
    const diffs = baseModelDifferences(config.base_model, host.baseModelShape());
    if (diffs.length) {
      throw new Error(
        `loadAdapter: the ${config.module_type} adapter was made for another base model (${diffs.join('; ')}); ` +
          'load it into the model it was trained on, or pass { ignoreBaseModelMismatch: true }',
      );
    }
  }
  const kind = await resolveModuleKind(config, 'loadAdapter');
  const loaded = loadSafetensors(files.weights, {});
  let attached: AttachedModule | undefined;
  try {
    attached = kind.attachFromRecord(host, config);
    attached.loadStateDict(loaded.tensors as Map<string, tf.Tensor>);
    return attached;
  } catch (error) {
    if (attached) {
      attached.remove();
      attached.module.dispose();
    }
    throw error;
  } finally {
    disposeTensorMap(loaded.tensors);
  }
}

/** Write `dir/adapter_config.json` and `dir/adapter_model.safetensors` (Node; each file atomically). */
export async function saveAdapterFiles(attached: AttachedModule, dir: string, options: SaveAdapterOptions = {}): Promise<void> {
  if (typeof dir !== 'string' || !dir) throw new Error(`saveAdapterFiles: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const files = saveAdapter(attached, options);
  const { fs, path } = await nodeFilePromises('saveAdapterFiles');
  await fs.mkdir(dir, { recursive: true });
  // Weights first, config last: a crash in between leaves no config naming weights that are not there.
  await writeFileAtomically(path.join(dir, ADAPTER_WEIGHTS_FILE), async (h) => void (await h.writeFile(files.weights)));
  await writeFileAtomically(path.join(dir, ADAPTER_CONFIG_FILE), async (h) => void (await h.writeFile(files.config)));
}

/** Read `dir/adapter_config.json` (Node). */
export async function readAdapterConfigFile(dir: string): Promise<AdapterConfig> {
  const { fs, path } = await nodeFilePromises('readAdapterConfigFile');
  const file = path.join(dir, ADAPTER_CONFIG_FILE);
  let body: string;
  try {
    body = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`readAdapterConfigFile: cannot read ${file}: ${(error as Error).message}`);
  }
  return parseAdapterConfig(body, file);
}

/** `loadAdapter` from a directory written by `saveAdapterFiles` (Node). */
export async function loadAdapterFiles(host: ModuleHost, dir: string, options: LoadAdapterOptions = {}): Promise<AttachedModule> {
  if (typeof dir !== 'string' || !dir) throw new Error(`loadAdapterFiles: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const { fs, path } = await nodeFilePromises('loadAdapterFiles');
  const config = await readAdapterConfigFile(dir);
  const weightsPath = path.join(dir, ADAPTER_WEIGHTS_FILE);
  let weights: Uint8Array;
  try {
    weights = new Uint8Array(await fs.readFile(weightsPath));
  } catch (error) {
    throw new Error(`loadAdapterFiles: cannot read ${weightsPath}: ${(error as Error).message}`);
  }
  return loadAdapter(host, { config, weights }, options);
}
