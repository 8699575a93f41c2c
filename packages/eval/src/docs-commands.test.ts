// Every `mllm-eval` command line shown in the package README, docs/eval.md and docs/pretrained.md runs
// as written: in a fresh directory holding the files it names (a saved tiny @mllm/models host
// checkpoint, a JS model module, benchmark TSVs — a name with `test` is a test split without answers;
// a `--model` named `llava-…` is a checkpoint in the authors' layout: @mllm/models' tiny plain-LLaVA
// reference checkpoint with @mllm/pretrained's tokenizer and preprocessor fixtures, loaded through
// fromPretrained; with `--tokenizer-dir` the tokenizer files go into that directory only, not into the
// checkpoint, so the line fails unless the tokenizer is read from there).
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { setSeed } from '@mllm/core';
import { HostMLLM, loadHostModel, saveHostModel } from '@mllm/models';
import { runCli } from './cli-main.js';
import { writeTsv, type BenchmarkRowInput } from './tsv-writer.js';

const DOCUMENTS = ['../README.md', '../../../docs/eval.md', '../../../docs/pretrained.md'].map((relative) => fileURLToPath(new URL(relative, import.meta.url)));
const fixture = (relative: string) => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

/** tokenizer.json and tokenizer_config.json of the tiny plain-LLaVA checkpoint. */
const LLAVA_TOKENIZER = fixture('pretrained/test-fixtures/llava/llava-qwen2-clip');

/**
 * The tiny plain-LLaVA checkpoint at `path` (its tokenizer files in it when `withTokenizer`), its tower beside it (mm_vision_tower "openai/tiny-clip-vit-12").
 * Its 64-token context is too short for a benchmark prompt (question, options, instruction): the copy's
 * config allows 512 (random weights either way).
 */
function llavaCheckpoint(path: string, withTokenizer: boolean): void {
  cpSync(fixture('models/src/__fixtures__/reference/llava-qwen2-clip'), path, { recursive: true, filter: (src) => !src.endsWith('expected.safetensors') });
  if (withTokenizer) cpSync(LLAVA_TOKENIZER, path, { recursive: true });
  const config = JSON.parse(readFileSync(join(path, 'config.json'), 'utf8'));
  writeFileSync(join(path, 'config.json'), JSON.stringify({ ...config, tokenizer_model_max_length: 512, max_position_embeddings: 512 }));
  const tower = join(dirname(path), 'tiny-clip-vit-12');
  cpSync(fixture('models/src/__fixtures__/reference/tiny-clip-vit-12'), tower, { recursive: true });
  cpSync(fixture('pretrained/test-fixtures/llava/tiny-clip-vit-12'), tower, { recursive: true });
}

/** `mllm-eval …` lines inside ```sh blocks. */
function commandLines(markdown: string): string[] {
  const lines: string[] = [];
  for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block[1].split('\n')) if (line.startsWith('mllm-eval ')) lines.push(line.trim());
  }
  return lines;
}

const IMAGE = { height: 2, width: 2, data: Float32Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1]) };

function benchmark(withAnswers: boolean): string {
  const rows: BenchmarkRowInput[] = [
    { index: 0, question: 'Colour?', options: { A: 'red', B: 'blue' }, answer: 'A', image: IMAGE },
    { index: 1, question: 'Shape?', options: { A: 'round', B: 'square' }, answer: 'B', image: { reference: 0 } },
  ];
  const text = writeTsv(rows);
  if (withAnswers) return text;
  // A test split: the answer column (6th) removed.
  return text
    .split('\n')
    .map((line) => line.split('\t').filter((_, i, cells) => cells.length === 1 || i !== 5).join('\t'))
    .join('\n');
}

async function prepare(directory: string, argv: readonly string[]): Promise<void> {
  const tokenizerElsewhere = argv.includes('--tokenizer-dir');
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i];
    const previous = argv[i - 1];
    if (previous === '--model' && /(^|\/)llava-[^/]*$/.test(value)) {
      llavaCheckpoint(join(directory, value), !tokenizerElsewhere);
    } else if (previous === '--tokenizer-dir') {
      cpSync(LLAVA_TOKENIZER, join(directory, value), { recursive: true });
    } else if (previous === '--model' && value.endsWith('.mjs')) {
      writeFileSync(join(directory, value), "export default { name: 'doc-model', generate: () => 'A' };\n");
    } else if (previous === '--model') {
      setSeed(5);
      const host = new HostMLLM({
        config: {
          text: { vocabSize: 262, hiddenSize: 16, numLayers: 1, numHeads: 2, intermediateSize: 24, maxLength: 512 },
          vision: { imageSize: 8, patchSize: 4, numChannels: 3, hiddenSize: 12, numLayers: 1, numHeads: 2, intermediateSize: 16 },
        },
      });
      await saveHostModel(host, join(directory, value));
      host.dispose();
    } else if (value.endsWith('.tsv')) {
      const path = join(directory, value.replace(/^[a-z]{2}=/, ''));
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, benchmark(!/test/.test(path)));
    }
  }
}

describe('documented mllm-eval command lines', () => {
  const commands = DOCUMENTS.flatMap((path) => commandLines(readFileSync(path, 'utf8')).map((line) => [path, line] as const));
  const cwd = process.cwd();
  afterEach(() => process.chdir(cwd));

  it('finds the command lines (README and docs/eval.md, with the --predict-only and --tokenizer-dir examples)', () => {
    expect(commands.length).toBeGreaterThanOrEqual(5);
    expect(commands.some(([, line]) => line.includes('--predict-only'))).toBe(true);
    expect(commands.some(([, line]) => line.includes('--tokenizer-dir'))).toBe(true);
  });

  for (const [document, line] of commands) {
    it(`${document.split('/').slice(-2).join('/')}: ${line}`, async () => {
      const directory = mkdtempSync(join(tmpdir(), 'mllm-eval-docs-'));
      const argv = line.split(/\s+/).slice(1);
      await prepare(directory, argv);
      process.chdir(directory);
      const out: string[] = [];
      const err: string[] = [];
      const code = await runCli(argv, {
        stdout: { write: (text: string) => out.push(text) },
        stderr: { write: (text: string) => err.push(text) },
        // Where the installed CLI imports @mllm/models, the test hands it this checkout's host loader.
        hostLoader: async () => loadHostModel,
      });
      expect(err.filter((text) => !text.startsWith('progress: ')).join('')).toBe('');
      expect(code).toBe(0);
      const outDir = argv[argv.indexOf('--out') + 1];
      expect(existsSync(join(directory, outDir, 'report.json'))).toBe(true);
      expect(existsSync(join(directory, outDir, 'predictions.jsonl'))).toBe(true);
    }, 60_000);
  }
});
