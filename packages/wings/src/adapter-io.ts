/**
 * Wings' old adapter directories (Node), deprecated in favour of `@mllm/core`'s one adapter format
 * (`saveAdapter` / `loadAdapter`, `saveAdapterFiles` / `loadAdapterFiles`): a directory with
 * `adapter_model.safetensors` (only the Wings learner and router weights, under the reference names
 * `model.layers.{i}.attn_pool.q_proj.0.weight`, …, PyTorch layout; the same tensors core's format
 * holds) and `adapter_config.json` (`peft_type: 'WINGS'` and the resolved config, snake_case).
 *
 * Old directories still load: `readAdapterConfig` and the deprecated `loadAdapter` read either
 * layout, and `loadLegacyWingsAdapter(host, dir)` attaches one in a call, so
 * `saveAdapterFiles(await loadLegacyWingsAdapter(host, oldDir), newDir)` converts it.
 */
import { assertModuleHost, parseAdapterConfig, readSafetensorsFile, writeSafetensorsFile, disposeStateDict, type LoadStateDictResult, type FloatStorageDtype, type ModuleHost } from '@mllm/core';
import { resolveWingsConfig, type ResolvedWingsConfig, type WingsAdapter } from './inject.js';
import { attachWings, wingsConfigFromReference, wingsConfigOf, wingsReferenceConfig, WINGS_MODULE_TYPE, type AttachedWings, type WingsReferenceConfig } from './attach.js';

export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';
export const ADAPTER_CONFIG_NAME = 'adapter_config.json';

/** @deprecated Wings' old `adapter_config.json` (`peft_type: 'WINGS'` + the reference-named config). */
export type WingsAdapterConfigFile = WingsReferenceConfig & { peft_type: 'WINGS' };

/** @deprecated The old layout's config (`peft_type: 'WINGS'`); removed with `saveAdapter` in the next minor version. */
export function toAdapterConfigFile(c: ResolvedWingsConfig): WingsAdapterConfigFile {
  return { peft_type: 'WINGS', ...wingsReferenceConfig(c) };
}

/**
 * @deprecated The old layout's config → resolved config (every field validated); removed in the
 * next minor version.
 */
export function fromAdapterConfigFile(f: WingsAdapterConfigFile, where = ADAPTER_CONFIG_NAME): ResolvedWingsConfig {
  if (!f || f.peft_type !== 'WINGS') throw new Error(`${where}: peft_type must be "WINGS", got ${JSON.stringify(f?.peft_type)}`);
  const { peft_type: _peftType, ...reference } = f;
  return resolveWingsConfig(wingsConfigFromReference(reference, where));
}

/**
 * The resolved Wings config of an `adapter_config.json` in either layout: core's one adapter format
 * (`adapter_format`, `module_type: "wings"`) or Wings' old one (`peft_type: "WINGS"`).
 */
export function wingsConfigFromAdapterFile(parsed: unknown, where = ADAPTER_CONFIG_NAME): ResolvedWingsConfig {
  const f = parsed as Record<string, unknown> | null;
  if (f && typeof f === 'object' && 'adapter_format' in f) {
    const config = parseAdapterConfig(JSON.stringify(f), where);
    if (config.module_type !== WINGS_MODULE_TYPE) throw new Error(`${where}: holds a '${config.module_type}' adapter, not a Wings one`);
    return resolveWingsConfig(wingsConfigFromReference(config.config, where));
  }
  return fromAdapterConfigFile(f as unknown as WingsAdapterConfigFile, where);
}

function join(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/**
 * @deprecated Use `@mllm/core`'s `saveAdapterFiles(attachWings(host, config), dir)` (or `saveAdapter`
 * for bytes); removed in the next minor version. Writes the adapter's weights and Wings' old config
 * layout into `dir` (created if needed).
 */
export async function saveAdapter(adapter: WingsAdapter, dir: string, options: { floatDtype?: FloatStorageDtype } = {}): Promise<void> {
  const fs = await import('node:fs/promises');
  await fs.mkdir(dir, { recursive: true });
  const weights = adapter.stateDict();
  try {
    await writeSafetensorsFile(join(dir, ADAPTER_WEIGHTS_NAME), weights, { format: 'pt' }, { floatDtype: options.floatDtype ?? 'F32' });
  } finally {
    disposeStateDict(weights);
  }
  await fs.writeFile(join(dir, ADAPTER_CONFIG_NAME), `${JSON.stringify(toAdapterConfigFile(adapter.config), null, 2)}\n`);
}

/**
 * @deprecated Use `@mllm/core`'s `readAdapterConfigFile(dir)` (core's format); removed in the next
 * minor version. Reads `dir/adapter_config.json` in either layout (core's or Wings' old one) as a
 * resolved Wings config.
 */
export async function readAdapterConfig(dir: string): Promise<ResolvedWingsConfig> {
  const fs = await import('node:fs/promises');
  const file = join(dir, ADAPTER_CONFIG_NAME);
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (error) {
    throw new Error(`readAdapterConfig: cannot read ${file}: ${(error as Error).message}`);
  }
  return wingsConfigFromAdapterFile(parsed, file);
}

/**
 * @deprecated Use `@mllm/core`'s `loadAdapterFiles(host, dir)` (attaches and loads in one call), or
 * `loadLegacyWingsAdapter(host, dir)` for an old directory; removed in the next minor version.
 *
 * Load `dir`'s weights (either layout) into `adapter` (strict by default: missing/unexpected keys are errors, so
 * loading a stage-1 adapter into a stage-2 one needs `strict: false`, which leaves the routers at
 * their init as the reference does). The recorded shapes must match the adapter's.
 */
export async function loadAdapter(adapter: WingsAdapter, dir: string, options: { strict?: boolean } = {}): Promise<LoadStateDictResult> {
  const recorded = await readAdapterConfig(dir);
  const c = adapter.config;
  for (const key of ['hiddenSize', 'numHeads', 'rank', 'routerMaxLength'] as const) {
    if (recorded[key] !== c[key]) throw new Error(`loadAdapter: ${dir} has ${key} ${recorded[key]}, the adapter has ${c[key]}`);
  }
  const { tensors } = await readSafetensorsFile(join(dir, ADAPTER_WEIGHTS_NAME));
  try {
    return adapter.loadStateDict(tensors, { strict: options.strict ?? true });
  } finally {
    disposeStateDict(tensors);
  }
}

/**
 * Attach Wings to `host` as an adapter directory in either layout records it (Wings' old
 * `peft_type: 'WINGS'` one included) and load its weights strictly: nothing stays attached when
 * that fails. Convert an old directory to core's format with
 * `await saveAdapterFiles(await loadLegacyWingsAdapter(host, oldDir), newDir)`.
 */
export async function loadLegacyWingsAdapter(host: ModuleHost, dir: string): Promise<AttachedWings> {
  assertModuleHost('loadLegacyWingsAdapter', host);
  if (typeof dir !== 'string' || !dir) throw new Error(`loadLegacyWingsAdapter: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const config = await readAdapterConfig(dir);
  const { tensors } = await readSafetensorsFile(join(dir, ADAPTER_WEIGHTS_NAME));
  try {
    const attached = attachWings(host, wingsConfigOf(config));
    try {
      attached.loadStateDict(tensors);
    } catch (error) {
      attached.remove();
      attached.module.dispose();
      throw error;
    }
    return attached;
  } finally {
    disposeStateDict(tensors);
  }
}
