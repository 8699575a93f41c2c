import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import {
  ADAPTER_CONFIG_FILE,
  Linear,
  Module,
  attachModule,
  disposeStateDict,
  loadAdapter,
  loadAdapterFiles,
  moduleKind,
  parseAdapterConfig,
  registerModuleKind,
  resolveModuleKind,
  saveAdapter,
  saveAdapterFiles,
  setSeed,
  stateDict,
  type AttachedModule,
  type BaseModelShape,
  type DecoderHooks,
  type HookHandle,
  type ModuleHost,
  type ModuleRecord,
} from '../index.js';
import { expectNoLeaks } from '../testing/index.js';

/** A minimal ModuleHost: one Linear of its own; hooks' named modules become children (like HostLM). */
class ToyHost extends Module implements ModuleHost {
  readonly attachedHooks: DecoderHooks[] = [];
  constructor(readonly hidden = 4, readonly layers = 2) {
    super({ name: 'toy_host' });
    this.addModule('model.base', new Linear({ inFeatures: hidden, outFeatures: hidden }));
  }
  addHooks(hooks: DecoderHooks): HookHandle {
    const named = hooks.namedModules?.() ?? [];
    for (const [name, module] of named) this.addModule(name, module);
    this.attachedHooks.push(hooks);
    return {
      remove: () => {
        const i = this.attachedHooks.indexOf(hooks);
        if (i < 0) return;
        this.attachedHooks.splice(i, 1);
        for (const [name] of named) this.removeModule(name);
      },
    };
  }
  baseModelShape(): BaseModelShape {
    return { model_type: 'toy', hidden_size: this.hidden, num_hidden_layers: this.layers, num_attention_heads: 1, num_key_value_heads: 1, rope_theta: 1e4, vocab_size: 8 };
  }
  override call(): tf.Tensor {
    throw new Error('not used');
  }
}

/** A module kind for the tests: a rank-r Linear registered as `model.layers.{layer}.toy`. */
function attachToy(host: ModuleHost, config: { rank: number; layer: number }): AttachedModule<Linear, { rank: number; layer: number }> {
  const hidden = host.baseModelShape().hidden_size;
  const module = new Linear({ inFeatures: hidden, outFeatures: config.rank, bias: false });
  return attachModule('attachToy', host, {
    type: 'toy',
    packageName: '@mllm/toy-not-installed',
    version: '0.0.1',
    module,
    config,
    referenceConfig: { lora_dim: config.rank, target_layer: config.layer },
    hooks: {},
    namedModules: [[`model.layers.${config.layer}.toy`, module]],
    afterAttach: () => module.setTrainable(true),
  });
}

beforeAll(() => {
  registerModuleKind({
    type: 'toy',
    packageName: '@mllm/toy-not-installed',
    version: '0.0.1',
    attachFromRecord: (host, record: ModuleRecord) => {
      const { lora_dim, target_layer } = record.config as { lora_dim: unknown; target_layer: unknown };
      if (typeof lora_dim !== 'number' || typeof target_layer !== 'number') throw new Error(`toy: bad config ${JSON.stringify(record.config)}`);
      return attachToy(host, { rank: lora_dim, layer: target_layer });
    },
  });
});

const values = (dict: Map<string, tf.Tensor>) => new Map([...dict].map(([k, v]) => [k, Array.from(v.dataSync())]));

describe('attachModule', () => {
  it('freezes the host, registers the module under its host name, records it, and detaches', () => {
    setSeed(1);
    const host = new ToyHost();
    const attached = attachToy(host, { rank: 2, layer: 1 });
    const trainable = host.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n);
    expect(trainable).toEqual(['model.layers.1.toy.weight']);
    const dict = stateDict(host);
    expect([...dict.keys()]).toEqual(['model.base.weight', 'model.base.bias', 'model.layers.1.toy.weight']);
    disposeStateDict(dict);
    expect(host.attachedHooks[0].moduleRecord?.()).toEqual({
      module_type: 'toy', module_package: '@mllm/toy-not-installed', module_version: '0.0.1', config: { lora_dim: 2, target_layer: 1 },
    });
    const own = attached.stateDict();
    expect([...own.keys()]).toEqual(['model.layers.1.toy.weight']);
    disposeStateDict(own);
    attached.remove();
    attached.remove(); // idempotent
    expect(attached.isAttached).toBe(false);
    expect(host.namedParameters().map(([n]) => n)).toEqual(['model.base.weight', 'model.base.bias']);
    attached.module.dispose();
    host.dispose();
  });

  it('a referenceConfig function is read at each record (handle and hook); an object is fixed at attach time', () => {
    const host = new ToyHost();
    const module = new Linear({ inFeatures: 4, outFeatures: 2 });
    const live = { rank: 2 };
    const fixed = { rank: 2 };
    const spec = { type: 'toy', packageName: '@mllm/toy', version: '0', module, config: {}, hooks: {}, namedModules: [] };
    const a = attachModule('attachToy', host, { ...spec, referenceConfig: () => ({ lora_dim: live.rank }) });
    const b = attachModule('attachToy', host, { ...spec, referenceConfig: fixed as Record<string, unknown> });
    live.rank = 5;
    fixed.rank = 5;
    expect(a.moduleRecord().config).toEqual({ lora_dim: 5 });
    expect(host.attachedHooks[0].moduleRecord?.().config).toEqual({ lora_dim: 5 });
    expect(b.moduleRecord().config).toEqual({ rank: 2 });
    a.remove();
    b.remove();
    module.dispose();
    host.dispose();
  });

  it('names the contract when the host is not one', () => {
    const module = new Linear({ inFeatures: 2, outFeatures: 2 });
    const spec = { type: 'toy', packageName: '@mllm/toy', version: '0', module, config: {}, referenceConfig: {}, hooks: {}, namedModules: [] };
    expect(() => attachModule('attachToy', { addHooks() {} } as unknown as ModuleHost, spec)).toThrow(
      /host must be a model implementing ModuleHost.*got an object without setTrainable, baseModelShape/,
    );
    module.dispose();
  });
});

describe('saveAdapter / loadAdapter', () => {
  it('round-trips through bytes into a fresh host: same kind, config and weights, no leaks', async () => {
    setSeed(2);
    const host = new ToyHost();
    const attached = attachToy(host, { rank: 3, layer: 0 });
    const files = saveAdapter(attached);
    const config = parseAdapterConfig(files.config);
    expect(config).toMatchObject({ module_type: 'toy', adapter_format: 1, base_model: host.baseModelShape(), config: { lora_dim: 3, target_layer: 0 } });
    setSeed(99); // the fresh module starts from other values
    const other = new ToyHost();
    const before = tf.memory().numTensors;
    const loaded = await loadAdapter(other, files);
    expect(tf.memory().numTensors - before).toBe(1); // the new module's one parameter
    expect(loaded.type).toBe('toy');
    expect(loaded.config).toEqual({ rank: 3, layer: 0 });
    const [a, b] = [attached.stateDict(), loaded.stateDict()];
    expect(values(b)).toEqual(values(a));
    disposeStateDict(a);
    disposeStateDict(b);
    for (const h of [host, other]) h.dispose();
  });

  it('refuses another base model, naming each differing field, and attaches nothing', async () => {
    const host = new ToyHost(4, 2);
    const attached = attachToy(host, { rank: 2, layer: 1 });
    const files = saveAdapter(attached);
    const wrong = new ToyHost(6, 3);
    await expect(loadAdapter(wrong, files)).rejects.toThrow(/made for another base model \(hidden_size: adapter 4, host 6; num_hidden_layers: adapter 2, host 3\)/);
    expect(wrong.attachedHooks).toHaveLength(0);
    host.dispose();
    wrong.dispose();
  });

  it('weights that do not fit: a StateDictError, nothing attached, no tensors left', async () => {
    const host = new ToyHost();
    const attached = attachToy(host, { rank: 2, layer: 1 });
    const files = saveAdapter(attached);
    const config = parseAdapterConfig(files.config);
    config.config.lora_dim = 5; // the weights hold rank 2
    const fresh = new ToyHost();
    await expectNoLeaks(async () => {
      await expect(loadAdapter(fresh, { config, weights: files.weights })).rejects.toThrow(
        /size mismatch for model\.layers\.1\.toy\.weight: expected \[5,4\].*got \[2,4\]/,
      );
    });
    expect(fresh.attachedHooks).toHaveLength(0);
    expect(fresh.namedParameters()).toHaveLength(2);
    host.dispose();
    fresh.dispose();
  });

  it('an unregistered kind says which package to import; only @mllm packages are imported', async () => {
    await expect(resolveModuleKind({ module_type: 'nope', module_package: '@mllm/does-not-exist' })).rejects.toThrow(
      /'nope' module from "@mllm\/does-not-exist", which is not registered \(importing @mllm\/does-not-exist failed: .*\)\. Install it and import it before loading \(import '@mllm\/does-not-exist'\); registered: .*toy/,
    );
    await expect(resolveModuleKind({ module_type: 'nope', module_package: 'node:fs' })).rejects.toThrow(/which is not registered\. Install it/);
    expect(moduleKind('toy')?.packageName).toBe('@mllm/toy-not-installed');
  });

  it('rejects files that are not adapter configs with the reason', () => {
    expect(() => parseAdapterConfig('{"peft_type": "LORA"}')).toThrow(/adapter_format undefined; this release reads 1 \(not an @mllm adapter/);
    expect(() => parseAdapterConfig('{oops')).toThrow(/adapter_config\.json is not JSON/);
    expect(() => parseAdapterConfig('[1]')).toThrow(/must hold a JSON object/);
  });
});

describe('saveAdapterFiles / loadAdapterFiles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mllm-adapter-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('write the two PEFT-layout files and load them back in one call', async () => {
    setSeed(5);
    const host = new ToyHost();
    const attached = attachToy(host, { rank: 2, layer: 0 });
    await saveAdapterFiles(attached, dir);
    const onDisk = JSON.parse(await readFile(join(dir, ADAPTER_CONFIG_FILE), 'utf8'));
    expect(onDisk.module_type).toBe('toy');
    const fresh = new ToyHost();
    const loaded = await loadAdapterFiles(fresh, dir);
    const [a, b] = [attached.stateDict(), loaded.stateDict()];
    expect(values(b)).toEqual(values(a));
    disposeStateDict(a);
    disposeStateDict(b);
    host.dispose();
    fresh.dispose();
  });

  it('a missing weights file is named', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'mllm-adapter-'));
    await writeFile(join(empty, ADAPTER_CONFIG_FILE), await readFile(join(dir, ADAPTER_CONFIG_FILE)));
    const host = new ToyHost();
    await expect(loadAdapterFiles(host, empty)).rejects.toThrow(/cannot read .*adapter_model\.safetensors/);
    host.dispose();
    await rm(empty, { recursive: true, force: true });
  });
});
