/** The shared tiny host (`@mllm/models/testing`) with a Q-Former VPG as its projector (host tests). */
import type { HostMLLM } from '@mllm/models';
import { tinyHost } from '@mllm/models/testing';
import { QFormerVPG } from '../qformer-vpg.js';

export const hostNq = 3;
export const hostH = 16;

/**
 * A tiny host MLLM (4 decoder layers) whose projector is a Q-Former VPG over its 12-wide patch
 * features. The same seed gives the same base weights (for load-into-a-fresh-host tests).
 */
export function tinyVpgHost(seed: number): { model: HostMLLM; vpg: QFormerVPG } {
  let vpg: QFormerVPG | undefined;
  const model = tinyHost(seed, { hiddenSize: hostH, numLayers: 4 }, {}, {
    projector: () =>
      (vpg = new QFormerVPG({
        qformer: { hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 16, encoderWidth: 12 },
        numQueryTokens: hostNq,
        llmHiddenSize: hostH,
      })),
  });
  return { model, vpg: vpg! };
}
