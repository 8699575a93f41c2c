/** `attachParrot` on core's module contract: tiny host, adapter round trips, records, errors. */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ADAPTER_CONFIG_FILE, disposeStateDict, loadAdapter, loadAdapterFiles, moduleKind, parseAdapterConfig, saveAdapter, saveAdapterFiles, setSeed, stateDict, type ModuleRecord } from '@mllm/core';
import type { HostMLLM } from '@mllm/models';
import { expectNoLeaks } from '@mllm/core/testing';
import { ParrotMoE } from './parrot-moe.js';
import { parrotHooks } from './hooks.js';
import { PARROT_MODULE_TYPE, attachParrot, attachParrotFromRecord, type AttachedParrot } from './attach.js';
import { PARROT_VERSION } from './version.js';
import { parseReferenceConfig } from './reference-config.js';
import { disposeBatch, logitsOf, tinyLM, tinyTokenBatch } from '@mllm/models/testing';
import { FEATURES, H, tinyHost, tinyMoE } from './testing/host-fixtures.js';

const values = (dict: Map<string, tf.Tensor>) => new Map([...dict].map(([k, v]) => [k, Array.from(v.dataSync())]));

function moduleValues(attached: { stateDict(): Map<string, tf.Tensor> }): Map<string, number[]> {
  const dict = attached.stateDict();
  const out = values(dict);
  disposeStateDict(dict);
  return out;
}

function hostKeys(model: HostMLLM): string[] {
  const dict = stateDict(model);
  const keys = [...dict.keys()];
  disposeStateDict(dict);
  return keys;
}

const trainableNames = (model: HostMLLM) => model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n);

describe('attachParrot', () => {
  it('builds the MoE from the host shape, registers it as model.moe_model.*, and runs like parrotHooks', () => {
    const model = tinyHost();
    const batch = tinyTokenBatch(model, FEATURES);
    const baseKeys = hostKeys(model);
    setSeed(11);
    const parrot = attachParrot(model, { intermediateSize: 24, numExperts: 3, moeWeight: 0.2 });
    expect(parrot.type).toBe('parrot');
    expect(parrot.module.hiddenSize).toBe(H);
    expect({ ...parrot.config }).toEqual({
      hiddenSize: H, intermediateSize: 24, numExperts: 3, moeWeight: 0.2, useMoe: true, useResidual: true, topK: null, auxLossCoefficient: 0, multiImage: 'clean',
    });
    const moeKeys = parrot.module.namedParameters('model.moe_model.').map(([k]) => k);
    expect(moeKeys).toHaveLength(1 + 3 * 3);
    expect(hostKeys(model)).toEqual([...baseKeys, ...moeKeys]);
    expect([...moduleValues(parrot).keys()]).toEqual(moeKeys);
    const attachedLogits = logitsOf(model, batch);
    parrot.remove();
    // the same MoE through the old door gives the same logits, bitwise
    const handle = model.addHooks(parrotHooks(parrot.module));
    expect(logitsOf(model, batch)).toEqual(attachedLogits);
    handle.remove();
    parrot.module.dispose();
    disposeBatch(batch);
    model.dispose();
  });

  it('remove() detaches (host logits and state dict as before), is idempotent, and leaves the MoE usable', () => {
    const model = tinyHost();
    const batch = tinyTokenBatch(model, FEATURES);
    const base = logitsOf(model, batch);
    const baseKeys = hostKeys(model);
    const parrot = attachParrot(model, { moe: tinyMoE() });
    expect(logitsOf(model, batch)).not.toEqual(base);
    parrot.remove();
    parrot.remove();
    expect(parrot.isAttached).toBe(false);
    expect(hostKeys(model)).toEqual(baseKeys);
    expect(logitsOf(model, batch)).toEqual(base);
    expect(parrot.module.isDisposed).toBe(false);
    parrot.module.dispose();
    disposeBatch(batch);
    model.dispose();
  });

  it('attach, forward and remove keep tf.memory flat (besides the MoE the caller owns)', () => {
    const model = tinyHost();
    const batch = tinyTokenBatch(model, FEATURES);
    const moe = tinyMoE();
    expectNoLeaks(() => {
      const parrot = attachParrot(model, { moe });
      logitsOf(model, batch);
      const files = saveAdapter(parrot);
      expect(files.weights.byteLength).toBeGreaterThan(0);
      parrot.remove();
    });
    moe.dispose();
    disposeBatch(batch);
    model.dispose();
  });

  it('freezeBase: default leaves the host trainable (Parrot stage 2 trains the LLM); true freezes it; the MoE follows its stage', () => {
    const model = tinyHost();
    const hostTrainable = trainableNames(model);
    expect(hostTrainable.length).toBeGreaterThan(0);
    const moe = tinyMoE();
    moe.setTrainable(false);
    const parrot = attachParrot(model, { moe });
    expect(trainableNames(model)).toEqual([...hostTrainable, ...moe.namedParameters('model.moe_model.').map(([k]) => k)]);
    parrot.remove();
    const frozen = attachParrot(model, { moe, freezeBase: true });
    expect(trainableNames(model)).toEqual(moe.namedParameters('model.moe_model.').map(([k]) => k));
    frozen.remove();
    model.setTrainable(true);
    const stage1 = attachParrot(model, { moe: moe.setStage(1) });
    expect(trainableNames(model)).toEqual(hostTrainable);
    stage1.remove();
    moe.dispose();
    model.dispose();
  });

  it("refuses a host that does not project the CLS token, at attach time, building nothing", () => {
    const patch = tinyHost(1, 'patch');
    const keys = hostKeys(patch);
    const before = tf.memory().numTensors;
    expect(() => attachParrot(patch, { intermediateSize: 24, numExperts: 3 })).toThrow(
      /attachParrot: Parrot routes each image with its projected CLS token .*vision_select_feature .* must be 'cls_patch', got the string "patch"/,
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(hostKeys(patch)).toEqual(keys);
    patch.dispose();
    const textOnly = tinyLM(1, { hiddenSize: H, numLayers: 1, maxLength: 64 });
    expect(() => attachParrot(textOnly, { intermediateSize: 24, numExperts: 3 })).toThrow(/must be 'cls_patch', got undefined/);
    textOnly.dispose();
  });

  it('bad config: clear errors naming the field, nothing attached', () => {
    const model = tinyHost();
    const keys = hostKeys(model);
    const moe = tinyMoE();
    const other = new ParrotMoE({ hiddenSize: H + 2, intermediateSize: 4, numExperts: 2 });
    expect(() => attachParrot({} as never, {})).toThrow(/attachParrot: host must be a model implementing ModuleHost/);
    expect(() => attachParrot(model, { numExperts: 3 })).toThrow('attachParrot: config.intermediateSize must be a positive integer, got undefined');
    expect(() => attachParrot(model, { moe, numExperts: 3 })).toThrow(/give either config.moe or the fields to build one, not both \(got moe and numExperts\)/);
    expect(() => attachParrot(model, { moe: other })).toThrow(`attachParrot: config.moe.hiddenSize must equal the host's hidden_size ${H}, got ${H + 2}`);
    expect(() => attachParrot(model, { moe: {} as never })).toThrow('attachParrot: config.moe must be a ParrotMoE, got an object');
    expect(() => attachParrot(model, { moe, multiImage: 'all' as never })).toThrow(`config.multiImage must be 'clean' or 'reference', got the string "all"`);
    expect(() => attachParrot(model, { moe, freezeBase: 'yes' as never })).toThrow('config.freezeBase must be true or false');
    expect(() => attachParrot(model, { moe, numExpert: 3 } as never)).toThrow(/unknown option "numExpert" \(did you mean "numExperts"\?\)/);
    // tfjs Layer keys are not Parrot's (the MoE would never see them): unknown, with the accepted keys listed
    const accepted = 'known: moe, intermediateSize, numExperts, moeWeight, useMoe, useResidual, topK, auxLossCoefficient, expertStrategy, multiImage, onForward, freezeBase';
    for (const key of ['name', 'trainable', 'dtype', 'inputShape', 'weights', 'customObjects']) {
      expect(() => attachParrot(model, { moe, [key]: 1 } as never)).toThrow(`attachParrot: unknown option "${key}"; ${accepted}`);
      expect(() => attachParrot(model, { intermediateSize: 4, numExperts: 2, [key]: 1 } as never)).toThrow(`attachParrot: unknown option "${key}"; ${accepted}`);
    }
    expect(() => attachParrot(model, { moe, name: 'parrot', colour: 'green' } as never)).toThrow(`attachParrot: unknown options "name", "colour"; ${accepted}`);
    expect(hostKeys(model)).toEqual(keys);
    moe.dispose();
    other.dispose();
    model.dispose();
  });
});

describe('Parrot adapters (core saveAdapter / loadAdapter)', () => {
  it('round-trips into a fresh host with the same base: same config, same MoE state dict, same logits', async () => {
    const model = tinyHost();
    const parrot = attachParrot(model, { moe: tinyMoE(), multiImage: 'reference', freezeBase: true });
    const batch = tinyTokenBatch(model, FEATURES);
    const logits = logitsOf(model, batch);
    const files = saveAdapter(parrot);
    const config = parseAdapterConfig(files.config);
    expect(config).toMatchObject({
      module_type: 'parrot', module_package: '@mllm/parrot', module_version: PARROT_VERSION, base_model: model.baseModelShape(),
      config: {
        moe_hidden_size: H, moe_intermediate_size: 24, num_experts: 3, moe_weight: 0.1, use_moe: true, use_moe_residual: true,
        mm_vision_select_feature: 'cls_patch', sparse_top_k: null, aux_loss_coefficient: 0, multi_image: 'reference',
      },
    });
    // the recorded config is also a Parrot config.json for ParrotMoE.fromReferenceConfig
    expect(parseReferenceConfig(config.config).args).toEqual({ hiddenSize: H, intermediateSize: 24, numExperts: 3, moeWeight: 0.1, useMoe: true, useResidual: true });

    const fresh = tinyHost(); // same seed: same base weights
    const before = tf.memory().numTensors;
    setSeed(42); // the new MoE starts from other values; the adapter's weights must replace them
    const loaded = (await loadAdapter(fresh, files)) as AttachedParrot;
    expect(tf.memory().numTensors - before).toBe(1 + 3 * 3); // the new MoE's parameters only
    expect(loaded.type).toBe('parrot');
    expect(loaded.module).toBeInstanceOf(ParrotMoE);
    expect({ ...loaded.config }).toEqual({ ...parrot.config });
    expect(moduleValues(loaded)).toEqual(moduleValues(parrot));
    expect(logitsOf(fresh, batch)).toEqual(logits);
    for (const m of [model, fresh]) m.dispose();
    for (const a of [parrot, loaded]) a.module.dispose();
    disposeBatch(batch);
  });

  it('records follow the MoE after attaching: a stage-1 attach switched to stage 2 saves and reloads as stage 2', async () => {
    const model = tinyHost();
    const batch = tinyTokenBatch(model, FEATURES);
    const base = logitsOf(model, batch);
    const parrot = attachParrot(model, { moe: tinyMoE().setStage(1) });
    expect(parrot.moduleRecord().config.use_moe).toBe(false);
    expect(logitsOf(model, batch)).toEqual(base);
    parrot.module.setStage(2);
    parrot.module.moeWeight = 0.3;
    expect(parrot.config.useMoe).toBe(true);
    expect(parrot.moduleRecord().config).toMatchObject({ use_moe: true, moe_weight: 0.3 });
    const stage2 = logitsOf(model, batch);
    const fresh = tinyHost();
    const loaded = (await loadAdapter(fresh, saveAdapter(parrot))) as AttachedParrot;
    expect(loaded.module.stage).toBe(2);
    expect(loaded.module.moeWeight).toBe(0.3);
    expect(logitsOf(fresh, batch)).toEqual(stage2);
    for (const m of [model, fresh]) m.dispose();
    for (const a of [parrot, loaded]) a.module.dispose();
    disposeBatch(batch);
  });

  describe('through a directory', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mllm-parrot-adapter-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('saveAdapterFiles / loadAdapterFiles: PEFT-layout files, identical MoE and logits', async () => {
      const model = tinyHost();
      const parrot = attachParrot(model, { moe: tinyMoE() });
      const batch = tinyTokenBatch(model, FEATURES);
      const logits = logitsOf(model, batch);
      await saveAdapterFiles(parrot, dir);
      expect(JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_FILE), 'utf8')).module_type).toBe('parrot');
      const fresh = tinyHost();
      const loaded = await loadAdapterFiles(fresh, dir);
      expect(moduleValues(loaded)).toEqual(moduleValues(parrot));
      expect(logitsOf(fresh, batch)).toEqual(logits);
      for (const m of [model, fresh]) m.dispose();
      for (const a of [parrot, loaded]) a.module.dispose();
      disposeBatch(batch);
    });
  });

  it('a bad field in a saved config: a clear error, nothing attached, no tensors left', async () => {
    const model = tinyHost();
    const parrot = attachParrot(model, { moe: tinyMoE() });
    const files = saveAdapter(parrot);
    const good = parseAdapterConfig(files.config);
    const fresh = tinyHost();
    const keys = hostKeys(fresh);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ num_experts: 0 }, /attachParrot \(from a saved parrot config\): num_experts must be a positive integer, got 0/],
      [{ use_moe: 'yes' }, /use_moe must be true or false, got the string "yes"/],
      [{ moe_weight: null }, /moe_weight must be a finite number, got null/],
      [{ sparse_top_k: 1.5 }, /sparse_top_k \(or null\) must be a positive integer, got 1.5/],
      [{ multi_image: 'first' }, /multi_image must be 'clean' or 'reference', got the string "first"/],
      [{ mm_vision_select_feature: 'patch' }, /mm_vision_select_feature must be 'cls_patch', got the string "patch"/],
      [{ moe_hidden_size: 32 }, new RegExp(`moe_hidden_size must equal the host's hidden_size ${H}, got 32`)],
      [{ moe_top_k: 6 }, /unknown field\(s\) moe_top_k \(known: moe_hidden_size, /],
    ];
    await expectNoLeaks(async () => {
      for (const [patch, message] of cases) {
        const config = { ...good, config: { ...good.config, ...patch } };
        await expect(loadAdapter(fresh, { config, weights: files.weights }), JSON.stringify(patch)).rejects.toThrow(message);
      }
      const { moe_weight: _dropped, ...missing } = good.config;
      expect(() => attachParrotFromRecord(fresh, { ...good, config: missing } as ModuleRecord)).toThrow(/moe_weight must be a finite number, got undefined/);
    });
    expect(hostKeys(fresh)).toEqual(keys);
    for (const m of [model, fresh]) m.dispose();
    parrot.module.dispose();
  });

  it('the kind is registered on import, with the package.json version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
    expect(PARROT_VERSION).toBe(pkg.version);
    const kind = moduleKind(PARROT_MODULE_TYPE);
    expect(kind).toMatchObject({ type: 'parrot', packageName: pkg.name, version: pkg.version });
    expect(kind!.attachFromRecord).toBe(attachParrotFromRecord);
  });
});
