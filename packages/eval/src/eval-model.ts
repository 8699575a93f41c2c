/**
 * The model interface the harness drives, and how `--model` specs are turned into models.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join, resolve as resolvePath, extname } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as tf from '@tensorflow/tfjs-core';
import type { OptionChoice } from './benchmark-reader.js';
import { adaptHostModel, type HostAdapterOptions, type HostModelLike } from './host-model-adapter.js';
import { adaptPretrainedModel, importPretrainedLoader, type PretrainedLoaderImporter } from './pretrained-adapter.js';

/**
 * A multimodal model under evaluation.
 *
 * Images are `[H, W, 3]` float32 tensors with values in [0, 1] (the decoded benchmark image, not
 * resized or normalized: preprocessing is the model's job). They belong to the harness and are
 * disposed right after the call returns, so a model must not keep them. The prompt is plain text
 * without any image placeholder or chat template (Parrot puts `<image>\n` before it).
 */
export interface EvalModel {
  /** Optional display name used in reports. */
  readonly name?: string;
  /** Greedy generation for `prompt` with `images`; returns the answer text. */
  generate(prompt: string, images: readonly tf.Tensor3D[]): string | Promise<string>;
  /**
   * Log-likelihood (natural log, summed over the option's tokens) of each option as the answer to
   * `prompt`, used when the generated text names no unique option. One finite number (or -Infinity)
   * per option, in the given order. Models without it score unresolved answers as wrong, like the
   * reference's `exact_matching` mode.
   */
  scoreOptions?(
    prompt: string,
    images: readonly tf.Tensor3D[],
    options: readonly OptionChoice[],
  ): readonly number[] | Promise<readonly number[]>;
  /** Releases weights when the CLI is done. */
  dispose?(): void | Promise<void>;
}

/** Turns a `--model` spec into a model, or returns undefined when the spec is not for it. */
export type ModelLoader = (spec: string) => EvalModel | undefined | Promise<EvalModel | undefined>;

const registeredLoaders: ModelLoader[] = [];

/** Registers a loader tried (most recent first) before the built-in ones. Returns an unregister function. */
export function registerModelLoader(loader: ModelLoader): () => void {
  if (typeof loader !== 'function') throw new TypeError(`registerModelLoader: expected a function, got ${typeof loader}`);
  registeredLoaders.unshift(loader);
  return () => {
    const position = registeredLoaders.indexOf(loader);
    if (position >= 0) registeredLoaders.splice(position, 1);
  };
}

/** Checks that `value` implements {@link EvalModel}; throws naming `what` otherwise. */
export function assertEvalModel(value: unknown, what: string): asserts value is EvalModel {
  if (typeof value !== 'object' || value === null || typeof (value as EvalModel).generate !== 'function') {
    throw new TypeError(`${what}: expected an object with a generate(prompt, images) method, got ${describe(value)}`);
  }
  const score = (value as EvalModel).scoreOptions;
  if (score !== undefined && typeof score !== 'function') {
    throw new TypeError(`${what}: scoreOptions must be a function when present, got ${typeof score}`);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  const keys = Object.keys(value as object);
  return `an object with keys [${keys.slice(0, 8).join(', ')}${keys.length > 8 ? ', …' : ''}]`;
}

const MODULE_EXTENSIONS = new Set(['.js', '.mjs', '.cjs']);

/**
 * Loads an evaluation model from a JS module. The module exports (in order of preference) `default`,
 * `createModel` or `model`: either an {@link EvalModel} or a (possibly async) factory returning one;
 * a factory receives the module path.
 */
export async function loadModelModule(path: string): Promise<EvalModel> {
  const absolute = resolvePath(path);
  let loaded = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  // A CommonJS module arrives as { default: module.exports }: look inside it.
  const inner = loaded.default as Record<string, unknown> | undefined;
  if (inner && typeof inner === 'object' && typeof inner.generate !== 'function' && (inner.createModel || inner.model)) {
    loaded = inner;
  }
  const candidate = loaded.default ?? loaded.createModel ?? loaded.model;
  if (candidate === undefined) {
    throw new TypeError(`model module ${path}: exports none of default, createModel, model`);
  }
  const model = typeof candidate === 'function' ? await (candidate as (spec: string) => unknown)(absolute) : candidate;
  assertEvalModel(model, `model module ${path}`);
  return model;
}

/** Returns `@mllm/models`' `loadHostModel`, or undefined when @mllm/models is not installed. */
export type HostLoaderImporter = () => Promise<((spec: string) => unknown) | undefined>;

const importHostLoader: HostLoaderImporter = async () => {
  try {
    // Only the host loader needs the whole of @mllm/models (and its peers @mllm/core, tfjs-layers):
    // the harness imports just `@mllm/models/image` and runs JS model modules without the rest.
    const models: typeof import('@mllm/models') = await import('@mllm/models');
    return models.loadHostModel;
  } catch {
    return undefined;
  }
};

/** Imports a package by name (importing an `@mllm/*` module package registers its module kinds). */
export type ModulePackageImporter = (name: string) => Promise<unknown>;

// A variable specifier: the package is resolved from @mllm/eval's own location (where the user
// installed it beside @mllm/eval), not from @mllm/core's.
const importModulePackage: ModulePackageImporter = (name) => import(/* @vite-ignore */ /* webpackIgnore: true */ name);

const MLLM_PACKAGE = /^@mllm\/[a-z0-9-]+$/;

interface RecordedModule {
  module_type?: unknown;
  module_package?: unknown;
}

/**
 * Imports the `@mllm/*` packages a saved host directory records (config.json `mllm_modules[].module_package`
 * and `projector.module_package`), so their module kinds are registered before `loadHostModel` runs.
 *
 * `loadHostModel` imports a missing kind's package itself, but from @mllm/core's location: under a
 * strict `node_modules` (pnpm) core cannot see @mllm/parrot, while @mllm/eval, installed beside it, can.
 * Other package names are never imported (a file cannot make the CLI import anything else). A directory
 * without a readable config.json imports nothing (`loadHostModel` reports it). Returns the packages
 * imported, in record order; a package that is not installed is an error naming the `npm install` to run.
 *
 * `config`: the directory's parsed config.json when the caller has read it already (`loadEvalModel` reads it
 * once; `null` when it is absent or unreadable), so it is not read again; omitted, it is read from `dir`.
 */
export async function importRecordedModulePackages(
  dir: string,
  importer: ModulePackageImporter = importModulePackage,
  config?: unknown,
): Promise<string[]> {
  const read = config === undefined ? await readDirectoryConfig(dir) : { config };
  if (!('config' in read) || typeof read.config !== 'object' || read.config === null) return [];
  const { mllm_modules: modules, projector } = read.config as { mllm_modules?: unknown; projector?: unknown };
  const records: RecordedModule[] = [];
  if (typeof projector === 'object' && projector !== null) records.push(projector as RecordedModule);
  if (Array.isArray(modules)) records.push(...(modules as RecordedModule[]).filter((r) => typeof r === 'object' && r !== null));
  const packages = new Map<string, string>(); // package -> the first module type recorded from it
  for (const record of records) {
    const name = record.module_package;
    if (typeof name === 'string' && MLLM_PACKAGE.test(name) && !packages.has(name)) packages.set(name, String(record.module_type));
  }
  for (const [name, type] of packages) {
    try {
      await importer(name);
    } catch (error) {
      const message = (error as Error)?.message ?? String(error);
      const notFound = (error as { code?: string })?.code === 'ERR_MODULE_NOT_FOUND' || /cannot find (package|module)|failed to (load|resolve)/i.test(message);
      if (notFound && message.includes(name)) {
        throw new Error(
          `cannot load model ${JSON.stringify(dir)}: its config.json records a '${type}' module from ${name}, which is not installed. ` +
            `Install it beside @mllm/eval (npm install ${name}) and run again.`,
        );
      }
      throw new Error(`cannot load model ${JSON.stringify(dir)}: importing ${name} (recorded in its config.json for a '${type}' module) failed: ${message}`);
    }
  }
  return [...packages.keys()];
}

/** `format` of a saved host directory's config.json (`@mllm/models`' `HOST_MODEL_FORMAT`; models is an optional peer). */
const SAVED_HOST_FORMAT = 'mllm-host-v1';

/** A directory's config.json as read once: its parsed content, or that it is absent / unreadable (not JSON, …). */
type DirectoryConfig = { readonly config: unknown } | { readonly absent: boolean };

async function readDirectoryConfig(dir: string): Promise<DirectoryConfig> {
  try {
    return { config: JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as unknown };
  } catch (error) {
    return { absent: (error as NodeJS.ErrnoException).code === 'ENOENT' };
  }
}

/**
 * Whether `dir` (whose config.json `read` holds) is a checkpoint directory in an authors' layout, which
 * `@mllm/pretrained` loads: its config.json is not a saved host model's, or it has none but has a YAML config
 * (LAVIS / Cheetah). Anything else (an unreadable config.json, an empty directory) goes to `loadHostModel`,
 * which reports it.
 */
function isAuthorsCheckpoint(dir: string, read: DirectoryConfig): boolean {
  if (!('config' in read)) return read.absent && readdirSync(dir).some((file) => /\.ya?ml$/.test(file));
  const { config } = read;
  return !(typeof config === 'object' && config !== null && (config as { format?: unknown }).format === SAVED_HOST_FORMAT);
}

/** How checkpoint directories in the authors' layouts are loaded (see {@link loadEvalModel}). */
export interface PretrainedLoadOptions {
  /** Overrides how `@mllm/pretrained`'s `fromPretrained` is looked up. */
  readonly loader?: PretrainedLoaderImporter;
  /** The vision tower's directory (`fromPretrained`'s `visionTowerDir`). */
  readonly visionTowerDir?: string;
  /**
   * The directory holding `tokenizer.json` (+ `tokenizer_config.json`), for a checkpoint that keeps its tokenizer
   * elsewhere (`fromPretrained`'s `tokenizerDir`).
   */
  readonly tokenizerDir?: string;
}

/** `fromPretrained`'s options from {@link PretrainedLoadOptions}: only those given (none is `{}`). */
function fromPretrainedOptions(pretrained: PretrainedLoadOptions): { visionTowerDir?: string; tokenizerDir?: string } {
  return {
    ...(pretrained.visionTowerDir === undefined ? {} : { visionTowerDir: pretrained.visionTowerDir }),
    ...(pretrained.tokenizerDir === undefined ? {} : { tokenizerDir: pretrained.tokenizerDir }),
  };
}

/**
 * `visionTowerDir` and `tokenizerDir` are for checkpoint directories in the authors' layouts: a spec that is
 * something else (`what`) would ignore them, so giving one is an error naming it (and the CLI flag).
 */
function refuseAuthorsOnlyOptions(spec: string, what: string, pretrained: PretrainedLoadOptions): void {
  const given = [
    pretrained.visionTowerDir !== undefined ? 'visionTowerDir (--vision-tower)' : '',
    pretrained.tokenizerDir !== undefined ? 'tokenizerDir (--tokenizer-dir)' : '',
  ].filter(Boolean);
  if (given.length === 0) return;
  throw new Error(
    `cannot load model ${JSON.stringify(spec)}: ${given.join(' and ')} ${given.length > 1 ? 'apply' : 'applies'} only to checkpoint directories ` +
      `in the authors' layouts (loaded by @mllm/pretrained), and ${JSON.stringify(spec)} is ${what}`,
  );
}

/**
 * Resolves a `--model` spec:
 * 1. registered loaders ({@link registerModelLoader}), most recent first;
 * 2. an existing `.js` / `.mjs` / `.cjs` file: {@link loadModelModule};
 * 3. a checkpoint directory in the authors' layout (plain LLaVA-style HF, Parrot, Wings, Cheetah: its
 *    config.json is not a saved host model's, or it has none): `fromPretrained(spec)` from
 *    `@mllm/pretrained` when it is installed, wrapped with {@link adaptPretrainedModel}
 *    (`hostOptions.maxNewTokens`, `pretrained.visionTowerDir`, `pretrained.tokenizerDir`);
 * 4. `loadHostModel(spec)` from `@mllm/models` (a saved host directory), when it is installed, wrapped
 *    with {@link adaptHostModel} (`hostOptions`: image size, max new tokens, …); the module packages the
 *    directory records (Parrot, Wings, VPG-C) are imported first ({@link importRecordedModulePackages},
 *    `packageImporter`);
 * otherwise a clear error. `pretrained.visionTowerDir` / `pretrained.tokenizerDir` apply to case 3 only: given
 * for a spec resolved otherwise, they are an error (they would be ignored).
 */
export async function loadEvalModel(
  spec: string,
  hostLoader: HostLoaderImporter = importHostLoader,
  hostOptions: HostAdapterOptions = {},
  packageImporter: ModulePackageImporter = importModulePackage,
  pretrained: PretrainedLoadOptions = {},
): Promise<EvalModel> {
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new TypeError(`model: expected a checkpoint directory or a JS module path, got ${JSON.stringify(spec)}`);
  }
  for (const loader of [...registeredLoaders]) {
    const model = await loader(spec);
    if (model !== undefined) {
      assertEvalModel(model, `model loader result for ${spec}`);
      try {
        refuseAuthorsOnlyOptions(spec, 'taken by a registered model loader, which gets the spec alone', pretrained);
      } catch (error) {
        await model.dispose?.();
        throw error;
      }
      return model;
    }
  }
  if (MODULE_EXTENSIONS.has(extname(spec)) && existsSync(spec) && statSync(spec).isFile()) {
    refuseAuthorsOnlyOptions(spec, 'a JS model module, which builds its own model', pretrained);
    return loadModelModule(spec);
  }
  const name = hostOptions.name ?? basename(resolvePath(spec));
  // config.json is read once here and handed on (layout check, recorded module packages).
  const isDirectory = existsSync(spec) && statSync(spec).isDirectory();
  const read = isDirectory ? await readDirectoryConfig(spec) : undefined;
  if (read !== undefined && isAuthorsCheckpoint(spec, read)) {
    const fromPretrained = await (pretrained.loader ?? importPretrainedLoader)();
    if (fromPretrained === undefined) {
      throw new Error(
        `cannot load model ${JSON.stringify(spec)}: it is not a saved @mllm host directory (no config.json with format '${SAVED_HOST_FORMAT}'), ` +
          `and checkpoint directories in the authors' layouts (LLaVA-style HF, Parrot, Wings, Cheetah) need @mllm/pretrained: ` +
          `install it beside @mllm/eval (npm install @mllm/pretrained) and run again.`,
      );
    }
    const model = await fromPretrained(spec, fromPretrainedOptions(pretrained));
    return adaptPretrainedModel(model, { maxNewTokens: hostOptions.maxNewTokens, name });
  }
  const loadHostModel = await hostLoader();
  if (loadHostModel === undefined) {
    throw new Error(
      `cannot load model ${JSON.stringify(spec)}: it is not a .js/.mjs/.cjs model module, no registered loader ` +
        `accepted it, and @mllm/models is not installed (it loads checkpoint directories: npm install @mllm/models). ` +
        `Pass a JS module exporting an EvalModel, or register a loader with registerModelLoader().`,
    );
  }
  if (!existsSync(spec)) {
    throw new Error(`cannot load model ${JSON.stringify(spec)}: no such checkpoint directory or module file`);
  }
  refuseAuthorsOnlyOptions(spec, `not one: it loads as a saved @mllm host directory, whose config.json holds the tokenizer and the vision tower's configuration`, pretrained);
  await importRecordedModulePackages(spec, packageImporter, read !== undefined && 'config' in read ? read.config : null);
  const host = (await loadHostModel(spec)) as HostModelLike;
  if (!host || typeof host.generate !== 'function') {
    throw new TypeError(`@mllm/models loadHostModel(${JSON.stringify(spec)}) returned no model with generate()`);
  }
  return adaptHostModel(host, { ...hostOptions, name });
}
