/**
 * tfjs-layers serialisation of @mllm modules: `model.save` / `tf.loadLayersModel` (in memory) round-trips
 * a sequential and a functional model made of the nn modules — unique saved weight names, the same
 * predictions after reload — and the saved weights are the internal layout.
 */
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { LayerNorm, Linear, MlpGeluProjector, MultiHeadAttention, RMSNorm, SwiGLU, disposeStateDict, setSeed } from '../index.js';
import { decodeSavedWeights, expectClose, reloadLayersModel } from '../testing/index.js';

describe('tfjs-layers model.save / loadLayersModel', () => {
  it('round-trips a sequential model of Linear, RMSNorm, SwiGLU, LayerNorm and MlpGeluProjector', async () => {
    const tensorsBefore = tf.memory().numTensors;
    setSeed(7);
    const modules = [
      new MlpGeluProjector({ inFeatures: 4, outFeatures: 6 }),
      new RMSNorm({ dim: 6, eps: 1e-5 }),
      new SwiGLU({ hiddenSize: 6, intermediateSize: 5, bias: true }),
      new LayerNorm({ dim: 6 }),
      new Linear({ inFeatures: 6, outFeatures: 3 }),
      new Linear({ inFeatures: 3, outFeatures: 2, bias: false }),
    ];
    const model = tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [3, 4] }), ...modules] });
    const [projector, norm, swiglu, , linear] = modules as [MlpGeluProjector, RMSNorm, SwiGLU, LayerNorm, Linear];
    // Non-default norm weights, so a load that skipped them would show.
    const normWeight = tf.tensor1d([0.5, 1.5, -1, 2, 0.25, 1]);
    norm.loadStateDict(new Map([['weight', normWeight]]));
    const x = tf.randomNormal([2, 3, 4], 0, 1, 'float32', 3);
    const expected = model.predict(x) as tf.Tensor;

    const { artifacts, loaded } = await reloadLayersModel(model);
    const names = artifacts.weightSpecs!.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names.length).toBe(4 + 1 + 6 + 2 + 2 + 1);
    // `<layer name>.<reference name>`; the first is `….0.weight` (an nn.Sequential child), which tfjs'
    // loader would take for a Keras v3 file were it `…/0.weight`.
    expect(names[0]).toBe(`${projector.name}.0.weight`);
    expect(names).toContain(`${swiglu.name}.gate_proj.weight`);
    expect(names).toContain(`${swiglu.name}.down_proj.bias`);
    // tfjs' own format stores the internal layout: a Linear weight `[in, out]`, the transpose of its state dict's.
    const saved = decodeSavedWeights(artifacts);
    expect(saved[`${linear.name}.weight`].shape).toEqual([6, 3]);
    const reference = linear.stateDict();
    const transposed = tf.transpose(reference.get('weight')!);
    expectClose(saved[`${linear.name}.weight`], transposed, { atol: 0, rtol: 0 });
    tf.dispose([transposed, ...Object.values(saved)]);
    disposeStateDict(reference);

    const reloaded = loaded.layers.slice(loaded.layers.length - modules.length);
    expect(reloaded.map((l) => l.getClassName())).toEqual(['MlpGeluProjector', 'RMSNorm', 'SwiGLU', 'LayerNorm', 'Linear', 'Linear']);
    expect(reloaded.map((l) => l.name)).toEqual(modules.map((l) => l.name));
    expect((reloaded[1] as RMSNorm).eps).toBe(1e-5);
    expect((reloaded[2] as SwiGLU).useBias).toBe(true);
    const actual = loaded.predict(x) as tf.Tensor;
    expectClose(actual, expected, { atol: 0, rtol: 0 });
    // The reloaded modules carry the same reference-layout state dict.
    const before = swiglu.stateDict();
    const after = (reloaded[2] as SwiGLU).stateDict();
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [key, value] of before) expectClose(after.get(key)!, value, { atol: 0, rtol: 0 });
    disposeStateDict(before);
    disposeStateDict(after);
    tf.dispose([x, expected, actual, normWeight]);
    model.dispose();
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('round-trips a functional model with cross-attention (two inputs), each weight saved once', async () => {
    setSeed(11);
    const hidden = tf.input({ shape: [3, 4] });
    const memory = tf.input({ shape: [5, 6] });
    const attention = new MultiHeadAttention({ hiddenSize: 4, numHeads: 2, keyValueSize: 6, qkvBias: true });
    const attended = attention.apply([hidden, memory]) as tf.SymbolicTensor;
    const output = new Linear({ inFeatures: 4, outFeatures: 2 }).apply(new LayerNorm({ dim: 4 }).apply(attended)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: [hidden, memory], outputs: output });
    const inputs = [tf.randomNormal([2, 3, 4], 0, 1, 'float32', 1), tf.randomNormal([2, 5, 6], 0, 1, 'float32', 2)];
    const expected = model.predict(inputs) as tf.Tensor;

    const { artifacts, loaded } = await reloadLayersModel(model);
    const names = artifacts.weightSpecs!.map((s) => s.name);
    // q/k/v with bias, o without: 7 tensors, + LayerNorm 2 + Linear 2.
    expect(names.length).toBe(11);
    expect(new Set(names).size).toBe(11);
    expect(names.filter((n) => n.startsWith(`${attention.name}.`)).sort()).toEqual(
      ['k_proj.bias', 'k_proj.weight', 'o_proj.weight', 'q_proj.bias', 'q_proj.weight', 'v_proj.bias', 'v_proj.weight'].map((n) => `${attention.name}.${n}`),
    );
    const actual = loaded.predict(inputs) as tf.Tensor;
    expectClose(actual, expected, { atol: 0, rtol: 0 });
    tf.dispose([...inputs, expected, actual]);
    model.dispose();
    loaded.dispose();
  });

  it('names saved weights by the outermost module, also for children registered after their parameters exist', () => {
    const swiglu = new SwiGLU({ name: 'mlp', hiddenSize: 2, intermediateSize: 3 });
    expect(swiglu.weights.map((w) => w.originalName)).toEqual(['mlp.gate_proj.weight', 'mlp.up_proj.weight', 'mlp.down_proj.weight']);
    expect(swiglu.gateProj.weights.map((w) => w.originalName)).toEqual(['mlp.gate_proj.weight']);
    const lone = new Linear({ name: 'lone', inFeatures: 2, outFeatures: 2 });
    expect(lone.weights.map((w) => w.originalName)).toEqual(['lone.weight', 'lone.bias']);
    swiglu.dispose();
    lone.dispose();
  });
});
