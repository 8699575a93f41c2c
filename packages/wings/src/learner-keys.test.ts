/** Where Wings' learner keys come from on a host with several modules attached. */
import { describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { setSeed } from '@mllm/core';
import { HostMLLM } from '@mllm/models';
import { attachParrot } from '@mllm/parrot';
import { attachWings, type WingsForwardKeys } from './index.js';
import { randomMatrix } from './reference-math.testutil.js';

const H = 16;
const Ni = 5; // 'cls_patch' (Parrot routes with CLS): CLS + 4 patches per image

describe('Wings learner keys with Parrot attached', () => {
  it("the visual keys Wings sees are Parrot's MoE output (the transformed tokens), not the projector's", () => {
    setSeed(4);
    const host = new HostMLLM({
      config: {
        text: { vocabSize: 262, hiddenSize: H, numLayers: 2, numHeads: 2, intermediateSize: 24, ropeTheta: 10000, maxLength: 64 },
        vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16, selectFeature: 'cls_patch' },
      },
    });
    // Attach order = run order at a shared hook point; Parrot (transformVisual) runs before any layer anyway.
    const parrot = attachParrot(host, { intermediateSize: 24, numExperts: 3 });
    const wings = attachWings(host, { stage: 1, rank: 3 });

    const seen: { projected?: number[][][]; moeOutput?: number[][][]; keys?: number[][][]; positions?: number[][] } = {};
    const moeForward = parrot.module.forward.bind(parrot.module);
    const moeSpy = vi.spyOn(parrot.module, 'forward').mockImplementation((inputs) => {
      const out = moeForward(inputs);
      seen.projected = inputs.visual.arraySync() as number[][][];
      seen.moeOutput = out.output.arraySync() as number[][][];
      return out;
    });
    const buildKeys = wings.module.buildKeys.bind(wings.module);
    const keySpy = vi.spyOn(wings.module, 'buildKeys').mockImplementation((ctx) => {
      const keys: WingsForwardKeys = buildKeys(ctx);
      seen.keys = keys.visual!.source.arraySync() as number[][][];
      seen.positions = keys.visual!.positions.arraySync() as number[][];
      return keys;
    });

    const img = host.tokenizer.imageId;
    const pad = host.tokenizer.padId;
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const out = host.forward({
        inputIds: tf.tensor2d([[72, img, 120, 121], [65, 66, img, pad]], undefined, 'int32'),
        attentionMask: tf.tensor2d([[1, 1, 1, 1], [1, 1, 1, 0]], undefined, 'int32'),
        imageFeatures: tf.tensor3d([randomMatrix(5, Ni, 12), randomMatrix(6, Ni, 12)]),
      });
      tf.dispose([out.logits, out.attentionMask]);
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(moeSpy).toHaveBeenCalledTimes(1);
    expect(keySpy).toHaveBeenCalledTimes(1);

    // Parrot changed the tokens, so the comparison below tells the two sources apart.
    expect(seen.moeOutput).not.toEqual(seen.projected);
    // Sample b's keys = its image's MoE output rows, at the image's positions (1.. and 2..).
    expect(seen.keys).toEqual(seen.moeOutput);
    expect(seen.positions).toEqual([[1, 2, 3, 4, 5], [2, 3, 4, 5, 6]]);

    moeSpy.mockRestore();
    keySpy.mockRestore();
    wings.remove();
    parrot.remove();
    wings.module.dispose();
    parrot.module.dispose();
    host.dispose();
  });
});
