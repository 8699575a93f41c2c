import { afterAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADAPTER_CONFIG_FILE, disposeStateDict, loadAdapter, loadAdapterFiles, moduleKind, parseAdapterConfig, saveAdapter, saveAdapterFiles, stateDict, type ModuleRecord, type StateDict } from '@mllm/core';
import type { HostMLLM } from '@mllm/models';
import { logitsOf, tinyHost as sharedTinyHost, tokenBatch } from '@mllm/models/testing';
import { attachParrot } from '@mllm/parrot';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
// The package index: importing it registers the `wings` module kind (what loadAdapter resolves).
import {
  WINGS_MODULE_KIND,
  WINGS_VERSION,
  attachWings,
  injectWings,
  loadLegacyWingsAdapter,
  readAdapterConfig,
  wingsConfigFromReference,
  wingsConfigOf,
  wingsReferenceConfig,
  resolveWingsConfig,
  type AttachedWings,
} from './index.js';
import { randomAdapterDict, randomMatrix } from './reference-math.testutil.js';

const H = 16;
const R = 3;
const MAX = 32;
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wings-attach-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** The shared tiny host (64 positions); the same seed gives the same base weights. */
const tinyHost = (seed = 1, hiddenSize = H, selectFeature: 'patch' | 'cls_patch' = 'patch'): HostMLLM =>
  sharedTinyHost(seed, { hiddenSize, maxLength: 64 }, { selectFeature });

/** Logits of a batch with an image sample and a right-padded text-only sample. */
function logits(model: HostMLLM): number[][][] {
  const pad = model.tokenizer.padId;
  const ids = [[72, 105, model.tokenizer.imageId, 120, 121], [65, 66, 67, pad, pad]];
  return tf.tidy(() => logitsOf(model, tokenBatch(model, ids, [randomMatrix(5, 4, 12)])));
}

const values = (dict: StateDict) => new Map([...dict].map(([k, v]) => [k, Array.from(v.dataSync())]));

/** Stage-2 Wings on layers 0 and 1 with random (nonzero-effect) weights. */
function trainedWings(host: HostMLLM, seed = 3): AttachedWings {
  const wings = attachWings(host, { stage: 2, rank: R, routerMaxLength: MAX, referenceCompat: 'reference', systemPromptLength: 1 });
  const dict = randomAdapterDict([0, 1], 2, seed, H, R, MAX);
  wings.loadStateDict(dict);
  disposeStateDict(dict);
  return wings;
}

const wingsNames = (layers: number[], stage: 1 | 2): string[] =>
  layers.flatMap((i) => [
    ...['attn_pool', 'attn_t_pool'].flatMap((m) => ['q', 'k', 'v', 'o'].flatMap((p) => [0, 1].map((j) => `model.layers.${i}.${m}.${p}_proj.${j}.weight`))),
    ...(stage === 2 ? [`model.layers.${i}.reweight_module.linear.weight`, `model.layers.${i}.reweight_module.linear.bias`] : []),
  ]);

describe('attachWings', () => {
  it('records the package version of package.json', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string; name: string };
    expect(WINGS_VERSION).toBe(pkg.version);
    expect(WINGS_MODULE_KIND.packageName).toBe(pkg.name);
  });

  it('registers the wings kind when the package is imported', () => {
    expect(moduleKind('wings')).toBe(WINGS_MODULE_KIND);
  });

  it('puts the learners in the host state dict under reference names, freezes the base, records reference-named config', () => {
    const host = tinyHost();
    const baseNames = [...host.namedParameters().map(([n]) => n)];
    const wings = attachWings(host, { stage: 2, rank: R, routerMaxLength: MAX, layers: [1] });
    expect(wings.type).toBe('wings');
    expect(wings.isAttached).toBe(true);
    const dict = stateDict(host);
    const added = [...dict.keys()].filter((k) => !baseNames.includes(k));
    disposeStateDict(dict);
    expect(added.sort()).toEqual(wingsNames([1], 2).sort());
    const own = wings.stateDict();
    expect([...own.keys()].sort()).toEqual(wingsNames([1], 2).sort());
    disposeStateDict(own);
    expect(wings.namedModules().map(([n]) => n)).toEqual(['model.layers.1.attn_pool', 'model.layers.1.attn_t_pool', 'model.layers.1.reweight_module']);
    const trainable = host.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n);
    expect(trainable.sort()).toEqual(wingsNames([1], 2).sort());
    expect(wings.moduleRecord()).toEqual({
      module_type: 'wings',
      module_package: '@mllm/wings',
      module_version: WINGS_VERSION,
      config: {
        stage: 2, lora_dim: R, target_layers: [1], router_max_length: MAX, hidden_size: H, num_attention_heads: 2, num_hidden_layers: 2,
        rope_theta: 10000, init_std: 0.02, visual_causal: false,
        reference_compat: { double_add: false, text_only_no_router: false, misaligned_text_mask: false }, system_prompt_length: 0,
      },
    });
    wings.remove();
    wings.module.dispose();
    host.dispose();
  });

  it('forward → saveAdapter → loadAdapter into a fresh host with the same base: identical logits and module state, no leaks', async () => {
    const host = tinyHost(1);
    const base = logits(host);
    const wings = trainedWings(host);
    const before = tf.memory().numTensors;
    const withWings = logits(host);
    expect(tf.memory().numTensors).toBe(before);
    expect(withWings).not.toEqual(base);
    const files = saveAdapter(wings);
    expect(tf.memory().numTensors).toBe(before);
    const config = parseAdapterConfig(files.config);
    expect(config).toMatchObject({ module_type: 'wings', base_model: host.baseModelShape(), config: wingsReferenceConfig(wings.config) });

    const fresh = tinyHost(1);
    const freshBefore = tf.memory().numTensors;
    const loaded = await loadAdapter(fresh, files);
    expect(tf.memory().numTensors - freshBefore).toBe(wingsNames([0, 1], 2).length); // the new learners' parameters only
    expect(loaded.type).toBe('wings');
    expect(loaded.config).toEqual(wings.config);
    expect(logits(fresh)).toEqual(withWings);
    const [a, b] = [wings.stateDict(), loaded.stateDict()];
    expect(values(b)).toEqual(values(a));
    disposeStateDict(a);
    disposeStateDict(b);
    expect(fresh.requiresFullSequence).toBe(true);

    // remove(): the host is its base model again.
    loaded.remove();
    expect(loaded.isAttached).toBe(false);
    expect(logits(fresh)).toEqual(base);
    expect(fresh.namedParameters().some(([n]) => n.includes('attn_pool'))).toBe(false);
    loaded.module.dispose();
    expect(tf.memory().numTensors).toBe(freshBefore);
    wings.remove();
    wings.module.dispose();
    host.dispose();
    fresh.dispose();
  });

  it('builds the learner keys once per forward (prepare), not once per layer: same logits and gradients as per-layer keys', () => {
    const host = tinyHost(1);
    const wings = trainedWings(host); // learners on both decoder layers
    const builds = vi.spyOn(wings.module, 'buildKeys');
    const before = tf.memory().numTensors;
    const prepared = logits(host);
    expect(builds).toHaveBeenCalledTimes(1); // 1 per forward, not L = 2
    expect(tf.memory().numTensors).toBe(before);

    // Everything trainable, so the gradient also reaches the projector and the embeddings through the keys.
    host.setTrainable(true);
    const pad = host.tokenizer.padId;
    const gradients = (): Map<string, number[]> => {
      const { value, grads } = tf.variableGrads(() =>
        tf.tidy(() => {
          const out = host.forward({
            inputIds: tf.tensor2d([[72, 105, host.tokenizer.imageId, 120, 121], [65, 66, 67, pad, pad]], undefined, 'int32'),
            attentionMask: tf.tensor2d([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], undefined, 'int32'),
            imageFeatures: tf.tensor3d([randomMatrix(5, 4, 12)]),
          });
          return tf.sum(tf.square(out.logits)) as tf.Scalar; // Σ logits²
        }),
      );
      const names = new Map(host.namedParameters().map(([n, p]) => [p.variable.name, n]));
      const got = new Map(Object.entries(grads).map(([k, g]) => [names.get(k) ?? k, Array.from(g.dataSync())]));
      tf.dispose([value, ...Object.values(grads)]);
      return got;
    };
    builds.mockClear();
    const preparedGrads = gradients();
    expect(builds).toHaveBeenCalledTimes(1);

    // The per-layer path (what a hand-driven afterAttention without prepare does): one build per layer.
    const prepare = vi.spyOn(wings.module, 'prepare').mockReturnValue(undefined);
    builds.mockClear();
    expect(logits(host)).toEqual(prepared);
    expect(builds).toHaveBeenCalledTimes(2);
    builds.mockClear();
    const perLayerGrads = gradients();
    expect(builds).toHaveBeenCalledTimes(2);
    expect([...preparedGrads.keys()].sort()).toEqual([...perLayerGrads.keys()].sort());
    // Shared keys sum the two layers' key gradients in another order: equal up to float32 rounding.
    for (const [name, g] of perLayerGrads) expectClose(preparedGrads.get(name)!, g, { label: name });
    // Gradients reach the projector through the visual keys (and the embeddings through the textual keys).
    const projector = [...preparedGrads].find(([n]) => n.startsWith('model.mm_projector.'))!;
    expect(projector[1].some((v) => v !== 0)).toBe(true);
    prepare.mockRestore();
    builds.mockRestore();
    expect(tf.memory().numTensors).toBe(before);
    wings.remove();
    wings.module.dispose();
    host.dispose();
  });

  it('with Parrot attached too, in either order: the base is frozen, the MoE and the learners train', () => {
    for (const parrotFirst of [true, false]) {
      const host = tinyHost(1, H, 'cls_patch'); // Parrot routes with the CLS token
      const attachMoE = () => attachParrot(host, { intermediateSize: 8, numExperts: 2 }); // freezeBase default false
      const parrot = parrotFirst ? attachMoE() : undefined;
      const wings = attachWings(host, { stage: 1, rank: R, layers: [1] });
      const moe = parrot ?? attachMoE();
      const trainable = host.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n);
      const moeNames = moe.module.namedParameters('model.moe_model.').map(([n]) => n);
      expect(moeNames.length).toBeGreaterThan(0);
      expect(trainable.sort(), `parrotFirst ${parrotFirst}`).toEqual([...moeNames, ...wingsNames([1], 1).filter((n) => n.includes('attn_pool.'))].sort());
      wings.remove();
      moe.remove();
      wings.module.dispose();
      moe.module.dispose();
      host.dispose();
    }
  });

  it('saveAdapterFiles / loadAdapterFiles through a directory', async () => {
    const dir = await tempDir();
    const host = tinyHost(2);
    const wings = trainedWings(host, 9);
    const expected = logits(host);
    await saveAdapterFiles(wings, dir);
    expect(JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_FILE), 'utf8')).config.lora_dim).toBe(R);
    const fresh = tinyHost(2);
    const loaded = await loadAdapterFiles(fresh, dir);
    expect(logits(fresh)).toEqual(expected);
    // The deprecated readAdapterConfig reads core's layout too.
    expect(await readAdapterConfig(dir)).toEqual(wings.config);
    for (const w of [wings, loaded]) {
      w.remove();
      w.module.dispose();
    }
    host.dispose();
    fresh.dispose();
  });

  it('attachFromRecord: each bad field is a clear error and nothing is attached', () => {
    const host = tinyHost();
    const good = wingsReferenceConfig(resolveWingsConfig({ stage: 2, rank: R, routerMaxLength: MAX }, { hiddenSize: H, numHeads: 2, numLayers: 2, ropeTheta: 10000 }));
    const record = (config: Record<string, unknown>): ModuleRecord => ({ module_type: 'wings', module_package: '@mllm/wings', module_version: WINGS_VERSION, config });
    const count = host.namedParameters().length;
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ...good, lora_dim: 0 }, /record config: lora_dim must be an integer ≥ 1, got 0/],
      [{ ...good, stage: 3 }, /stage must be 1 or 2, got 3/],
      [{ ...good, init_std: 'x' }, /init_std must be a finite number, got "x"/],
      [{ ...good, visual_causal: 1 }, /visual_causal must be true or false, got 1/],
      [{ ...good, reference_compat: { ...good.reference_compat, double_add: 'yes' } }, /reference_compat\.double_add must be true or false, got "yes"/],
      [{ ...good, reference_compat: { ...good.reference_compat, extra: true } }, /unknown reference_compat field\(s\) extra/],
      [{ ...good, lora_rank: 3 }, /unknown field\(s\) lora_rank; expected stage, lora_dim/],
      [(({ system_prompt_length: _s, ...rest }) => rest)(good), /system_prompt_length must be an integer ≥ 0, got undefined/],
      [{ ...good, target_layers: [] }, /target_layers must be a non-empty list of layer indices, got \[\]/],
      [{ ...good, target_layers: [5] }, /layers entries must be integers in \[0, 2\), got 5/],
      [{ ...good, hidden_size: 32 }, /hiddenSize 32 differs from the host model's 16/],
    ];
    for (const [config, message] of cases) {
      expect(() => WINGS_MODULE_KIND.attachFromRecord(host, record(config)), message.source).toThrow(message);
      expect(host.namedParameters().length).toBe(count);
      expect(host.requiresFullSequence).toBe(false);
    }
    expect(() => WINGS_MODULE_KIND.attachFromRecord(host, { ...record(good), module_type: 'vpgc' })).toThrow(/module_type must be "wings", got "vpgc"/);
    const ok = WINGS_MODULE_KIND.attachFromRecord(host, record(good));
    expect(ok.config).toEqual(resolveWingsConfig(wingsConfigFromReference(good), undefined));
    ok.remove();
    ok.module.dispose();
    host.dispose();
  });

  it('loadAdapter with a bad record or another base model attaches nothing and leaks nothing', async () => {
    const host = tinyHost();
    const wings = trainedWings(host);
    const files = saveAdapter(wings);
    const fresh = tinyHost();
    const count = fresh.namedParameters().length;
    const bad = parseAdapterConfig(files.config);
    bad.config['lora_dim'] = 'three';
    await expectNoLeaks(async () => {
      await expect(loadAdapter(fresh, { config: bad, weights: files.weights })).rejects.toThrow(/lora_dim must be an integer ≥ 1, got "three"/);
    });
    const wrongRank = parseAdapterConfig(files.config);
    wrongRank.config['lora_dim'] = R + 1;
    await expectNoLeaks(async () => {
      await expect(loadAdapter(fresh, { config: wrongRank, weights: files.weights })).rejects.toThrow(/size mismatch for model\.layers\.0\.attn_pool/);
    });
    expect(fresh.namedParameters().length).toBe(count);
    const wide = tinyHost(1, 32);
    await expect(loadAdapter(wide, files)).rejects.toThrow(/made for another base model \(hidden_size: adapter 16, host 32\)/);
    expect(wide.namedParameters().some(([n]) => n.includes('attn_pool'))).toBe(false);
    wings.remove();
    wings.module.dispose();
    for (const h of [host, fresh, wide]) h.dispose();
  });

  it('attaches an existing WingsAdapter (weights kept) and checks it against the host', () => {
    const host = tinyHost();
    const wings = trainedWings(host);
    const expected = logits(host);
    wings.remove();
    const other = tinyHost();
    const again = attachWings(other, { module: wings.module });
    expect(again.module).toBe(wings.module);
    expect(logits(other)).toEqual(expected);
    again.remove();
    const wide = tinyHost(1, 32);
    expect(() => attachWings(wide, { module: wings.module })).toThrow(/hiddenSize 16 differs from the host model's 32/);
    expect(() => attachWings(other, { module: wings.module, rank: 2 } as never)).toThrow(/with \{ module \} the config comes from the module; unexpected option\(s\) rank/);
    expect(() => attachWings(other, { module: {} } as never)).toThrow(/module must be a WingsAdapter, got an instance of Object/);
    expect(() => attachWings({} as never, { stage: 1, rank: 2 })).toThrow(/attachWings: host must be a model implementing ModuleHost/);
    expect(wings.module.isDisposed).toBe(false);
    wings.module.dispose();
    for (const h of [host, other, wide]) h.dispose();
  });

  it('a config built from options rejects tfjs Layer keys (name, trainable, dtype, …) as unknown, attaching nothing', () => {
    const host = tinyHost();
    const keys = [...stateDict(host).keys()];
    const accepted = 'known: stage, rank, layers, routerMaxLength, hiddenSize, numHeads, numLayers, ropeTheta, initStd, visualCausal, referenceCompat, systemPromptLength, freezeBase';
    expectNoLeaks(() => {
      for (const key of ['name', 'trainable', 'dtype', 'inputShape', 'weights', 'customObjects']) {
        expect(() => attachWings(host, { stage: 1, rank: R, [key]: 1 } as never)).toThrow(`WingsConfig: unknown option "${key}"; ${accepted}`);
        expect(() => injectWings(host, { stage: 2, rank: R, [key]: 1 } as never)).toThrow(`WingsConfig: unknown option "${key}"; ${accepted}`);
        expect(() => attachWings(host, { stage: 2, rank: R, referenceCompat: { doubleAdd: true, [key]: true } } as never))
          .toThrow(`WingsConfig.referenceCompat: unknown option "${key}"; known: doubleAdd, textOnlyNoRouter, misalignedTextMask`);
      }
      expect(() => attachWings(host, { stage: 1, rank: R, name: 'wings', colour: 'green' } as never)).toThrow(`WingsConfig: unknown options "name", "colour"; ${accepted}`);
    });
    expect(host.hooks).toHaveLength(0);
    expect([...stateDict(host).keys()]).toEqual(keys);
    expect(host.namedParameters().every(([, p]) => p.variable.trainable)).toBe(true); // nothing frozen either
    // the same config without the Layer key attaches
    const wings = attachWings(host, { stage: 1, rank: R });
    expect(wings.config.rank).toBe(R);
    wings.remove();
    wings.module.dispose();
    host.dispose();
  });

  it('old Wings adapter directories (peft_type WINGS) load with loadLegacyWingsAdapter and convert to core’s format', async () => {
    const oldDir = await tempDir();
    const newDir = await tempDir();
    const host = tinyHost(4);
    const injection = injectWings(host, { stage: 2, rank: R, routerMaxLength: MAX });
    const dict = randomAdapterDict([0, 1], 2, 21, H, R, MAX);
    injection.loadStateDict(dict);
    disposeStateDict(dict);
    const expected = logits(host);
    await injection.saveAdapter(oldDir); // the deprecated handle writes the old layout
    expect(JSON.parse(await readFile(join(oldDir, ADAPTER_CONFIG_FILE), 'utf8')).peft_type).toBe('WINGS');
    expect(await readAdapterConfig(oldDir)).toEqual(injection.config);

    const fresh = tinyHost(4);
    const legacy = await loadLegacyWingsAdapter(fresh, oldDir);
    expect(logits(fresh)).toEqual(expected);
    await saveAdapterFiles(legacy, newDir);
    legacy.remove();
    legacy.module.dispose();
    const converted = await loadAdapterFiles(fresh, newDir);
    expect(converted.config).toEqual(injection.config);
    expect(logits(fresh)).toEqual(expected);
    // The deprecated handle's loadAdapter reads the new layout as well.
    const other = tinyHost(4);
    const handle = injectWings(other, { stage: 2, rank: R, routerMaxLength: MAX });
    expect((await handle.loadAdapter(newDir)).loadedKeys).toHaveLength(wingsNames([0, 1], 2).length);
    expect(logits(other)).toEqual(expected);
    // A legacy directory for another host: the dimension is named, nothing attached.
    const wide = tinyHost(1, 32);
    await expect(loadLegacyWingsAdapter(wide, oldDir)).rejects.toThrow(/hiddenSize 16 differs from the host model's 32/);
    expect(wide.namedParameters().some(([n]) => n.includes('attn_pool'))).toBe(false);
    for (const w of [injection, converted, handle]) {
      w.remove();
      w.module.dispose();
    }
    for (const h of [host, fresh, other, wide]) h.dispose();
  });

  it('the reference-named record rebuilds the same resolved config (every option)', () => {
    const dims = { hiddenSize: H, numHeads: 2, numLayers: 4, ropeTheta: 1e6 };
    const resolved = resolveWingsConfig(
      { stage: 2, rank: 5, layers: [3, 1], routerMaxLength: 64, initStd: 0.01, visualCausal: true, referenceCompat: { doubleAdd: true, misalignedTextMask: true }, systemPromptLength: 14 },
      dims,
    );
    const record = JSON.parse(JSON.stringify(wingsReferenceConfig(resolved))) as unknown;
    expect(resolveWingsConfig(wingsConfigFromReference(record), dims)).toEqual(resolved);
    expect(resolveWingsConfig(wingsConfigOf(resolved), dims)).toEqual(resolved);
  });
});
