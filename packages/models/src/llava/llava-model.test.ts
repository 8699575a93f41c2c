/**
 * `LlavaModel` against the authors' code: the checkpoint directories and expected logits under
 * `src/__fixtures__/reference/` are written by `scripts/reference-fixtures/llava.py` (Bunny's
 * `prepare_inputs_labels_for_multimodal` and projector builder, Parrot's CLIP / SigLIP towers, the vendored HF
 * Qwen2 / LLaMA, float64), and loaded here with `loadLlavaModel`.
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readSafetensorsFile, StateDictError } from '@mllm/core';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { IMAGE_TOKEN_INDEX } from '../tokenizer/hf-tokenizer.js';
import { disposeLlavaCache, loadLlavaModel, LlavaModel, readLlavaConfigs, resolveLlavaConfig } from './index.js';

const reference = (name: string) => fileURLToPath(new URL(`../__fixtures__/reference/${name}`, import.meta.url));
const FIXTURES = [
  { name: 'llava-qwen2-clip', tower: 'tiny-clip-vit-12', padding: 'right' },
  { name: 'llava-llama-siglip-bf16', tower: 'tiny-siglip-14', padding: 'left' },
] as const;

async function expected(name: string): Promise<Map<string, tf.Tensor>> {
  return (await readSafetensorsFile(join(reference(name), 'expected.safetensors'))).tensors;
}

const rows = (t: tf.Tensor) => t.arraySync() as number[][];

/** The `[B, L, V]` logits rows where `mask` is 1, flattened (padding rows are meaningless, see llava-model.ts). */
function realRows(logits: tf.Tensor, mask: number[][]): number[] {
  const values = logits.arraySync() as number[][][];
  return mask.flatMap((row, b) => row.flatMap((m, t) => (m ? values[b]![t]! : [])));
}

function disposeAll(map: Map<string, tf.Tensor>): void {
  for (const t of map.values()) t.dispose();
}

describe('LlavaModel against the authors\' LLaVA code (float64 fixtures)', () => {
  for (const { name, padding } of FIXTURES) {
    it(`${name}: tower features, a padded batch of 2 with 3 images (${padding} padding), one prompt, greedy tokens`, async () => {
      const model = await loadLlavaModel(reference(name));
      const e = await expected(name);
      const px = e.get('inputs.pixel_values') as tf.Tensor4D;
      await expectNoLeaks(() => {
        const features = model.encodeImages(px);
        expectClose(features, e.get('expected.image_features')!, { label: `${name} tower features` });
        features.dispose();
        const out = model.forward({ inputIds: e.get('inputs.input_ids') as tf.Tensor2D, attentionMask: rows(e.get('inputs.attention_mask')!), pixelValues: px });
        const mask = rows(e.get('expected.attention_mask')!);
        expect(out.attentionMask).toEqual(mask);
        expect(out.positionIds).toEqual(rows(e.get('expected.position_ids')!));
        expect(out.logits.shape).toEqual(e.get('expected.logits')!.shape);
        expectClose(realRows(out.logits, mask), realRows(e.get('expected.logits')!, mask), { label: `${name} batch logits` });
        // lastLogitsOnly: the head at each sample's last real row only, the same values
        const lastOnly = model.forward({ inputIds: e.get('inputs.input_ids') as tf.Tensor2D, attentionMask: rows(e.get('inputs.attention_mask')!), pixelValues: px, lastLogitsOnly: true });
        const all = out.logits.arraySync() as number[][][];
        expect(lastOnly.logits.shape).toEqual([2, 1, out.logits.shape[2]]);
        expectClose(lastOnly.logits, mask.map((row, b) => [all[b]![row.lastIndexOf(1)]!]), { label: `${name} lastLogitsOnly` });
        lastOnly.logits.dispose();
        out.logits.dispose();
        const single = model.forward({ inputIds: e.get('inputs.single_input_ids') as tf.Tensor2D, pixelValues: e.get('inputs.single_pixel_values') as tf.Tensor4D });
        expectClose(single.logits, e.get('expected.single_logits')!, { label: `${name} single logits` });
        single.logits.dispose();
      });
      const greedy = Array.from(e.get('expected.greedy_tokens')!.dataSync());
      const steps: Array<Array<number | null>> = [];
      await expectNoLeaks(() => {
        const tokens = model.generate(e.get('inputs.single_input_ids') as tf.Tensor2D, {
          pixelValues: e.get('inputs.single_pixel_values') as tf.Tensor4D, maxNewTokens: greedy.length, onToken: (t) => steps.push([...t]),
        });
        expect(tokens).toEqual([greedy]);
      });
      expect(steps).toEqual(greedy.map((t) => [t]));
      disposeAll(e);
      model.dispose();
    });
  }

  it('a cached decode step equals the last row of the full forward; a full-sequence hook generates the same tokens', async () => {
    const model = await loadLlavaModel(reference('llava-llama-siglip-bf16'));
    const e = await expected('llava-llama-siglip-bf16');
    const ids = rows(e.get('inputs.input_ids')!);
    const mask = rows(e.get('inputs.attention_mask')!);
    const px = e.get('inputs.pixel_values') as tf.Tensor4D;
    await expectNoLeaks(() => {
      const prefill = model.forward({ inputIds: ids, attentionMask: mask, pixelValues: px, useCache: true });
      expect(prefill.cache!.prompt.imageSpans.map((s) => s.length)).toEqual([2, 1]);
      const step = model.forward({ inputIds: [[7], [9]], cache: prefill.cache, useCache: true });
      const full = model.forward({ inputIds: ids.map((r, b) => [...r, b === 0 ? 7 : 9]), attentionMask: mask.map((r) => [...r, 1]), pixelValues: px });
      // left padding: each sample's new token is the last column of the full forward
      const last = full.logits.slice([0, full.logits.shape[1] - 1, 0], [-1, 1, -1]);
      expectClose(step.logits, last, { label: 'cached step vs full forward' });
      for (const t of [prefill.logits, step.logits, full.logits, last]) t.dispose();
      disposeLlavaCache(prefill.cache);
      disposeLlavaCache(step.cache);
    });
    // a batch generates what each prompt generates alone (padding and image order handled per sample)
    const batch = model.generate(ids, { pixelValues: px, attentionMask: mask, maxNewTokens: 3 });
    const first = px.slice([0, 0, 0, 0], [2, -1, -1, -1]);
    const second = px.slice([2, 0, 0, 0], [1, -1, -1, -1]);
    expect(batch[0]).toEqual(model.generate([ids[0]!], { pixelValues: first, maxNewTokens: 3 })[0]);
    expect(batch[1]).toEqual(model.generate([ids[1]!.filter((_, t) => mask[1]![t])], { pixelValues: second, maxNewTokens: 3 })[0]);
    const cached = model.generate(ids, { pixelValues: px, attentionMask: mask, maxNewTokens: 3, eosTokenId: batch[0]![1] });
    expect(cached[0]).toEqual(batch[0]!.slice(0, 2)); // stops after its eos (kept)
    const handle = model.addHooks({ requiresFullSequence: true });
    expect(model.generate(ids, { pixelValues: px, attentionMask: mask, maxNewTokens: 3 })).toEqual(batch);
    handle.remove();
    first.dispose();
    second.dispose();
    disposeAll(e);
    model.dispose();
  });

  it('reference names, tower weights from the checkpoint or the tower directory, baseModelShape', async () => {
    const clip = await loadLlavaModel(reference('llava-qwen2-clip')); // tower weights from tiny-clip-vit-12/
    const names = clip.namedParameters().map(([n]) => n);
    expect(names).toContain('model.embed_tokens.weight');
    expect(names).toContain('lm_head.weight');
    expect(names).toContain('model.mm_projector.0.weight');
    expect(names).toContain('model.mm_projector.2.bias');
    expect(names).toContain('model.vision_tower.vision_tower.vision_model.encoder.layers.2.mlp.fc1.weight');
    expect(clip.baseModelShape()).toMatchObject({ model_type: 'llava_qwen2', hidden_size: 32, vision_hidden_size: 24, vision_select_feature: 'patch' });
    expect(clip.visionTowerType).toBe('clip');
    // the tower directory's weights are the ones loaded
    const towerFile = await readSafetensorsFile(join(reference('tiny-clip-vit-12'), 'model.safetensors'));
    const dict = clip.stateDict();
    const key = 'vision_model.encoder.layers.1.self_attn.q_proj.weight';
    expectClose(dict.get(`model.vision_tower.vision_tower.${key}`)!, towerFile.tensors.get(key)!, { rtol: 0, atol: 0 });
    for (const t of dict.values()) t.dispose();
    disposeAll(towerFile.tensors);
    clip.dispose();
    const siglip = await loadLlavaModel(reference('llava-llama-siglip-bf16'), { visionTowerDir: reference('tiny-siglip-14') });
    const sNames = siglip.namedParameters().map(([n]) => n);
    expect(sNames).toContain('model.mm_projector.weight'); // linear projector
    expect(sNames).toContain('model.vision_tower.vision_tower.vision_model.encoder.layers.1.mlp.fc1.weight');
    expect(sNames).not.toContain('model.vision_tower.vision_tower.vision_model.encoder.layers.2.mlp.fc1.weight'); // last layer dropped
    expect(siglip.visionTowerType).toBe('siglip');
    siglip.dispose();
  });

  it('errors: missing tower directory, unknown projector / tower types, image count, channels-last pixels; a failed load leaks nothing', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'llava-'));
    try {
      const dir = join(tmp, 'ckpt');
      cpSync(reference('llava-qwen2-clip'), dir, { recursive: true });
      const before = tf.memory().numTensors;
      await expect(loadLlavaModel(dir)).rejects.toThrow(/vision tower "openai\/tiny-clip-vit-12".*not found at .*tiny-clip-vit-12.*options\.visionTowerDir/);
      await expect(loadLlavaModel(dir, { visionTowerDir: join(tmp, 'nowhere') })).rejects.toThrow(/could not read .*nowhere/);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, mm_projector_type: 'resampler' }));
      await expect(loadLlavaModel(dir, { visionTowerDir: reference('tiny-clip-vit-12') })).rejects.toThrow(/mm_projector_type must be 'linear', 'identity' or 'mlp\{N\}x_gelu'.*got the string "resampler"/);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, mm_hidden_size: 32 }));
      await expect(loadLlavaModel(dir, { visionTowerDir: reference('tiny-clip-vit-12') })).rejects.toThrow(/mm_hidden_size must equal the vision tower's hidden_size 24, got 32/);
      const towerDir = join(tmp, 'tiny-clip-vit-12');
      cpSync(reference('tiny-clip-vit-12'), towerDir, { recursive: true });
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      const towerConfig = JSON.parse(readFileSync(join(towerDir, 'config.json'), 'utf8'));
      writeFileSync(join(towerDir, 'config.json'), JSON.stringify({ ...towerConfig, model_type: 'eva_vit' }));
      await expect(loadLlavaModel(dir)).rejects.toThrow(/model_type must be 'clip', 'clip_vision_model', 'siglip' or 'siglip_vision_model', got the string "eva_vit"/);
      // a tower directory of the wrong size: the strict load names the mismatch and assigns nothing
      writeFileSync(join(towerDir, 'config.json'), JSON.stringify({ ...towerConfig, vision_config: { ...towerConfig.vision_config, num_hidden_layers: 4 } }));
      await expect(loadLlavaModel(dir)).rejects.toThrow(StateDictError);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    const model = await loadLlavaModel(reference('llava-qwen2-clip'));
    const image = tf.zeros([1, 3, 12, 12]) as tf.Tensor4D;
    const nhwc = tf.zeros([1, 12, 12, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    expect(() => model.forward({ inputIds: [[5, IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX]], pixelValues: image })).toThrow(/2 image placeholders .* but 1 images were given/);
    expect(() => model.forward({ inputIds: [[5, 6]], pixelValues: image })).toThrow(/0 image placeholders .* but 1 images/);
    expect(() => model.encodeImages(nhwc)).toThrow(/pixelValues must be \[numImages, 3, 12, 12\].*got \[1,12,12,3\].*channels last\?/);
    expect(() => model.forward({ inputIds: [[5, 64]] })).toThrow(/inputIds\[0\]\[1\] must be a token id in \[0, 64\) or IMAGE_TOKEN_INDEX/);
    expect(() => model.forward({ inputIds: [[5, 6]], attentionMask: [[0, 0]] })).toThrow(/attentionMask row 0 has no real token/);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([image, nhwc]);
    model.dispose();
  });

  it('builds from resolved configs (readLlavaConfigs) and rejects a non-object vision config', async () => {
    const { config, visionConfig } = await readLlavaConfigs(reference('llava-qwen2-clip'));
    const model = new LlavaModel({ config, visionConfig });
    expect(model.projector).toBe(model.children().find(([n]) => n === 'model.mm_projector')![1]);
    expect(model.llavaConfig).toMatchObject({ decoderType: 'qwen2', projector: { type: 'mlp', depth: 2 }, selectLayer: -2, paddingSide: 'right' });
    model.dispose();
    expect(() => new LlavaModel({ config, visionConfig: null as unknown as Record<string, unknown> })).toThrow(/visionConfig must be the vision tower's parsed config\.json, got null/);
    // LLaVA-1.5's config says only `llava`; the decoder family comes from `architectures`
    expect(resolveLlavaConfig({ ...config, model_type: 'llava', architectures: ['LlavaLlamaForCausalLM'] })).toMatchObject({ decoderType: 'llama', modelType: 'llava' });
    expect(() => resolveLlavaConfig({ ...config, model_type: 'llava', architectures: ['LlavaMistralForCausalLM'] })).toThrow(/model_type must be a LLaVA model type naming its decoder .*got the string "llava"/);
    expect(() => resolveLlavaConfig({ ...config, mm_patch_merge_type: 'spatial_unpad' })).toThrow(/mm_patch_merge_type must be 'flat'/);
    expect(() => resolveLlavaConfig({ ...config, tokenizer_padding_side: 'middle' })).toThrow(/tokenizer_padding_side must be 'left' or 'right'/);
  });

  it('readLlavaConfigs with the config.json already parsed (options.config) does not read it again', async () => {
    const read = await readLlavaConfigs(reference('llava-qwen2-clip'));
    // a directory without config.json: only the given config can be used (and the tower's, read from its directory)
    const elsewhere = await readLlavaConfigs(reference('no-such-checkpoint'), { config: read.config, visionTowerDir: read.visionTowerDir });
    expect(elsewhere).toEqual(read);
    expect(elsewhere.config).not.toBe(read.config); // a copy: the caller's object is not handed on
    await expect(readLlavaConfigs(reference('no-such-checkpoint'), { visionTowerDir: read.visionTowerDir })).rejects.toThrow(/could not read .*no-such-checkpoint\/config\.json/);
    await expect(readLlavaConfigs(reference('llava-qwen2-clip'), { config: [] as never })).rejects.toThrow('loadLlavaModel: options.config must be the parsed config.json object, got an array');
    await expect(readLlavaConfigs(reference('llava-qwen2-clip'), { config: 'config.json' as never })).rejects.toThrow('loadLlavaModel: options.config must be the parsed config.json object, got "config.json"');
  });
});
