/**
 * Vision towers against float64 references: the tower directories and expected features under
 * `__fixtures__/` are written by `scripts/reference-fixtures/vision_towers.py` (CLIP: a float64 re-statement
 * of HF `CLIPVisionModel`; SigLIP: Parrot's vendored `SigLipVisionTower`; EVA: Cheetah's `eva_vit.py`).
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readSafetensorsFile, writeSafetensorsFile, StateDictError } from '@mllm/core';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import {
  CLIPVisionModel, loadCLIPVisionTower, resolveCLIPVisionConfig, quickGelu, geluTanh, SiglipVisionModel, loadSiglipVisionTower, resolveSiglipVisionConfig,
  EVAVisionTransformer, loadEVAVisionTower, resolveEVAVisionConfig,
} from './index.js';

const fixtureDir = (name: string) => fileURLToPath(new URL(`./__fixtures__/${name}`, import.meta.url));

async function expected(name: string): Promise<Map<string, tf.Tensor>> {
  return (await readSafetensorsFile(join(fixtureDir(name), 'expected.safetensors'))).tensors;
}

/** A copy of a fixture directory in a temp dir, for tests that rewrite it. */
function withCopy(name: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `tower-${name}-`));
  cpSync(fixtureDir(name), dir, { recursive: true });
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

describe('activations', () => {
  it('quick_gelu and the tanh GELU match their float64 formulas', () => {
    const xs = [-3, -1.5, -0.2, 0, 0.3, 1.1, 2.5];
    const q = quickGelu(tf.tensor1d(xs));
    const g = geluTanh(tf.tensor1d(xs));
    expectClose(q, xs.map((x) => x / (1 + Math.exp(-1.702 * x))));
    expectClose(g, xs.map((x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)))));
    tf.dispose([q, g]);
  });
});

describe('CLIPVisionModel against a float64 statement of HF CLIPVisionModel', () => {
  it('hidden states, pooled output and the LLaVA selections (layer −2, patch / cls_patch)', async () => {
    const model = await loadCLIPVisionTower(fixtureDir('clip'));
    const e = await expected('clip');
    const pixels = e.get('inputs.pixel_values') as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const out = model.forward(pixels, { outputHiddenStates: true });
    expect(out.hiddenStates).toHaveLength(4);
    expectClose(out.hiddenStates![0]!, e.get('expected.hidden_state_0')!, { label: 'hidden_states[0] (pre_layrnorm)' });
    expectClose(out.lastHiddenState, e.get('expected.last_hidden_state')!, { label: 'last_hidden_state' });
    expectClose(out.poolerOutput, e.get('expected.pooler_output')!, { label: 'pooler_output' });
    const clsPatch = model.selectFeatures(pixels, { selectLayer: -2, selectFeature: 'cls_patch' });
    expect(clsPatch.shape).toEqual([2, 10, 32]);
    expectClose(clsPatch, e.get('expected.select_m2_cls_patch')!, { label: 'layer −2 cls_patch' });
    const patch = model.selectFeatures(pixels); // LLaVA defaults: −2, patch
    expect(patch.shape).toEqual([2, 9, 32]);
    expectClose(patch, e.get('expected.select_m2_patch')!, { label: 'layer −2 patch' });
    const viaIndex = model.selectFeatures(pixels, { selectLayer: 3, selectFeature: 'cls_patch' });
    expectClose(viaIndex, e.get('expected.last_hidden_state')!, { label: 'layer 3 = last' });
    tf.dispose([out.lastHiddenState, out.poolerOutput, ...out.hiddenStates!, clsPatch, patch, viaIndex]);
    expect(tf.memory().numTensors).toBe(before);
    for (const t of e.values()) t.dispose();
    model.dispose();
  });

  it('names as HF writes them; forward and selectFeatures keep the tensor count flat', async () => {
    const model = await loadCLIPVisionTower(fixtureDir('clip'));
    const names = model.namedParameters().map(([n]) => n);
    expect(names).toContain('vision_model.pre_layrnorm.weight');
    expect(names).toContain('vision_model.encoder.layers.2.self_attn.out_proj.bias');
    expect(names).toContain('vision_model.embeddings.patch_embedding.weight');
    expect(names).not.toContain('vision_model.embeddings.patch_embedding.bias');
    const pixels = tf.randomNormal([1, 12, 12, 3]) as tf.Tensor4D;
    expectNoLeaks(() => model.forward(pixels));
    expectNoLeaks(() => model.selectFeatures(pixels, { selectLayer: 0 }));
    pixels.dispose();
    model.dispose();
  });

  it('a strict load rejects an unknown tensor and assigns nothing; CLIP text-tower tensors are skipped', async () => {
    await withCopy('clip', async (dir) => {
      const file = join(dir, 'model.safetensors');
      const { tensors } = await readSafetensorsFile(file);
      tensors.set('text_model.embeddings.token_embedding.weight', tf.zeros([4, 2]));
      tensors.set('logit_scale', tf.scalar(2));
      await writeSafetensorsFile(file, tensors);
      const loaded = await loadCLIPVisionTower(dir);
      loaded.dispose();
      tensors.set('vision_model.encoder.layers.0.extra', tf.zeros([2]));
      await writeSafetensorsFile(file, tensors);
      for (const t of tensors.values()) t.dispose();
      const before = tf.memory().numTensors;
      await expect(loadCLIPVisionTower(dir)).rejects.toThrow(StateDictError);
      await expect(loadCLIPVisionTower(dir)).rejects.toThrow(/vision_model.encoder.layers.0.extra/);
      expect(tf.memory().numTensors).toBe(before);
      writeFileSync(join(dir, 'config.json'), '{"model_type": "clip",');
      await expect(loadCLIPVisionTower(dir)).rejects.toThrow(/config.json" is not valid JSON/);
    });
  });

  it('bad configs and inputs get clear errors', () => {
    const vc = { hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, image_size: 4, patch_size: 2 };
    expect(resolveCLIPVisionConfig({ model_type: 'clip', vision_config: vc })).toMatchObject({ hiddenSize: 8, hiddenAct: 'quick_gelu', layerNormEps: 1e-5, numChannels: 3 });
    expect(() => resolveCLIPVisionConfig({ ...vc, num_attention_heads: 3 })).toThrow(/hidden_size must be divisible by num_attention_heads \(3\), got 8/);
    expect(() => resolveCLIPVisionConfig({ ...vc, hidden_act: 'relu' })).toThrow(/hidden_act must be one of 'quick_gelu', 'gelu', 'gelu_pytorch_tanh', 'gelu_new', got the string "relu"/);
    expect(() => resolveCLIPVisionConfig({ ...vc, patch_size: 5 })).toThrow(/patch_size must be at most image_size \(4\), got 5/);
    expect(() => resolveCLIPVisionConfig({ model_type: 'siglip', vision_config: vc })).toThrow(/model_type must be 'clip' \(a config with vision_config\), got the string "siglip"/);
    expect(() => resolveCLIPVisionConfig({ ...vc, model_type: 'siglip_vision_model' })).toThrow(/model_type must be 'clip_vision_model'/);
    const model = new CLIPVisionModel({ config: vc });
    const wrong = tf.zeros([1, 3, 4, 4]);
    expect(() => model.forward(wrong as tf.Tensor4D)).toThrow(/pixelValues must be \[numImages, 4, 4, 3\] \(normalised, channels last\), got \[1,3,4,4\]/);
    const pixels = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
    expect(() => model.selectFeatures(pixels, { selectLayer: -3 })).toThrow(/selectLayer must be an integer in \[-2, 1\] \(hidden states of 1 layers\), got -3/);
    expect(() => model.selectFeatures(pixels, { selectFeature: 'cls' as never })).toThrow(/selectFeature must be 'patch' or 'cls_patch', got "cls"/);
    tf.dispose([wrong, pixels]);
    model.dispose();
  });
});

describe('SiglipVisionModel against Parrot\'s vendored SigLipVisionModel / SigLipVisionTower', () => {
  it('full model: embeddings and post_layernorm output; the tower without its last layer: hidden_states[−1]', async () => {
    const e = await expected('siglip');
    const pixels = e.get('inputs.pixel_values') as tf.Tensor4D;
    const full = await loadSiglipVisionTower(fixtureDir('siglip'));
    expect(full.layers).toHaveLength(3);
    expect(pixels.shape).toEqual([2, 14, 14, 3]); // patch 4: 3 × 3 patches, the last 2 rows / columns unused
    expect(full.numPatches).toBe(9);
    const before = tf.memory().numTensors;
    const out = full.forward(pixels, { outputHiddenStates: true });
    expect(out.hiddenStates).toHaveLength(4);
    expectClose(out.hiddenStates![0]!, e.get('expected.hidden_state_0')!, { label: 'hidden_states[0]' });
    expectClose(out.lastHiddenState, e.get('expected.last_hidden_state')!, { label: 'last_hidden_state (post_layernorm)' });
    expectClose(out.poolerOutput!, e.get('expected.pooler_output')!, { label: 'pooler_output (attention-pooling head)' });
    // the full model's second-to-last state is the truncated tower's last one
    expectClose(out.hiddenStates![2]!, e.get('expected.tower_features')!, { label: 'full hidden_states[−2]' });
    tf.dispose([out.lastHiddenState, out.poolerOutput!, ...out.hiddenStates!]);
    expect(tf.memory().numTensors).toBe(before);
    expectNoLeaks(() => full.forward(pixels));
    full.dispose();
    const tower = await loadSiglipVisionTower(fixtureDir('siglip'), { dropLastLayer: true });
    expect(tower.layers).toHaveLength(2);
    expect(tower.head).toBeNull();
    expect(tower.namedParameters().map(([n]) => n)).not.toContain('vision_model.encoder.layers.2.mlp.fc1.weight');
    const features = tower.towerFeatures(pixels);
    expect(features.shape).toEqual([2, 9, 32]);
    expectClose(features, e.get('expected.tower_features')!, { label: 'SigLipVisionTower features' });
    features.dispose();
    expectNoLeaks(() => tower.forward(pixels, { outputHiddenStates: true }));
    expectNoLeaks(() => tower.towerFeatures(pixels, 0));
    for (const t of e.values()) t.dispose();
    tower.dispose();
  });

  it('strict loads: the full model needs the head and last layer, the tower skips them; unknown tensors are rejected', async () => {
    await withCopy('siglip', async (dir) => {
      const file = join(dir, 'model.safetensors');
      const { tensors } = await readSafetensorsFile(file);
      const last = tensors.get('vision_model.encoder.layers.2.mlp.fc2.bias')!;
      const probe = tensors.get('vision_model.head.probe')!;
      tensors.delete('vision_model.encoder.layers.2.mlp.fc2.bias');
      tensors.delete('vision_model.head.probe');
      await writeSafetensorsFile(file, tensors);
      const before = tf.memory().numTensors;
      await expect(loadSiglipVisionTower(dir)).rejects.toThrow(/missing.*vision_model.encoder.layers.2.mlp.fc2.bias/s);
      await expect(loadSiglipVisionTower(dir)).rejects.toThrow(/vision_model.head.probe/);
      expect(tf.memory().numTensors).toBe(before);
      (await loadSiglipVisionTower(dir, { dropLastLayer: true })).dispose(); // the deleted layer and head are not read
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'siglip', vision_config: { ...JSON.parse(readFileSync(join(fixtureDir('siglip'), 'config.json'), 'utf8')), model_type: 'siglip_vision_model', vision_use_head: false } }));
      await expect(loadSiglipVisionTower(dir)).rejects.toThrow(/vision_model.head.attention.in_proj_weight/); // no head: its tensors are unknown
      rmSync(join(dir, 'config.json'));
      cpSync(join(fixtureDir('siglip'), 'config.json'), join(dir, 'config.json'));
      tensors.set('vision_model.encoder.layers.2.mlp.fc2.bias', last);
      tensors.set('vision_model.head.probe', probe);
      tensors.set('vision_model.encoder.layers.0.mlp.extra', tf.zeros([2]));
      await writeSafetensorsFile(file, tensors);
      for (const t of tensors.values()) t.dispose();
      await expect(loadSiglipVisionTower(dir, { dropLastLayer: true })).rejects.toThrow(/vision_model.encoder.layers.0.mlp.extra/);
    });
  });

  it('configs: vendored defaults (so400m), nested vision_config, clear errors', () => {
    expect(resolveSiglipVisionConfig({})).toMatchObject({ hiddenSize: 1152, intermediateSize: 4304, numLayers: 27, numHeads: 16, imageSize: 384, patchSize: 14, hiddenAct: 'gelu_pytorch_tanh', layerNormEps: 1e-6 });
    expect(resolveSiglipVisionConfig({ model_type: 'siglip', vision_config: { hidden_size: 64, num_attention_heads: 4 } })).toMatchObject({ hiddenSize: 64, numHeads: 4 });
    expect(() => resolveSiglipVisionConfig({ model_type: 'clip_vision_model' })).toThrow(/SigLIP vision config: model_type must be 'siglip_vision_model' \(or 'siglip' with a vision_config\), got the string "clip_vision_model"/);
    expect(() => resolveSiglipVisionConfig({ layer_norm_eps: 0 })).toThrow(/layer_norm_eps must be a positive finite number, got 0/);
    const tiny = { num_hidden_layers: 1, hidden_size: 8, num_attention_heads: 2, intermediate_size: 8, image_size: 4, patch_size: 2 };
    const before = tf.memory().numTensors;
    expect(() => new SiglipVisionModel({ config: tiny, dropLastLayer: 'yes' as never })).toThrow(/dropLastLayer must be a boolean, got yes/);
    expect(() => new SiglipVisionModel({ config: { ...tiny, vision_use_head: 'no' } })).toThrow(/vision_use_head must be a boolean, got no/);
    expect(tf.memory().numTensors).toBe(before); // checked before any weight is allocated
  });
});

describe('EVAVisionTransformer against Cheetah\'s eva_vit.py VisionTransformer + ln_vision', () => {
  it('visual_encoder output, first block, ln_vision image embeds', async () => {
    const e = await expected('eva');
    const pixels = e.get('inputs.pixel_values') as tf.Tensor4D;
    const model = await loadEVAVisionTower(fixtureDir('eva'));
    expect(model.blocks[0]!.fc1.outFeatures).toBe(139); // int(32 · 4.3637)
    const before = tf.memory().numTensors;
    const out = model.encode(pixels, { outputHiddenStates: true });
    expectClose(out.hiddenStates![1]!, e.get('expected.layer_0')!, { label: 'block 0' });
    expectClose(out.lastHiddenState, e.get('expected.visual_encoder')!, { label: 'visual_encoder' });
    const embeds = model.forward(pixels);
    expect(embeds.shape).toEqual([2, 10, 32]);
    expectClose(embeds, e.get('expected.image_embeds')!, { label: 'ln_vision(visual_encoder)' });
    tf.dispose([out.lastHiddenState, ...out.hiddenStates!, embeds]);
    expect(tf.memory().numTensors).toBe(before);
    expectNoLeaks(() => model.forward(pixels));
    model.dispose();
    const bare = await loadEVAVisionTower(fixtureDir('eva'), { withLnVision: false, strict: false });
    expect(bare.lnVision).toBeNull();
    const features = bare.forward(pixels);
    expectClose(features, e.get('expected.visual_encoder')!, { label: 'without ln_vision' });
    features.dispose();
    bare.dispose();
    for (const t of e.values()) t.dispose();
  });

  it('strict loads: ln_vision is expected; an extra block (as in eva_vit_g.pth) is rejected unless strict is off', async () => {
    await withCopy('eva', async (dir) => {
      await expect(loadEVAVisionTower(dir, { withLnVision: false })).rejects.toThrow(/ln_vision.weight/);
      const file = join(dir, 'model.safetensors');
      const { tensors } = await readSafetensorsFile(file);
      tensors.set('visual_encoder.blocks.3.norm1.weight', tf.ones([32]));
      await writeSafetensorsFile(file, tensors);
      for (const t of tensors.values()) t.dispose();
      const before = tf.memory().numTensors;
      await expect(loadEVAVisionTower(dir)).rejects.toThrow(/visual_encoder.blocks.3.norm1.weight/);
      expect(tf.memory().numTensors).toBe(before);
      (await loadEVAVisionTower(dir, { strict: false })).dispose();
      rmSync(join(dir, 'config.json'));
      // no config.json: ViT-g's shape, which the tiny weights do not fit
      await expect(loadEVAVisionTower(dir)).rejects.toThrow(StateDictError);
    });
  });

  it('config defaults are ViT-g; bad values get clear errors', () => {
    expect(resolveEVAVisionConfig()).toMatchObject({ imageSize: 224, patchSize: 14, hiddenSize: 1408, numLayers: 39, numHeads: 16, mlpHidden: 6144, qkvBias: true, layerNormEps: 1e-6, lnVisionEps: 1e-5 });
    expect(() => resolveEVAVisionConfig({ embed_dim: 30, num_heads: 4 })).toThrow(/EVA vision config: embed_dim must be divisible by num_heads \(4\), got 30/);
    expect(() => resolveEVAVisionConfig({ qkv_bias: 1 })).toThrow(/qkv_bias must be a boolean, got 1/);
    expect(() => resolveEVAVisionConfig({ model_type: 'clip' })).toThrow(/model_type must be 'eva_vit', got the string "clip"/);
    const before = tf.memory().numTensors;
    expect(() => new EVAVisionTransformer({ withLnVision: 1 as never })).toThrow(/withLnVision must be a boolean, got 1/);
    expect(tf.memory().numTensors).toBe(before); // checked before ViT-g's weights are allocated
    const tiny = new EVAVisionTransformer({ config: { img_size: 4, patch_size: 2, embed_dim: 8, depth: 1, num_heads: 2 } });
    const wrong = tf.zeros([1, 4, 4, 1]);
    expect(() => tiny.forward(wrong as tf.Tensor4D)).toThrow(/EVAVisionTransformer: pixelValues must be \[numImages, 4, 4, 3\]/);
    wrong.dispose();
    tiny.dispose();
  });
});
