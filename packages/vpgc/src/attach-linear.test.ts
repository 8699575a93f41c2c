import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { disposeStateDict, loadAdapter, moduleKind, parseAdapterConfig, saveAdapter, type ImageSpan, type StateDict } from '@mllm/core';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { IMAGE_TOKEN_INDEX, disposeBatch, loadHostModel, loadLlavaModel, saveHostModel, type HostMLLM, type LlavaModel } from '@mllm/models';
import { tinyChatBatch, tinyHost, tinyImages, tinyLM } from '@mllm/models/testing';
import { LinearVPGC, attachLinearVPGC, attachLinearVPGCFromRecord, attachVPGC, type AttachedLinearVPGC } from './index.js';
import { linearVpgcHook64 } from './test-support/float64-reference.js';
import { useTestBackend } from './test-support/backend.js';
import { paramsF64, randomParams, toTensors } from './test-support/params.js';
import { tinyVpgHost } from './test-support/host-fixture.js';

useTestBackend();

const NAMES = ['model.guidance_proj.weight', 'model.visual_proj.weight'];
const packageJson = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
const values = (dict: StateDict) => new Map([...dict].map(([k, v]) => [k, Array.from(v.dataSync())]));

/** The tiny LLaVA-style host (mlp2x_gelu projector, 12-wide patch features, H = 16, 4 layers). */
const llavaHost = (seed: number, selectFeature: 'patch' | 'cls_patch' = 'patch'): HostMLLM =>
  tinyHost(seed, { numLayers: 4 }, { selectFeature });

/** Random weights (std 0.5: large enough to move the tiny host's logits) through the attached handle. */
function randomize(attached: AttachedLinearVPGC, seed: number, std = 0.5) {
  const shapes = [...paramsF64(attached.module, 'model.')].map(([name, value]) => [name, value.shape] as [string, number[]]);
  const params = randomParams(shapes, seed, std);
  const tensors = toTensors(params);
  attached.loadStateDict(tensors);
  disposeStateDict(tensors);
  return params;
}

function logitsOf(model: HostMLLM): number[] {
  const batch = tinyChatBatch(model);
  const out = model.forward(batch);
  const logits = Array.from(out.logits.dataSync());
  tf.dispose([out.logits, out.labels!, out.attentionMask]);
  disposeBatch(batch);
  return logits;
}

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'linear-vpgc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('attachLinearVPGC on a LLaVA-style host (mlp2x_gelu projector)', () => {
  it('registers model.guidance_proj / model.visual_proj, freezes the rest, records the kind, is a no-op at init, and detaches', () => {
    const model = llavaHost(1);
    const base = logitsOf(model);
    const baseCount = model.namedParameters().length;
    const attached = attachLinearVPGC(model);
    expect(attached.type).toBe('vpgc_linear');
    expect(attached.module).toBeInstanceOf(LinearVPGC);
    expect(attached.config).toEqual({ updateLayer: 2, llmHiddenSize: 16, visionHiddenSize: 12 });
    const trainable = model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n).sort();
    expect(trainable).toEqual(NAMES);
    expect(model.namedParameters()).toHaveLength(baseCount + 2);
    const dict = attached.stateDict();
    expect([...dict.keys()].sort()).toEqual(NAMES);
    expect(dict.get('model.guidance_proj.weight')!.shape).toEqual([16, 16]);
    expect(dict.get('model.visual_proj.weight')!.shape).toEqual([16, 12]);
    disposeStateDict(dict);
    expect(attached.moduleRecord()).toEqual({
      module_type: 'vpgc_linear',
      module_package: packageJson.name,
      module_version: packageJson.version,
      config: { update_layer: 2, llm_hidden_size: 16, vision_hidden_size: 12 },
    });
    expect(moduleKind('vpgc_linear')?.version).toBe(packageJson.version); // registered on import
    expect(logitsOf(model)).toEqual(base); // guidance_proj starts at zero: exactly the base model
    randomize(attached, 2);
    expect(logitsOf(model)).not.toEqual(base);
    attached.remove();
    attached.remove(); // idempotent
    expect(model.namedParameters()).toHaveLength(baseCount);
    expect(logitsOf(model)).toEqual(base);
    attached.module.dispose();
    model.dispose();
  });

  for (const selectFeature of ['patch', 'cls_patch'] as const) {
    it(`at the update layer the host's hidden states get the float64 V̄ on the image tokens only (${selectFeature})`, () => {
      const model = llavaHost(3, selectFeature);
      let seen: { hidden: Float64Array; features: Float64Array; spans: ImageSpan[][]; toSample: number[]; last: number[]; shape: number[] } | null = null;
      let after: Float32Array | null = null;
      // attach order = run order: a probe before VPG-C sees its input, one after sees its output
      const before = model.addHooks({
        beforeLayer: (layer, hidden, ctx) => {
          if (layer === 2 && ctx.isPrefill) {
            seen = {
              hidden: Float64Array.from(hidden.dataSync()),
              features: Float64Array.from(ctx.imageFeatures!.dataSync()),
              spans: ctx.imageSpans,
              toSample: ctx.imageToSample,
              last: ctx.lastPromptIndex,
              shape: [...hidden.shape, ...ctx.imageFeatures!.shape],
            };
          }
          return null;
        },
      });
      const attached = attachLinearVPGC(model);
      const params = randomize(attached, 4);
      const probe = model.addHooks({
        beforeLayer: (layer, hidden) => {
          if (layer === 2) after = hidden.dataSync() as Float32Array;
          return null;
        },
      });
      const batch = tinyChatBatch(model);
      const out = model.forward(batch);
      const { hidden, features, spans, toSample, last, shape } = seen!;
      const [B, L, H, n, Nv, Dv] = shape;
      expect([n, Nv, Dv]).toEqual([3, selectFeature === 'patch' ? 4 : 5, 12]);
      const images = Array.from({ length: n }, (_, k) => features.slice(k * Nv * Dv, (k + 1) * Nv * Dv));
      const imageStart = Array.from({ length: n }, (_, k) => spans.flat().find((s) => s.imageIndex === k)!.start);
      const expected = linearVpgcHook64(params, { hidden, B, L, H, lastPromptIndex: last, images, Nv, Dv, imageToSample: toSample, imageStart });
      expectClose(after!, expected, { label: 'layer-2 input after the hook' });
      const changed = new Set<number>();
      for (let p = 0; p < B * L; p++) if (after!.slice(p * H, (p + 1) * H).some((v, e) => v !== Math.fround(hidden[p * H + e]))) changed.add(p);
      const onSpan = new Set(spans.flatMap((s, b) => s.flatMap((x) => Array.from({ length: x.length }, (_, t) => b * L + x.start + t))));
      expect(onSpan.size).toBe(n * Nv);
      expect([...changed].sort()).toEqual([...onSpan].sort());
      tf.dispose([out.logits, out.labels!, out.attentionMask]);
      disposeBatch(batch);
      probe.remove();
      before.remove();
      attached.remove();
      attached.module.dispose();
      model.dispose();
    });
  }

  it('KV-cache generation equals full re-run generation and keeps the tensor count flat', () => {
    const model = llavaHost(5);
    const attached = attachLinearVPGC(model);
    randomize(attached, 6, 2);
    const images = tinyImages(3, 9);
    const prompts = ['<image> vs <image>: what changed?', '<image> describe'];
    model.generate(prompts, images, { maxNewTokens: 1, eosTokenIds: [] }); // first-call caches
    const residual = vi.spyOn(attached.module, 'residual');
    const start = tf.memory().numTensors;
    const cached = model.generate(prompts, images, { maxNewTokens: 4, eosTokenIds: [] });
    expect(tf.memory().numTensors).toBe(start);
    expect(residual).toHaveBeenCalledTimes(1); // prefill only: cached decode steps keep the updated K/V
    residual.mockClear();
    const full = model.generate(prompts, images, { maxNewTokens: 4, eosTokenIds: [], useCache: false });
    expect(residual).toHaveBeenCalledTimes(4); // one full forward per new token
    expect(full.tokenIds).toEqual(cached.tokenIds);
    residual.mockRestore();
    // the hook is live on this path: the option scores move when it is removed
    const one = images.slice([2, 0, 0, 0], [1, 8, 8, 3]) as tf.Tensor4D;
    const withHook = model.scoreOptions('<image> describe', one, ['red', 'blue']);
    attached.remove();
    const without = model.scoreOptions('<image> describe', one, ['red', 'blue']);
    expect(withHook[0]).not.toBeCloseTo(without[0], 4);
    tf.dispose([one, images]);
    attached.module.dispose();
    model.dispose();
  });

  it('attach, forward and remove keep the tensor count flat', () => {
    const model = llavaHost(7);
    logitsOf(model); // first-call caches
    expectNoLeaks(() => {
      const attached = attachLinearVPGC(model);
      randomize(attached, 8);
      logitsOf(model);
      attached.remove();
      attached.module.dispose();
    });
    model.dispose();
  });

  it('training through the host loss updates only guidance_proj on the first step (visual_proj\'s gradient is ∝ W1·g = 0)', () => {
    const model = llavaHost(9);
    const attached = attachLinearVPGC(model);
    const frozen = model.namedParameters().filter(([n]) => !NAMES.includes(n));
    const snapshot = frozen.map(([, p]) => Array.from(p.variable.read().dataSync()));
    const before = values(attached.stateDict());
    const batch = tinyChatBatch(model);
    const optimizer = tf.train.adam(1e-2);
    const { value, grads } = tf.variableGrads(() => model.loss(batch));
    expect(Object.keys(grads).sort()).toEqual(attached.module.trainableVariables().map((v) => v.name).sort());
    optimizer.applyGradients(grads as never);
    tf.dispose([value, ...Object.values(grads)]);
    expect(frozen.map(([, p]) => Array.from(p.variable.read().dataSync()))).toEqual(snapshot);
    const dict = attached.stateDict();
    const now = values(dict);
    disposeStateDict(dict);
    expect(now.get('model.visual_proj.weight')).toEqual(before.get('model.visual_proj.weight'));
    expect(now.get('model.guidance_proj.weight')!.some((v) => v !== 0)).toBe(true);
    optimizer.dispose();
    disposeBatch(batch);
    attached.remove();
    attached.module.dispose();
    model.dispose();
  });

  it('saveAdapter → loadAdapter into a fresh host with the same base gives the same logits and weights', async () => {
    const model = llavaHost(11);
    const attached = attachLinearVPGC(model, { updateLayer: 1 });
    randomize(attached, 12);
    const expected = logitsOf(model);
    const files = saveAdapter(attached);
    const config = parseAdapterConfig(files.config);
    expect(config.module_type).toBe('vpgc_linear');
    expect(config.base_model).toEqual(model.baseModelShape());
    expect(config.config).toEqual({ update_layer: 1, llm_hidden_size: 16, vision_hidden_size: 12 });
    const fresh = llavaHost(11);
    const loaded = await loadAdapter(fresh, files);
    expect(loaded.module).toBeInstanceOf(LinearVPGC);
    expect(loaded.config).toEqual(attached.config);
    expect(logitsOf(fresh)).toEqual(expected);
    const [a, b] = [attached.stateDict(), loaded.stateDict()];
    expect(values(b)).toEqual(values(a));
    disposeStateDict(a);
    disposeStateDict(b);
    for (const m of [attached, loaded]) {
      m.remove();
      m.module.dispose();
    }
    model.dispose();
    fresh.dispose();
  });

  it('a host saved with it attached reloads with one call (re-attached, same logits)', async () => {
    const model = llavaHost(13);
    const attached = attachLinearVPGC(model);
    randomize(attached, 14);
    const expected = logitsOf(model);
    const hostDir = join(dir, 'host');
    await saveHostModel(model, hostDir);
    const config = JSON.parse(await readFile(join(hostDir, 'config.json'), 'utf8'));
    expect(config.mllm_modules.map((m: { module_type: string }) => m.module_type)).toEqual(['vpgc_linear']);
    const restored = await loadHostModel(hostDir);
    expect(restored.namedParameters().map(([n]) => n)).toEqual(model.namedParameters().map(([n]) => n));
    expect(logitsOf(restored)).toEqual(expected);
    attached.remove();
    attached.module.dispose();
    model.dispose();
    restored.dispose();
  });

  it('refuses hosts it cannot serve and bad records, naming the argument and attaching nothing', () => {
    const { model: qformerHost } = tinyVpgHost(15);
    expect(() => attachLinearVPGC(qformerHost)).toThrow(/projector is a QFormerVPG; .*Use attachVPGC/);
    expect(qformerHost.hooks).toHaveLength(0);
    qformerHost.dispose();
    const textOnly = tinyLM(16);
    expect(() => attachLinearVPGC(textOnly as never)).toThrow(/no vision tower/);
    textOnly.dispose();
    const model = llavaHost(17);
    expect(() => attachVPGC(model)).toThrow(/use attachLinearVPGC/);
    expect(() => attachLinearVPGC(model, { updateLayer: 4 })).toThrow(/updateLayer must be in \[0, 4\), got 4/);
    expect(() => attachLinearVPGC(model, { updatelayer: 1 } as never)).toThrow(/unknown option "updatelayer" \(did you mean "updateLayer"\?\)/);
    // tfjs Layer keys are not attachLinearVPGC's (nothing would read them): unknown, with the accepted keys listed
    for (const key of ['name', 'trainable', 'dtype', 'inputShape', 'weights', 'customObjects']) {
      expect(() => attachLinearVPGC(model, { updateLayer: 1, [key]: 1 } as never)).toThrow(`attachLinearVPGC: unknown option "${key}"; known: updateLayer, vpgc, freezeBase`);
    }
    const other = new LinearVPGC({ llmHiddenSize: 16, visionHiddenSize: 10, updateLayer: 2 });
    expect(() => attachLinearVPGC(model, { vpgc: other })).toThrow(/config.vpgc.visionHiddenSize must equal the host's vision_hidden_size 12, got 10/);
    other.dispose();
    const record = (config: Record<string, unknown>) => ({ module_type: 'vpgc_linear', module_package: '@mllm/vpgc', module_version: packageJson.version, config });
    const good = { update_layer: 1, llm_hidden_size: 16, vision_hidden_size: 12 };
    expect(() => attachLinearVPGCFromRecord(model, record({ ...good, vision_hidden_size: 8 }))).toThrow(/config.vision_hidden_size must equal the host's vision_hidden_size 12, got 8/);
    expect(() => attachLinearVPGCFromRecord(model, record({ ...good, update_layer: 9 }))).toThrow(/config.update_layer must be an integer in \[0, 4\), got 9/);
    expect(() => attachLinearVPGCFromRecord(model, record({ ...good, extra: 1 }))).toThrow(/unknown config field extra/);
    expect(model.hooks).toHaveLength(0);
    expect(model.namedParameters().every(([, p]) => p.variable.trainable)).toBe(true); // nothing frozen either
    const attached = attachLinearVPGCFromRecord(model, record(good));
    expect(attached.config.updateLayer).toBe(1);
    attached.remove();
    attached.module.dispose();
    model.dispose();
  });
});

/** A LLaVA checkpoint in the authors' layout (Qwen2 decoder, CLIP tower, mlp2x_gelu), from models' parity fixtures. */
const llavaCheckpoint = fileURLToPath(new URL('../../models/src/__fixtures__/reference/llava-qwen2-clip', import.meta.url));

describe('attachLinearVPGC on a LlavaModel loaded from a LLaVA checkpoint', () => {
  const ids = [
    [11, 12, IMAGE_TOKEN_INDEX, 13, IMAGE_TOKEN_INDEX, 14, 15],
    [21, IMAGE_TOKEN_INDEX, 22, 23, 0, 0, 0],
  ];
  const mask = [
    [1, 1, 1, 1, 1, 1, 1],
    [1, 1, 1, 1, 0, 0, 0],
  ];
  const logits = (model: LlavaModel, pixels: tf.Tensor4D): number[] => {
    const out = model.forward({ inputIds: ids, attentionMask: mask, pixelValues: pixels });
    const values = Array.from(out.logits.dataSync());
    out.logits.dispose();
    return values;
  };

  it('no-op at init; the float64 V̄ at the update layer; cached generation equals full re-runs; adapter round trip', async () => {
    const model = await loadLlavaModel(llavaCheckpoint);
    const pixels = tf.randomNormal([3, 3, 12, 12], 0, 1, 'float32', 7) as tf.Tensor4D;
    const base = logits(model, pixels);
    let seen: { hidden: Float64Array; features: Float64Array; spans: ImageSpan[][]; toSample: number[]; last: number[]; shape: number[] } | null = null;
    let after: Float32Array | null = null;
    const before = model.addHooks({
      beforeLayer: (layer, hidden, ctx) => {
        if (layer === 1 && ctx.isPrefill) {
          seen = {
            hidden: Float64Array.from(hidden.dataSync()), features: Float64Array.from(ctx.imageFeatures!.dataSync()),
            spans: ctx.imageSpans, toSample: ctx.imageToSample, last: ctx.lastPromptIndex, shape: [...hidden.shape, ...ctx.imageFeatures!.shape],
          };
        }
        return null;
      },
    });
    const attached = attachLinearVPGC(model);
    expect(attached.config).toEqual({ updateLayer: 1, llmHiddenSize: 32, visionHiddenSize: 24 });
    expect(model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n).sort()).toEqual(NAMES);
    expect(logits(model, pixels)).toEqual(base); // guidance_proj = 0: exactly the checkpoint's model
    const params = randomize(attached, 21, 1);
    const probe = model.addHooks({
      beforeLayer: (layer, hidden) => {
        if (layer === 1) after = hidden.dataSync() as Float32Array;
        return null;
      },
    });
    const expected = logits(model, pixels);
    expect(Math.max(...expected.map((v, i) => Math.abs(v - base[i]!)))).toBeGreaterThan(1e-3);
    const { hidden, features, spans, toSample, last, shape } = seen!;
    const [B, L, H, n, Nv, Dv] = shape;
    expect([n, Dv]).toEqual([3, 24]);
    const images = Array.from({ length: n }, (_, k) => features.slice(k * Nv * Dv, (k + 1) * Nv * Dv));
    const imageStart = Array.from({ length: n }, (_, k) => spans.flat().find((x) => x.imageIndex === k)!.start);
    expectClose(after!, linearVpgcHook64(params, { hidden, B, L, H, lastPromptIndex: last, images, Nv, Dv, imageToSample: toSample, imageStart }), { label: 'LlavaModel layer-1 input' });
    probe.remove();
    before.remove();
    // KV-cache generation runs the hook on the prefill only and gives the tokens of full re-runs
    const residual = vi.spyOn(attached.module, 'residual');
    const cached = model.generate(ids, { pixelValues: pixels, attentionMask: mask, maxNewTokens: 3 });
    expect(residual).toHaveBeenCalledTimes(1);
    const full = model.generate(ids, { pixelValues: pixels, attentionMask: mask, maxNewTokens: 3, useCache: false });
    expect(full).toEqual(cached);
    residual.mockRestore();
    // saveAdapter → loadAdapter into a fresh copy of the checkpoint's model gives the same logits
    const fresh = await loadLlavaModel(llavaCheckpoint);
    const loaded = await loadAdapter(fresh, saveAdapter(attached));
    expect(loaded.type).toBe('vpgc_linear');
    expect(logits(fresh, pixels)).toEqual(expected);
    await expectNoLeaks(() => void logits(model, pixels));
    for (const m of [attached, loaded]) {
      m.remove();
      m.module.dispose();
    }
    expect(logits(model, pixels)).toEqual(base);
    pixels.dispose();
    model.dispose();
    fresh.dispose();
  });
});
