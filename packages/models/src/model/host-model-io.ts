/**
 * Save / load a HostMLLM directory: `config.json` (HostMLLMConfig + format tag, the projector and
 * the attached modules) and `model.safetensors` (reference names and layouts). Node only.
 *
 * Everything the host saves, it loads back with one call: a module attached with `attachParrot` /
 * `attachWings` / `attachVPGC` is recorded (`mllm_modules`, attach order: type, package, version,
 * reference-named config) and re-attached by `loadHostModel` before the weights are loaded, and a
 * custom projector of a registered kind (the Q-Former VPG of @mllm/vpgc) is recorded (`projector`)
 * and rebuilt. Both are looked up in core's registry, importing the recorded `@mllm/*` package when
 * it is not loaded yet.
 */
import {
  MlpGeluProjector, Module, StateDictError, disposeStateDict, loadStateDict, nodeFilePromises, projectorRecord, readSafetensorsFile,
  resolveModuleKind, resolveProjectorKind, stateDict, writeFileAtomically, writeSafetensorsFile,
  type FloatStorageDtype, type ModuleKind, type ModuleRecord, type VisualProjector,
} from '@mllm/core';
import { HostMLLM } from './host-mllm.js';
import type { HostMLLMConfig } from './config.js';

export const HOST_MODEL_FORMAT = 'mllm-host-v1';
export const HOST_CONFIG_FILE = 'config.json';
export const HOST_WEIGHTS_FILE = 'model.safetensors';

export interface SaveHostModelOptions {
  /**
   * Save the attached modules with the host (default true): their weights go into
   * `model.safetensors` and their records into `config.json`, so `loadHostModel` re-attaches them.
   * A hook whose modules carry no record (added with `addHooks` directly) cannot be reloaded and
   * is an error unless this is false. False saves the base model alone.
   */
  includeModules?: boolean;
  /** @deprecated Use `includeModules` (this alias is read when `includeModules` is not given). */
  includeHooks?: boolean;
  /** Storage of float32 weights (default F32). */
  floatDtype?: FloatStorageDtype;
}

export interface LoadHostModelOptions {
  /** A projector to use instead of the recorded one (needed for an unregistered custom projector). */
  projector?: VisualProjector;
  projectorName?: string;
  /** Load the base model only: skip the recorded modules and their weights (default false). */
  skipModules?: boolean;
}

/** A saved projector: the registry record and its child name in the host. */
interface SavedProjector extends ModuleRecord {
  child_name: string;
}

interface SavedConfig extends HostMLLMConfig {
  format: string;
  projectorType: 'mlp2x_gelu';
  /** A projector that is neither `mlp2x_gelu` nor of a registered kind (must be passed to the loader). */
  customProjector?: boolean;
  /** A projector of a registered kind. */
  projector?: SavedProjector;
  /** Attached modules, attach order. */
  mllm_modules?: ModuleRecord[];
}

/** Write `dir/config.json` and `dir/model.safetensors` (creates `dir`; each file atomically, weights first). */
export async function saveHostModel(model: HostMLLM, dir: string, options: SaveHostModelOptions = {}): Promise<void> {
  if (!(model instanceof HostMLLM)) throw new Error(`saveHostModel: model must be a HostMLLM, got ${model === null ? 'null' : typeof model}`);
  if (typeof dir !== 'string' || !dir) throw new Error(`saveHostModel: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const includeModules = options.includeModules ?? options.includeHooks ?? true;
  const config: SavedConfig = {
    format: HOST_MODEL_FORMAT,
    text: { ...model.textConfig },
    vision: { ...model.visionTower.visionConfig },
    projectorType: 'mlp2x_gelu',
    tokenizer: model.tokenizer.toJSON(),
  };
  const record = projectorRecord(model.projector); // a registered kind first (it may subclass the default)
  if (record && model.projectorModuleName) config.projector = { ...record, child_name: model.projectorModuleName };
  else if (!(model.projector instanceof MlpGeluProjector) || model.projector.constructor !== MlpGeluProjector) config.customProjector = true;
  const records: ModuleRecord[] = [];
  const unrecorded: string[] = [];
  for (const hooks of model.hooks) {
    const named = [...(hooks.namedModules?.() ?? []).map(([n]) => n), ...(hooks.modules?.() ?? []).map(() => '(unnamed module)')];
    const record = hooks.moduleRecord?.();
    if (record) records.push(record);
    else if (named.length) unrecorded.push(named.join(', '));
  }
  if (includeModules && unrecorded.length) {
    throw new Error(
      `saveHostModel: hooks added with addHooks directly own modules (${unrecorded.join('; ')}) that loadHostModel could not re-attach; ` +
        'attach them with attachParrot / attachWings / attachVPGC, or pass { includeModules: false } to save the base model alone',
    );
  }
  if (includeModules && records.length) config.mllm_modules = records;
  // The hooks' parameters by exact name, not by prefix: a module may register at the decoder's root
  // (VPG-C as `model`: `model.query_tokens`, like the reference), where the prefix `model.` is the host's too.
  const hookModules = new Set(includeModules ? [] : model.hookModuleNames);
  const hookNames = new Set(model.children().filter(([n]) => hookModules.has(n)).flatMap(([n, m]) => m.namedParameters(`${n}.`).map(([p]) => p)));
  const { fs, path } = await nodeFilePromises('saveHostModel');
  await fs.mkdir(dir, { recursive: true });
  const dict = stateDict(model);
  try {
    const kept = [...dict].filter(([name]) => !hookNames.has(name));
    await writeSafetensorsFile(path.join(dir, HOST_WEIGHTS_FILE), kept, { format: 'pt' }, { floatDtype: options.floatDtype });
  } finally {
    disposeStateDict(dict);
  }
  const text = `${JSON.stringify(config, null, 2)}\n`;
  await writeFileAtomically(path.join(dir, HOST_CONFIG_FILE), async (handle) => void (await handle.writeFile(text)));
}

/**
 * Build a HostMLLM from `dir/config.json`, rebuild its recorded projector, re-attach its recorded
 * modules (attach order) and load `dir/model.safetensors` strictly. Nothing is left behind on failure.
 */
export async function loadHostModel(dir: string, options: LoadHostModelOptions = {}): Promise<HostMLLM> {
  if (typeof dir !== 'string' || !dir) throw new Error(`loadHostModel: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const { fs, path } = await nodeFilePromises('loadHostModel');
  const configPath = path.join(dir, HOST_CONFIG_FILE);
  let config: SavedConfig;
  try {
    config = JSON.parse(await fs.readFile(configPath, 'utf8')) as SavedConfig;
  } catch (error) {
    throw new Error(`loadHostModel: cannot read ${configPath}: ${(error as Error).message}`);
  }
  if (config?.format !== HOST_MODEL_FORMAT) {
    throw new Error(`loadHostModel: ${configPath} must have format '${HOST_MODEL_FORMAT}', got ${JSON.stringify(config?.format)}`);
  }
  if (config.customProjector && !options.projector) {
    throw new Error('loadHostModel: the model was saved with a custom projector of no registered kind; pass options.projector');
  }
  const records = options.skipModules ? [] : (config.mllm_modules ?? []);
  if (!Array.isArray(records)) throw new Error(`loadHostModel: ${configPath} field mllm_modules must be an array, got ${JSON.stringify(records)}`);
  // Resolve every kind before building anything, so a missing package fails fast.
  const moduleKinds: ModuleKind[] = [];
  for (const record of records) moduleKinds.push(await resolveModuleKind(record, 'loadHostModel'));
  let projector = options.projector;
  let projectorName = options.projectorName;
  if (!projector && config.projector) {
    const kind = await resolveProjectorKind(config.projector, 'loadHostModel');
    projector = kind.build(config.projector) as VisualProjector;
    projectorName = config.projector.child_name;
  }
  let model: HostMLLM;
  try {
    const { text, vision, projectorType, tokenizer } = config;
    model = new HostMLLM({ config: { text, vision, projectorType, tokenizer }, projector, projectorName });
  } catch (error) {
    if (projector !== options.projector && projector instanceof Module) projector.dispose();
    throw error;
  }
  const attachedModules: Module[] = [];
  try {
    records.forEach((record, i) => attachedModules.push(moduleKinds[i].attachFromRecord(model, record).module));
    const { tensors } = await readSafetensorsFile(path.join(dir, HOST_WEIGHTS_FILE));
    try {
      if (!options.skipModules) loadStateDict(model, tensors);
      else {
        // The file may hold module weights the base model does not have: only missing keys are an error
        // (the model is disposed below when they are).
        const { missingKeys } = loadStateDict(model, tensors, { strict: false });
        if (missingKeys.length) throw new StateDictError(model.name, missingKeys, [], []);
      }
    } finally {
      for (const t of tensors.values()) t.dispose();
    }
  } catch (error) {
    model.dispose(); // disposes attached modules too (they are children)
    for (const m of attachedModules) m.dispose();
    throw error;
  }
  return model;
}
