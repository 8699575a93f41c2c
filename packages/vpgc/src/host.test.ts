import { describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import type { ForwardContext } from '@mllm/core';
import { disposeBatch } from '@mllm/models';
import { attachVPGC } from './index.js';
import { useTestBackend } from './test-support/backend.js';
import { randomizeVpgc } from './test-support/fixture.js';
import { tinyChatBatch } from '@mllm/models/testing';
import { hostH, hostNq, tinyVpgHost } from './test-support/host-fixture.js';

useTestBackend();

const Nq = hostNq;
const H = hostH;
const host = tinyVpgHost;
const batchOf = tinyChatBatch;

describe('VPG-C on the host MLLM', () => {
  it('is an exact no-op at init and fires once per forward, at the middle layer, only on image spans', () => {
    const { model, vpg } = host(1);
    const batch = batchOf(model);
    const before = model.forward(batch);
    const attached = attachVPGC(model);
    expect(attached.vpgc.updateLayer).toBe(2);
    const after = model.forward(batch);
    expect(Array.from(after.logits.dataSync())).toEqual(Array.from(before.logits.dataSync()));
    randomizeVpgc(attached.vpgc, 2);
    let seen: { input: Float32Array; output: Float32Array; ctx: ForwardContext } | null = null;
    const probe = model.addHooks({
      beforeLayer: (layer, hidden, ctx) => {
        if (layer === 2) seen = { ...(seen ?? { input: new Float32Array() }), output: hidden.dataSync() as Float32Array, ctx } as never;
        if (layer === 1) seen = { input: new Float32Array(), output: new Float32Array(), ctx } as never;
        return null;
      },
    });
    // record the hook's own input by wrapping it
    const original = attached.hooks.beforeLayer;
    let hookInput: Float32Array | null = null;
    attached.hooks.beforeLayer = (layer, hidden, ctx) => {
      if (layer === 2) hookInput = hidden.dataSync() as Float32Array;
      return original(layer, hidden, ctx);
    };
    const run = vi.spyOn(vpg.qformer, 'run');
    const changed = model.forward(batch);
    expect(run).toHaveBeenCalledTimes(2); // the VPG's own pass + the VPG-C re-run
    const { output, ctx } = seen!;
    const [, L, width] = changed.logits.shape;
    const spanPositions = new Set<number>();
    ctx.imageSpans.forEach((spans, b) => spans.forEach((s) => {
      expect(s.length).toBe(Nq);
      for (let t = 0; t < s.length; t++) spanPositions.add(b * L + s.start + t);
    }));
    expect(spanPositions.size).toBe(3 * Nq);
    for (let p = 0; p < 2 * L; p++) {
      const a = Array.from(hookInput!.slice(p * H, (p + 1) * H));
      const b = Array.from(output.slice(p * H, (p + 1) * H));
      if (spanPositions.has(p)) expect(b).not.toEqual(a);
      else expect(b).toEqual(a);
    }
    expect(width).toBe(262);
    run.mockRestore();
    probe.remove();
    tf.dispose([before.logits, before.labels!, before.attentionMask, after.logits, after.labels!, after.attentionMask, changed.logits, changed.labels!, changed.attentionMask]);
    disposeBatch(batch);
    attached.remove();
    attached.vpgc.dispose();
    model.dispose();
  });

  it('KV-cache generation runs the hook on prefill only and equals full re-run generation', () => {
    const { model, vpg } = host(3);
    const attached = attachVPGC(model);
    randomizeVpgc(attached.vpgc, 4, 3);
    const images = tf.randomUniform([3, 8, 8, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
    const prompts = ['<image> vs <image>: what changed?', '<image> describe'];
    const run = vi.spyOn(vpg.qformer, 'run');
    const start = tf.memory().numTensors;
    const cached = model.generate(prompts, images, { maxNewTokens: 2, eosTokenIds: [] });
    expect(tf.memory().numTensors).toBe(start);
    expect(run).toHaveBeenCalledTimes(2); // one VPG pass + one VPG-C re-run, at prefill
    run.mockClear();
    const full = model.generate(prompts, images, { maxNewTokens: 2, eosTokenIds: [], useCache: false });
    expect(full.tokenIds).toEqual(cached.tokenIds);
    // the hook is live in the scoring path too (the tiny host's greedy tokens are too uniform to show it)
    const one = images.slice([2, 0, 0, 0], [1, 8, 8, 3]) as tf.Tensor4D;
    const withHook = model.scoreOptions('<image> describe', one, ['red', 'blue']);
    attached.remove();
    const without = model.scoreOptions('<image> describe', one, ['red', 'blue']);
    expect(withHook[0]).not.toBeCloseTo(without[0], 4);
    one.dispose();
    run.mockRestore();
    images.dispose();
    attached.vpgc.dispose();
    model.dispose();
  });

  it('training through the host loss updates only the 5 VPG-C tensors', () => {
    const { model } = host(5);
    const attached = attachVPGC(model);
    const vpgc = attached.vpgc;
    const batch = batchOf(model);
    const own = new Set(['model.query_tokens', 'model.qformer_proj.weight', 'model.qformer_proj.bias', 'model.llm_proj.weight', 'model.llm_proj.bias']);
    expect(model.namedParameters().filter(([n]) => own.has(n)).map(([, p]) => p)).toEqual(vpgc.namedParameters().map(([, p]) => p));
    const frozen = model.namedParameters().filter(([n]) => !own.has(n));
    expect(frozen.every(([, p]) => !p.variable.trainable)).toBe(true);
    const snapshot = frozen.map(([, p]) => Array.from(p.variable.read().dataSync()));
    const optimizer = tf.train.adam(1e-2);
    const start = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => model.loss(batch));
    expect(Object.keys(grads).sort()).toEqual(vpgc.trainableVariables().map((v) => v.name).sort());
    optimizer.applyGradients(grads as never);
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors - start).toBeLessThanOrEqual(10); // Adam slots (2 per variable)
    expect(frozen.map(([, p]) => Array.from(p.variable.read().dataSync()))).toEqual(snapshot);
    // step 1 from the zero init moves llm_proj only (the other gradients are exactly zero)
    const moved = vpgc.namedParameters().filter(([name, p]) =>
      name === 'query_tokens' ? false : Array.from(p.variable.read().dataSync()).some((v) => v !== 0)).map(([n]) => n).sort();
    expect(moved).toEqual(['llm_proj.bias', 'llm_proj.weight']);
    optimizer.dispose();
    disposeBatch(batch);
    attached.remove();
    vpgc.dispose();
    model.dispose();
  });
});
