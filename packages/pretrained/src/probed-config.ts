/**
 * How `fromPretrained` hands a paper loader the `config.json` its probe already parsed, so the loader does not read
 * it again (one read per load, and detection and loading see the same content). Internal: not exported from the
 * package. The key is a symbol, so `Object.keys` (the loaders' unknown-option check) does not see it and nothing
 * outside the package can set it; a loader called directly reads `config.json` itself.
 */
import type { CheckpointProbe } from './from-pretrained.js';

const PROBED_CONFIG = Symbol('@mllm/pretrained: the config.json fromPretrained parsed');

type WithProbedConfig = { readonly [PROBED_CONFIG]?: Readonly<Record<string, unknown>> };

/** `options` (a copy) carrying `probe.config` for the loader; `options` itself when the probe found no config.json. */
export function withProbedConfig<T extends object>(options: T, probe: CheckpointProbe): T {
  return probe.config === null ? options : Object.assign({ ...options }, { [PROBED_CONFIG]: probe.config });
}

/** The `config.json` `fromPretrained` attached to a loader's options, `undefined` when called directly. */
export function probedConfig(options: object): Readonly<Record<string, unknown>> | undefined {
  return (options as WithProbedConfig)[PROBED_CONFIG];
}
