import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { type AttachedModule, attachModule, disposeStateDict, Linear, MlpGeluProjector, type ModuleHost, type ModuleRecord, registerModuleKind, registerProjectorKind, stateDict } from '@mllm/core';
import { collateChat, disposeBatch, loadHostModel, saveHostModel, type MultimodalBatch } from '../index.js';
import type { HostMLLM } from './host-mllm.js';
import { tinyHost, tinyImages } from '@mllm/models/testing';

/**
 * A toy module kind: `h ← h + W h` at the input of layer `layer`, registered as `model.layers.{layer}.toy`.
 * It changes the logits, so "same outputs after reload" checks that it was re-attached and loaded.
 */
function attachToy(host: ModuleHost, config: { layer: number }): AttachedModule<Linear, { layer: number }> {
  const H = host.baseModelShape().hidden_size;
  const module = new Linear({ inFeatures: H, outFeatures: H, bias: false });
  return attachModule('attachToy', host, {
    type: 'toy_io',
    packageName: '@mllm/toy-io-not-installed',
    version: '0.0.1',
    module,
    config,
    referenceConfig: { target_layer: config.layer },
    hooks: {
      beforeLayer: (layerIndex, hidden) => (layerIndex === config.layer ? tf.add(hidden, module.apply(hidden) as tf.Tensor) as tf.Tensor3D : null),
    },
    namedModules: [[`model.layers.${config.layer}.toy`, module]],
    afterAttach: () => module.setTrainable(true),
  });
}

/** A projector kind: an MlpGeluProjector subclass (so `mlp2x_gelu` alone would not rebuild it). */
class ToyProjector extends MlpGeluProjector {}

beforeAll(() => {
  registerModuleKind({
    type: 'toy_io',
    packageName: '@mllm/toy-io-not-installed',
    version: '0.0.1',
    attachFromRecord: (host, record: ModuleRecord) => attachToy(host, { layer: record.config.target_layer as number }),
  });
  registerProjectorKind({
    type: 'toy_projector',
    packageName: '@mllm/toy-io-not-installed',
    version: '0.0.1',
    recordOf: (p) =>
      p instanceof ToyProjector
        ? { module_type: 'toy_projector', module_package: '@mllm/toy-io-not-installed', module_version: '0.0.1', config: { in: p.inFeatures, out: p.outFeatures } }
        : null,
    build: (record) => new ToyProjector({ inFeatures: record.config.in as number, outFeatures: record.config.out as number }),
  });
});

function batchOf(model: HostMLLM): { batch: MultimodalBatch; images: tf.Tensor4D } {
  const images = tinyImages(1);
  const [a] = tf.unstack(images) as tf.Tensor3D[];
  const batch = collateChat(model.tokenizer, [{ messages: [{ role: 'user', content: '<image>\nWhat colour?' }, { role: 'assistant', content: 'red' }], images: [a] }]);
  a.dispose();
  return { batch, images };
}

function logitsOf(model: HostMLLM): number[] {
  const { batch, images } = batchOf(model);
  const out = model.forward(batch);
  const values = Array.from(out.logits.dataSync());
  tf.dispose([out.logits, out.labels!, out.attentionMask, images]);
  disposeBatch(batch);
  return values;
}

describe('saveHostModel / loadHostModel with attached modules', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mllm-host-modules-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('records the modules, re-attaches them on load and gives identical outputs', async () => {
    const model = tinyHost(3);
    const attached = attachToy(model, { layer: 1 });
    const weight = tf.randomNormal([16, 16], 0, 0.3, 'float32', 4);
    attached.loadStateDict(new Map([['model.layers.1.toy.weight', weight]]));
    weight.dispose();
    const withModule = logitsOf(model);
    const out = join(dir, 'one');
    await saveHostModel(model, out);
    const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(config.mllm_modules).toEqual([{ module_type: 'toy_io', module_package: '@mllm/toy-io-not-installed', module_version: '0.0.1', config: { target_layer: 1 } }]);
    const before = tf.memory().numTensors;
    const loaded = await loadHostModel(out);
    expect(loaded.hooks).toHaveLength(1);
    expect(logitsOf(loaded)).toEqual(withModule);
    const [a, b] = [stateDict(model), stateDict(loaded)];
    expect([...b.keys()]).toEqual([...a.keys()]);
    expect([...b.keys()]).toContain('model.layers.1.toy.weight');
    disposeStateDict(a);
    disposeStateDict(b);
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(before);
    // skipModules: the base model alone
    const base = await loadHostModel(out, { skipModules: true });
    expect(base.hooks).toHaveLength(0);
    attached.remove();
    expect(logitsOf(base)).toEqual(logitsOf(model));
    base.dispose();
    attached.module.dispose();
    model.dispose();
  });

  it('attaching a second module freezes the base only: the first keeps its trainable flags', () => {
    const model = tinyHost(7);
    const first = attachToy(model, { layer: 0 });
    const second = attachToy(model, { layer: 1 });
    const trainable = model.namedParameters().filter(([, p]) => p.variable.trainable).map(([n]) => n);
    expect(trainable).toEqual(['model.layers.0.toy.weight', 'model.layers.1.toy.weight']);
    for (const a of [first, second]) {
      a.remove();
      a.module.dispose();
    }
    model.dispose();
  });

  it('a hook added with addHooks directly cannot be saved with the host unless includeModules is false', async () => {
    const model = tinyHost(4);
    const extra = new Linear({ inFeatures: 16, outFeatures: 16 });
    const handle = model.addHooks({ modules: () => [extra] });
    const out = join(dir, 'raw');
    await expect(saveHostModel(model, out)).rejects.toThrow(
      /hooks added with addHooks directly own modules \(\(unnamed module\)\) that loadHostModel could not re-attach; attach them with attachParrot/,
    );
    await saveHostModel(model, out, { includeModules: false });
    const loaded = await loadHostModel(out);
    expect(loaded.hooks).toHaveLength(0);
    handle.remove();
    expect(logitsOf(loaded)).toEqual(logitsOf(model));
    loaded.dispose();
    extra.dispose();
    model.dispose();
  });

  it('an unregistered module kind is named with the package to import, and nothing leaks', async () => {
    const model = tinyHost(5);
    const attached = attachToy(model, { layer: 0 });
    const out = join(dir, 'unknown');
    await saveHostModel(model, out);
    const path = join(out, 'config.json');
    const config = JSON.parse(await readFile(path, 'utf8'));
    config.mllm_modules[0].module_type = 'not_registered';
    await (await import('node:fs/promises')).writeFile(path, JSON.stringify(config));
    const before = tf.memory().numTensors;
    await expect(loadHostModel(out)).rejects.toThrow(/records a 'not_registered' module from "@mllm\/toy-io-not-installed", which is not registered/);
    expect(tf.memory().numTensors).toBe(before);
    attached.module.dispose();
    model.dispose();
  });

  it('a custom projector of a registered kind is recorded and rebuilt', async () => {
    const model = tinyHost(6);
    const old = model.setProjector(new ToyProjector({ inFeatures: 12, outFeatures: 16 }));
    (old as MlpGeluProjector).dispose();
    const out = join(dir, 'projector');
    await saveHostModel(model, out);
    const loaded = await loadHostModel(out);
    expect(loaded.projector).toBeInstanceOf(ToyProjector);
    expect(logitsOf(loaded)).toEqual(logitsOf(model));
    loaded.dispose();
    model.dispose();
  });
});
