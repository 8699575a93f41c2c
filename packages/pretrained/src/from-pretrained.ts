/**
 * `fromPretrained(dir)`: one call for any checkpoint directory this package knows. It looks at the
 * directory once (a {@link CheckpointProbe}: `config.json`, the file list, the tensor names of the
 * safetensors index or headers — never the tensor data), finds which authors' layout it is with the
 * detection rules below, and hands the directory to that layout's loader.
 *
 * Each paper's folder registers its loader with {@link registerPretrainedKind} when the package is
 * imported (`src/<paper>/index.ts`), passing the matching detection rule of this file:
 *
 *   registerPretrainedKind('parrot', { detect: detectParrot, load: (dir, options) => loadParrot(dir, options) });
 *
 * The built-in loaders get the `config.json` the probe parsed with their options (./probed-config.ts, internal),
 * so a load reads it once.
 *
 * Detection runs in a fixed order, most specific first — Cheetah (a LAVIS YAML config), Parrot,
 * Wings, then plain LLaVA (whose `mm_*` keys Parrot's and Wings' configs also carry) — so the order
 * of registration does not matter.
 */
import { nodeFilePromises, readSafetensorsFileHeader, readShardedIndex, SAFETENSORS_INDEX_NAME } from '@mllm/core';
import type { PretrainedKind, PretrainedMLLM } from './pretrained-model.js';

/** What {@link fromPretrained} knows about a directory before loading anything. */
export interface CheckpointProbe {
  /** The directory as given. */
  readonly directory: string;
  /** The parsed `config.json`, `null` when the directory has none. */
  readonly config: Readonly<Record<string, unknown>> | null;
  /** The directory's entries (file and folder names, sorted). */
  readonly files: readonly string[];
  /** The `*.yaml` / `*.yml` files among them with their text (LAVIS configs are small). */
  readonly yamlFiles: ReadonlyMap<string, string>;
  /**
   * Every tensor name of the checkpoint's weights: the `weight_map` of `model.safetensors.index.json`
   * and the headers of the `*.safetensors` files (only the headers are read; the result is cached).
   */
  weightNames(): Promise<ReadonlySet<string>>;
}

/**
 * A detection rule: the evidence it found (a short phrase used in messages, e.g. `config.json
 * model_type "parrot_qwen2"`), or `null` when the directory is not that layout. Rules only look;
 * they must not load weights.
 */
export type DetectionRule = (probe: CheckpointProbe) => string | null | Promise<string | null>;

/** Options of {@link fromPretrained}; a kind's loader receives them as they are. */
export interface FromPretrainedOptions {
  /** Load as this kind without detection (detection still names what it would have picked in errors). */
  kind?: PretrainedKind;
  /**
   * The vision tower's directory, for checkpoints whose `mm_vision_tower` is a path from the authors'
   * machine (the default is a sibling directory named like that path's last component).
   */
  visionTowerDir?: string;
  /**
   * The directory holding `tokenizer.json` (+ `tokenizer_config.json`) when the checkpoint keeps none (e.g. a
   * Wings-LLaMA checkpoint: the base LLM's directory). Every loader takes it; the default is the checkpoint
   * directory (for Cheetah, the LLM directory its YAML names). A directory given here without `tokenizer.json` is
   * a load error.
   */
  tokenizerDir?: string;
  /** Options only one paper's loader understands are passed through unchanged. */
  [option: string]: unknown;
}

/** How one layout is recognised and loaded. */
export interface PretrainedKindHandler {
  /** This layout's rule ({@link detectLlava}, {@link detectParrot}, {@link detectWings}, {@link detectCheetah}). */
  detect: DetectionRule;
  /** Loads the directory; the result's `kind` must be the registered kind. */
  load(dir: string, options: FromPretrainedOptions, probe: CheckpointProbe): Promise<PretrainedMLLM>;
}

/** Detection order: most specific first (Parrot and Wings configs carry LLaVA's `mm_*` keys too). */
export const PRETRAINED_KINDS: readonly PretrainedKind[] = Object.freeze(['cheetah', 'parrot', 'wings', 'llava'] as const);

const handlers = new Map<PretrainedKind, PretrainedKindHandler>();

/**
 * Registers (or replaces) the loader of a layout. Returns a function that restores the previous
 * handler (tests use it). Throws for an unknown kind or a handler without `detect` / `load`.
 */
export function registerPretrainedKind(kind: PretrainedKind, handler: PretrainedKindHandler): () => void {
  if (!PRETRAINED_KINDS.includes(kind)) {
    throw new Error(`registerPretrainedKind: kind must be one of ${PRETRAINED_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  }
  if (!handler || typeof handler.detect !== 'function' || typeof handler.load !== 'function') {
    throw new Error(`registerPretrainedKind('${kind}'): handler must have detect(probe) and load(dir, options, probe) functions`);
  }
  const previous = handlers.get(kind);
  handlers.set(kind, handler);
  return () => {
    if (handlers.get(kind) !== handler) return;
    if (previous) handlers.set(kind, previous);
    else handlers.delete(kind);
  };
}

/**
 * Removes the loader of `kind` (e.g. to keep an application from loading some layouts); returns the
 * handler removed, `undefined` when none was registered. Register it again to restore it.
 */
export function unregisterPretrainedKind(kind: PretrainedKind): PretrainedKindHandler | undefined {
  const handler = handlers.get(kind);
  handlers.delete(kind);
  return handler;
}

/** The kinds with a registered loader, in detection order. */
export function registeredPretrainedKinds(): PretrainedKind[] {
  return PRETRAINED_KINDS.filter((kind) => handlers.has(kind));
}

// ---------------------------------------------------------------------------------------------
// Detection rules

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Cheetah: a LAVIS-style YAML config in the directory whose `model.arch` is `cheetah_*`
 * (`cheetah_vicuna`, `cheetah_llama2`: Cheetah's `eval_configs/*.yaml`). Matched on the text (an
 * `arch:` line), so detection needs no YAML parser; the loader parses it.
 */
export function detectCheetah(probe: CheckpointProbe): string | null {
  for (const [name, text] of probe.yamlFiles) {
    const match = /^[ \t]+arch:[ \t]*["']?(cheetah_[A-Za-z0-9_]*)/m.exec(text);
    if (match) return `${name} with model arch ${match[1]}`;
  }
  return null;
}

/**
 * Parrot: `config.json` with `model_type` `parrot_*` (`parrot_qwen2`), or any `moe_*` key (the
 * `moe_hidden_size`, `moe_intermediate_size`, `moe_top_k`, `moe_weight` … Parrot's `initialize_moe_modules` writes).
 */
export function detectParrot(probe: CheckpointProbe): string | null {
  const config = probe.config;
  if (!config) return null;
  if (typeof config.model_type === 'string' && config.model_type.startsWith('parrot')) return `config.json model_type ${JSON.stringify(config.model_type)}`;
  const moe = Object.keys(config).filter((key) => key.startsWith('moe_'));
  return moe.length > 0 ? `config.json keys ${moe.slice(0, 3).join(', ')}${moe.length > 3 ? ', …' : ''}` : null;
}

/**
 * Wings: weights named `…attn_pool…` or `…reweight_module…` (the learners and router Wings adds to
 * decoder layers; its config does not record them), or `config.json` `model_type` `wings_*`
 * (`wings_qwen2`, `wings_llama`).
 */
export async function detectWings(probe: CheckpointProbe): Promise<string | null> {
  const config = probe.config;
  if (config && typeof config.model_type === 'string' && config.model_type.startsWith('wings')) {
    return `config.json model_type ${JSON.stringify(config.model_type)}`;
  }
  for (const name of await probe.weightNames()) {
    if (/(^|\.)(attn_pool|attn_t_pool|reweight_module)\./.test(name)) return `weight ${name}`;
  }
  return null;
}

/**
 * Plain LLaVA-style HF checkpoint: `config.json` with `mm_projector_type` or `mm_vision_tower`
 * (LLaVA, Bunny, LLaVA-Qwen2 …), checked after the paper layouts that share these keys.
 */
export function detectLlava(probe: CheckpointProbe): string | null {
  const config = probe.config;
  if (!config) return null;
  const keys = ['mm_projector_type', 'mm_vision_tower'].filter((key) => key in config);
  return keys.length > 0 ? `config.json keys ${keys.join(', ')}` : null;
}

/** The built-in rule of each kind (used to explain a layout that is recognised but has no loader registered). */
export const DETECTION_RULES: Readonly<Record<PretrainedKind, DetectionRule>> = Object.freeze({
  cheetah: detectCheetah,
  parrot: detectParrot,
  wings: detectWings,
  llava: detectLlava,
});

const LOOKED_FOR: Readonly<Record<PretrainedKind, string>> = {
  cheetah: 'a LAVIS YAML config with model arch cheetah_* (Cheetah)',
  parrot: 'config.json with model_type parrot_* or moe_* keys (Parrot)',
  wings: 'weights named *.attn_pool.* / *.reweight_module.* or model_type wings_* (Wings)',
  llava: 'config.json with mm_projector_type or mm_vision_tower (plain LLaVA)',
};

// ---------------------------------------------------------------------------------------------
// Probe

const SAFETENSORS_FILE = /\.safetensors$/;

/**
 * Looks at `dir` without loading weights (see {@link CheckpointProbe}). Errors: not a directory, or a
 * `config.json` that is not a JSON object.
 */
export async function probeCheckpoint(dir: string): Promise<CheckpointProbe> {
  if (typeof dir !== 'string' || dir.length === 0) throw new Error(`fromPretrained: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const { fs, path } = await nodeFilePromises('fromPretrained');
  let files: string[];
  try {
    files = (await fs.readdir(dir)).sort();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such directory' : code === 'ENOTDIR' ? 'not a directory' : (error as Error).message;
    throw new Error(`fromPretrained: cannot read checkpoint directory ${JSON.stringify(dir)}: ${why}`);
  }
  let config: Record<string, unknown> | null = null;
  if (files.includes('config.json')) {
    const configPath = path.join(dir, 'config.json');
    let parsed: unknown;
    try {
      parsed = JSON.parse(await fs.readFile(configPath, 'utf8'));
    } catch (error) {
      throw new Error(`fromPretrained: ${JSON.stringify(configPath)} is not valid JSON: ${(error as Error).message}`);
    }
    if (!isObject(parsed)) throw new Error(`fromPretrained: ${JSON.stringify(configPath)} must hold a JSON object, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`);
    config = parsed;
  }
  const yamlFiles = new Map<string, string>();
  for (const name of files.filter((file) => /\.ya?ml$/.test(file))) {
    const stat = await fs.stat(path.join(dir, name));
    // A LAVIS config is a few hundred bytes; anything large is not one (and is not read).
    if (stat.isFile() && stat.size <= 1_000_000) yamlFiles.set(name, await fs.readFile(path.join(dir, name), 'utf8'));
  }
  let names: Promise<ReadonlySet<string>> | undefined;
  const weightNames = () =>
    (names ??= (async () => {
      const found = new Set<string>();
      if (files.includes(SAFETENSORS_INDEX_NAME)) {
        for (const name of (await readShardedIndex(path.join(dir, SAFETENSORS_INDEX_NAME))).weightMap.keys()) found.add(name);
      }
      // Wings' own loader globs the shards and ignores the index, so the headers count too.
      for (const file of files.filter((f) => SAFETENSORS_FILE.test(f))) {
        for (const name of (await readSafetensorsFileHeader(path.join(dir, file))).tensors.keys()) found.add(name);
      }
      return found;
    })());
  return Object.freeze({ directory: dir, config, files, yamlFiles, weightNames });
}

/**
 * Which layout `dir` is: the first kind (in {@link PRETRAINED_KINDS} order) whose rule matches, with
 * its evidence; `null` when none does. Registered handlers' rules are used where present, the
 * built-in {@link DETECTION_RULES} otherwise.
 */
export async function detectPretrainedKind(dirOrProbe: string | CheckpointProbe): Promise<{ kind: PretrainedKind; evidence: string } | null> {
  const probe = typeof dirOrProbe === 'string' ? await probeCheckpoint(dirOrProbe) : dirOrProbe;
  for (const kind of PRETRAINED_KINDS) {
    const rule = handlers.get(kind)?.detect ?? DETECTION_RULES[kind];
    const evidence = await rule(probe);
    if (evidence) return { kind, evidence };
  }
  return null;
}

function describeFound(probe: CheckpointProbe): string {
  const config = probe.config;
  if (!config) {
    const listed = probe.files.slice(0, 8).join(', ');
    return probe.files.length === 0 ? 'the directory is empty' : `no config.json (files: ${listed}${probe.files.length > 8 ? ', …' : ''})`;
  }
  const modelType = typeof config.model_type === 'string' ? `model_type ${JSON.stringify(config.model_type)}` : 'no model_type';
  const mm = Object.keys(config).filter((key) => key.startsWith('mm_'));
  return `config.json with ${modelType} and ${mm.length ? `keys ${mm.join(', ')}` : 'no mm_* keys'}`;
}

/**
 * Loads a checkpoint directory in any layout this package knows — plain LLaVA-style HF, Parrot,
 * Wings or Cheetah — as a {@link PretrainedMLLM}, with every switch the authors' code implies set by
 * that layout's loader. Node.js only (reads local files; no network).
 *
 *   const model = await fromPretrained('./llava-qwen2-0.5b');
 *   const { text } = await model.chat('What is in the picture?', [image]);
 *
 * Errors: the directory is none of the layouts (the message lists what was looked for and what was
 * found); the layout is recognised but its loader is not registered; `options.kind` is unknown.
 */
export async function fromPretrained(dir: string, options: FromPretrainedOptions = {}): Promise<PretrainedMLLM> {
  if (!isObject(options)) throw new Error(`fromPretrained: options must be an object, got ${JSON.stringify(options)}`);
  if (options.kind !== undefined && !PRETRAINED_KINDS.includes(options.kind)) {
    throw new Error(`fromPretrained: options.kind must be one of ${PRETRAINED_KINDS.join(', ')}, got ${JSON.stringify(options.kind)}`);
  }
  const probe = await probeCheckpoint(dir);
  let kind = options.kind;
  let evidence = 'options.kind';
  if (kind === undefined) {
    const detected = await detectPretrainedKind(probe);
    if (!detected) {
      throw new Error(
        `fromPretrained: ${JSON.stringify(dir)} is not a checkpoint layout this package knows. Looked for ` +
          `${PRETRAINED_KINDS.map((k) => LOOKED_FOR[k]).join('; ')}. Found ${describeFound(probe)}.`,
      );
    }
    ({ kind, evidence } = detected);
  }
  const handler = handlers.get(kind);
  if (!handler) {
    const available = registeredPretrainedKinds();
    throw new Error(
      `fromPretrained: ${JSON.stringify(dir)} is a '${kind}' checkpoint (${evidence}), but no '${kind}' loader is registered ` +
        `(registered: ${available.length ? available.join(', ') : 'none'}); import the package entry (@mllm/pretrained) that registers it.`,
    );
  }
  const model = await handler.load(dir, options, probe);
  if (!model || model.kind !== kind) {
    (model as PretrainedMLLM | undefined)?.dispose?.();
    throw new Error(`fromPretrained: the '${kind}' loader returned ${model ? `a '${String(model.kind)}' model` : String(model)}, expected kind '${kind}'`);
  }
  return model;
}
