import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { disposeStateDict, loadAdapter, parseAdapterConfig, saveAdapter, writeSafetensorsFile } from '@mllm/core';
import { HostLM } from '@mllm/models';
import './index.js'; // registers the wings module kind (what loadAdapter resolves)
import { loadWingsCheckpoint, wingsCheckpointShape } from './load-checkpoint.js';
import { CLEAN_COMPAT, REFERENCE_COMPAT } from './wings-layer.js';
import { learnerStateDict, randomLearnerWeights, randomMatrix } from './reference-math.testutil.js';

const H = 8;
const R = 3;
const MAX = 12;

function host(hiddenSize = H): HostLM {
  return new HostLM({ config: { vocabSize: 16, hiddenSize, numLayers: 3, numHeads: 2, intermediateSize: 12 } });
}

/** A released-checkpoint-like directory: Wings tensors of `layers` (plus a base-model tensor) and a config.json. */
async function checkpoint(dir: string, layers: number[], stage: 1 | 2, config: Record<string, unknown> | null): Promise<string> {
  await mkdir(dir, { recursive: true });
  const dict = new Map<string, tf.Tensor>([['model.norm.weight', tf.ones([H])]]);
  for (const i of layers) {
    for (const [name, s] of [['attn_pool', 10 + i], ['attn_t_pool', 20 + i]] as const) {
      for (const [k, v] of learnerStateDict(randomLearnerWeights(s, H, R), `model.layers.${i}.${name}.`)) dict.set(k, v);
    }
    if (stage === 2) {
      dict.set(`model.layers.${i}.reweight_module.linear.weight`, tf.tensor2d(randomMatrix(30 + i, 2, MAX)));
      dict.set(`model.layers.${i}.reweight_module.linear.bias`, tf.tensor1d([0.1, -0.2]));
    }
  }
  await writeSafetensorsFile(join(dir, 'model.safetensors'), dict, { format: 'pt' });
  disposeStateDict(dict);
  if (config) await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

describe('loadWingsCheckpoint', () => {
  let root = '';
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'wings-ckpt-'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('shapes the learners like the checkpoint, reproduces the reference by default and loads every weight', async () => {
    const dir = await checkpoint(join(root, 'stage2'), [0, 2], 2, { lora_dim: R, system_prompt_length: 5 });
    const model = host();
    const before = tf.memory().numTensors;
    const wings = await loadWingsCheckpoint(model, dir);
    expect(wings.config).toMatchObject({ stage: 2, rank: R, layers: [0, 2], routerMaxLength: MAX, systemPromptLength: 5 });
    expect(wings.config.referenceCompat).toEqual(REFERENCE_COMPAT);
    const loaded = wings.adapter.stateDict();
    expect(loaded.size).toBe(2 * 18);
    const expected = learnerStateDict(randomLearnerWeights(22, H, R), 'model.layers.2.attn_t_pool.');
    for (const [k, v] of expected) expect(loaded.get(k)!.arraySync()).toEqual(v.arraySync());
    [loaded, expected].forEach(disposeStateDict);
    // The result is an attached module: core's adapter format saves it and loads it back into a fresh host.
    const files = saveAdapter(wings);
    expect(parseAdapterConfig(files.config).config).toMatchObject({
      lora_dim: R, target_layers: [0, 2], router_max_length: MAX, system_prompt_length: 5,
      reference_compat: { double_add: true, text_only_no_router: true, misaligned_text_mask: true },
    });
    const other = host();
    const again = await loadAdapter(other, files);
    expect(again.config).toEqual(wings.config);
    const [a, b] = [wings.stateDict(), again.stateDict()];
    for (const [k, v] of a) expect(b.get(k)!.arraySync()).toEqual(v.arraySync());
    [a, b].forEach(disposeStateDict);
    again.remove();
    again.module.dispose();
    other.dispose();
    wings.remove();
    wings.adapter.dispose();
    expect(tf.memory().numTensors).toBe(before);

    const clean = await loadWingsCheckpoint(model, dir, { referenceCompat: 'clean' });
    expect(clean.config.referenceCompat).toEqual(CLEAN_COMPAT);
    clean.remove();
    clean.adapter.dispose();
    model.dispose();
  });

  it('stage 1 checkpoints (no router) and single .safetensors files', async () => {
    const dir = await checkpoint(join(root, 'stage1'), [1], 1, { lora_dim: R, system_prompt_length: 14 });
    const model = host();
    const wings = await loadWingsCheckpoint(model, join(dir, 'model.safetensors'));
    expect(wings.config).toMatchObject({ stage: 1, layers: [1], systemPromptLength: 14 });
    wings.remove();
    wings.adapter.dispose();
    model.dispose();
  });

  it('clear errors; a failed load leaves nothing attached', async () => {
    const model = host();
    const count = model.namedParameters().length;
    const noPrompt = await checkpoint(join(root, 'no-prompt'), [0], 2, { lora_dim: R });
    await expect(loadWingsCheckpoint(model, noPrompt)).rejects.toThrowError(/need systemPromptLength, and .*config\.json has no system_prompt_length; pass \{ systemPromptLength \}/);
    const withOption = await loadWingsCheckpoint(model, noPrompt, { systemPromptLength: 3 });
    expect(withOption.config.systemPromptLength).toBe(3);
    withOption.remove();
    withOption.adapter.dispose();
    const noConfig = await checkpoint(join(root, 'no-config'), [0], 2, null);
    await expect(loadWingsCheckpoint(model, noConfig)).rejects.toThrowError(/config\.json does not exist/);
    const wrongRank = await checkpoint(join(root, 'wrong-rank'), [0], 2, { lora_dim: 64, system_prompt_length: 1 });
    await expect(loadWingsCheckpoint(model, wrongRank)).rejects.toThrowError(/has lora_dim 64, the weights have rank 3/);
    await expect(loadWingsCheckpoint(model, join(root, 'absent'))).rejects.toThrowError(/could not read ".*absent"/);
    expect(() => wingsCheckpointShape(new Map([['model.norm.weight', tf.ones([2])]]), 'x')).toThrowError(/x has no Wings learner weights/);
    // Host hidden size 16, checkpoint 8: the strict load fails and the learners are detached again.
    const wide = host(16);
    const wideCount = wide.namedParameters().length;
    await expect(loadWingsCheckpoint(wide, noPrompt, { systemPromptLength: 1 })).rejects.toThrowError(/size mismatch/);
    expect(wide.namedParameters().length).toBe(wideCount);
    expect(model.namedParameters().length).toBe(count);
    wide.dispose();
    model.dispose();
  });
});
