/** Parrot as a whole model from its released checkpoint: `loadParrot`, registered with `fromPretrained` as kind 'parrot'. */
import { detectParrot, registerPretrainedKind } from '../from-pretrained.js';
import { withProbedConfig } from '../probed-config.js';
import { loadParrot, type LoadParrotOptions } from './load-parrot.js';

export * from './load-parrot.js';

/** `fromPretrained` options a Parrot directory passes on to `loadParrot` (any other is not Parrot's and is left out). */
const PARROT_PASSED_OPTIONS = ['visionTowerDir', 'missingMoeWeight', 'multiImage', 'tokenizerDir'] as const;

registerPretrainedKind('parrot', {
  detect: detectParrot,
  load: (dir, options, probe) => {
    const passed: LoadParrotOptions = {};
    for (const key of PARROT_PASSED_OPTIONS) if (options[key] !== undefined) (passed as Record<string, unknown>)[key] = options[key];
    return loadParrot(dir, withProbedConfig(passed, probe)); // config.json as detection read it, not read again
  },
});
