/**
 * Poisoned inputs against VPG-C and the Q-Former (every backend): NaN/Inf in hidden states the
 * residual does not read (outside the last prompt token) change no output bit, a NaN in the token it
 * reads stays in its own sample, every image must have a span, an empty image batch gives an empty
 * result, and wrong kinds of argument are errors naming the argument, the expected and the actual value.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { QFormer, QFormerVPG, VPGC, attachVPGC, imageSpanScatterIndex } from './index.js';
import { B, H, L, Nq, Nv, imageSpans, imageToSample, lastPromptIndex, makeBatch, makeVpg, qformerShape, randomizeVpg, randomizeVpgc } from './test-support/fixture.js';

function setup() {
  const vpg = makeVpg();
  randomizeVpg(vpg, 1);
  const vpgc = new VPGC({ vpg, updateLayer: 1 });
  randomizeVpgc(vpgc, 2);
  return { vpg, vpgc, dispose: () => { vpgc.dispose(); vpg.dispose(); } };
}

async function residual(vpgc: VPGC, hidden: number[], features: tf.Tensor3D): Promise<number[]> {
  const h = tf.tensor3d(hidden, [B, L, H]);
  const out = vpgc.residual({ hidden: h, imageFeatures: features, lastPromptIndex, imageToSample, imageSpans });
  const values = Array.from(await out.data());
  tf.dispose([h, out]);
  return values;
}

describe('VPG-C and Q-Former with poisoned inputs', () => {
  it('NaN/Inf in hidden states outside the guidance token change no output bit; a NaN in it stays in its sample', async () => {
    const { vpgc, dispose } = setup();
    const batch = makeBatch(3);
    const clean = Array.from(batch.hidden);
    const expected = await residual(vpgc, clean, batch.featuresTensor);
    expect(expected.every(Number.isFinite)).toBe(true);
    expect(expected.some((v) => v !== 0)).toBe(true);
    for (const poison of [NaN, Infinity, -Infinity]) {
      const poisoned = clean.map((v, i) => {
        const b = Math.floor(i / (L * H));
        const t = Math.floor(i / H) % L;
        return t === lastPromptIndex[b] ? v : poison;
      });
      expect(await residual(vpgc, poisoned, batch.featuresTensor), String(poison)).toEqual(expected);
    }
    const hit = clean.slice();
    hit[(1 * L + lastPromptIndex[1]) * H] = NaN; // sample 1's guidance token
    const out = await residual(vpgc, hit, batch.featuresTensor);
    expect(out.slice(0, L * H)).toEqual(expected.slice(0, L * H));
    const span = imageSpans[1][0];
    expect(out.slice((L + span.start) * H, (L + span.start + Nq) * H).every(Number.isNaN)).toBe(true);
    batch.dispose();
    dispose();
  });

  it('every image needs a span; spans must be arrays of span objects', () => {
    expect(() => imageSpanScatterIndex(B, L, 3, Nq, [[imageSpans[0][0]], imageSpans[1]], imageToSample))
      .toThrow('VPGC: imageSpans has no span for image 1 (of 3; imageToSample [0, 0, 1])');
    expect(() => imageSpanScatterIndex(B, L, 3, Nq, [[], []], imageToSample)).toThrow('VPGC: imageSpans has no span for images 0, 1, 2');
    expect(() => imageSpanScatterIndex(B, L, 3, Nq, undefined as never, imageToSample)).toThrow('VPGC: imageSpans must be an array (one list of spans per sample), got undefined');
    expect(() => imageSpanScatterIndex(B, L, 3, Nq, [imageSpans[0], 'x'] as never, imageToSample)).toThrow('VPGC: imageSpans[1] must be an array of spans, got the string "x"');
    expect(() => imageSpanScatterIndex(B, L, 3, Nq, [imageSpans[0], [null]] as never, imageToSample)).toThrow('VPGC: imageSpans[1] entries must be an object, got null');
  });

  it('no images: the Q-Former returns an empty batch on every backend', async () => {
    const { vpg, dispose } = setup();
    const queries = tf.zeros([1, Nq, qformerShape.hiddenSize]) as tf.Tensor3D;
    const none = tf.zeros([0, Nv, qformerShape.encoderWidth]) as tf.Tensor3D;
    const before = tf.memory().numTensors;
    const out = vpg.qformer.forward(queries, none);
    expect(out.shape).toEqual([0, Nq, qformerShape.hiddenSize]);
    out.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([queries, none]);
    dispose();
  });

  it('wrong kinds of argument: errors naming the argument, the expected and the actual value', () => {
    const { vpg, vpgc, dispose } = setup();
    const batch = makeBatch(4);
    const cases: Array<[() => unknown, string | RegExp]> = [
      [() => new VPGC(undefined as never), 'VPGC: args must be an object, got undefined'],
      [() => new VPGC({ updateLayer: 1 } as never), 'VPGC: args.vpg must be a QFormerVPG (the visual prompt generator to re-query), got undefined'],
      [() => new VPGC({ vpg, updateLayer: '1' } as never), 'VPGC: updateLayer must be a non-negative integer, got the string "1"'],
      [() => new VPGC({ vpg, updateLayer: 1, dropoutAtInference: 'no' } as never), 'VPGC: dropoutAtInference must be true or false, got the string "no"'],
      [() => new VPGC({ vpg, updateLayers: 1 } as never), /VPGC: unknown option "updateLayers" \(did you mean "updateLayer"\?\)/],
      [() => vpgc.residual(undefined as never), 'VPGC.residual: inputs must be an object, got undefined'],
      [() => vpgc.residual({ hidden: [[[0]]] } as never), 'VPGC.residual: hidden must be a tf.Tensor of rank 3 (float32), got a plain array (length 1)'],
      [() => vpgc.residual({ hidden: batch.hiddenTensor, imageFeatures: batch.featuresTensor, lastPromptIndex, imageToSample } as never),
        'VPGC: imageSpans must be an array (one list of spans per sample), got undefined'],
      [() => vpgc.guidance(batch.hiddenTensor, undefined as never), 'VPGC: lastPromptIndex must be an array of indices, got undefined'],
      [() => new QFormer({ config: { hiddenSize: '64' } } as never), 'QFormerConfig: hiddenSize must be a positive integer, got the string "64"'],
      [() => new QFormer({ config: { hidenSize: 64 } } as never), /QFormerConfig: unknown option "hidenSize" \(did you mean "hiddenSize"\?\)/],
      [() => new QFormer({ confg: {} } as never), /QFormer: unknown option "confg" \(did you mean "config"\?\)/],
      [() => new QFormer({ config: { layerNormEps: NaN } }), 'QFormerConfig: layerNormEps must be a finite number, got NaN'],
      [() => new QFormerVPG(undefined as never), 'QFormerVPG: args must be an object, got undefined'],
      [() => new QFormerVPG({ llmHiddenSize: H, lnVision: 'no' } as never), 'QFormerVPG: lnVision must be true or false, got the string "no"'],
      [() => new QFormerVPG({ llmHiddenSize: H, numQueryToken: 4 } as never), /QFormerVPG: unknown option "numQueryToken" \(did you mean "numQueryTokens"\?\)/],
      [() => vpg.forward(undefined as never), 'QFormerVPG.forward: features must be a tf.Tensor of rank 3 (float32), got undefined'],
      [() => attachVPGC(undefined as never), /attachVPGC: host must be a model implementing ModuleHost \(addHooks, setTrainable, baseModelShape\), such as .*; got undefined$/],
      [() => vpg.qformer.forward(undefined as never, batch.featuresTensor), 'QFormer.forward: queries must be a tf.Tensor (float32), got undefined'],
      [() => vpg.qformer.forward(vpg.queryTokensValue, 'features' as never), 'QFormer.forward: imageFeatures must be a tf.Tensor (float32), got the string "features"'],
    ];
    for (const [fn, message] of cases) expect(fn, String(message)).toThrow(message);
    batch.dispose();
    dispose();
  });
});
