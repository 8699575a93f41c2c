/**
 * Cheetah's YAML configuration merged as `Config.build_model_config` merges it: the model YAML of the arch, then the
 * eval YAML's `model` section over it (its `preprocess` is not merged).
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeConfigs, readCheetahConfig, resolveCheetahConfig } from './config.js';

const DIR = fileURLToPath(new URL('./__fixtures__/tiny-vicuna', import.meta.url));

describe('readCheetahConfig', () => {
  it('merges the eval YAML over the model YAML beside it, keeping the model YAML\'s preprocess', async () => {
    const config = await readCheetahConfig(join(DIR, 'cheetah_eval_vicuna.yaml'));
    expect(config.arch).toBe('cheetah_vicuna');
    expect(config.style).toBe('vicuna');
    expect(config.imageSize).toBe(8); // model YAML
    expect(config.numQueryToken).toBe(4); // model YAML
    expect(config.llamaModel).toBe('vicuna'); // model YAML
    expect(config.ckpt).toBe('cheetah_vicuna.pth'); // eval YAML
    expect(config.qFormerModel).toBe('blip2_pretrained_flant5xxl.pth'); // eval YAML
    expect(config.evalImageSize).toBe(8);
    const model = config.merged.model as Record<string, unknown>;
    expect(model.max_txt_len).toBe(160); // eval over model
    expect(model.vit_precision).toBe('fp16'); // model only
    // the eval YAML's preprocess names blip_image_eval; the merged one is the model YAML's blip2_image_eval
    expect(((config.merged.preprocess as any).vis_processor.eval.name)).toBe('blip2_image_eval');
  });

  it('without a model YAML uses the released model YAMLs\' values; errors name the key and the value', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cheetah-config-'));
    try {
      const write = (name: string, text: string) => {
        writeFileSync(join(tmp, name), text);
        return join(tmp, name);
      };
      const llama2 = await readCheetahConfig(write('eval.yaml', "model:\n  arch: cheetah_llama2\n  model_type: pretrain_llama2\n  ckpt: 'c.pth'\n  update_layer: 3\n"));
      expect([llama2.style, llama2.imageSize, llama2.numQueryToken, llama2.evalImageSize, llama2.yamlUpdateLayer]).toEqual(['llama2', 224, 32, 224, 3]);
      await expect(readCheetahConfig(write('bad-type.yaml', 'model:\n  arch: cheetah_vicuna\n  model_type: pretrain_llama2\n'))).rejects.toThrow(
        `model.model_type of cheetah_vicuna must be 'pretrain_vicuna', got the string "pretrain_llama2"`);
      await expect(readCheetahConfig(write('bad-arch.yaml', 'model:\n  arch: minigpt4\n'))).rejects.toThrow(/model\.arch .* must be 'cheetah_vicuna' or 'cheetah_llama2', got the string "minigpt4"/);
      await expect(readCheetahConfig(write('bad-vit.yaml', 'model:\n  arch: cheetah_vicuna\n  vit_model: eva_clip_l\n'))).rejects.toThrow(
        "model.vit_model must be 'eva_clip_g' (the only ViT Cheetah builds), got \"eva_clip_l\"");
      await expect(readCheetahConfig(write('bad-size.yaml', 'model:\n  arch: cheetah_vicuna\n  num_query_token: -1\n'))).rejects.toThrow('model.num_query_token must be a positive integer, got -1');
      await expect(readCheetahConfig(write('broken.yaml', 'model: [\n'))).rejects.toThrow(/broken\.yaml" is not valid YAML/);
      await expect(readCheetahConfig(join(tmp, 'absent.yaml'))).rejects.toThrow(/could not read .*absent\.yaml/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('mergeConfigs is OmegaConf.merge for YAML trees: dicts merge key by key, later values win, inputs untouched', () => {
    const a = { model: { arch: 'cheetah_vicuna', image_size: 224, nested: { x: 1, y: 2 } }, preprocess: { p: 1 } };
    const b = { model: { image_size: 448, nested: { y: 3 }, ckpt: 'c' } };
    expect(mergeConfigs(a, b)).toEqual({ model: { arch: 'cheetah_vicuna', image_size: 448, nested: { x: 1, y: 3 }, ckpt: 'c' }, preprocess: { p: 1 } });
    expect(a.model.nested.y).toBe(2);
    expect(() => resolveCheetahConfig({})).toThrow("the configuration has no 'model' section");
  });
});
