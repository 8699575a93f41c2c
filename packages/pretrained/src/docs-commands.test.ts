/**
 * Every `mllm …` command line shown in the package README and docs/pretrained.md runs as written
 * (`npx mllm` as `mllm`): in a fresh directory holding what it names — a checkpoint directory (the
 * tiny plain-LLaVA reference checkpoint of @mllm/models with the tokenizer and preprocessor files of
 * test-fixtures/llava; the tokenizer files in the `--tokenizer-dir` directory instead when the line names one),
 * its vision tower beside it, PNG images.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import { encodePng } from '@mllm/models';
import { runCli } from './cli-main.js';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));
const DOCUMENTS = [here('../README.md'), here('../../../docs/pretrained.md')];
const REFERENCE = here('../../models/src/__fixtures__/reference');
const EXTRAS = here('../test-fixtures/llava');

/** `mllm …` / `npx mllm …` lines of ```sh blocks, split as a shell would (double quotes group words). */
function commandLines(markdown: string): string[][] {
  const lines: string[][] = [];
  for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block[1].split('\n')) {
      const words = [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
      if (words[0] === 'npx') words.shift();
      if (words[0] === 'mllm') lines.push(words.slice(1));
    }
  }
  return lines;
}

/**
 * Writes the checkpoint (with its tower beside it), tower, tokenizer and image files `argv` names into
 * `directory`. With `--tokenizer-dir` the tokenizer files go there only, not into the checkpoint, so the line
 * answers only if the flag is honoured.
 */
function prepare(directory: string, argv: readonly string[]): void {
  const tokenizerElsewhere = argv.includes('--tokenizer-dir');
  const tower = (dir: string) => {
    cpSync(join(REFERENCE, 'tiny-clip-vit-12'), dir, { recursive: true });
    cpSync(join(EXTRAS, 'tiny-clip-vit-12'), dir, { recursive: true });
  };
  argv.forEach((value, i) => {
    const path = join(directory, value);
    if (argv[i - 1] === '--model') {
      cpSync(join(REFERENCE, 'llava-qwen2-clip'), path, { recursive: true, filter: (src) => !src.endsWith('expected.safetensors') });
      if (!tokenizerElsewhere) cpSync(join(EXTRAS, 'llava-qwen2-clip'), path, { recursive: true });
      tower(join(dirname(path), 'tiny-clip-vit-12')); // mm_vision_tower "openai/tiny-clip-vit-12"
    } else if (argv[i - 1] === '--tokenizer-dir') {
      cpSync(join(EXTRAS, 'llava-qwen2-clip'), path, { recursive: true }); // tokenizer.json, tokenizer_config.json
    } else if (argv[i - 1] === '--vision-tower') {
      tower(path);
    } else if (argv[i - 1] === '--image') {
      const seed = value.length;
      writeFileSync(path, encodePng({ height: 6, width: 4, data: Float32Array.from({ length: 72 }, (_, k) => ((k * seed) % 29) / 28) }));
    }
  });
}

describe.skipIf(skipOnBackend(['webgpu', 'tensorflow'], 'the commands load a checkpoint on the project backend; cpu and wasm cover them'))('documented mllm command lines', () => {
  const commands = DOCUMENTS.flatMap((path) => commandLines(readFileSync(path, 'utf8')).map((argv) => [path, argv] as const));
  const cwd = process.cwd();
  afterEach(() => process.chdir(cwd));

  it('finds the command lines (README and docs/pretrained.md, with --image twice, --backend, --vision-tower and --tokenizer-dir)', () => {
    expect(commands.length).toBeGreaterThanOrEqual(4);
    const flags = commands.flatMap(([, argv]) => argv.filter((word) => word.startsWith('--')));
    expect(flags).toEqual(expect.arrayContaining(['--model', '--image', '--max-new-tokens', '--backend', '--vision-tower', '--tokenizer-dir', '--no-progress']));
  });

  for (const [document, argv] of commands) {
    it(`${document.split('/').slice(-2).join('/')}: mllm ${argv.join(' ')}`, async () => {
      const directory = mkdtempSync(join(tmpdir(), 'mllm-docs-'));
      prepare(directory, argv);
      process.chdir(directory);
      const out: string[] = [];
      const err: string[] = [];
      const backends: Array<string | undefined> = [];
      const code = await runCli(argv, {
        stdout: { write: (text: string) => out.push(text) },
        stderr: { write: (text: string) => err.push(text) },
        // The project's backend stays active (the command line's --backend is checked, then recorded).
        startBackend: async (name) => (backends.push(name), tf.getBackend()),
      });
      expect(err.join(''), 'stderr').toMatch(/^loaded .* \(llava\) on \w+ in \d+\.\d\d s\n[\s\S]*prompt \d+ tokens, prefill/);
      expect(code).toBe(0);
      expect(out.join('')).toMatch(/\n$/);
      expect(backends).toEqual([argv.includes('--backend') ? argv[argv.indexOf('--backend') + 1] : undefined]);
    });
  }
});
