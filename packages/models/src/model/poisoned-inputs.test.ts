/**
 * The poisoned-input table for the host model (every backend): padded positions never influence
 * real ones (NaN ids there are refused, padded tokens are cut), masks must be 0/1, wrong kinds are
 * errors naming the argument, the expected and the actual value.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { HostLM, HostMLLM } from '../index.js';
import { tinyHost, tinyTextConfig, tinyVisionConfig } from '@mllm/models/testing';

describe('host model with poisoned inputs', () => {
  it('padded tokens never influence real positions; masks must be 0/1', async () => {
    const model = tinyHost(3);
    const pad = model.tokenizer.padId;
    const logitsOf = async (ids: number[][], mask: number[][]) => {
      const out = model.forward({ inputIds: tf.tensor2d(ids, undefined, 'int32'), attentionMask: tf.tensor2d(mask) });
      const values = (await out.logits.array()) as number[][][];
      tf.dispose([out.logits, out.attentionMask]);
      out.labels?.dispose();
      return values;
    };
    const real = [[72, 105, 33, 10], [65, 66, pad, pad]];
    const mask = [[1, 1, 1, 1], [1, 1, 0, 0]];
    const base = await logitsOf(real, mask);
    const other = await logitsOf([[72, 105, 33, 10], [65, 66, 200, 7]], mask);
    expect(other[1].slice(0, 2)).toEqual(base[1].slice(0, 2));
    for (const bad of [NaN, 0.5, 2]) {
      expect(() => model.forward({ inputIds: tf.tensor2d(real, undefined, 'int32'), attentionMask: tf.tensor2d([[1, 1, 1, 1], [1, bad, 0, 0]]) }))
        .toThrow(`HostMLLM: batch.attentionMask must hold only 0 and 1 (or be bool), got ${bad} at [1, 1]`);
    }
    expect(() => (model as HostLM).forwardText(tf.tensor2d(real, undefined, 'int32'), tf.tensor2d([[1, 1, 1, 1], [1, NaN, 0, 0]])))
      .toThrow('HostLM.forwardText: attentionMask must hold only 0 and 1 (or be bool), got NaN at [1, 1]');
    model.dispose();
  });

  it('wrong kinds of argument: errors naming the argument, the expected and the actual value', () => {
    const cases: Array<[() => unknown, string | RegExp]> = [
      [() => new HostMLLM(undefined as never), 'HostMLLM: args must be an object, got undefined'],
      [() => new HostMLLM({} as never), 'HostMLLM: config must be an object, got undefined'],
      [() => new HostMLLM({ config: { text: tinyTextConfig() } } as never), 'HostMLLM: config.vision must be an object, got undefined'],
      [() => new HostMLLM({ config: { text: tinyTextConfig({ hiddenSize: '64' as never }), vision: tinyVisionConfig() } }), 'HostConfig: hiddenSize must be a positive integer, got the string "64"'],
      [() => new HostMLLM({ config: { text: { ...tinyTextConfig(), numLayer: 2 } as never, vision: tinyVisionConfig() } }), /HostConfig: unknown option "numLayer" \(did you mean "numLayers"\?\)/],
      [() => new HostMLLM({ config: { text: tinyTextConfig({ tieEmbeddings: 'no' as never }), vision: tinyVisionConfig() } }), 'HostConfig: tieEmbeddings must be true or false, got the string "no"'],
      [() => new HostMLLM({ config: { text: tinyTextConfig({ ropeTheta: NaN }), vision: tinyVisionConfig() } }), 'HostConfig: ropeTheta must be a finite number, got NaN'],
      [() => new HostMLLM({ config: { text: tinyTextConfig(), vision: { ...tinyVisionConfig(), patchSise: 4 } as never } }), /VisionConfig: unknown option "patchSise" \(did you mean "patchSize"\?\)/],
      [() => new HostMLLM({ config: { text: tinyTextConfig(), vision: tinyVisionConfig(), projecterType: 'x' } as never }), /HostMLLMConfig: unknown option "projecterType" \(did you mean "projectorType"\?\)/],
      [() => new HostLM(undefined as never), 'HostLM: args must be an object, got undefined'],
    ];
    for (const [fn, message] of cases) expect(fn, String(message)).toThrow(message);
    const model = tinyHost(1);
    const forwardCases: Array<[unknown, string]> = [
      [undefined, 'HostMLLM: batch must be an object, got undefined'],
      [{ inputIds: [[1, 2]] }, 'HostMLLM: batch.inputIds must be a tf.Tensor of rank 2 (int32 or float32), got a plain array (length 1)'],
      [{ inputIds: tf.tensor2d([[1, 2]], undefined, 'int32'), attentionMask: [[1, 1]] }, 'HostMLLM: batch.attentionMask must be a tf.Tensor of rank 2, got a plain array (length 1)'],
      [{ inputIds: tf.tensor2d([[1, 2]], undefined, 'int32'), images: 'cat.png' }, 'HostMLLM: batch.images must be a tf.Tensor of rank 4 (float32), got the string "cat.png"'],
    ];
    for (const [batch, message] of forwardCases) expect(() => model.forward(batch as never), message).toThrow(message);
    expect(() => model.forwardText(undefined as never)).toThrow('HostLM.forwardText: inputIds must be a tf.Tensor of rank 2 (int32 or float32), got undefined');
    model.dispose();
  });
});
