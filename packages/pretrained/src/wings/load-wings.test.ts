/**
 * Full-model parity: the tiny Wings-Qwen2 checkpoint that scripts/reference-fixtures/wings_model.py wrote by
 * running the authors' `WingsQwen2ForCausalLM` (their layout: config.json, globbed shards, sibling SigLIP tower
 * directory) → `loadWings` → logits against the authors' logits.
 */
import * as tf from '@tensorflow/tfjs-core';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadShardedCheckpoint, writeSafetensorsFile, type StateDict } from '@mllm/core';
import { backendTolerance, expectClose, expectNoLeaks, maxRelativeError, toFloat64 } from '@mllm/core/testing';
import { loadWings, WingsModel } from './load-wings.js';
import { fromPretrained } from '../index.js';
import { wingsPrompt } from './prompt.js';
import { countConfigReads } from '../config-reads.testutil.js';

const FIXTURES = fileURLToPath(new URL('../__fixtures__/wings/', import.meta.url));
const CHECKPOINT = join(FIXTURES, 'wings-qwen2');

let expected: StateDict;
let wings: WingsModel;

beforeAll(async () => {
  expected = (await loadShardedCheckpoint(join(CHECKPOINT, 'expected.safetensors'))).tensors;
  wings = await loadWings(CHECKPOINT);
});

afterAll(() => {
  wings?.dispose();
  for (const t of expected?.values() ?? []) t.dispose();
});

const rows = (name: string, from: StateDict = expected): number[][] => from.get(name)!.arraySync() as number[][];

/** `logits [B, L, V]` rows where `mask [B, L]` is 1 (padding rows are meaningless in both), as float64 values. */
function realRows(logits: tf.Tensor3D, mask: number[][]): number[] {
  const [, L, V] = logits.shape;
  const data = toFloat64(logits);
  const out: number[] = [];
  mask.forEach((row, b) => row.forEach((m, q) => {
    if (m === 1) for (let v = 0; v < V; v++) out.push(data[(b * L + q) * V + v]!);
  }));
  return out;
}

/**
 * Logits at 1e-5 relative to their scale: |a − e| ≤ 1e-5·|e| + 1e-5·max|e| (the backend's rtol, and its atol
 * scaled by the logits' magnitude, ≈ 6 here: wasm's float32 kernels differ from cpu's by up to 2.5e-5 absolute
 * on these logits, 4e-6 of their scale).
 */
function expectLogitsClose(actual: number[], want: number[]): void {
  const scale = Math.max(...want.map(Math.abs));
  const { rtol, atol } = backendTolerance();
  expectClose(actual, want, { rtol, atol: atol * Math.max(1, scale) });
}

function imageBatchLogits(model: WingsModel, from: StateDict = expected): { logits: tf.Tensor3D; mask: number[][] } {
  const pixelValues = tf.cast(from.get('inputs.pixel_values')!, 'float32') as tf.Tensor4D; // stored F64
  const r = model.model.forward({ inputIds: rows('inputs.input_ids', from), attentionMask: rows('inputs.attention_mask', from), pixelValues });
  pixelValues.dispose();
  return { logits: r.logits, mask: r.attentionMask };
}

describe('loadWings: the tiny Wings-Qwen2 checkpoint (authors\' layout) against the authors\' logits', () => {
  it('infers the learners from the weight names and turns every reference switch on', () => {
    const c = wings.wings.config;
    expect(c.layers).toEqual([0, 1]);
    expect(c.stage).toBe(2);
    expect(c.rank).toBe(4);
    expect(c.routerMaxLength).toBe(4096); // the released [2, 4096] router, sliced to the sequence length
    expect(c.systemPromptLength).toBe(4);
    expect(c.referenceCompat).toEqual({ doubleAdd: true, textOnlyNoRouter: true, misalignedTextMask: true });
    expect(wings.kind).toBe('wings');
    expect(wings.config.modelType).toBe('wings_qwen2');
  });

  it('image batch (2 prompts of unequal length, right-padded): logits match at 1e-5 relative to their scale', () => {
    const { logits, mask } = imageBatchLogits(wings);
    const want = expected.get('expected.logits')!;
    expect(logits.shape).toEqual(want.shape);
    expect(mask).toEqual([[...new Array(23).fill(1)], [...new Array(20).fill(1), 0, 0, 0]]);
    expectLogitsClose(realRows(logits, mask), realRows(want as tf.Tensor3D, mask));
    logits.dispose();
  });

  it('text-only batch (textual learner only, no router): logits match', () => {
    const r = wings.model.forward({ inputIds: rows('inputs.text_input_ids'), attentionMask: rows('inputs.text_attention_mask') });
    expectLogitsClose(realRows(r.logits, r.attentionMask), realRows(expected.get('expected.text_logits') as tf.Tensor3D, r.attentionMask));
    r.logits.dispose();
  });

  it('greedy decoding re-runs the whole sequence (as the reference) and gives the authors\' tokens', () => {
    expect(wings.model.requiresFullSequence).toBe(true);
    const mask = rows('inputs.attention_mask')[0]!;
    const ids = rows('inputs.input_ids')[0]!.filter((_, t) => mask[t] === 1);
    const pixels = tf.tidy(() => tf.slice(tf.cast(expected.get('inputs.pixel_values')!, 'float32'), [0], [1]) as tf.Tensor4D);
    const tokens = wings.model.generate([ids], { pixelValues: pixels, maxNewTokens: 4 });
    pixels.dispose();
    expect(tokens).toEqual([Array.from(expected.get('expected.greedy_tokens')!.dataSync())]);
  });

  it("with the switches off ('clean') the same weights give other logits", async () => {
    const clean = await loadWings(CHECKPOINT, { referenceCompat: 'clean' });
    try {
      const a = imageBatchLogits(clean);
      const want = expected.get('expected.logits') as tf.Tensor3D;
      const error = maxRelativeError(realRows(a.logits, a.mask), realRows(want, a.mask));
      a.logits.dispose();
      // Measured on this fixture: 0.66 max relative (the issue reports 0.6–0.9 for a real Wings-Qwen2 model).
      expect(error).toBeGreaterThan(0.5);
      expect(error).toBeLessThan(1);
    } finally {
      clean.dispose();
    }
  });

  it('fromPretrained detects the directory as Wings and loads it with loadWings (config.json read once, by the detection)', async () => {
    const { result: model, reads } = await countConfigReads(CHECKPOINT, () => fromPretrained(CHECKPOINT));
    expect(reads).toBe(1);
    expect((await countConfigReads(CHECKPOINT, () => loadWings(CHECKPOINT).then((direct) => direct.dispose()))).reads).toBe(1); // called directly it reads it
    try {
      expect(model.kind).toBe('wings');
      expect(model).toBeInstanceOf(WingsModel);
      expect((model as WingsModel).wings.config.referenceCompat.doubleAdd).toBe(true);
    } finally {
      model.dispose();
    }
    const clean = (await fromPretrained(CHECKPOINT, { referenceCompat: 'clean' })) as WingsModel;
    expect(clean.wings.config.referenceCompat.doubleAdd).toBe(false);
    clean.dispose();
  });

  it('loads and runs without leaking tensors', async () => {
    await expectNoLeaks(async () => {
      const model = await loadWings(CHECKPOINT);
      const { logits } = imageBatchLogits(model);
      logits.dispose();
      model.dispose();
    });
  });
});

describe("loadWings: the tiny Wings-LLaMA-3.1 checkpoint (GQA, llama3 scaling) against the authors' logits", () => {
  const dir = join(FIXTURES, 'wings-llama');
  let llama: WingsModel;
  let want: StateDict;
  beforeAll(async () => {
    want = (await loadShardedCheckpoint(join(dir, 'expected.safetensors'))).tensors;
    llama = await loadWings(dir);
  });
  afterAll(() => {
    llama?.dispose();
    for (const t of want?.values() ?? []) t.dispose();
  });

  it('grouped KV heads and llama3 scaling in the decoder, unscaled rotary in the learners, no tokenizer', () => {
    const hf = llama.model.languageModel.hfConfig;
    expect([hf.modelType, hf.numHeads, hf.numKeyValueHeads, hf.ropeScaling.type, hf.qkvBias]).toEqual(['llama', 4, 2, 'llama3', false]);
    expect(llama.wings.config.ropeTheta).toBe(10000); // the learners' rotary: rope_theta only
    expect(llama.wings.config.layers).toEqual([0, 1]);
    expect(llama.config.modelType).toBe('wings_llama');
    expect(llama.tokenizer).toBeNull();
  });

  it('image batch and text-only batch: logits match', () => {
    const { logits, mask } = imageBatchLogits(llama, want);
    expectLogitsClose(realRows(logits, mask), realRows(want.get('expected.logits') as tf.Tensor3D, mask));
    logits.dispose();
    const r = llama.model.forward({ inputIds: rows('inputs.text_input_ids', want), attentionMask: rows('inputs.text_attention_mask', want) });
    expectLogitsClose(realRows(r.logits, r.attentionMask), realRows(want.get('expected.text_logits') as tf.Tensor3D, r.attentionMask));
    r.logits.dispose();
  });

  it("greedy tokens are the authors'", () => {
    const mask = rows('inputs.attention_mask', want)[0]!;
    const ids = rows('inputs.input_ids', want)[0]!.filter((_, t) => mask[t] === 1);
    const pixels = tf.tidy(() => tf.slice(tf.cast(want.get('inputs.pixel_values')!, 'float32'), [0], [1]) as tf.Tensor4D);
    const tokens = llama.model.generate([ids], { pixelValues: pixels, maxNewTokens: 4 });
    pixels.dispose();
    expect(tokens).toEqual([Array.from(want.get('expected.greedy_tokens')!.dataSync())]);
  });
});

describe("WingsModel.chat: infer.py's prompt, preprocessing and greedy decoding", () => {
  /** A 17 × 20 RGB image (not square: the `pad` aspect ratio pads it with the mean colour first). */
  const image = { height: 17, width: 20, data: Float32Array.from({ length: 17 * 20 * 3 }, (_, i) => ((i * 37) % 101) / 100) };

  it('answers with the tokens the model greedily generates for the formatted prompt and the preprocessed image', async () => {
    const processor = wings.imageProcessor;
    expect(processor.kind).toBe('siglip');
    expect(processor.options.padToSquare).toBe(true); // config.json image_aspect_ratio 'pad'
    expect(processor.options.resize).toEqual({ height: 14, width: 14 }); // the tower's image_size
    const progress: Array<{ tokens: number; text: string }> = [];
    const result = await wings.chat('<image 1> What is shown?', [image], { maxNewTokens: 5, onToken: (p) => progress.push(p) });
    const { inputIds } = wingsPrompt(wings.tokenizer!, 'wings_qwen2', '<image 1> What is shown?', true);
    const pixels = processor.preprocess(image);
    const [direct] = wings.model.generate([inputIds], { pixelValues: pixels, maxNewTokens: 5, eosTokenId: 265 });
    pixels.dispose();
    expect(result.tokens).toEqual(direct!.filter((t) => t !== 265));
    expect(result.tokens.length).toBeGreaterThan(0);
    expect(result.text).toBe(wings.tokenizer!.decode(result.tokens, { skipSpecialTokens: true }).trim());
    expect(result.promptTokens).toBe(inputIds.length - 1 + 9);
    expect(progress.map((p) => p.tokens)).toEqual(Array.from({ length: progress.length }, (_, i) => i + 1));
    expect(wings.eosTokenIds).toEqual([265]);
  });

  it('a text-only question, and no tensor leaks', async () => {
    await expectNoLeaks(async () => {
      const result = await wings.chat('Hello', [], { maxNewTokens: 2 });
      expect(result.promptTokens).toBe(wingsPrompt(wings.tokenizer!, 'wings_qwen2', 'Hello', false).inputIds.length);
    });
  });

  it('errors name the argument', async () => {
    await expect(wings.chat('Hi', [image, image])).rejects.toThrow(/images must hold at most one image .* got 2/);
    await expect(wings.chat(3 as never, [])).rejects.toThrow(/question must be a string, got 3/);
  });
});

describe('loadWings: bad checkpoints are clear errors, and nothing is assigned or leaked', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wings-bad-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of the fixture (checkpoint + tower) under `name`, with `edit` applied to its shards' tensors. */
  async function copyWith(name: string, edit: (tensors: StateDict) => void): Promise<string> {
    const target = join(dir, name);
    cpSync(FIXTURES, target, { recursive: true });
    const ckpt = join(target, 'wings-qwen2');
    for (const file of readdirSync(ckpt).filter((f) => f.startsWith('model-000'))) {
      const { tensors } = await loadShardedCheckpoint(join(ckpt, file));
      edit(tensors);
      await writeSafetensorsFile(join(ckpt, file), tensors);
      for (const t of tensors.values()) t.dispose();
    }
    return ckpt;
  }

  it('a checkpoint without learner weights', async () => {
    const ckpt = await copyWith('no-learners', (t) => {
      for (const name of [...t.keys()]) {
        if (/\.(attn_pool|attn_t_pool|reweight_module)\./.test(name)) {
          t.get(name)!.dispose();
          t.delete(name);
        }
      }
    });
    const before = tf.memory().numTensors;
    await expect(loadWings(ckpt)).rejects.toThrow(/no Wings learner weights \(model\.layers\.\{i\}\.attn_pool\.q_proj\.0\.weight\)/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a layer missing its textual learner: strict load names the missing tensors', async () => {
    const ckpt = await copyWith('missing-textual', (t) => {
      for (const name of [...t.keys()]) {
        if (name.startsWith('model.layers.1.attn_t_pool.')) {
          t.get(name)!.dispose();
          t.delete(name);
        }
      }
    });
    const before = tf.memory().numTensors;
    await expect(loadWings(ckpt)).rejects.toThrow(/model\.layers\.1\.attn_t_pool\.q_proj\.0\.weight/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("image_token_length that is not the tower's patch count (the authors' 729 assertion)", async () => {
    const target = join(dir, 'tokens');
    cpSync(FIXTURES, target, { recursive: true });
    const configPath = join(target, 'wings-qwen2', 'config.json');
    writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), image_token_length: 729 }));
    const before = tf.memory().numTensors;
    await expect(loadWings(join(target, 'wings-qwen2'))).rejects.toThrow(
      /image_token_length 729 must equal the tower's visual tokens per image, \(image_size 14 \/ patch_size 4\)² = 9/,
    );
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a missing tower directory says what to pass', async () => {
    const target = join(dir, 'no-tower');
    cpSync(CHECKPOINT, join(target, 'wings-qwen2'), { recursive: true });
    await expect(loadWings(join(target, 'wings-qwen2'))).rejects.toThrow(/siglip-so400m-patch14-384.*pass options\.visionTowerDir/);
    // …and the override works.
    const model = await loadWings(join(target, 'wings-qwen2'), { visionTowerDir: join(FIXTURES, 'siglip-so400m-patch14-384') });
    model.dispose();
  });

  it('a tensor stored in two shards, and a directory without the globbed weight files', async () => {
    const target = join(dir, 'twice');
    cpSync(FIXTURES, target, { recursive: true });
    const ckpt = join(target, 'wings-qwen2');
    cpSync(join(ckpt, 'model-00001-of-00002.safetensors'), join(ckpt, 'model-00003-of-00003.safetensors'));
    const before = tf.memory().numTensors;
    await expect(loadWings(ckpt)).rejects.toThrow(/tensor ".*" is stored in both ".*model-00001-of-00002\.safetensors" and ".*model-00003-of-00003\.safetensors"/);
    expect(tf.memory().numTensors).toBe(before);
    for (const f of readdirSync(ckpt).filter((n) => n.endsWith('.safetensors'))) rmSync(join(ckpt, f));
    await expect(loadWings(ckpt)).rejects.toThrow(/has no model\.safetensors or model-000\*\.safetensors/);
  });

  it('without tokenizer.json the model loads, chat asks for tokenizerDir, and tokenizerDir works', async () => {
    const target = join(dir, 'no-tokenizer');
    cpSync(FIXTURES, target, { recursive: true });
    const ckpt = join(target, 'wings-qwen2');
    rmSync(join(ckpt, 'tokenizer.json'));
    const bare = await loadWings(ckpt);
    try {
      expect(bare.tokenizer).toBeNull();
      await expect(bare.chat('Hi', [])).rejects.toThrow(/has no tokenizer\.json; load with \{ tokenizerDir \}/);
    } finally {
      bare.dispose();
    }
    await expect(loadWings(ckpt, { tokenizerDir: ckpt })).rejects.toThrow(/options\.tokenizerDir .* has no tokenizer\.json/);
    const withTokenizer = await loadWings(ckpt, { tokenizerDir: CHECKPOINT });
    expect(withTokenizer.tokenizer?.vocabSize).toBe(266);
    withTokenizer.dispose();
  });

  it('unknown options and a wrong model_type', async () => {
    const known = 'known: visionTowerDir, referenceCompat, systemPromptLength, tokenizerDir';
    await expect(loadWings(CHECKPOINT, { strict: false } as never)).rejects.toThrow(`loadWings: unknown option "strict"; ${known}`);
    await expect(loadWings(CHECKPOINT, { systemPromptLen: 14 } as never)).rejects.toThrow(`loadWings: unknown option "systemPromptLen" (did you mean "systemPromptLength"?); ${known}`);
    for (const key of ['name', 'trainable', 'dtype', 'inputShape', 'weights', 'customObjects']) {
      await expect(loadWings(CHECKPOINT, { [key]: 1 } as never)).rejects.toThrow(`loadWings: unknown option "${key}"; ${known}`);
    }
    await expect(loadWings(CHECKPOINT, null as never)).rejects.toThrow('loadWings: options must be an object, got null');
    await expect(loadWings(CHECKPOINT, { tokenizerDir: 3 as never })).rejects.toThrow(/options\.tokenizerDir must be a directory path, got 3/);
    const target = join(dir, 'type');
    cpSync(FIXTURES, target, { recursive: true });
    const configPath = join(target, 'wings-qwen2', 'config.json');
    writeFileSync(configPath, JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), model_type: 'llava_qwen2' }));
    await expect(loadWings(join(target, 'wings-qwen2'))).rejects.toThrow(/model_type must be 'wings_qwen2' or 'wings_llama', got the string "llava_qwen2"/);
  });
});
