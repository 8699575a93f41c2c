/**
 * `loadParrot` against the authors' own `ParrotQwen2ForCausalLM` (parrot_qwen2.py + parrot_arch.py + moe.py over
 * Bunny's vendored HF Qwen2): the checkpoint directories and expected outputs under
 * `__fixtures__/reference/parrot/` are written by `scripts/reference-fixtures/parrot_model.py` (float64 reference,
 * F32 / BF16 weights). Logits are compared on each sample's real rows (padding rows are not the reference's: its
 * positions keep counting there, LlavaModel's are 0).
 */
import { describe, expect, it, vi } from 'vitest';
import { fileURLToPath } from 'node:url';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensorsFile, writeSafetensorsFile, StateDictError } from '@mllm/core';
import { loadTokenizer } from '@mllm/models';
import { expectClose, expectNoLeaks } from '@mllm/core/testing';
import { fromPretrained } from '../from-pretrained.js';
import { llavaPrompt } from '../llava/index.js';
import { loadParrot, PretrainedParrot } from './index.js';
import { countConfigReads } from '../config-reads.testutil.js';

const FIXTURES = fileURLToPath(new URL('../__fixtures__/reference/parrot/', import.meta.url));
const F32_DIR = join(FIXTURES, 'Parrot-tiny');
const BF16_DIR = join(FIXTURES, 'Parrot-tiny-bf16');
const TOWER_DIR = join(FIXTURES, 'clip-vit-tiny-patch4-12');

async function expected(dir: string): Promise<Map<string, tf.Tensor>> {
  return (await readSafetensorsFile(join(dir, 'expected.safetensors'))).tensors;
}

const rows = (t: tf.Tensor) => t.arraySync() as number[][];

/** The `[B, L, V]` rows where `mask` is 1, flattened. */
function realRows(logits: tf.Tensor, mask: number[][]): number[] {
  const values = logits.arraySync() as number[][][];
  return mask.flatMap((row, b) => row.flatMap((m, t) => (m ? values[b]![t]! : [])));
}

/** A copy of the F32 checkpoint in a temporary directory beside a copy of the tower (the sibling layout). */
function copyCheckpoint(): { root: string; dir: string } {
  const root = mkdtempSync(join(tmpdir(), 'parrot-'));
  cpSync(F32_DIR, join(root, 'Parrot-tiny'), { recursive: true });
  cpSync(TOWER_DIR, join(root, 'clip-vit-tiny-patch4-12'), { recursive: true });
  return { root, dir: join(root, 'Parrot-tiny') };
}

describe('loadParrot against the authors\' ParrotQwen2ForCausalLM (tiny reference checkpoints)', () => {
  it('F32 shards: a right-padded batch of two prompts with an image each gives the reference logits', async () => {
    const parrot = await loadParrot(F32_DIR);
    const e = await expected(F32_DIR);
    const before = tf.memory().numTensors;
    const out = parrot.model.forward({
      inputIds: rows(e.get('inputs.input_ids')!),
      attentionMask: rows(e.get('inputs.attention_mask')!),
      pixelValues: e.get('inputs.pixel_values') as tf.Tensor4D,
    });
    const mask = rows(e.get('expected.attention_mask')!);
    expect(out.attentionMask).toEqual(mask); // the reference's splice: right padding after the image tokens
    expectClose(realRows(out.logits, mask), realRows(e.get('expected.logits')!, mask), { label: 'Parrot-tiny logits' });
    out.logits.dispose();
    expect(tf.memory().numTensors).toBe(before);
    for (const t of e.values()) t.dispose();
    parrot.dispose();
  });

  it('the tower features (layer −2 with CLS) and the MoE output match the reference', async () => {
    const parrot = await loadParrot(F32_DIR);
    const e = await expected(F32_DIR);
    const features = parrot.model.encodeImages(e.get('inputs.pixel_values') as tf.Tensor4D);
    expectClose(features, e.get('expected.image_features')!, { label: 'CLIP layer −2, cls_patch' });
    const seen: tf.Tensor[] = [];
    const probe = parrot.model.addHooks({ transformVisual: ({ visual }) => { seen.push(tf.keep(visual.clone())); return visual.clone(); } });
    const out = parrot.model.forward({
      inputIds: rows(e.get('inputs.input_ids')!),
      attentionMask: rows(e.get('inputs.attention_mask')!),
      pixelValues: e.get('inputs.pixel_values') as tf.Tensor4D,
    });
    probe.remove();
    // the probe runs after the MoE (attach order): what it sees is the MoE's output per image
    expectClose(seen[0]!, e.get('expected.moe_output')!, { label: 'MoE output' });
    tf.dispose([features, out.logits, ...seen, ...e.values()]);
    parrot.dispose();
  });

  it('two images in one prompt: the reference splices zeros for the second (multiImage reference, the default)', async () => {
    const parrot = await loadParrot(F32_DIR);
    const e = await expected(F32_DIR);
    const ids = rows(e.get('inputs.multi_input_ids')!);
    const out = parrot.model.forward({ inputIds: ids, pixelValues: e.get('inputs.multi_pixel_values') as tf.Tensor4D });
    expectClose(out.logits, e.get('expected.multi_logits')!, { label: 'two images' });
    out.logits.dispose();
    parrot.dispose();
    // routing every image (clean) is not the reference
    const clean = await loadParrot(F32_DIR, { multiImage: 'clean' });
    const other = clean.model.forward({ inputIds: ids, pixelValues: e.get('inputs.multi_pixel_values') as tf.Tensor4D });
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(other.logits, e.get('expected.multi_logits')!))).dataSync()[0]!);
    expect(diff).toBeGreaterThan(1e-2);
    tf.dispose([other.logits, ...e.values()]);
    clean.dispose();
  });

  it('BF16 shards load to the reference run on the BF16-rounded weights (and differ from the F32 run by that rounding)', async () => {
    const parrot = await loadParrot(BF16_DIR);
    expect(parrot.model.configJson.torch_dtype).toBe('bfloat16');
    const e = await expected(BF16_DIR);
    const f32 = await expected(F32_DIR);
    const out = parrot.model.forward({
      inputIds: rows(e.get('inputs.input_ids')!),
      attentionMask: rows(e.get('inputs.attention_mask')!),
      pixelValues: e.get('inputs.pixel_values') as tf.Tensor4D,
    });
    const mask = rows(e.get('expected.attention_mask')!);
    expectClose(realRows(out.logits, mask), realRows(e.get('expected.logits')!, mask), { label: 'Parrot-tiny-bf16 logits' });
    // same inputs as the F32 fixture: the rounding of the weights moves the logits far beyond the test tolerance
    expect(rows(e.get('inputs.input_ids')!)).toEqual(rows(f32.get('inputs.input_ids')!));
    const f32Logits = realRows(f32.get('expected.logits')!, mask);
    const moved = realRows(out.logits, mask).map((v, i) => Math.abs(v - f32Logits[i]!));
    expect(Math.max(...moved)).toBeGreaterThan(1e-3);
    tf.dispose([out.logits, ...e.values(), ...f32.values()]);
    parrot.dispose();
  });

  it('fromPretrained detects the directory as Parrot and loads it through loadParrot (its options passed on, config.json read once)', async () => {
    const { root, dir } = copyCheckpoint();
    try {
      const { result: parrot, reads } = await countConfigReads(dir, () => fromPretrained(dir, { visionTowerDir: TOWER_DIR, multiImage: 'clean' }));
      expect(reads).toBe(1); // by the detection; loadParrot gets it from there
      expect((await countConfigReads(dir, () => loadParrot(dir, { visionTowerDir: TOWER_DIR }).then((direct) => direct.dispose()))).reads).toBe(1);
      expect(parrot).toBeInstanceOf(PretrainedParrot);
      expect(parrot.kind).toBe('parrot');
      expect((parrot as PretrainedParrot).visionTowerDir).toBe(TOWER_DIR);
      expect((parrot as PretrainedParrot).parrot.config.multiImage).toBe('clean');
      parrot.dispose();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('sets the reference switches from the config: α, dense routing, stage 2, cls_patch, the tower found as a sibling', async () => {
    const parrot = await loadParrot(F32_DIR);
    expect(parrot.parrot.config).toMatchObject({ numExperts: 3, intermediateSize: 24, hiddenSize: 32, moeWeight: 0.1, useMoe: true, useResidual: true, topK: null, multiImage: 'reference' });
    expect(parrot.model.visionSelectFeature).toBe('cls_patch');
    expect(parrot.visionTowerDir).toBe(join(FIXTURES, 'clip-vit-tiny-patch4-12'));
    const names = parrot.model.namedParameters().map(([n]) => n);
    expect(names).toContain('model.moe_model.gate.weight');
    expect(names).toContain('model.moe_model.experts.2.down_proj.weight');
    parrot.dispose();
    // load + dispose frees everything, the MoE (owned by the loaded object, not the host) included
    await expectNoLeaks(async () => (await loadParrot(F32_DIR)).dispose());
  });

  it('a config without moe_weight runs with the module\'s α = 1.0 fallback, as the reference (last rows of the batch)', async () => {
    const { root, dir } = copyCheckpoint();
    try {
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      delete config.moe_weight;
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
      const parrot = await loadParrot(dir); // no option: the reference's fallback, said once
      expect(warn).toHaveBeenCalledWith(expect.stringContaining("no 'moe_weight', so α = 1.0"));
      warn.mockRestore();
      expect(parrot.parrot.config.moeWeight).toBe(1.0);
      const e = await expected(F32_DIR);
      const out = parrot.model.forward({
        inputIds: rows(e.get('inputs.input_ids')!),
        attentionMask: rows(e.get('inputs.attention_mask')!),
        pixelValues: e.get('inputs.pixel_values') as tf.Tensor4D,
      });
      const logits = out.logits.arraySync() as number[][][];
      const last = out.lengths.map((n, b) => logits[b]![n - 1]!);
      expectClose(last, e.get('expected.logits_no_moe_weight_last')!, { label: 'α fallback' });
      tf.dispose([out.logits, ...e.values()]);
      parrot.dispose();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('missing MoE weights: a StateDictError naming them, nothing returned, nothing leaked', async () => {
    const { root, dir } = copyCheckpoint();
    try {
      // drop model.moe_model.* from the shards and the index
      const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
      for (const shard of new Set(Object.values(index.weight_map))) {
        const { tensors } = await readSafetensorsFile(join(dir, shard));
        const kept = new Map([...tensors].filter(([name]) => !name.startsWith('model.moe_model.')));
        await writeSafetensorsFile(join(dir, shard), kept);
        tf.dispose([...tensors.values()]);
      }
      index.weight_map = Object.fromEntries(Object.entries(index.weight_map).filter(([name]) => !name.startsWith('model.moe_model.')));
      writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
      await expectNoLeaks(async () => {
        const error = await loadParrot(dir).then(() => null, (e: unknown) => e);
        expect(error).toBeInstanceOf(StateDictError);
        expect(String(error)).toContain('model.moe_model.gate.weight');
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('chat: the authors\' prompt, expand2square + CLIP processor, greedy generate = the reference\'s tokens (F32 and BF16)', async () => {
    for (const dir of [F32_DIR, BF16_DIR]) {
      const parrot = await loadParrot(dir);
      const e = await expected(dir);
      const { metadata } = await readSafetensorsFile(join(dir, 'expected.safetensors'), { filter: () => false });
      const question = metadata!.chat_question!;
      // the prompt: Qwen2 ChatML with the default system turn, `<image>\n` before the question (format_query)
      const promptIds = rows(e.get('inputs.chat_input_ids')!)[0]!;
      expect(llavaPrompt(parrot.tokenizer!, 'chatml', question, 1).inputIds).toEqual(promptIds); // what chat sends
      // the image: 8 wide × 12 high, padded to 12 × 12 with int(mean · 255), then the CLIP processor
      const u8 = e.get('inputs.chat_image_u8')!;
      const image = { height: u8.shape[0]!, width: u8.shape[1]!, data: Float32Array.from(u8.dataSync(), (v) => v / 255) };
      const pixels = parrot.imageProcessor!.preprocess(image);
      expectClose(pixels, e.get('inputs.chat_pixel_values')!, { rtol: 0, atol: 1e-6, label: 'pixel values' });
      pixels.dispose();
      const progress: number[] = [];
      const before = tf.memory().numTensors;
      const result = await parrot.chat(question, [image], { maxNewTokens: 6, onToken: ({ tokens }) => progress.push(tokens) });
      expect(tf.memory().numTensors).toBe(before);
      const reference = Array.from(e.get('expected.chat_tokens')!.dataSync());
      expect(result.tokens).toEqual(reference);
      expect(result.text).toBe(parrot.tokenizer!.decode(reference, { skipSpecialTokens: true }).trim());
      expect(progress).toEqual(reference.map((_, i) => i + 1));
      expect(result.promptTokens).toBe(promptIds.length - 1 + 10); // the placeholder → CLS + 3 × 3 patches
      expect(result.prefillMs).toBeGreaterThan(0);
      expect(result.decodeMs).toBeGreaterThanOrEqual(0);
      tf.dispose([...e.values()]);
      parrot.dispose();
    }
  });

  it('chat: several images as the authors\' format_query puts them (one <image>\\n line each); clear errors', async () => {
    const parrot = await loadParrot(F32_DIR);
    const e = await expected(F32_DIR);
    // the fixture's two-image prompt is format_query('<image>\n<image>\nSame?')
    expect(llavaPrompt(parrot.tokenizer!, 'chatml', 'Same?', 2).inputIds).toEqual(rows(e.get('inputs.multi_input_ids')!)[0]);
    await expect(parrot.chat('Hi', [], { maxNewTokens: 0 })).rejects.toThrow(/maxNewTokens must be a positive integer, got 0/);
    await expect(parrot.chat('Hi', [{ height: 2, width: 2, data: new Float32Array(12).fill(3) }])).rejects.toThrow(/expected RGB values in \[0, 1\]/);
    const before = tf.memory().numTensors;
    const text = await parrot.chat('Hi', [], { maxNewTokens: 2 }); // text only: no image, no MoE
    expect(text.tokens.length).toBeLessThanOrEqual(2);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...e.values()]);
    parrot.dispose();
  });

  it('clear errors: not a Parrot config, no tower directory, bad options', async () => {
    const { root, dir } = copyCheckpoint();
    try {
      await expect(loadParrot(dir, { multiImage: 'first' as never })).rejects.toThrow(/options.multiImage must be 'reference' or 'clean', got/);
      await expect(loadParrot(dir, { visionTowerDir: join(root, 'nowhere') })).rejects.toThrow(/could not read/);
      const known = 'known: visionTowerDir, missingMoeWeight, multiImage, tokenizerDir';
      await expect(loadParrot(dir, { visionTowerDir: TOWER_DIR, strict: false } as never)).rejects.toThrow(`loadParrot: unknown option "strict"; ${known}`);
      for (const key of ['name', 'trainable', 'dtype', 'inputShape', 'weights', 'customObjects']) {
        await expect(loadParrot(dir, { [key]: 1 } as never)).rejects.toThrow(`loadParrot: unknown option "${key}"; ${known}`);
      }
      // no tokenizer / no processor config: the model loads, chat says what is missing
      rmSync(join(dir, 'tokenizer.json'));
      rmSync(join(root, 'clip-vit-tiny-patch4-12', 'preprocessor_config.json'));
      const bare = await loadParrot(dir);
      expect([bare.tokenizer, bare.imageProcessor]).toEqual([null, null]);
      await expect(bare.chat('Hi', [])).rejects.toThrow(/has no tokenizer.json; copy the checkpoint's tokenizer files there or load with \{ tokenizerDir \}/);
      bare.dispose();
      // a tokenizer kept elsewhere: tokenizerDir (through fromPretrained too); one without tokenizer.json is a load error
      await expect(loadParrot(dir, { tokenizerDir: dir })).rejects.toThrow(/loadParrot: options\.tokenizerDir ".*" has no tokenizer\.json/);
      await expect(loadParrot(dir, { tokenizerDir: 0 as never })).rejects.toThrow(/loadParrot: options\.tokenizerDir must be a directory path, got 0/);
      const elsewhere = await fromPretrained(dir, { tokenizerDir: F32_DIR });
      const own = await loadTokenizer(F32_DIR);
      expect((elsewhere as PretrainedParrot).tokenizer!.encode('Hi, what is it?')).toEqual(own.encode('Hi, what is it?'));
      expect((elsewhere as PretrainedParrot).tokenizer!.vocabSize).toBe(own.vocabSize);
      elsewhere.dispose();
      cpSync(join(F32_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'));
      const noProcessor = await loadParrot(dir);
      const image = { height: 12, width: 12, data: new Float32Array(432).fill(0.5) };
      await expect(noProcessor.chat('Hi', [image])).rejects.toThrow(/clip-vit-tiny-patch4-12" has no preprocessor_config.json/);
      noProcessor.dispose();
      rmSync(join(root, 'clip-vit-tiny-patch4-12'), { recursive: true });
      await expect(loadParrot(dir)).rejects.toThrow(/vision tower .*clip-vit-tiny-patch4-12.* was not found .*options.visionTowerDir/);
      const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      for (const key of Object.keys(config)) if (key.startsWith('moe_') || key === 'num_experts') delete config[key];
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      await expect(loadParrot(dir, { visionTowerDir: TOWER_DIR })).rejects.toThrow(/no moe_hidden_size \/ num_experts, so it is not a Parrot checkpoint/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
