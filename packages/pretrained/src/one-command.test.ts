/**
 * One call and one command on every authors' layout: each reference fixture directory (plain LLaVA Qwen2+CLIP
 * and LLaMA+SigLIP, Parrot F32 and BF16, Wings Qwen2 and LLaMA-3.1, Cheetah Vicuna and LLaMA-2) is copied to a
 * temporary directory beside its tower, with the files a user's directory has and the fixture lacks (tokenizer,
 * the tower's preprocessor config), then
 *  (a) `fromPretrained(dir)` → the kind, and `chat(question, [image])` → the answer the model's own greedy
 *      `generate` gives for the prompt in the authors' format (the per-loader tests check that prompt and the
 *      logits against the authors' code; this checks the one-call path composes them), and
 *  (b) `mllm run --model dir --image cat.png …` in process → exit 0, that answer on stdout, the loaded line and
 *      the summary line on stderr.
 * One child process runs the built `mllm` (dist/cli.js) on the Parrot directory.
 * The tiny Cheetah has shapes its YAML cannot state (the reference hard-wires ViT-g and BERT-base), so its
 * command run gets them through the CLI's injectable `load` (`fromPretrained` with {@link TINY_CHEETAH}).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import { CHEETAH_IMAGE, cheetahPrompt, encodePng, ModelInputError, type LlavaModel } from '@mllm/models';
import { runCli, type CliIo } from './cli-main.js';
import { fromPretrained, type FromPretrainedOptions } from './from-pretrained.js';
import type { PretrainedKind, PretrainedMLLM, RgbImage } from './pretrained-model.js';
import { LlavaPretrained, llavaPrompt } from './llava/index.js';
import { PretrainedParrot } from './parrot/index.js';
import { WingsModel, wingsPrompt } from './wings/index.js';
import type { PretrainedCheetah } from './cheetah/index.js';
import { CHUNK_TOKENIZER_CONFIG, chunkTokenizerJson, chunkVocab, TINY_CHEETAH } from './cheetah/test-support.js';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const MODELS_REFERENCE = here('../../models/src/__fixtures__/reference');
const LLAVA_EXTRAS = here('../test-fixtures/llava');
const PARROT = here('./__fixtures__/reference/parrot');
const WINGS = here('./__fixtures__/wings');
const CHEETAH = here('./cheetah/__fixtures__');
const CLI = here('../dist/cli.js');

const root = mkdtempSync(join(tmpdir(), 'mllm-one-command-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const QUESTION = 'What is in the picture?';
/** A non-square image (the LLaVA-style loaders pad it to a square with the mean colour) every tiny model answers with tokens. */
const IMAGE: RgbImage = { height: 5, width: 7, data: Float32Array.from({ length: 5 * 7 * 3 }, (_, i) => (i % 17) / 16) };
const PNG = join(root, 'cat.png');
writeFileSync(PNG, encodePng(IMAGE));
const MAX_NEW_TOKENS = 4;

const copy = (from: string, to: string) => cpSync(from, join(root, to), { recursive: true, filter: (src) => !src.endsWith('expected.safetensors') });
const writeJson = (path: string, value: object) => writeFileSync(join(root, path), JSON.stringify(value));
/** A LLaMA-style tokenizer (3-character chunks, ids < 40: every fixture's vocabulary holds them). */
function writeChunkTokenizer(dir: string): void {
  writeJson(join(dir, 'tokenizer.json'), chunkTokenizerJson(chunkVocab([QUESTION])));
  writeJson(join(dir, 'tokenizer_config.json'), CHUNK_TOKENIZER_CONFIG);
}

interface Layout {
  name: string;
  kind: PretrainedKind;
  /** Copies the fixture into `root` with the user's files; returns the checkpoint directory. */
  prepare(): string;
  options?: FromPretrainedOptions;
}

const LAYOUTS: Layout[] = [
  {
    name: 'plain LLaVA, Qwen2 + CLIP',
    kind: 'llava',
    prepare: () => {
      copy(join(MODELS_REFERENCE, 'llava-qwen2-clip'), 'llava-qwen2-clip');
      copy(join(MODELS_REFERENCE, 'tiny-clip-vit-12'), 'tiny-clip-vit-12'); // mm_vision_tower "openai/tiny-clip-vit-12"
      copy(join(LLAVA_EXTRAS, 'llava-qwen2-clip'), 'llava-qwen2-clip');
      copy(join(LLAVA_EXTRAS, 'tiny-clip-vit-12'), 'tiny-clip-vit-12');
      return join(root, 'llava-qwen2-clip');
    },
  },
  {
    name: 'plain LLaVA, LLaMA + SigLIP (BF16 shards)',
    kind: 'llava',
    prepare: () => {
      copy(join(MODELS_REFERENCE, 'llava-llama-siglip-bf16'), 'llava-llama-siglip-bf16');
      copy(join(MODELS_REFERENCE, 'tiny-siglip-14'), 'tiny-siglip-14'); // mm_vision_tower "google/tiny-siglip-14"
      writeChunkTokenizer('llava-llama-siglip-bf16');
      // SigLIP's processor: resize to the tower's 14 px, mean / std 0.5
      writeJson(join('tiny-siglip-14', 'preprocessor_config.json'), {
        image_processor_type: 'SiglipImageProcessor', do_resize: true, size: { height: 14, width: 14 }, resample: 3,
        do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5],
      });
      return join(root, 'llava-llama-siglip-bf16');
    },
  },
  ...(['Parrot-tiny', 'Parrot-tiny-bf16'] as const).map((dir): Layout => ({
    name: `Parrot ${dir.endsWith('bf16') ? 'BF16' : 'F32'}`,
    kind: 'parrot',
    prepare: () => {
      copy(join(PARROT, dir), dir);
      copy(join(PARROT, 'clip-vit-tiny-patch4-12'), 'clip-vit-tiny-patch4-12');
      return join(root, dir);
    },
  })),
  {
    name: 'Wings Qwen2',
    kind: 'wings',
    prepare: () => {
      copy(join(WINGS, 'wings-qwen2'), 'wings-qwen2');
      copy(join(WINGS, 'siglip-so400m-patch14-384'), 'siglip-so400m-patch14-384');
      return join(root, 'wings-qwen2');
    },
  },
  {
    name: 'Wings LLaMA-3.1',
    kind: 'wings',
    prepare: () => {
      copy(join(WINGS, 'wings-llama'), 'wings-llama');
      copy(join(WINGS, 'siglip-so400m-patch14-384'), 'siglip-so400m-patch14-384');
      writeChunkTokenizer('wings-llama'); // the authors ship none: a user copies the base LLM's
      return join(root, 'wings-llama');
    },
  },
  ...([['tiny-vicuna', 'vicuna'], ['tiny-llama2', 'llama2']] as const).map(([dir, llm]): Layout => ({
    name: `Cheetah ${llm === 'vicuna' ? 'Vicuna' : 'LLaMA-2'}`,
    kind: 'cheetah',
    options: TINY_CHEETAH as FromPretrainedOptions,
    prepare: () => {
      copy(join(CHEETAH, dir), dir);
      writeChunkTokenizer(join(dir, llm)); // the LLM directory's tokenizer (the fixture has weights only)
      return join(root, dir);
    },
  })),
];

/**
 * The answer tokens the model's own greedy `generate` gives for the authors' prompt (stop tokens removed), and
 * the length of the sequence the model's forward builds from that prompt (placeholders expanded).
 */
async function referenceAnswer(model: PretrainedMLLM): Promise<{ tokens: number[]; promptTokens: number }> {
  const llavaAnswer = (llava: LlavaModel, inputIds: number[], pixelValues: tf.Tensor4D, stopIds: number[]) => {
    const [tokens] = llava.generate([inputIds], { pixelValues, maxNewTokens: MAX_NEW_TOKENS, eosTokenId: stopIds });
    const { logits, attentionMask } = llava.forward({ inputIds: [inputIds], pixelValues });
    tf.dispose([logits, pixelValues]);
    return { tokens: tokens!.filter((t) => !stopIds.includes(t)), promptTokens: attentionMask[0]!.length };
  };
  if (model instanceof LlavaPretrained || model instanceof PretrainedParrot) {
    const { inputIds, stopIds } = llavaPrompt(model.tokenizer!, model instanceof PretrainedParrot ? 'chatml' : model.conversation, QUESTION, 1);
    return llavaAnswer(model.model, inputIds, model.imageProcessor!.preprocess([IMAGE]), stopIds);
  }
  if (model instanceof WingsModel) {
    const { inputIds } = wingsPrompt(model.tokenizer!, model.config.modelType, QUESTION, true);
    return llavaAnswer(model.model, inputIds, model.imageProcessor.preprocess(IMAGE), model.eosTokenIds);
  }
  if (model.kind === 'cheetah') {
    const cheetah = model as PretrainedCheetah;
    const { segments } = cheetahPrompt(await cheetah.tokenizer(), `${CHEETAH_IMAGE} ${QUESTION}`, 1, cheetah.style);
    const pixelValues = cheetah.imageProcessor.preprocess([IMAGE]);
    // Vicuna's `###` stop ids (835, 2277 29937) lie outside the tiny vocabulary of 40: eos alone stops.
    const [tokens] = cheetah.model.generate({ segments: [segments], pixelValues }, { maxNewTokens: MAX_NEW_TOKENS });
    const prepared = cheetah.model.prepare({ segments: [segments], pixelValues });
    tf.dispose([prepared.inputsEmbeds, prepared.imageFeatures, pixelValues]);
    return { tokens: tokens!.filter((t) => t !== cheetah.model.eosTokenId), promptTokens: prepared.attentionMask[0]!.length };
  }
  throw new Error(`referenceAnswer: unexpected model ${model.kind}`);
}

class Collector {
  text = '';
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}

describe.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'the per-loader tests run every layout on each backend; the one-call path is the same code'))(
  'fromPretrained + mllm run on every authors\' layout',
  () => {
    for (const layout of LAYOUTS) {
      it(`${layout.name}: one call → kind '${layout.kind}' and the greedy answer; one command → the same answer and a summary`, async () => {
        const dir = layout.prepare();
        const model = await fromPretrained(dir, layout.options);
        let expected;
        try {
          expect([model.kind, model.directory]).toEqual([layout.kind, dir]);
          const before = tf.memory().numTensors;
          const progress: number[] = [];
          expected = await model.chat(QUESTION, [IMAGE], { maxNewTokens: MAX_NEW_TOKENS, onToken: (p) => progress.push(p.tokens) });
          expect(tf.memory().numTensors).toBe(before);
          const reference = await referenceAnswer(model);
          expect(expected.tokens).toEqual(reference.tokens);
          expect(expected.tokens.length).toBeLessThanOrEqual(MAX_NEW_TOKENS);
          // ChatResult means the same for every kind (pretrained-model.ts): promptTokens is the spliced
          // sequence, onToken counts answer tokens 1…n, and one token leaves no decode time.
          expect(expected.promptTokens).toBe(reference.promptTokens);
          expect(progress).toEqual(expected.tokens.map((_, i) => i + 1));
          expect(expected.prefillMs).toBeGreaterThan(0);
          expect(expected.decodeMs).toBeGreaterThanOrEqual(0);
          const one = await model.chat(QUESTION, [IMAGE], { maxNewTokens: 1 });
          expect([one.tokens, one.decodeMs]).toEqual([expected.tokens.slice(0, 1), 0]);
          expect(expected.tokens.length, 'the tiny model answers nothing for IMAGE: choose another pixel pattern').toBeGreaterThan(0);
        } finally {
          model.dispose();
        }

        const stdout = new Collector();
        const stderr = new Collector();
        const io: CliIo = { stdout, stderr, ...(layout.options ? { load: (d, options) => fromPretrained(d, { ...options, ...layout.options }) } : {}) };
        const code = await runCli(['run', '--model', dir, '--image', PNG, '--max-new-tokens', String(MAX_NEW_TOKENS), '--backend', 'cpu', QUESTION], io);
        expect(code, stderr.text).toBe(0);
        expect(stdout.text).toBe(`${expected.text}\n`);
        const lines = stderr.text.trimEnd().split('\n');
        expect(lines[0]).toMatch(new RegExp(`^loaded .* \\(${layout.kind}\\) on cpu in \\d+\\.\\d\\d s$`));
        expect(lines.at(-1)).toMatch(
          new RegExp(`^prompt ${expected.promptTokens} tokens, prefill \\d+\\.\\d\\d s, ${expected.tokens.length} tokens generated, decode (\\d+\\.\\d\\d|–) tokens/s$`),
        );
      });
    }

    it('an input the model cannot take is a ModelInputError; mllm run prints its message on one line and exits 2', async () => {
      // LLaVA-Qwen2: a question past tokenizer_model_max_length (64 tokens after the 9 image rows are spliced)
      const llava = LAYOUTS[0]!.prepare();
      const long = Array.from({ length: 12 }, () => QUESTION).join(' ');
      const model = await fromPretrained(llava);
      try {
        const before = tf.memory().numTensors;
        await expect(model.chat(long, [IMAGE], { maxNewTokens: 1 })).rejects.toThrow(ModelInputError);
        await expect(model.chat(long, [IMAGE], { maxNewTokens: 1 })).rejects.toThrow(/more than tokenizer_model_max_length 64 .*shorten the prompt/);
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        model.dispose();
      }
      // Wings: infer.py passes one image
      const wings = LAYOUTS.find((layout) => layout.name === 'Wings Qwen2')!.prepare();
      for (const [dir, argv, message] of [
        [llava, [long], /^mllm run: LlavaModel\.\w+: the spliced sequence has \d+ tokens, more than tokenizer_model_max_length 64/],
        [wings, ['--image', PNG, QUESTION], /^mllm run: WingsModel\.chat: images must hold at most one image .*got 2$/],
      ] as const) {
        const stdout = new Collector();
        const stderr = new Collector();
        expect(await runCli(['run', '--model', dir, '--image', PNG, '--max-new-tokens', '1', '--backend', 'cpu', ...argv], { stdout, stderr }), stderr.text).toBe(2);
        const lines = stderr.text.trimEnd().split('\n');
        expect(lines).toHaveLength(2); // the loaded line, the error
        expect(lines[1]).toMatch(message);
        expect(stdout.text).toBe('');
      }
    });

    // The built binary (dist/cli.js: `pnpm build` first) on a paper layout; plain LLaVA's is in llava/load-llava.test.ts.
    it('node dist/cli.js run on a Parrot directory prints the chat answer and the summary', async () => {
      const dir = LAYOUTS.find((layout) => layout.name === 'Parrot F32')!.prepare();
      const model = await fromPretrained(dir);
      const expected = await model.chat(QUESTION, [IMAGE], { maxNewTokens: MAX_NEW_TOKENS }).finally(() => model.dispose());
      const { stdout, stderr } = await promisify(execFile)(process.execPath, [CLI, 'run', '--model', dir, '--image', PNG, '--max-new-tokens', String(MAX_NEW_TOKENS), '--backend', 'cpu', QUESTION]);
      expect(stdout).toBe(`${expected.text}\n`);
      const lines = stderr.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^loaded .*Parrot-tiny \(parrot\) on cpu in \d+\.\d\d s$/);
      expect(lines.at(-1)).toMatch(new RegExp(`^prompt ${expected.promptTokens} tokens, prefill \\d+\\.\\d\\d s, ${expected.tokens.length} tokens generated, decode`));
    });
  },
);
