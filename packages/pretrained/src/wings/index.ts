/** Wings as a whole model from its released checkpoint: `loadWings`, registered with `fromPretrained` as kind 'wings'. */
import { detectWings, registerPretrainedKind } from '../from-pretrained.js';
import { withProbedConfig } from '../probed-config.js';
import { loadWings, type LoadWingsOptions } from './load-wings.js';

export * from './checkpoint.js';
export * from './prompt.js';
export * from './load-wings.js';

/** `fromPretrained` options a Wings directory passes on to `loadWings`. */
const WINGS_PASSED_OPTIONS = ['visionTowerDir', 'referenceCompat', 'systemPromptLength', 'tokenizerDir'] as const;

registerPretrainedKind('wings', {
  detect: detectWings,
  load: (dir, options, probe) => {
    const passed: LoadWingsOptions = {};
    for (const key of WINGS_PASSED_OPTIONS) if (options[key] !== undefined) (passed as Record<string, unknown>)[key] = options[key];
    return loadWings(dir, withProbedConfig(passed, probe)); // config.json as detection read it, not read again
  },
});
