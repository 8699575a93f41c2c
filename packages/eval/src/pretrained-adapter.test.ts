/**
 * Checkpoint directories in the authors' layouts reach `@mllm/pretrained`'s `fromPretrained`; saved
 * host directories still reach `loadHostModel`. The pretrained model is a stand-in recording what it
 * was asked (the real loaders are tested in @mllm/pretrained), except in the last test, which runs
 * `mllm-eval` on @mllm/pretrained's tiny Parrot reference checkpoint.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import { ModelInputError } from '@mllm/models';
import { fromPretrained } from '@mllm/pretrained';
import { runCli } from './cli-main.js';
import { loadEvalModel, registerModelLoader } from './eval-model.js';
import { adaptPretrainedModel, importPretrainedLoader, type PretrainedLoaderImporter, type PretrainedModelLike } from './pretrained-adapter.js';
import { writeTsv } from './tsv-writer.js';

const directory = mkdtempSync(join(tmpdir(), 'mllm-eval-pretrained-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function checkpoint(name: string, files: Record<string, string>): string {
  const dir = join(directory, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

const llava = checkpoint('llava-tiny', { 'config.json': JSON.stringify({ model_type: 'llava_qwen2', mm_vision_tower: '/authors/clip', mm_projector_type: 'mlp2x_gelu' }) });
const cheetah = checkpoint('cheetah-tiny', { 'cheetah_eval_vicuna.yaml': 'model:\n  arch: cheetah_vicuna\n' });
const savedHost = checkpoint('host-tiny', { 'config.json': JSON.stringify({ format: 'mllm-host-v1' }) });
const bare = checkpoint('bare', {});

interface Asked {
  question: string;
  images: Array<{ height: number; width: number; data: number[] }>;
  maxNewTokens?: number;
}

/** A stand-in `fromPretrained` recording its calls; its model answers `answer(question)`. */
function fakePretrained(answer: (question: string) => string) {
  const loads: Array<[string, object | undefined]> = [];
  const asked: Asked[] = [];
  let disposed = 0;
  const loader: PretrainedLoaderImporter = async () => async (dir, options) => {
    loads.push([dir, options]);
    const model: PretrainedModelLike = {
      kind: 'llava',
      async chat(question, images, chatOptions) {
        asked.push({ question, images: images.map((im) => ({ height: im.height, width: im.width, data: [...im.data] })), maxNewTokens: chatOptions?.maxNewTokens });
        return { text: answer(question) };
      },
      dispose: () => void disposed++,
    };
    return model;
  };
  return { loader, loads, asked, disposed: () => disposed };
}

describe('checkpoint directories in the authors\' layouts', () => {
  it('adaptPretrainedModel passes the question, each [H, W, 3] image as RGB pixels, and the token budget', async () => {
    const fake = fakePretrained(() => 'B');
    const model = adaptPretrainedModel(await (await fake.loader())!(llava), { maxNewTokens: 7, name: 'tiny' });
    const image = tf.tensor3d([0, 0.5, 1, 0.25, 0.75, 0.125], [1, 2, 3]);
    expect(await model.generate('Which?', [image])).toBe('B');
    expect(fake.asked).toEqual([{ question: 'Which?', images: [{ height: 1, width: 2, data: [0, 0.5, 1, 0.25, 0.75, 0.125] }], maxNewTokens: 7 }]);
    expect(model.name).toBe('tiny');
    expect(model.scoreOptions).toBeUndefined();
    await model.dispose?.();
    expect(fake.disposed()).toBe(1);
    const flat = tf.zeros([2, 2]);
    await expect(model.generate('x', [flat as unknown as tf.Tensor3D])).rejects.toThrow(/images\[0\] must be \[H, W, 3\], got \[2,2\]/);
    flat.dispose();
    image.dispose();
  });

  it('loadEvalModel: an authors\' config.json or a LAVIS YAML goes to fromPretrained; a saved host or bare directory to loadHostModel', async () => {
    const fake = fakePretrained(() => 'A');
    const hostSpecs: string[] = [];
    const hostLoader = async () => (spec: string) => (hostSpecs.push(spec), { generate: () => ({ texts: ['C'] }) });
    const noImports = async () => undefined;
    const viaPretrained = await loadEvalModel(llava, hostLoader, { maxNewTokens: 3 }, noImports, { loader: fake.loader, visionTowerDir: '/towers/clip' });
    expect(viaPretrained.name).toBe('llava-tiny');
    expect(await viaPretrained.generate('q', [])).toBe('A');
    await loadEvalModel(cheetah, hostLoader, {}, noImports, { loader: fake.loader });
    expect(fake.loads).toEqual([[llava, { visionTowerDir: '/towers/clip' }], [cheetah, {}]]);
    expect(fake.asked[0].maxNewTokens).toBe(3);
    expect(await (await loadEvalModel(savedHost, hostLoader, {}, noImports, { loader: fake.loader })).generate('q', [])).toBe('C');
    await loadEvalModel(bare, hostLoader, {}, noImports, { loader: fake.loader });
    expect(hostSpecs).toEqual([savedHost, bare]);
    expect(fake.loads).toHaveLength(2);
  });

  it('loadEvalModel: tokenizerDir reaches fromPretrained (with visionTowerDir or alone); for any other spec both are errors, nothing loaded', async () => {
    const fake = fakePretrained(() => 'A');
    const hostSpecs: string[] = [];
    const hostLoader = async () => (spec: string) => (hostSpecs.push(spec), { generate: () => ({ texts: ['C'] }) });
    const noImports = async () => undefined;
    await loadEvalModel(llava, hostLoader, {}, noImports, { loader: fake.loader, tokenizerDir: '/tokenizers/qwen2' });
    await loadEvalModel(llava, hostLoader, {}, noImports, { loader: fake.loader, visionTowerDir: '/towers/clip', tokenizerDir: '/tokenizers/qwen2' });
    expect(fake.loads).toEqual([
      [llava, { tokenizerDir: '/tokenizers/qwen2' }],
      [llava, { visionTowerDir: '/towers/clip', tokenizerDir: '/tokenizers/qwen2' }],
    ]);
    const rule = "only to checkpoint directories in the authors' layouts (loaded by @mllm/pretrained)";
    const savedHostIs = "is not one: it loads as a saved @mllm host directory, whose config.json holds the tokenizer and the vision tower's configuration";
    await expect(loadEvalModel(savedHost, hostLoader, {}, noImports, { loader: fake.loader, tokenizerDir: '/tokenizers/qwen2' })).rejects.toThrow(
      `cannot load model ${JSON.stringify(savedHost)}: tokenizerDir (--tokenizer-dir) applies ${rule}, and ${JSON.stringify(savedHost)} ${savedHostIs}`,
    );
    await expect(loadEvalModel(bare, hostLoader, {}, noImports, { loader: fake.loader, visionTowerDir: '/towers/clip', tokenizerDir: '/t' })).rejects.toThrow(
      `cannot load model ${JSON.stringify(bare)}: visionTowerDir (--vision-tower) and tokenizerDir (--tokenizer-dir) apply ${rule}, and ${JSON.stringify(bare)} ${savedHostIs}`,
    );
    const module = join(directory, 'model.mjs');
    writeFileSync(module, "export default { generate: async () => 'A' };\n");
    await expect(loadEvalModel(module, hostLoader, {}, noImports, { loader: fake.loader, tokenizerDir: '/t' })).rejects.toThrow(
      `tokenizerDir (--tokenizer-dir) applies ${rule}, and ${JSON.stringify(module)} is a JS model module, which builds its own model`,
    );
    let disposed = 0;
    const unregister = registerModelLoader((spec) => (spec === 'custom:model' ? { generate: async () => 'A', dispose: () => void disposed++ } : undefined));
    try {
      await expect(loadEvalModel('custom:model', hostLoader, {}, noImports, { loader: fake.loader, visionTowerDir: '/towers/clip' })).rejects.toThrow(
        `visionTowerDir (--vision-tower) applies ${rule}, and "custom:model" is taken by a registered model loader, which gets the spec alone`,
      );
      expect(disposed).toBe(1); // the model the loader built is let go
    } finally {
      unregister();
    }
    expect([hostSpecs, fake.loads.length]).toEqual([[], 2]);
    // without the options each of these loads as before
    await loadEvalModel(savedHost, hostLoader, {}, noImports, { loader: fake.loader });
    expect(hostSpecs).toEqual([savedHost]);
  });

  it('without @mllm/pretrained installed: an error naming the package to install', async () => {
    await expect(loadEvalModel(llava, async () => undefined, {}, async () => undefined, { loader: async () => undefined })).rejects.toThrow(
      `cannot load model ${JSON.stringify(llava)}: it is not a saved @mllm host directory (no config.json with format 'mllm-host-v1'), ` +
        "and checkpoint directories in the authors' layouts (LLaVA-style HF, Parrot, Wings, Cheetah) need @mllm/pretrained: " +
        'install it beside @mllm/eval (npm install @mllm/pretrained) and run again.',
    );
    // In this workspace it is installed (a devDependency): the real importer finds fromPretrained.
    expect(typeof (await importPretrainedLoader())).toBe('function');
  });

  it('mllm-eval --model <authors\' checkpoint> --vision-tower <dir>: evaluates through fromPretrained', async () => {
    const tsv = join(directory, 'mmmb_en.tsv');
    const image = { height: 1, width: 1, data: Float32Array.from([1, 0, 0]) };
    writeFileSync(tsv, writeTsv([
      { index: 0, question: 'What colour?', options: { A: 'red', B: 'blue' }, answer: 'A', category: 'c', image },
      { index: 1, question: 'And this?', options: { A: 'red', B: 'blue' }, answer: 'B', category: 'c', image: { reference: 0 } },
    ]));
    const fake = fakePretrained(() => 'A');
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['--model', llava, '--vision-tower', directory, '--max-new-tokens', '5', '--out', join(directory, 'run'), '--no-progress', tsv], {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
      hostLoader: async () => undefined,
      pretrainedLoader: fake.loader,
    });
    expect(err.join('')).toBe('');
    expect(code).toBe(0);
    expect(fake.loads).toEqual([[llava, { visionTowerDir: directory }]]);
    expect(fake.asked.map((a) => [a.question.split('\n')[0], a.images.length, a.images[0].data, a.maxNewTokens])).toEqual([
      ['What colour?', 1, [1, 0, 0], 5],
      ['And this?', 1, [1, 0, 0], 5],
    ]);
    expect(out.join('')).toContain('overall accuracy 50.00% (1/2 questions, 2 rows, 0 skipped)');
    expect(JSON.parse(readFileSync(join(directory, 'run', 'report.json'), 'utf8')).model).toBe('llava-tiny');
    expect(fake.disposed()).toBe(1);
  });

  it('mllm-eval --tokenizer-dir <dir>: passed to fromPretrained; a directory that is missing or has no tokenizer.json is a usage error (exit 2)', async () => {
    const tsv = join(directory, 'mmmb_en_tokenizer.tsv');
    writeFileSync(tsv, writeTsv([{ index: 0, question: 'What colour?', options: { A: 'red', B: 'blue' }, answer: 'A', category: 'c', image: { height: 1, width: 1, data: Float32Array.from([1, 0, 0]) } }]));
    const tokenizers = checkpoint('qwen2-tokenizer', { 'tokenizer.json': '{}' }); // only looked at, the stand-in loads nothing
    const run = async (...args: string[]) => {
      const fake = fakePretrained(() => 'A');
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(['--model', llava, ...args, '--out', join(directory, 'run-tokenizer'), '--no-progress', tsv], {
        stdout: { write: (text: string) => out.push(text) },
        stderr: { write: (text: string) => err.push(text) },
        hostLoader: async () => undefined,
        pretrainedLoader: fake.loader,
      });
      return { code, out: out.join(''), err: err.join(''), loads: fake.loads };
    };
    const ok = await run('--tokenizer-dir', tokenizers);
    expect([ok.code, ok.err, ok.loads]).toEqual([0, '', [[llava, { tokenizerDir: tokenizers }]]]);
    expect(ok.out).toContain('overall accuracy 100.00% (1/1 questions, 1 rows, 0 skipped)');
    const both = await run('--vision-tower', directory, '--tokenizer-dir', tokenizers);
    expect([both.code, both.loads]).toEqual([0, [[llava, { visionTowerDir: directory, tokenizerDir: tokenizers }]]]);
    const missing = await run('--tokenizer-dir', join(directory, 'nowhere'));
    expect([missing.code, missing.loads]).toEqual([2, []]);
    expect(missing.err).toMatch(new RegExp(`^mllm-eval: --tokenizer-dir ${join(directory, 'nowhere')}: no such directory\n\nUsage: mllm-eval`));
    const empty = await run('--tokenizer-dir', bare);
    expect([empty.code, empty.loads]).toEqual([2, []]);
    expect(empty.err).toMatch(new RegExp(`^mllm-eval: --tokenizer-dir ${bare}: no tokenizer\\.json there\n`));
    // a saved host directory keeps its tokenizer in its config.json: the option is an error, exit 1, nothing loaded
    const hostErr: string[] = [];
    const hostCode = await runCli(['--model', savedHost, '--tokenizer-dir', tokenizers, '--out', join(directory, 'run-host'), '--no-progress', tsv], {
      stdout: { write: () => {} },
      stderr: { write: (text: string) => hostErr.push(text) },
      hostLoader: async () => () => {
        throw new Error('the host loader must not be reached');
      },
    });
    expect([hostCode, hostErr.join('')]).toEqual([1, `mllm-eval: cannot load model ${JSON.stringify(savedHost)}: tokenizerDir (--tokenizer-dir) applies only to checkpoint ` +
      `directories in the authors' layouts (loaded by @mllm/pretrained), and ${JSON.stringify(savedHost)} is not one: it loads as a saved @mllm host ` +
      `directory, whose config.json holds the tokenizer and the vision tower's configuration\n`]);
  });

  it('a question the model cannot take (ModelInputError) among others: mllm-eval goes on, scores it wrong, lists it with its message; a bug still stops the run', async () => {
    const tsv = join(directory, 'mmmb_en_long.tsv');
    const red = { height: 1, width: 1, data: Float32Array.from([1, 0, 0]) };
    writeFileSync(tsv, writeTsv([
      { index: 0, question: 'What colour?', options: { A: 'red', B: 'blue' }, answer: 'A', category: 'c', image: red },
      { index: 1, question: 'Too long?', options: { A: 'yes', B: 'no' }, answer: 'A', category: 'c', image: { reference: 0 } },
      { index: 2, question: 'And this?', options: { A: 'red', B: 'blue' }, answer: 'A', category: 'c', image: { reference: 0 } },
    ]));
    const message = 'LlavaModel.forward: the spliced sequence has 80 tokens, more than tokenizer_model_max_length 64';
    const fake = fakePretrained((question) => {
      if (question.startsWith('Too long?')) throw new ModelInputError(message);
      return 'A';
    });
    const out: string[] = [];
    const err: string[] = [];
    const run = join(directory, 'long-run');
    const code = await runCli(['--model', llava, '--out', run, '--no-progress', tsv], {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
      hostLoader: async () => undefined,
      pretrainedLoader: fake.loader,
    });
    expect(code, err.join('')).toBe(0);
    expect(fake.asked.map((a) => a.question.split('\n')[0])).toEqual(['What colour?', 'Too long?', 'And this?']);
    expect(err.join('')).toBe(`mllm-eval: 1 row the model could not take (scored wrong; listed in report.md and report.json), the first: mmmb_en_long row 1: ${message}\n`);
    expect(out.join('')).toContain('overall accuracy 66.67% (2/3 questions, 3 rows, 0 skipped, 1 the model could not take)');
    const report = JSON.parse(readFileSync(join(run, 'report.json'), 'utf8'));
    expect([report.errorRows, report.errors]).toEqual([1, [{ dataset: 'mmmb_en_long', index: 1, line: 3, message }]]);
    expect(readFileSync(join(run, 'report.md'), 'utf8')).toContain(`| mmmb_en_long | 3 | 1 | ${message} |`);
    const predictions = readFileSync(join(run, 'predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    expect(predictions.map((row) => [row.index, row.method, row.correct, row.error])).toEqual([[0, 'letter', true, undefined], [1, 'error', false, message], [2, 'letter', true, undefined]]);
    expect(fake.disposed()).toBe(1);

    // Not the input: a bug in the model stops the run with its stack (exit 1), the rows before it kept.
    const buggy = fakePretrained((question) => {
      if (question.startsWith('Too long?')) throw new TypeError('model bug');
      return 'A';
    });
    const bugErr: string[] = [];
    expect(await runCli(['--model', llava, '--out', join(directory, 'bug-run'), '--no-progress', tsv], {
      stdout: { write: () => true },
      stderr: { write: (text: string) => bugErr.push(text) },
      hostLoader: async () => undefined,
      pretrainedLoader: buggy.loader,
    })).toBe(1);
    expect(bugErr.join('')).toMatch(/^\nmllm-eval: TypeError: model bug\n {4}at [\s\S]*the 1 rows generated before it are in /);
    expect(buggy.asked).toHaveLength(2);
  });

  // One backend is enough: the CLI starts cpu itself; @mllm/pretrained's tests run Parrot on each backend.
  it.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'the command runs on cpu; the cpu project covers it'))(
    'mllm-eval --model <a real Parrot checkpoint> on a 2-row benchmark: runs, writes its report, each generation is the model\'s chat answer; --tokenizer-dir for one without its tokenizer',
    async () => {
      const parrot = fileURLToPath(new URL('../../pretrained/src/__fixtures__/reference/parrot/', import.meta.url));
      const dir = join(directory, 'Parrot-tiny');
      cpSync(join(parrot, 'Parrot-tiny'), dir, { recursive: true, filter: (src) => !src.endsWith('expected.safetensors') });
      cpSync(join(parrot, 'clip-vit-tiny-patch4-12'), join(directory, 'clip-vit-tiny-patch4-12'), { recursive: true }); // the sibling tower
      // 8-bit levels: the PNG in the TSV decodes to exactly these pixels
      const image = { height: 5, width: 7, data: Float32Array.from({ length: 5 * 7 * 3 }, (_, i) => ((i * 37) % 256) / 255) };
      const tsv = join(directory, 'mmmb_en_parrot.tsv');
      writeFileSync(tsv, writeTsv([
        { index: 0, question: 'What colour?', options: { A: 'red', B: 'blue' }, answer: 'A', category: 'colour', image },
        { index: 1, question: 'What shape?', options: { A: 'round', B: 'square' }, answer: 'B', category: 'shape', image: { reference: 0 } },
      ]));
      const out = join(directory, 'parrot-run');
      const stdout: string[] = [];
      const stderr: string[] = [];
      const code = await runCli(['--model', dir, '--max-new-tokens', '3', '--backend', 'cpu', '--out', out, '--no-progress', tsv], {
        stdout: { write: (text: string) => stdout.push(text) },
        stderr: { write: (text: string) => stderr.push(text) },
      });
      expect(code, stderr.join('')).toBe(0);
      expect(stdout.join('')).toMatch(/overall accuracy \d+\.\d\d% \(\d\/2 questions, 2 rows, 0 skipped\)/);
      const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
      expect(report.model).toBe('Parrot-tiny');
      const rows = readFileSync(join(out, 'predictions.jsonl'), 'utf8').trimEnd().split('\n').map((line) => JSON.parse(line) as { prompt: string; generation: string });
      expect(rows.every((row) => row.generation.length > 0)).toBe(true);
      expect(rows.map((row) => row.prompt.split('\n')[0])).toEqual(['What colour?', 'What shape?']);
      // each generation is what the loaded Parrot answers to the row's prompt and image
      const model = await fromPretrained(dir);
      try {
        for (const row of rows) expect((await model.chat(row.prompt, [image], { maxNewTokens: 3 })).text).toBe(row.generation);
      } finally {
        model.dispose();
      }
      // The same checkpoint without its tokenizer files: each row is a question the model cannot take (it says where
      // the tokenizer should be); with --tokenizer-dir naming the directory that has them, the same generations.
      const lone = join(directory, 'Parrot-tiny-no-tokenizer'); // beside the same sibling tower
      cpSync(dir, lone, { recursive: true, filter: (src) => !src.includes('tokenizer') });
      const runLone = async (name: string, ...args: string[]) => {
        const err: string[] = [];
        const code = await runCli(['--model', lone, ...args, '--max-new-tokens', '3', '--backend', 'cpu', '--out', join(directory, name), '--no-progress', tsv], {
          stdout: { write: () => {} },
          stderr: { write: (text: string) => err.push(text) },
        });
        expect(code, err.join('')).toBe(0);
        const report = JSON.parse(readFileSync(join(directory, name, 'report.json'), 'utf8')) as { errorRows: number };
        const generated = readFileSync(join(directory, name, 'predictions.jsonl'), 'utf8').trimEnd().split('\n').map((line) => (JSON.parse(line) as { generation: string }).generation);
        return { err: err.join(''), errorRows: report.errorRows, generated };
      };
      const without = await runLone('parrot-run-no-tokenizer');
      expect(without.errorRows).toBe(2);
      expect(without.err).toContain(`has no tokenizer.json; copy the checkpoint's tokenizer files there or load with { tokenizerDir }`);
      const withDir = await runLone('parrot-run-tokenizer-dir', '--tokenizer-dir', dir);
      expect([withDir.err, withDir.errorRows, withDir.generated]).toEqual(['', 0, rows.map((row) => row.generation)]);
    },
  );
});
