/** Cheetah (VPG-C) as a whole model from its released files: `loadCheetah`, registered with `fromPretrained` as kind 'cheetah'. */
import { nodeFilePromises } from '@mllm/core';
import { detectCheetah, registerPretrainedKind, type CheckpointProbe } from '../from-pretrained.js';
import { loadCheetah, type LoadCheetahOptions } from './load.js';

export * from './config.js';
export * from './model.js';
export * from './weights.js';
export * from './load.js';

/**
 * The eval YAML of a Cheetah directory (the one `loadCheetah`'s `config` takes): among the YAML files naming a
 * `cheetah_*` arch, the one with a `ckpt:` key (the eval configs carry it, the model configs do not), else one
 * whose name says `eval`, else the first in name order.
 */
export function cheetahEvalConfig(probe: CheckpointProbe): string | null {
  const candidates = [...probe.yamlFiles].filter(([, text]) => /^[ \t]+arch:[ \t]*["']?cheetah_/m.test(text)).sort(([a], [b]) => a.localeCompare(b));
  const chosen = candidates.find(([, text]) => /^[ \t]*ckpt:/m.test(text)) ?? candidates.find(([name]) => name.includes('eval')) ?? candidates[0];
  return chosen ? chosen[0] : null;
}

/**
 * `fromPretrained` options a Cheetah directory passes on to `loadCheetah` (the weight paths come from the YAML;
 * the shape overrides are for checkpoints not at the reference's ViT-g / BERT-base sizes; `tokenizerDir` replaces
 * the LLM directory as the tokenizer's).
 */
const CHEETAH_PASSED_OPTIONS = ['updateLayer', 'dropoutAtInference', 'visionConfig', 'qformerConfig', 'numQueryTokens', 'tokenizerDir'] as const;

registerPretrainedKind('cheetah', {
  detect: detectCheetah,
  load: async (dir, options, probe) => {
    const config = cheetahEvalConfig(probe);
    if (config === null) throw new Error(`fromPretrained: ${dir} holds no Cheetah YAML config (an eval config naming model.arch cheetah_*)`);
    const { path } = await nodeFilePromises('fromPretrained');
    const passed: Partial<LoadCheetahOptions> = {};
    for (const key of CHEETAH_PASSED_OPTIONS) if (options[key] !== undefined) (passed as Record<string, unknown>)[key] = options[key];
    return loadCheetah({ ...passed, config: path.join(dir, config) });
  },
});
