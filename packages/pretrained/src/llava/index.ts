/** Plain LLaVA-style HF checkpoints (no paper module), registered with `fromPretrained` as kind 'llava'. */
import { detectLlava, registerPretrainedKind } from '../from-pretrained.js';
import { withProbedConfig } from '../probed-config.js';
import type { LlavaConversationStyle } from './conversation.js';
import { loadLlava } from './load-llava.js';

export * from './conversation.js';
export * from './load-llava.js';

registerPretrainedKind('llava', {
  detect: detectLlava,
  load: (dir, options, probe) =>
    loadLlava(dir, withProbedConfig({
      visionTowerDir: options.visionTowerDir,
      conversation: options.conversation as LlavaConversationStyle | undefined,
      tokenizerDir: options.tokenizerDir,
    }, probe)), // config.json as detection read it, not read again
});
