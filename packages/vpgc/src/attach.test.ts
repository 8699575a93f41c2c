import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { ADAPTER_CONFIG_FILE, disposeStateDict, loadAdapter, loadAdapterFiles, moduleKind, parseAdapterConfig, saveAdapter, saveAdapterFiles, stateDict, type StateDict } from '@mllm/core';
import { disposeBatch, loadHostModel, saveHostModel, type HostMLLM } from '@mllm/models';
import { expectNoLeaks } from '@mllm/core/testing';
import { QFormerVPG, VPGC, attachVPGC, attachVPGCFromRecord, loadAdapter as loadAdapterV0, saveAdapter as saveAdapterV0 } from './index.js';
import { useTestBackend } from './test-support/backend.js';
import { randomizeVpgc } from './test-support/fixture.js';
import { tinyChatBatch } from '@mllm/models/testing';
import { tinyVpgHost } from './test-support/host-fixture.js';

useTestBackend();

const VPGC_NAMES = ['model.llm_proj.bias', 'model.llm_proj.weight', 'model.qformer_proj.bias', 'model.qformer_proj.weight', 'model.query_tokens'];
const values = (dict: StateDict) => new Map([...dict].map(([k, v]) => [k, Array.from(v.dataSync())]));
const packageJson = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };

/** Logits of `model` on the tiny batch (plain numbers; nothing kept). */
function logitsOf(model: HostMLLM): number[] {
  const batch = tinyChatBatch(model);
  const out = model.forward(batch);
  const logits = Array.from(out.logits.dataSync());
  tf.dispose([out.logits, out.labels!, out.attentionMask]);
  disposeBatch(batch);
  return logits;
}

/** The host's parameter names outside VPG-C (its base model). */
const baseNames = (model: HostMLLM) => model.namedParameters().map(([n]) => n).filter((n) => !VPGC_NAMES.includes(n));

describe('attachVPGC (core attach contract)', () => {
  it('registers VPG-C under its reference names in the host, freezes the rest, records it, and detaches', () => {
    const { model, vpg } = tinyVpgHost(11);
    const base = logitsOf(model);
    const baseCount = model.namedParameters().length;
    const attached = attachVPGC(model);
    expect(attached.type).toBe('vpgc');
    expect(attached.module).toBeInstanceOf(VPGC);
    expect(attached.vpgc).toBe(attached.module); // deprecated field
    expect(attached.config).toEqual({ updateLayer: 2, numQueryTokens: 3, qformerWidth: 8, llmHiddenSize: 16, dropoutAtInference: false });
    // Cheetah: llama_model.model.{query_tokens, qformer_proj.*, llm_proj.*} beside llama_model.model.layers.*;
    // the host's decoder is model.layers.*, so VPG-C reads model.*.
    const names = model.namedParameters().map(([n]) => n);
    expect(names.filter((n) => VPGC_NAMES.includes(n)).sort()).toEqual(VPGC_NAMES);
    expect(names.some((n) => n.startsWith('model.layers.0.'))).toBe(true);
    expect(names.some((n) => n.startsWith('hooks.'))).toBe(false);
    const trainable = model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n).sort();
    expect(trainable).toEqual(VPGC_NAMES);
    expect(vpg.namedParameters().every(([, p]) => !p.variable.trainable)).toBe(true);
    const dict = attached.stateDict();
    expect([...dict.keys()].sort()).toEqual(VPGC_NAMES);
    expect(dict.get('model.qformer_proj.weight')!.shape).toEqual([8, 16]);
    disposeStateDict(dict);
    expect(attached.moduleRecord()).toEqual({
      module_type: 'vpgc',
      module_package: packageJson.name,
      module_version: packageJson.version,
      config: { update_layer: 2, num_query_token: 3, qformer_hidden_size: 8, llm_hidden_size: 16, dropout_at_inference: false },
    });
    expect(moduleKind('vpgc')?.version).toBe(packageJson.version); // registered on import
    randomizeVpgc(attached.module, 12);
    expect(logitsOf(model)).not.toEqual(base);
    expect(attached.isAttached).toBe(true);
    attached.remove();
    attached.remove(); // idempotent
    expect(attached.isAttached).toBe(false);
    expect(model.namedParameters()).toHaveLength(baseCount);
    expect(model.hooks).toHaveLength(0);
    expect(logitsOf(model)).toEqual(base);
    attached.module.dispose();
    model.dispose();
  });

  it('attach, forward and remove keep the tensor count flat', () => {
    const { model } = tinyVpgHost(13);
    logitsOf(model); // first-call caches (backend kernels) before counting
    expectNoLeaks(() => {
      const attached = attachVPGC(model);
      randomizeVpgc(attached.module, 14);
      logitsOf(model);
      attached.remove();
      attached.module.dispose();
    });
    model.dispose();
  });

  it('saveAdapter → loadAdapter into a fresh host with the same base gives the same logits and state dict', async () => {
    const { model } = tinyVpgHost(21);
    const attached = attachVPGC(model, { updateLayer: 1 });
    randomizeVpgc(attached.module, 22);
    const expected = logitsOf(model);
    const files = saveAdapter(attached);
    const config = parseAdapterConfig(files.config);
    expect(config.module_type).toBe('vpgc');
    expect(config.base_model).toEqual(model.baseModelShape());
    expect(config.config).toEqual(attached.moduleRecord().config);

    const fresh = tinyVpgHost(21).model;
    const freshBase = stateDict(fresh);
    const originalBase = new Map([...stateDict(model)].filter(([k]) => !VPGC_NAMES.includes(k)));
    expect(values(freshBase)).toEqual(values(originalBase)); // same base weights: the test's premise
    disposeStateDict(freshBase);
    disposeStateDict(originalBase);
    const loaded = await loadAdapter(fresh, files);
    expect(loaded.type).toBe('vpgc');
    expect(loaded.module).toBeInstanceOf(VPGC);
    expect(loaded.config).toEqual(attached.config);
    expect(loaded.moduleRecord()).toEqual(attached.moduleRecord());
    expect(logitsOf(fresh)).toEqual(expected);
    const [a, b] = [attached.stateDict(), loaded.stateDict()];
    expect(values(b)).toEqual(values(a));
    disposeStateDict(a);
    disposeStateDict(b);
    // the loaded queries are VPG-C's own now, no longer the VPG's
    expect((loaded.module as VPGC).queryTokensFollowVpg).toBe(false);
    for (const m of [attached, loaded]) {
      m.remove();
      m.module.dispose();
    }
    model.dispose();
    fresh.dispose();
  });

  it('the dropout switch is recorded and restored (reference behaviour: Q-Former dropout at inference)', async () => {
    const { model } = tinyVpgHost(23);
    const attached = attachVPGC(model, { dropoutAtInference: true });
    expect(attached.moduleRecord().config.dropout_at_inference).toBe(true);
    const files = saveAdapter(attached);
    const { model: fresh, vpg } = tinyVpgHost(23);
    expect(vpg.dropoutAtInference).toBe(false);
    const loaded = await loadAdapter(fresh, files);
    expect(vpg.dropoutAtInference).toBe(true);
    expect((loaded.module as VPGC).dropoutAtInference).toBe(true);
    for (const m of [attached, loaded]) {
      m.remove();
      m.module.dispose();
    }
    model.dispose();
    fresh.dispose();
  });

  it('a bad record field is a clear error and attaches nothing (directly and through loadAdapter)', async () => {
    const { model } = tinyVpgHost(31);
    const attached = attachVPGC(model);
    const files = saveAdapter(attached);
    const good = parseAdapterConfig(files.config);
    const { model: fresh } = tinyVpgHost(31);
    const count = fresh.namedParameters().length;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ update_layer: 4 }, /config\.update_layer must be an integer in \[0, 4\), got 4/],
      [{ update_layer: '2' }, /config\.update_layer must be an integer in \[0, 4\), got the string "2"/],
      [{ num_query_token: 32 }, /config\.num_query_token must equal the host VPG's 3, got 32/],
      [{ qformer_hidden_size: 768 }, /config\.qformer_hidden_size must equal the host VPG's 8, got 768/],
      [{ llm_hidden_size: undefined }, /config\.llm_hidden_size must equal the host VPG's 16, got undefined/],
      [{ dropout_at_inference: 'no' }, /config\.dropout_at_inference must be true or false, got the string "no"/],
      [{ num_query_tokens: 3 }, /unknown config field num_query_tokens \(known: update_layer, num_query_token, /],
    ];
    for (const [change, message] of cases) {
      const record = { ...good, config: { ...good.config, ...change } };
      expect(() => attachVPGCFromRecord(fresh, record), String(message)).toThrow(message);
      await expectNoLeaks(async () => {
        await expect(loadAdapter(fresh, { config: record, weights: files.weights })).rejects.toThrow(message);
      });
      expect(fresh.hooks).toHaveLength(0);
      expect(fresh.namedParameters()).toHaveLength(count);
    }
    // a host without a Q-Former projector
    expect(() => attachVPGCFromRecord({ addHooks: () => ({ remove() {} }), setTrainable: () => undefined, baseModelShape: () => fresh.baseModelShape() }, good))
      .toThrow(/the host's projector must be a QFormerVPG \(VPG-C re-queries it\), got undefined/);
    attached.remove();
    attached.module.dispose();
    model.dispose();
    fresh.dispose();
  });

  it('rejects bad options with the argument and the value, leaking nothing', () => {
    const { model } = tinyVpgHost(41);
    const count = model.namedParameters().length;
    expectNoLeaks(() => {
      expect(() => attachVPGC(model, { updateLayer: 4 })).toThrow(/attachVPGC: updateLayer must be in \[0, 4\), got 4/);
      expect(() => attachVPGC(model, { numLayers: 8 })).toThrow(/config\.numLayers must equal the host's num_hidden_layers 4 \(or be left out\), got 8/);
      expect(() => attachVPGC(model, { updatelayer: 1 } as never)).toThrow(/unknown option "updatelayer" \(did you mean "updateLayer"\?\)/);
      // tfjs Layer keys are not attachVPGC's (nothing would read them): unknown, with the accepted keys listed
      for (const key of ['name', 'trainable', 'dtype', 'inputShape', 'weights', 'customObjects']) {
        expect(() => attachVPGC(model, { updateLayer: 1, [key]: 1 } as never))
          .toThrow(`attachVPGC: unknown option "${key}"; known: vpg, updateLayer, numLayers, dropoutAtInference, vpgc, freezeBase`);
      }
      expect(() => attachVPGC(model, { vpgc: {} } as never)).toThrow(/config\.vpgc must be a VPGC, got/);
      expect(() => attachVPGC(model, null as never)).toThrow(/attachVPGC: config must be an object, got null/);
      expect(() => attachVPGC({ addHooks() {} } as never)).toThrow(/host must be a model implementing ModuleHost .*got an object without setTrainable, baseModelShape/);
    });
    expect(model.hooks).toHaveLength(0);
    // a second VPG-C on one host would take the same names: refused, the first stays
    const first = attachVPGC(model);
    expectNoLeaks(() => {
      expect(() => attachVPGC(model)).toThrow(/child name 'model' is already used/);
    });
    expect(model.hooks).toHaveLength(1);
    first.remove();
    first.module.dispose();
    expect(model.namedParameters()).toHaveLength(count);
    model.dispose();
  });

  it('takes an existing VPGC (e.g. loaded from a previous-release adapter file) and keeps its weights', () => {
    const { model, vpg } = tinyVpgHost(51);
    const trained = new VPGC({ vpg, updateLayer: 3 });
    randomizeVpgc(trained, 52);
    const oldBytes = saveAdapterV0(trained); // deprecated format, still readable for one minor
    const restored = new VPGC({ vpg, updateLayer: 3 });
    loadAdapterV0(restored, oldBytes);
    const attached = attachVPGC(model, { vpgc: restored });
    expect(attached.module).toBe(restored);
    expect(attached.config.updateLayer).toBe(3);
    const [a, b] = [stateDict(trained, 'model.'), attached.stateDict()];
    expect(values(b)).toEqual(values(a));
    disposeStateDict(a);
    disposeStateDict(b);
    expect(() => attachVPGC(model, { vpgc: trained, updateLayer: 1 })).toThrow(/config\.updateLayer 1 differs from config\.vpgc\.updateLayer 3/);
    attached.remove();
    restored.dispose();
    trained.dispose();
    model.dispose();
  });
});

describe('saveAdapterFiles / loadAdapterFiles with VPG-C', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mllm-vpgc-adapter-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('saveHostModel with VPG-C attached writes the whole base (VPG-C registers at model.*, beside the decoder) and the adapter goes on top', async () => {
    const { model, vpg } = tinyVpgHost(71);
    const base = logitsOf(model);
    const attached = attachVPGC(model);
    randomizeVpgc(attached.module, 72);
    const expected = logitsOf(model);
    const hostDir = join(dir, 'host');
    await saveHostModel(model, hostDir, { includeModules: false }); // the base only
    const files = saveAdapter(attached);
    const { qformer, numQueryTokens, llmHiddenSize } = vpg.getConfig() as Record<string, never>;
    const restoredVpg = new QFormerVPG({ qformer, numQueryTokens, llmHiddenSize });
    const restored = await loadHostModel(hostDir, { projector: restoredVpg });
    expect(restored.namedParameters().map(([n]) => n)).toEqual(baseNames(model));
    expect(logitsOf(restored)).toEqual(base);
    const loaded = await loadAdapter(restored, files);
    expect(logitsOf(restored)).toEqual(expected);
    for (const m of [attached, loaded]) {
      m.remove();
      m.module.dispose();
    }
    model.dispose();
    restored.dispose();
  });

  it('a host saved with VPG-C attached reloads with one call: the Q-Former VPG rebuilt, VPG-C re-attached, same logits', async () => {
    const { model } = tinyVpgHost(81);
    const attached = attachVPGC(model);
    randomizeVpgc(attached.module, 82);
    const expected = logitsOf(model);
    const hostDir = join(dir, 'host-with-vpgc');
    await saveHostModel(model, hostDir);
    const config = JSON.parse(await readFile(join(hostDir, 'config.json'), 'utf8'));
    expect(config.projector).toMatchObject({ module_type: 'qformer_vpg', module_package: '@mllm/vpgc', child_name: 'model.mm_projector' });
    expect(config.mllm_modules.map((m: { module_type: string }) => m.module_type)).toEqual(['vpgc']);
    const restored = await loadHostModel(hostDir);
    expect(restored.projector).toBeInstanceOf(QFormerVPG);
    expect(restored.namedParameters().map(([n]) => n)).toEqual(model.namedParameters().map(([n]) => n));
    expect(logitsOf(restored)).toEqual(expected);
    attached.remove();
    attached.module.dispose();
    model.dispose();
    restored.dispose();
  });

  it('a directory round trip gives the same logits', async () => {
    const { model } = tinyVpgHost(61);
    const attached = attachVPGC(model);
    randomizeVpgc(attached.module, 62);
    const expected = logitsOf(model);
    await saveAdapterFiles(attached, dir);
    const onDisk = JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_FILE), 'utf8'));
    expect(onDisk).toMatchObject({ module_type: 'vpgc', module_package: '@mllm/vpgc', adapter_format: 1, config: { update_layer: 2, num_query_token: 3 } });
    const { model: fresh } = tinyVpgHost(61);
    const loaded = await loadAdapterFiles(fresh, dir);
    expect(logitsOf(fresh)).toEqual(expected);
    for (const m of [attached, loaded]) {
      m.remove();
      m.module.dispose();
    }
    model.dispose();
    fresh.dispose();
  });
});
