/** A tiny host MLLM whose projector is a Q-Former VPG, and a two-sample chat batch for it (host tests). */
import * as tf from '@tensorflow/tfjs';
import { setSeed } from '@mllm/core';
import { HostMLLM, collateChat } from '@mllm/models';
import { QFormerVPG } from '../qformer-vpg.js';

export const hostNq = 3;
export const hostH = 16;

/**
 * A tiny host MLLM (4 decoder layers) whose projector is a Q-Former VPG over its 12-wide patch
 * features. The same seed gives the same base weights (for load-into-a-fresh-host tests).
 */
export function tinyVpgHost(seed: number): { model: HostMLLM; vpg: QFormerVPG } {
  setSeed(seed);
  const vpg = new QFormerVPG({
    qformer: { hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 16, encoderWidth: 12 },
    numQueryTokens: hostNq,
    llmHiddenSize: hostH,
  });
  const model = new HostMLLM({
    config: {
      text: { vocabSize: 262, hiddenSize: hostH, numLayers: 4, numHeads: 2, intermediateSize: 24, maxLength: 256 },
      vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16 },
    },
    projector: vpg,
  });
  return { model, vpg };
}

/** Two samples: two images in the first, one in the second. */
export function tinyVpgBatch(model: HostMLLM) {
  const images = tf.randomUniform([3, 8, 8, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
  const [a, b, c] = tf.unstack(images) as tf.Tensor3D[];
  const batch = collateChat(model.tokenizer, [
    { messages: [{ role: 'user', content: '<image> and <image>: what changed?' }, { role: 'assistant', content: 'The red square.' }], images: [a, b] },
    { messages: [{ role: 'user', content: '<image> which?' }, { role: 'assistant', content: 'Image 1.' }], images: [c] },
  ]);
  tf.dispose([a, b, c, images]);
  return batch;
}
