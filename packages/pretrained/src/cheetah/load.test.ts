/**
 * Cheetah end to end against the authors' code: `__fixtures__/tiny-vicuna/` is a tiny random Cheetah saved in the
 * authors' layout (ViT-g `.pth`, BLIP-2 `{"model": …}`, a sharded `pytorch_model.bin` LLaMA directory, the Cheetah
 * checkpoint, LAVIS YAML) with the logits of `Chat.batch_answer`, `Chat.answer` and `prompt_process` + `forward`,
 * written by `scripts/reference-fixtures/cheetah_model.py` (float64). Loaded here through `loadCheetah`.
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensorsFile, StateDictError, writeSafetensorsFile } from '@mllm/core';
import { expectClose } from '@mllm/core/testing';
import { CHEETAH_IMAGE, cheetahPrompt, HFTokenizer } from '@mllm/models';
import { cheetahEvalConfig, loadCheetah } from './index.js';
import { CHUNK_TOKENIZER_CONFIG, chunkTokenizerJson, chunkVocab, TINY_CHEETAH } from './test-support.js';
import { fromPretrained, probeCheckpoint } from '../from-pretrained.js';

const DIR = fileURLToPath(new URL('./__fixtures__/tiny-vicuna', import.meta.url));
const TINY = TINY_CHEETAH;

async function expected(): Promise<Map<string, tf.Tensor>> {
  return (await readSafetensorsFile(join(DIR, 'expected.safetensors'))).tensors;
}

/** The fixture's flat segment ids + lengths `[B, n+1]` → per sample, per segment. */
function segmentsOf(e: Map<string, tf.Tensor>, prefix: string): number[][][] {
  const ids = e.get(`${prefix}.segment_ids`)!.arraySync() as number[];
  const lengths = e.get(`${prefix}.segment_lengths`)!.arraySync() as number[][];
  let at = 0;
  return lengths.map((row) => row.map((len) => ids.slice(at, (at += len))));
}

/** The `[B, L, V]` rows where `mask` is 1 (padding rows with no earlier real key are not HF's, see HFCausalLM). */
function realRows(logits: tf.Tensor, mask: number[][]): number[] {
  const values = logits.arraySync() as number[][][];
  return mask.flatMap((row, b) => row.flatMap((m, t) => (m ? values[b]![t]! : [])));
}

/** Per sample, the argmax of the last row of `[B, L, V]` logits. */
const lastArgmax = (t: tf.Tensor): number[] => tf.tidy(() => (tf.argMax(t, -1).arraySync() as number[][]).map((row) => row.at(-1)!));

const maxAbsDiff = (a: tf.Tensor, b: tf.Tensor): number => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

const spansOf = (spans: Array<Array<{ start: number; length: number }>>) => spans[0]!.map((s) => [s.start, s.start + s.length]);

describe('loadCheetah: the authors\' Cheetah (Vicuna) from its released files', () => {
  it('config form: Chat.batch_answer (left-padded segments, update layer 16), its decode step, and prompt_process', async () => {
    const cheetah = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY });
    const e = await expected();
    try {
      const { model } = cheetah;
      expect(cheetah.kind).toBe('cheetah');
      expect(cheetah.style).toBe('vicuna');
      expect(model.updateLayer).toBe(16); // Chat's default, not in the YAML
      expect(cheetah.config!.numQueryToken).toBe(4);
      expect(cheetah.notes.join('\n')).toMatch(/EVA ViT: skipped \d+ tensors: blocks 2\+/);
      expect(cheetah.notes.join('\n')).toMatch(/BLIP-2: skipped \d+ tensors: the Q-Former's text side/);

      // batch_answer: layout, prefill logits, then one cached step with the greedy tokens
      const before = tf.memory().numTensors;
      const batch = model.prepare({ segments: segmentsOf(e, 'batch_answer'), pixelValues: e.get('batch_answer.pixel_values') as tf.Tensor4D });
      const mask = e.get('batch_answer.attention_mask')!.arraySync() as number[][];
      expect(batch.attentionMask).toEqual(mask);
      expect(spansOf(batch.imageSpans)).toEqual(e.get('batch_answer.image_positions')!.arraySync());
      const prefill = model.forwardBatch(batch, { useCache: true });
      expectClose(realRows(prefill.logits, mask), realRows(e.get('batch_answer.logits')!, mask), { label: 'batch_answer logits' });
      const next = e.get('batch_answer.next_tokens')!.arraySync() as number[][];
      const step = model.llamaModel.forward({ inputIds: next, cache: prefill.cache, useCache: false });
      expectClose(step.logits, e.get('batch_answer.step2_logits')!, { label: 'batch_answer decode step' });
      for (const t of [batch.inputsEmbeds, batch.imageFeatures, prefill.logits, step.logits]) t.dispose();
      for (const layer of prefill.cache!.layers) tf.dispose([layer.keys, layer.values]);
      expect(tf.memory().numTensors).toBe(before);

      // prompt_process + forward: BOS, right-padded segments, positions through the padding, guidance = last real token
      const pp = model.prepare({ segments: segmentsOf(e, 'prompt_process'), pixelValues: e.get('prompt_process.pixel_values') as tf.Tensor4D, layout: 'prompt_process' });
      const ppMask = e.get('prompt_process.attention_mask')!.arraySync() as number[][];
      expect(pp.attentionMask).toEqual(ppMask);
      expect(pp.attentionMask.some((row) => row.slice(0, row.lastIndexOf(1)).includes(0))).toBe(true); // padding inside a sequence
      expect(pp.positionIds[0]).toEqual(ppMask[0]!.map((_, t) => t));
      expect(pp.lastPromptIndex).toEqual(e.get('prompt_process.last_prompt_index')!.arraySync());
      expect(spansOf(pp.imageSpans)).toEqual(e.get('prompt_process.image_positions')!.arraySync());
      pp.inputsEmbeds.dispose();
      pp.imageFeatures.dispose();
      const logits = model.forward({ segments: segmentsOf(e, 'prompt_process'), pixelValues: e.get('prompt_process.pixel_values') as tf.Tensor4D, layout: 'prompt_process' });
      expectClose(realRows(logits, ppMask), realRows(e.get('prompt_process.logits')!, ppMask), { label: 'prompt_process logits' });
      // what packing would do instead: positions skipping the padding move the logits far past the tolerance
      const packed = model.prepare({ segments: segmentsOf(e, 'prompt_process'), pixelValues: e.get('prompt_process.pixel_values') as tf.Tensor4D, layout: 'prompt_process' });
      packed.positionIds = packed.attentionMask.map((row) => { let next = 0; return row.map((m) => (m ? next++ : 1)); });
      const packedLogits = model.forwardBatch(packed).logits;
      const diff = Math.max(...realRows(packedLogits, ppMask).map((v, i) => Math.abs(v - realRows(logits, ppMask)[i]!)));
      expect(diff).toBeGreaterThan(1e-2);
      tf.dispose([logits, packedLogits, packed.inputsEmbeds, packed.imageFeatures]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      cheetah.dispose();
      tf.dispose([...e.values()]);
    }
  });

  it('Cheetah-LLaMA-2 (modeling_llama2.py, [INST] prompts, unk padding): batch_answer, prompt_process and answer', async () => {
    const dir = fileURLToPath(new URL('./__fixtures__/tiny-llama2', import.meta.url));
    const e = (await readSafetensorsFile(join(dir, 'expected.safetensors'))).tensors;
    const cheetah = await loadCheetah({ config: join(dir, 'cheetah_eval_llama2.yaml'), ...TINY });
    const switched = await loadCheetah({ config: join(dir, 'cheetah_eval_llama2.yaml'), ...TINY, updateLayer: 2 });
    try {
      expect(cheetah.style).toBe('llama2');
      expect(cheetah.model.padTokenId).toBe(0);
      expect(cheetah.model.updateLayer).toBe(16);
      for (const [layout, prefix] of [['chat', 'batch_answer'], ['prompt_process', 'prompt_process']] as const) {
        const mask = e.get(`${prefix}.attention_mask`)!.arraySync() as number[][];
        const batch = cheetah.model.prepare({ segments: segmentsOf(e, prefix), pixelValues: e.get(`${prefix}.pixel_values`) as tf.Tensor4D, layout });
        expect(batch.attentionMask).toEqual(mask);
        const padIds = batch.tokenIds.flatMap((row, b) => row.filter((_, t) => !mask[b]![t]));
        expect(padIds.length).toBeGreaterThan(0);
        expect(padIds.every((id) => id === 0)).toBe(true); // pad_token = unk_token
        const { logits } = cheetah.model.forwardBatch(batch);
        expectClose(realRows(logits, mask), realRows(e.get(`${prefix}.logits`)!, mask), { label: `llama2 ${prefix} logits` });
        tf.dispose([logits, batch.inputsEmbeds, batch.imageFeatures]);
      }
      const logits = switched.model.forward({ segments: segmentsOf(e, 'answer'), pixelValues: e.get('answer.pixel_values') as tf.Tensor4D });
      expectClose(logits, e.get('answer.logits')!, { label: 'llama2 answer logits (update layer 2)' });
      logits.dispose();
    } finally {
      cheetah.dispose();
      switched.dispose();
      tf.dispose([...e.values()]);
    }
  });

  it('fromPretrained(dir) finds the eval YAML and loads the same model as loadCheetah({ config })', async () => {
    expect(cheetahEvalConfig(await probeCheckpoint(DIR))).toBe('cheetah_eval_vicuna.yaml'); // not the model YAML beside it
    const viaDir = await fromPretrained(DIR, { ...TINY, updateLayer: 1 });
    const direct = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY, updateLayer: 1 });
    const e = await expected();
    try {
      expect(viaDir.kind).toBe('cheetah');
      const input = { segments: segmentsOf(e, 'batch_answer'), pixelValues: e.get('batch_answer.pixel_values') as tf.Tensor4D };
      const a = (viaDir.model as typeof direct.model).forward(input);
      const b = direct.model.forward(input);
      expect(maxAbsDiff(a, b)).toBe(0);
      tf.dispose([a, b]);
    } finally {
      viaDir.dispose();
      direct.dispose();
      tf.dispose([...e.values()]);
    }
  });

  it('explicit paths and the update-layer switch: Chat.answer(update_layer=2)', async () => {
    const cheetah = await loadCheetah({
      evaWeights: join(DIR, 'eva_vit_g.pth'),
      qformerWeights: join(DIR, 'blip2_pretrained_flant5xxl.pth'),
      llamaModel: join(DIR, 'vicuna'),
      ckpt: join(DIR, 'cheetah_vicuna.pth'),
      numQueryTokens: 4,
      updateLayer: 2,
      ...TINY,
      visionConfig: { ...TINY.visionConfig, img_size: 8 },
    });
    const e = await expected();
    try {
      expect(cheetah.config).toBeNull();
      expect(cheetah.model.updateLayer).toBe(2);
      const logits = cheetah.model.forward({ segments: segmentsOf(e, 'answer'), pixelValues: e.get('answer.pixel_values') as tf.Tensor4D });
      expectClose(logits, e.get('answer.logits')!, { label: 'answer logits' });
      // the switch matters: the same prompt at the default layer 16 differs
      const other = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY });
      const at16 = other.model.forward({ segments: segmentsOf(e, 'answer'), pixelValues: e.get('answer.pixel_values') as tf.Tensor4D });
      expect(maxAbsDiff(at16, logits)).toBeGreaterThan(1e-3);
      tf.dispose([logits, at16]);
      other.dispose();
      // the reference's dropout at inference (it never calls .eval()): random, so two passes differ
      const noisy = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY, dropoutAtInference: true });
      expect(noisy.model.vpg.dropoutAtInference).toBe(true);
      expect(cheetah.model.vpg.dropoutAtInference).toBe(false);
      const [n1, n2] = [0, 1].map(() => noisy.model.forward({ segments: segmentsOf(e, 'answer'), pixelValues: e.get('answer.pixel_values') as tf.Tensor4D }));
      expect(maxAbsDiff(n1!, n2!)).toBeGreaterThan(1e-4);
      tf.dispose([n1!, n2!]);
      noisy.dispose();
    } finally {
      cheetah.dispose();
      tf.dispose([...e.values()]);
    }
  });

  it('generate: greedy tokens from the prefill with VPG-C, then cached steps; eos / stop sequences end a sample', async () => {
    const cheetah = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY });
    const e = await expected();
    try {
      const inputs = { segments: segmentsOf(e, 'batch_answer'), pixelValues: e.get('batch_answer.pixel_values') as tf.Tensor4D };
      const first = lastArgmax(e.get('batch_answer.logits')!);
      expect(first).toEqual((e.get('batch_answer.next_tokens')!.arraySync() as number[][]).map((r) => r[0]));
      const second = lastArgmax(e.get('batch_answer.step2_logits')!);
      const before = tf.memory().numTensors;
      const steps: number[] = [];
      const tokens = cheetah.model.generate(inputs, { maxNewTokens: 2, eosTokenId: [], onStep: (t) => steps.push(t[0]!.length) });
      expect(tokens).toEqual(first.map((t, b) => [t, second[b]]));
      expect(steps).toEqual([1, 2]);
      // sample 0 stops at its first token (a stop sequence), sample 1 runs on
      const stopped = cheetah.model.generate(inputs, { maxNewTokens: 2, eosTokenId: [], stopSequences: [[first[0]!]] });
      expect(stopped[0]).toEqual([first[0]]);
      expect(stopped[1]![0]).toBe(first[1]);
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      cheetah.dispose();
      tf.dispose([...e.values()]);
    }
  });

  it("answer: Chat.answer's prompt built from text (cheetahPrompt + the directory's tokenizer.json), its first greedy token", async () => {
    const e = await expected();
    const tmp = mkdtempSync(join(tmpdir(), 'cheetah-'));
    try {
      cpSync(join(DIR, 'vicuna'), join(tmp, 'vicuna'), { recursive: true });
      // A WordLevel tokenizer.json that tokenizes as the fixture's stand-in does (./test-support.ts).
      const context = 'Look at <Img><HereForImage></Img> then <Img><HereForImage></Img> Which shows more, and why?';
      const tokenizerJson = chunkTokenizerJson;
      const config = CHUNK_TOKENIZER_CONFIG;
      // the prompt text first (any vocabulary), then a vocabulary holding its chunks
      const { prompt } = cheetahPrompt(HFTokenizer.fromObjects(tokenizerJson({}), config), context, 2, 'vicuna');
      const vocab = chunkVocab(prompt.split('<HereForImage>'));
      writeFileSync(join(tmp, 'vicuna', 'tokenizer.json'), JSON.stringify(tokenizerJson(vocab)));
      writeFileSync(join(tmp, 'vicuna', 'tokenizer_config.json'), JSON.stringify(config));

      const cheetah = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), llamaModel: join(tmp, 'vicuna'), updateLayer: 2, ...TINY });
      try {
        const tokenizer = await cheetah.tokenizer();
        expect(cheetahPrompt(tokenizer, context, 2, 'vicuna').segments).toEqual(segmentsOf(e, 'answer')[0]); // the reference's ids
        const expectedFirst = lastArgmax(e.get('answer.logits')!)[0]!;
        const progress: number[] = [];
        const result = await cheetah.answer(context, e.get('answer.pixel_values') as tf.Tensor4D, { maxNewTokens: 2, onToken: (p) => progress.push(p.tokens) });
        expect(result.tokens[0] ?? cheetah.model.eosTokenId).toBe(expectedFirst);
        expect(result.promptTokens).toBe(e.get('answer.logits')!.shape[1]);
        expect(progress[0]).toBe(1);
        expect(typeof result.text).toBe('string');
        // chat = the BLIP-2 eval transform of the raw images, then answer with the images before the question
        const images = [0, 1].map((k) => ({ height: 10, width: 12, data: Float32Array.from({ length: 360 }, (_, i) => ((i * (7 + k)) % 256) / 255) }));
        expect(cheetah.imageProcessor.kind).toBe('blip2');
        expect(cheetah.imageProcessor.options.resize).toEqual({ height: 8, width: 8 }); // the config's eval image_size
        const question = 'Which shows more, and why?';
        const viaChat = await cheetah.chat(question, images, { maxNewTokens: 3 });
        const pixels = cheetah.imageProcessor.preprocess(images);
        expect(pixels.shape).toEqual([2, 3, 8, 8]);
        const viaAnswer = await cheetah.answer(`${CHEETAH_IMAGE} ${CHEETAH_IMAGE} ${question}`, pixels, { maxNewTokens: 3 });
        pixels.dispose();
        expect(viaChat.tokens).toEqual(viaAnswer.tokens);
        expect(viaChat.promptTokens).toBe(viaAnswer.promptTokens);
        await expect(cheetah.chat(question, [{ height: 2, width: 2, data: new Float32Array(3) }])).rejects.toThrow(/images\[0\]: expected a Float32Array of/);
        await expect(cheetah.answer(question, [[1]] as never)).rejects.toThrow(/PretrainedCheetah\.answer: pixelValues/);
        // text only (the reference's Chat fails without an image; here the LLM answers alone, VPG-C idle)
        const before = tf.memory().numTensors;
        const textOnly = await cheetah.chat('What is this?', [], { maxNewTokens: 1 });
        const promptIds = cheetahPrompt(tokenizer, 'What is this?', 0, 'vicuna').segments;
        expect(promptIds).toHaveLength(1);
        expect(textOnly.promptTokens).toBe(promptIds[0]!.length);
        const logits = cheetah.model.llamaModel.forward({ inputIds: promptIds }).logits;
        expect(textOnly.tokens[0] ?? cheetah.model.eosTokenId).toBe(lastArgmax(logits)[0]);
        logits.dispose();
        expect(tf.memory().numTensors).toBe(before);
      } finally {
        cheetah.dispose();
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      tf.dispose([...e.values()]);
    }
  });

  it('tokenizerDir: a tokenizer outside the LLM directory answers as the same tokenizer inside it; one without tokenizer.json is a load error', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'cheetah-tokenizer-'));
    const question = 'What is in the picture?';
    const image = { height: 10, width: 12, data: Float32Array.from({ length: 360 }, (_, i) => ((i * 7) % 256) / 255) };
    const writeTokenizer = (dir: string) => {
      const { prompt } = cheetahPrompt(HFTokenizer.fromObjects(chunkTokenizerJson({}), CHUNK_TOKENIZER_CONFIG), `${CHEETAH_IMAGE} ${question}`, 1, 'vicuna');
      writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(chunkTokenizerJson(chunkVocab(prompt.split('<HereForImage>')))));
      writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(CHUNK_TOKENIZER_CONFIG));
    };
    try {
      cpSync(join(DIR, 'vicuna'), join(tmp, 'vicuna'), { recursive: true });
      writeTokenizer(join(tmp, 'vicuna'));
      mkdirSync(join(tmp, 'tokenizer'));
      writeTokenizer(join(tmp, 'tokenizer'));
      const inside = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), llamaModel: join(tmp, 'vicuna'), ...TINY });
      const expectedAnswer = await inside.chat(question, [image], { maxNewTokens: 3 }).finally(() => inside.dispose());
      // fromPretrained passes tokenizerDir on; the fixture's own LLM directory has weights only
      const outside = await fromPretrained(DIR, { ...TINY, tokenizerDir: join(tmp, 'tokenizer') } as never);
      try {
        expect((outside as unknown as { tokenizerDir: string }).tokenizerDir).toBe(join(tmp, 'tokenizer'));
        const answer = await outside.chat(question, [image], { maxNewTokens: 3 });
        expect([answer.tokens, answer.promptTokens]).toEqual([expectedAnswer.tokens, expectedAnswer.promptTokens]);
      } finally {
        outside.dispose();
      }
      const bare = await fromPretrained(DIR, TINY as never);
      try {
        await expect(bare.chat(question, [image])).rejects.toThrow(/chat needs a tokenizer\.json in .*tiny-vicuna\/vicuna \(the LLM directory, or load with \{ tokenizerDir \}\)/);
      } finally {
        bare.dispose();
      }
      await expect(loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY, tokenizerDir: DIR })).rejects.toThrow(/options\.tokenizerDir ".*tiny-vicuna" has no tokenizer\.json/);
      await expect(loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY, tokenizerDir: '' })).rejects.toThrow(/loadCheetah: options\.tokenizerDir must be a directory path, got the string ""/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('bad prompt inputs are errors naming the argument, expected and actual values, with nothing left behind', async () => {
    const cheetah = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY });
    const pixels = tf.zeros([2, 3, 8, 8]) as tf.Tensor4D;
    const channelsLast = tf.zeros([2, 8, 8, 3]) as tf.Tensor4D;
    try {
      const { model } = cheetah;
      const before = tf.memory().numTensors;
      expect(() => model.prepare({ segments: [[[1, 5], [6], [7]], [[1], [6]]], pixelValues: pixels }))
        .toThrow('CheetahModel.prepare: every sample must have the same number of segments (images + 1), got [3, 2]');
      expect(() => model.prepare({ segments: [[[1, 5], [6]]], pixelValues: pixels }))
        .toThrow('CheetahModel.prepare: pixelValues must hold B·n = 1·1 = 1 images (sample-major), got 2');
      expect(() => model.prepare({ segments: [[[1, 5], [6], [40]]], pixelValues: pixels }))
        .toThrow('CheetahModel.prepare: segments[0][2][0] must be a token id in [0, 40), got 40');
      expect(() => model.prepare({ segments: [[[1], [2], [3]]], pixelValues: channelsLast }))
        .toThrow('CheetahModel.encodeImages: pixelValues must be [numImages, 3, 8, 8] (channels first, as the reference), got [2,8,8,3]');
      expect(() => model.prepare({ segments: [[[1], [2], [3]]], pixelValues: pixels, layout: 'packed' as never }))
        .toThrow("CheetahModel.prepare: layout must be 'chat' or 'prompt_process', got the string \"packed\"");
      expect(() => model.generate({ segments: [[[1], [2], [3]]], pixelValues: pixels }, { maxNewTokens: 0 }))
        .toThrow('CheetahModel.generate: options.maxNewTokens must be a positive integer, got 0');
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      tf.dispose([pixels, channelsLast]);
      cheetah.dispose();
    }
  });

  it('the LLaMA directory as one pytorch_model.bin or as safetensors', async () => {
    const e = await expected();
    const tmp = mkdtempSync(join(tmpdir(), 'cheetah-llm-'));
    const before = tf.memory().numTensors;
    try {
      // one .bin without an index: here the first shard alone, so the second shard's tensors are missing
      cpSync(join(DIR, 'vicuna', 'config.json'), join(tmp, 'bin', 'config.json'), { recursive: true });
      copyFileSync(join(DIR, 'vicuna', 'pytorch_model-00001-of-00002.bin'), join(tmp, 'bin', 'pytorch_model.bin'));
      await expect(loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), llamaModel: join(tmp, 'bin'), ...TINY }))
        .rejects.toThrow(/missing keys: .*llama_model\.model\.norm\.weight, llama_model\.lm_head\.weight/);
      expect(tf.memory().numTensors).toBe(before);
      // safetensors (HF names), written from a loaded model: the same logits
      const reference = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY });
      const llm = reference.model.llamaModel.stateDict();
      const hf = new Map([...llm].filter(([name]) => !/^model\.(query_tokens|qformer_proj|llm_proj)/.test(name))); // VPG-C is the Cheetah checkpoint's
      cpSync(join(DIR, 'vicuna', 'config.json'), join(tmp, 'st', 'config.json'), { recursive: true });
      await writeSafetensorsFile(join(tmp, 'st', 'model.safetensors'), hf);
      tf.dispose([...llm.values()]);
      const fromSt = await loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), llamaModel: join(tmp, 'st'), ...TINY });
      const inputs = { segments: segmentsOf(e, 'answer'), pixelValues: e.get('answer.pixel_values') as tf.Tensor4D };
      const [a, b] = [reference.model.forward(inputs), fromSt.model.forward(inputs)];
      expectClose(b, a, { label: 'safetensors LLaMA', rtol: 0, atol: 0 });
      tf.dispose([a, b]);
      reference.dispose();
      fromSt.dispose();
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
      tf.dispose([...e.values()]);
    }
  });

  it('a wrong or missing file is an error listing the keys, and leaves no tensor behind', async () => {
    const before = tf.memory().numTensors;
    // BLIP-2's file where the ViT's belongs: its keys are not the ViT's
    const wrong = loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), evaWeights: join(DIR, 'blip2_pretrained_flant5xxl.pth'), ...TINY });
    await expect(wrong).rejects.toThrow(StateDictError);
    await expect(wrong).rejects.toThrow(/unexpected keys: .*model\.query_tokens \(EVA ViT\)/);
    await expect(wrong).rejects.toThrow(/missing keys: visual_encoder\.cls_token/);
    expect(tf.memory().numTensors).toBe(before);
    // a directory without eva_vit_g.pth beside the config
    const tmp = mkdtempSync(join(tmpdir(), 'cheetah-'));
    try {
      for (const f of ['cheetah_eval_vicuna.yaml', 'cheetah_vicuna.yaml', 'blip2_pretrained_flant5xxl.pth', 'cheetah_vicuna.pth']) copyFileSync(join(DIR, f), join(tmp, f));
      cpSync(join(DIR, 'vicuna'), join(tmp, 'vicuna'), { recursive: true });
      await expect(loadCheetah({ config: join(tmp, 'cheetah_eval_vicuna.yaml'), ...TINY })).rejects.toThrow(/eva_vit_g\.pth/);
      expect(tf.memory().numTensors).toBe(before);
      // no Cheetah checkpoint: nothing else holds llama_proj
      await expect(loadCheetah({ config: join(tmp, 'cheetah_eval_vicuna.yaml'), evaWeights: join(DIR, 'eva_vit_g.pth'), ckpt: null, ...TINY }))
        .rejects.toThrow(/missing keys: llama_proj\.weight, llama_proj\.bias/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    expect(tf.memory().numTensors).toBe(before);
    // the reference's update layer needs 17+ layers; a bad value names the argument
    await expect(loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY, updateLayer: 17 })).rejects.toThrow(/updateLayer must be a layer of the 17-layer LLM, in \[0, 17\), got 17/);
    // unknown keys (a typo, a tfjs Layer key) are errors naming the key and the accepted ones, before anything is read
    const known = 'known: config, modelConfig, root, arch, evaWeights, qformerWeights, llamaModel, ckpt, updateLayer, dropoutAtInference, visionConfig, qformerConfig, numQueryTokens, tokenizerDir';
    await expect(loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY, updateLayr: 2 } as never)).rejects.toThrow(`loadCheetah: unknown option "updateLayr" (did you mean "updateLayer"?); ${known}`);
    for (const key of ['name', 'trainable', 'dtype', 'inputShape', 'weights', 'customObjects']) {
      await expect(loadCheetah({ config: join(DIR, 'cheetah_eval_vicuna.yaml'), ...TINY, [key]: 1 } as never)).rejects.toThrow(`loadCheetah: unknown option "${key}"; ${known}`);
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
