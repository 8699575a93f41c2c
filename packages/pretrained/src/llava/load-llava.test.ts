/**
 * A plain LLaVA checkpoint directory end to end: @mllm/models' tiny reference checkpoint
 * `llava-qwen2-clip` (Qwen2 decoder, CLIP tower in the sibling `tiny-clip-vit-12`, logits checked
 * against the authors' code in @mllm/models' own test) with the tokenizer and preprocessor files a
 * user's directory has (test-fixtures/llava, written by make-fixture.mjs), loaded by
 * `fromPretrained`. `chat` is checked against the pieces it is documented to compose — the chat
 * template's prompt, the tower's CLIP processor, `LlavaModel.generate` stopping at `<|im_end|>` — and
 * the `mllm` binary (dist/cli.js, so `pnpm build` first) must print the same answer as `chat`.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import { encodePng, IMAGE_TOKEN_INDEX, loadImageProcessor, type LlavaModel } from '@mllm/models';
import { fromPretrained, loadLlava, LlavaPretrained, type PretrainedMLLM, type RgbImage } from '../index.js';
import { countConfigReads } from '../config-reads.testutil.js';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const REFERENCE = here('../../../models/src/__fixtures__/reference');
const EXTRAS = here('../../test-fixtures/llava');
const CLI = here('../../dist/cli.js');

const root = mkdtempSync(join(tmpdir(), 'mllm-llava-'));
const checkpoint = join(root, 'llava-qwen2-clip');
const tower = join(root, 'tiny-clip-vit-12'); // the sibling named like mm_vision_tower "openai/tiny-clip-vit-12"
afterAll(() => rmSync(root, { recursive: true, force: true }));

/**
 * A 5×7 image (non-square: LLaVA pads it to a square with the mean colour) for which the random tiny
 * model answers with a few tokens before <|im_end|> (if the reference checkpoint is regenerated and it
 * answers nothing, pick another pattern: the test says so).
 */
const IMAGE: RgbImage = { height: 5, width: 7, data: Float32Array.from({ length: 5 * 7 * 3 }, (_, i) => (i % 17) / 16) };
const QUESTION = 'What is in the picture?';

beforeAll(() => {
  cpSync(join(REFERENCE, 'llava-qwen2-clip'), checkpoint, { recursive: true, filter: (src) => !src.endsWith('expected.safetensors') });
  cpSync(join(REFERENCE, 'tiny-clip-vit-12'), tower, { recursive: true });
  cpSync(join(EXTRAS, 'llava-qwen2-clip'), checkpoint, { recursive: true });
  cpSync(join(EXTRAS, 'tiny-clip-vit-12'), tower, { recursive: true });
  writeFileSync(join(root, 'cat.png'), encodePng(IMAGE));
});

describe('plain LLaVA checkpoint', () => {
  let model: PretrainedMLLM;
  beforeAll(async () => {
    model = await fromPretrained(checkpoint);
  });
  afterAll(() => model?.dispose());

  it('fromPretrained detects it and loads a LlavaPretrained with the chat template format', () => {
    expect(model).toBeInstanceOf(LlavaPretrained);
    expect([model.kind, model.directory, (model as LlavaPretrained).conversation]).toEqual(['llava', checkpoint, 'chat_template']);
  });

  it("reads config.json once per load: fromPretrained's detection hands it to loadLlava, which reads it itself when called directly", async () => {
    const tower = join(root, 'tiny-clip-vit-12');
    const viaDetection = await countConfigReads(checkpoint, () => fromPretrained(checkpoint));
    const direct = await countConfigReads(checkpoint, () => loadLlava(checkpoint));
    const towerReads = await countConfigReads(tower, () => loadLlava(checkpoint).then((again) => again.dispose()));
    expect([viaDetection.reads, direct.reads, towerReads.reads]).toEqual([1, 1, 1]);
    // the same model either way
    const [a, b] = [viaDetection.result as LlavaPretrained, direct.result];
    expect(a.model.namedParameters().length).toBeGreaterThan(0);
    expect([...a.model.namedParameters()].map(([name, p]) => [name, Array.from(p.variable.read().dataSync())])).toEqual([...b.model.namedParameters()].map(([name, p]) => [name, Array.from(p.variable.read().dataSync())]));
    a.dispose();
    b.dispose();
  });

  it('chat = the chat template prompt + the CLIP processor (pad to square) + greedy generate stopping at <|im_end|>; no leaks', async () => {
    const llava = model as LlavaPretrained;
    const before = tf.memory().numTensors;
    const progress: Array<{ tokens: number; text: string }> = [];
    const result = await llava.chat(QUESTION, [IMAGE], { maxNewTokens: 10, onToken: (p) => progress.push(p) });
    expect(tf.memory().numTensors).toBe(before);

    // The same pieces by hand.
    const prompt = llava.tokenizer.applyChatTemplate([{ role: 'user', content: `<image>\n${QUESTION}` }], { addGenerationPrompt: true });
    expect(prompt).toBe(`<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<image>\n${QUESTION}<|im_end|>\n<|im_start|>assistant\n`);
    const ids = llava.tokenizer.encode(prompt, { allowImage: true });
    expect(ids.filter((id) => id === IMAGE_TOKEN_INDEX)).toHaveLength(1);
    const processor = await loadImageProcessor(tower, { padToSquare: true });
    const pixels = processor.preprocess([IMAGE]); // [1, 3, 12, 12]
    expect(pixels.shape).toEqual([1, 3, 12, 12]);
    const imEnd = llava.tokenizer.specialId('<|im_end|>');
    const generated = (llava.model as LlavaModel).generate([ids], { pixelValues: pixels, maxNewTokens: 10, eosTokenId: [imEnd] })[0];
    pixels.dispose();
    const answer = generated.at(-1) === imEnd ? generated.slice(0, -1) : generated;
    expect(answer.length, 'the tiny model answers nothing for IMAGE: choose another pixel pattern').toBeGreaterThan(0);

    expect(result.tokens).toEqual(answer);
    expect(result.text).toBe(llava.tokenizer.decode(answer, { skipSpecialTokens: true }).trim());
    // 9 patches (12 px / 4) replace the placeholder.
    expect(result.promptTokens).toBe(ids.length - 1 + 9);
    expect(progress.map((p) => p.tokens)).toEqual(answer.map((_, i) => i + 1));
    expect(progress.at(-1)?.text.trim()).toBe(result.text);
    expect(result.prefillMs).toBeGreaterThan(0);
    expect(result.decodeMs).toBeGreaterThanOrEqual(0);
    // Without images: no placeholder and no pixels.
    const textOnly = await llava.chat(QUESTION, [], { maxNewTokens: 3 });
    expect(textOnly.promptTokens).toBe(llava.tokenizer.encode(prompt.replace('<image>\n', '')).length);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('bad input names the argument; a missing tower, tokenizer or preprocessor config is a clear error', async () => {
    const llava = model as LlavaPretrained;
    await expect(llava.chat(QUESTION, [{ height: 2, width: 2, data: new Float32Array(3) }])).rejects.toThrow(/images\[0\]\.data must hold height · width · 3 = 12 values, got 3/);
    await expect(llava.chat(QUESTION, [IMAGE], { maxNewTokens: 0 })).rejects.toThrow(/options\.maxNewTokens must be a positive integer, got 0/);
    await expect(loadLlava(checkpoint, { conversation: 'vicuna' as never })).rejects.toThrow(/options\.conversation must be one of chat_template, bunny, chatml, llava_v1, got "vicuna"/);
    // unknown keys (a typo, a tfjs Layer key) name the key, the nearest known one and the accepted ones, before anything is read
    const known = 'known: visionTowerDir, conversation, tokenizerDir';
    await expect(loadLlava(checkpoint, { visionTowerDri: tower } as never)).rejects.toThrow(`loadLlava: unknown option "visionTowerDri" (did you mean "visionTowerDir"?); ${known}`);
    for (const key of ['name', 'trainable', 'dtype', 'inputShape', 'weights', 'customObjects']) {
      await expect(loadLlava(checkpoint, { [key]: 1 } as never)).rejects.toThrow(`loadLlava: unknown option "${key}"; ${known}`);
    }
    await expect(loadLlava(join(root, 'nowhere'), { strict: false } as never)).rejects.toThrow(`loadLlava: unknown option "strict"; ${known}`);
    await expect(loadLlava(checkpoint, null as never)).rejects.toThrow('loadLlava: options must be an object, got null');
    await expect(loadLlava(checkpoint, [] as never)).rejects.toThrow('loadLlava: options must be an object, got a plain array (length 0)');
    const lonely = join(root, 'elsewhere', 'llava-qwen2-clip');
    cpSync(checkpoint, lonely, { recursive: true });
    await expect(fromPretrained(lonely)).rejects.toThrow(/vision tower "openai\/tiny-clip-vit-12" \(mm_vision_tower\) was not found .*pass options\.visionTowerDir/);
    const noTokenizer = join(root, 'no-tokenizer', 'llava-qwen2-clip');
    cpSync(checkpoint, noTokenizer, { recursive: true, filter: (src) => !src.includes('tokenizer') });
    await expect(fromPretrained(noTokenizer, { visionTowerDir: tower })).rejects.toThrow(/no-tokenizer\/llava-qwen2-clip" has no tokenizer\.json; .*load with \{ tokenizerDir \}/);
    await expect(loadLlava(noTokenizer, { visionTowerDir: tower, tokenizerDir: noTokenizer })).rejects.toThrow(/options\.tokenizerDir ".*no-tokenizer\/llava-qwen2-clip" has no tokenizer\.json/);
    await expect(loadLlava(checkpoint, { tokenizerDir: 7 as never })).rejects.toThrow(/loadLlava: options\.tokenizerDir must be a directory path, got 7/);
    const bareTower = join(root, 'bare-tower');
    cpSync(tower, bareTower, { recursive: true, filter: (src) => !src.endsWith('preprocessor_config.json') });
    await expect(fromPretrained(checkpoint, { visionTowerDir: bareTower })).rejects.toThrow(/no preprocessor_config\.json in the vision tower directory .*bare-tower/);
  });

  it('a tokenizer kept outside the checkpoint (tokenizerDir): the same prompt format and answer as with it inside', async () => {
    const bare = join(root, 'tokenizer-elsewhere', 'llava-qwen2-clip');
    cpSync(checkpoint, bare, { recursive: true, filter: (src) => !src.includes('tokenizer') });
    const tokenizerDir = join(root, 'tokenizer-elsewhere', 'qwen2-tokenizer');
    cpSync(join(EXTRAS, 'llava-qwen2-clip'), tokenizerDir, { recursive: true });
    const expected = await model.chat(QUESTION, [IMAGE], { maxNewTokens: 6 });
    const elsewhere = await fromPretrained(bare, { visionTowerDir: tower, tokenizerDir });
    try {
      // the chat template came from tokenizerDir's tokenizer_config.json
      expect([elsewhere.kind, (elsewhere as LlavaPretrained).conversation]).toEqual(['llava', 'chat_template']);
      const result = await elsewhere.chat(QUESTION, [IMAGE], { maxNewTokens: 6 });
      expect([result.tokens, result.text, result.promptTokens]).toEqual([expected.tokens, expected.text, expected.promptTokens]);
    } finally {
      elsewhere.dispose();
    }
  });

  // The binary is the built one; one backend is enough (it starts its own, cpu here).
  it.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'the child process runs on cpu; the cpu project covers it'))(
    'node dist/cli.js run prints the same answer as chat(), a loading line and a summary; user errors exit 2 on one line',
    async () => {
      const expected = await model.chat(QUESTION, [IMAGE], { maxNewTokens: 6 });
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, 'run', '--model', checkpoint, '--image', join(root, 'cat.png'), '--max-new-tokens', '6', '--backend', 'cpu', QUESTION]);
      expect(stdout).toBe(`${expected.text}\n`);
      const lines = stderr.trimEnd().split('\n');
      expect(lines[0]).toMatch(new RegExp(`^loaded .*llava-qwen2-clip \\(llava\\) on cpu in \\d+\\.\\d\\d s$`));
      expect(lines.at(-1)).toMatch(new RegExp(`^prompt ${expected.promptTokens} tokens, prefill \\d+\\.\\d\\d s, ${expected.tokens.length} tokens generated, decode (\\d+\\.\\d\\d|–) tokens/s$`));
      expect(stderr).not.toMatch(/TensorFlow\.js in Node\.js/); // no tfjs banner

      const failure = await promisify(execFile)(process.execPath, [CLI, 'run', '--model', join(root, 'missing'), QUESTION]).catch((error) => error);
      expect(failure.code).toBe(2);
      expect(failure.stderr).toMatch(/^mllm run: --model .*missing: no such directory \(see mllm run --help\)\n$/);
    },
  );
});
