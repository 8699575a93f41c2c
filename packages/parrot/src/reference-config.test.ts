import { describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ParrotMoE } from './parrot-moe.js';
import { parseReferenceConfig } from './reference-config.js';
import { expectClose } from '@mllm/core/testing';
import { batchTensors, randomBatch, randomWeights, weightsToStateDict } from './testing/fixtures.js';

/** The MoE part of a stage-2 `config.json` as `initialize_moe_modules` writes it (tiny dims). */
const RELEASED = {
  architectures: ['ParrotQwen2ForCausalLM'],
  model_type: 'parrot_qwen2',
  hidden_size: 16,
  mm_vision_select_feature: 'cls_patch',
  num_experts: 3,
  moe_hidden_size: 16,
  moe_intermediate_size: 24,
  moe_top_k: 6,
  moe_weight: 0.1,
  use_moe: true,
  use_moe_residual: true,
};

function withoutKey(key: string): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...RELEASED };
  delete copy[key];
  return copy;
}

describe('ParrotMoE.fromReferenceConfig', () => {
  it('reads the released keys; moe_top_k is recorded but routing stays dense (as the reference)', () => {
    const parsed = parseReferenceConfig(JSON.stringify(RELEASED));
    expect(parsed.args).toEqual({ hiddenSize: 16, intermediateSize: 24, numExperts: 3, moeWeight: 0.1, useMoe: true, useResidual: true });
    expect(parsed.referenceTopK).toBe(6);
    expect(parsed.moeWeightSource).toBe('config');
    const moe = ParrotMoE.fromReferenceConfig(RELEASED);
    expect(moe.topK).toBeNull();
    expect(moe.moeWeight).toBe(0.1);
    expect(moe.experts).toHaveLength(3);
    moe.dispose();
  });

  it('α pitfall: the 1.0 fallback warns once per process, never for a config with the key or an explicit missingMoeWeight', async () => {
    vi.resetModules(); // a fresh module: earlier tests in this file may already have warned
    const fresh = (await import('./reference-config.js')) as typeof import('./reference-config.js');
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      fresh.parseReferenceConfig(RELEASED);
      fresh.parseReferenceConfig(withoutKey('moe_weight'), { missingMoeWeight: 1.0 });
      expect(warn).not.toHaveBeenCalled();
      expect(fresh.parseReferenceConfig(withoutKey('moe_weight')).args.moeWeight).toBe(1.0);
      fresh.parseReferenceConfig(withoutKey('moe_weight'));
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/no 'moe_weight', so α = 1\.0 .*training used 0\.1.*\{ missingMoeWeight: 0\.1 \}/);
    } finally {
      warn.mockRestore();
    }
  });

  it('α pitfall: without moe_weight the reference module uses 1.0 (output differs by 0.9·H), unless overridden', () => {
    const parsed = parseReferenceConfig(withoutKey('moe_weight'));
    expect(parsed.args.moeWeight).toBe(1.0);
    expect(parsed.moeWeightSource).toBe('fallback');
    expect(parseReferenceConfig(withoutKey('moe_weight'), { missingMoeWeight: 0.1 }).args.moeWeight).toBe(0.1);

    const trained = ParrotMoE.fromReferenceConfig(RELEASED);
    const fallback = ParrotMoE.fromReferenceConfig(withoutKey('moe_weight'));
    const dict = weightsToStateDict(randomWeights(5, 16, 24, 3));
    trained.loadStateDict(dict);
    fallback.loadStateDict(dict);
    const inputs = batchTensors(randomBatch(6, 5, 16, [[1, 1, 1]]));
    const a = trained.forward(inputs);
    const b = fallback.forward(inputs);
    const difference = tf.sub(b.output, a.output);
    const expected = tf.mul(inputs.visual, 0.9);
    expectClose(difference, expected, { rtol: 1e-5, atol: 1e-6, label: '(α=1) − (α=0.1)' });
    tf.dispose([...dict.values(), inputs.visual, inputs.text, inputs.textMask, a.output, a.routingWeights, a.textAttention,
      b.output, b.routingWeights, b.textAttention, difference, expected]);
    trained.dispose();
    fallback.dispose();
  });

  it('missing use_moe / use_moe_residual default to true (getattr fallbacks); use_moe false = identity', () => {
    const parsed = parseReferenceConfig(withoutKey('use_moe'));
    expect(parsed.args.useMoe).toBe(true);
    expect(parseReferenceConfig(withoutKey('use_moe_residual')).args.useResidual).toBe(true);
    const stage1 = ParrotMoE.fromReferenceConfig({ ...RELEASED, use_moe: false });
    expect(stage1.stage).toBe(1);
    stage1.dispose();
  });

  it('overrides set extra arguments', () => {
    const moe = ParrotMoE.fromReferenceConfig(RELEASED, { overrides: { expertStrategy: 'wide', name: 'parrot_moe' } });
    expect(moe.expertStrategy).toBe('wide');
    expect(moe.name).toBe('parrot_moe');
    moe.dispose();
  });

  it('rejects bad configs with the key, the expectation and the value', () => {
    expect(() => parseReferenceConfig(withoutKey('num_experts'))).toThrow(/'num_experts' must be a positive integer, got undefined/);
    expect(() => parseReferenceConfig({ ...RELEASED, moe_intermediate_size: 2.5 })).toThrow(/'moe_intermediate_size' must be a positive integer, got 2.5/);
    expect(() => parseReferenceConfig({ ...RELEASED, moe_weight: '0.1' })).toThrow(/'moe_weight' must be a finite number, got "0.1"/);
    expect(() => parseReferenceConfig({ ...RELEASED, use_moe: 'yes' })).toThrow(/'use_moe' must be a boolean, got "yes"/);
    expect(() => parseReferenceConfig({ ...RELEASED, mm_vision_select_feature: 'patch' })).toThrow(/needs the CLS token .*got "patch"/);
    expect(() => parseReferenceConfig('[1, 2]')).toThrow(/config must be a JSON object/);
  });
});
