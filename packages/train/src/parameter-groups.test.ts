import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, RMSNorm, setSeed } from '@mllm/core';
import { AdamW, ParameterGroups, hfNoDecaySelector, llavaParameterGroups, nameMatchesPattern } from './index.js';
import { TinyMultimodal, fixedMatrix, meanSquaredError } from './test-fixtures.js';

describe('name patterns', () => {
  it('match whole dot-separated components: exact, suffix, prefix, inside', () => {
    expect(nameMatchesPattern('lm_head.weight', 'lm_head.weight')).toBe(true);
    expect(nameMatchesPattern('model.norm.bias', 'bias')).toBe(true);
    expect(nameMatchesPattern('model.mm_projector.0.weight', 'model.mm_projector')).toBe(true);
    expect(nameMatchesPattern('model.mm_projector.0.weight', 'mm_projector')).toBe(true);
    expect(nameMatchesPattern('model.layers.10.mlp.weight', 'layers.1')).toBe(false);
    expect(nameMatchesPattern('model.norm.bias_x', 'bias')).toBe(false);
    expect(nameMatchesPattern('model.mm_projector_x.weight', 'mm_projector')).toBe(false);
  });
});

describe('parameter groups', () => {
  it('cascade lr and weight decay per parameter (string, RegExp and Module selectors)', () => {
    setSeed(1);
    const model = new TinyMultimodal();
    const groups = new ParameterGroups(model.namedParameters(), { lr: 2e-5, weightDecay: 0.1 }, [
      { name: 'no_decay', params: [/\.bias$/], weightDecay: 0 },
      { name: 'projector', params: ['mm_projector'], lr: 2e-3 },
      { name: 'moe', params: [model.moe], lr: 1e-4 },
    ]);
    expect(groups.resolve('mm_projector.fc1.bias')).toEqual({ lr: 2e-3, weightDecay: 0, groups: ['no_decay', 'projector'] });
    expect(groups.resolve('mm_projector.fc1.weight')).toEqual({ lr: 2e-3, weightDecay: 0.1, groups: ['projector'] });
    expect(groups.resolve('moe.weight')).toEqual({ lr: 1e-4, weightDecay: 0.1, groups: ['moe'] });
    expect(groups.resolve('lm.fc2.weight')).toEqual({ lr: 2e-5, weightDecay: 0.1, groups: [] });
    expect(groups.baseLearningRates()).toEqual({ default: 2e-5, projector: 2e-3, moe: 1e-4 });
    expect(() => new ParameterGroups(model.namedParameters(), { lr: 1, weightDecay: 0 }, [{ name: 'x', params: ['mm_projecter'] }]))
      .toThrow(/parameter group 'x': selector "mm_projecter" matches no parameter of the model/);
    expect(() => new ParameterGroups(model.namedParameters(), { lr: 1, weightDecay: 0 }, [{ name: 'x', params: ['moe'], lr: -1 }]))
      .toThrow(/parameter group 'x': lr must be a finite number >= 0, got -1/);
    model.dispose();
  });

  it('each group updates with its own learning rate (first Adam step moves by ≈ lr·sign(g))', () => {
    setSeed(2);
    const model = new TinyMultimodal();
    const lrs = { default: 1e-3, projector: 2e-3, moe: 1e-4 };
    const optimizer = new AdamW(model, {
      lr: lrs.default, weightDecay: 0,
      groups: [{ name: 'projector', params: ['mm_projector'], lr: lrs.projector }, { name: 'moe', params: [model.moe], lr: lrs.moe }],
    });
    const x = tf.tensor2d(fixedMatrix(5, 3, 3));
    const y = tf.tensor2d(fixedMatrix(5, 1, 4));
    const named = model.namedParameters();
    const before = new Map(named.map(([n, p]) => [n, Float64Array.from(p.variable.read().dataSync())]));
    const { grads } = tf.variableGrads(() => meanSquaredError(model.forward(x), y), model.trainableVariables());
    const byName = new Map(named.map(([n, p]) => [n, grads[(p.variable.read() as tf.Variable).name]]));
    optimizer.step(byName);
    let checked = 0;
    for (const [name, p] of named) {
      const expectedLr = name.startsWith('mm_projector.') ? lrs.projector : name.startsWith('moe.') ? lrs.moe : lrs.default;
      const g = byName.get(name)!.dataSync();
      const after = p.variable.read().dataSync();
      const b = before.get(name)!;
      for (let i = 0; i < g.length; i++) {
        if (Math.abs(g[i]) < 1e-4) continue; // step = lr·g/(|g|+eps): ≈ lr only where |g| ≫ eps
        expect(Math.abs(after[i] - b[i]) / expectedLr).toBeCloseTo(1, 3);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
    tf.dispose([x, y, ...Object.values(grads)]);
    optimizer.dispose();
    model.dispose();
  });

  it('hfNoDecaySelector picks biases and norm weights like the HF Trainer', () => {
    class Block extends Module {
      static readonly className = 'Block';
      constructor() {
        super({});
        this.addModule('proj', new Linear({ inFeatures: 2, outFeatures: 2 }));
        this.addModule('post_attention_layernorm', new RMSNorm({ dim: 2 }));
      }
    }
    const block = new Block();
    const select = hfNoDecaySelector(block);
    const chosen = block.namedParameters().filter(([n, p]) => select(n, p)).map(([n]) => n);
    expect(chosen).toEqual(['proj.bias', 'post_attention_layernorm.weight']);
    block.dispose();
  });

  it('llavaParameterGroups reproduces the reference create_optimizer groups (substring keys)', () => {
    setSeed(3);
    const model = new TinyMultimodal();
    const specs = llavaParameterGroups(model, { mmProjectorLr: 2e-3 });
    const groups = new ParameterGroups(model.namedParameters(), { lr: 2e-5, weightDecay: 0.05 }, specs);
    // reference: decay = not in a norm layer and "bias" not in name; projector = "mm_projector" in name
    for (const [name] of model.namedParameters()) {
      const decay = !name.includes('bias');
      const projector = name.includes('mm_projector');
      expect(groups.resolve(name)).toMatchObject({ lr: projector ? 2e-3 : 2e-5, weightDecay: decay ? 0.05 : 0 });
    }
    const follow = new ParameterGroups(model.namedParameters(), { lr: 1, weightDecay: 0 },
      llavaParameterGroups(model, { mmProjectorLr: 3, projectorKeys: ['moe'] }));
    expect(follow.resolve('moe.weight').lr).toBe(3);
    expect(follow.resolve('mm_projector.fc1.weight').lr).toBe(1);
    model.dispose();
  });
});
