/**
 * The `mllm` command in process: help, argument errors (one line, exit 2), load failures (exit 1),
 * the progress line on a terminal and in a log, the answer and the summary. The model is a stand-in
 * whose `chat` reports tokens on a fake clock; real checkpoints run in one-command.test.ts (every layout) and
 * llava/load-llava.test.ts.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { skipOnBackend } from '@mllm/core/testing';
import { encodePng, ModelInputError } from '@mllm/models';
import { PROGRESS_EVERY, RUN_USAGE, USAGE, runCli, summaryLine, type CliIo } from './cli-main.js';
import type { ChatOptions, PretrainedMLLM, RgbImage } from './pretrained-model.js';

const directory = mkdtempSync(join(tmpdir(), 'mllm-cli-'));
const notAnImage = join(directory, 'notes.png');
writeFileSync(notAnImage, 'not a png');
// 2×1 PNGs: red|blue and white|black (8-bit levels are exact in [0, 1] floats after decoding).
const redBlue = join(directory, 'red-blue.png');
writeFileSync(redBlue, encodePng({ height: 1, width: 2, data: Float32Array.from([1, 0, 0, 0, 0, 1]) }));
const whiteBlack = join(directory, 'white-black.png');
writeFileSync(whiteBlack, encodePng({ height: 2, width: 1, data: Float32Array.from([1, 1, 1, 0, 0, 0]) }));
// A tokenizer directory for --tokenizer-dir (the CLI only checks that tokenizer.json is there; the stand-in loads nothing).
const tokenizerDir = join(directory, 'tokenizer');
mkdirSync(tokenizerDir);
writeFileSync(join(tokenizerDir, 'tokenizer.json'), '{}');

class Collector {
  text = '';
  constructor(readonly isTTY = false, readonly columns?: number) {}
  write(chunk: string) {
    this.text += chunk;
    return true;
  }
}

interface Call {
  dir: string;
  options: object;
  question?: string;
  images?: readonly RgbImage[];
  maxNewTokens?: number;
  disposed: number;
}

/** A stand-in model: 40 tokens, each 50 ms on the fake clock after a 1 s prefill. */
function fakeIo(options: { tty?: boolean; answer?: string; tokens?: number; loadError?: Error; chatError?: Error; backendError?: Error } = {}) {
  let clock = 0;
  const stdout = new Collector();
  const stderr = new Collector(options.tty ?? false, 36);
  const calls: Call[] = [];
  const backends: Array<string | undefined> = [];
  const io: CliIo = {
    stdout,
    stderr,
    now: () => clock,
    startBackend: async (name) => {
      if (options.backendError) throw options.backendError;
      backends.push(name);
      return name === undefined || name === 'auto' ? 'cpu' : name;
    },
    load: async (dir, loadOptions) => {
      clock += 500;
      if (options.loadError) throw options.loadError;
      const call: Call = { dir, options: loadOptions, disposed: 0 };
      calls.push(call);
      const model = {
        kind: 'llava',
        directory: dir,
        async chat(question: string, images: readonly RgbImage[], chatOptions: ChatOptions = {}) {
          Object.assign(call, { question, images, maxNewTokens: chatOptions.maxNewTokens });
          if (options.chatError) throw options.chatError;
          const count = Math.min(options.tokens ?? 40, chatOptions.maxNewTokens ?? 128);
          clock += 1000;
          for (let i = 1; i <= count; i++) {
            if (i > 1) clock += 50;
            chatOptions.onToken?.({ tokens: i, text: 'x'.repeat(i) });
          }
          return { text: options.answer ?? 'A red square.', tokens: Array.from({ length: count }, (_, i) => i), promptTokens: 57, prefillMs: 1000, decodeMs: 50 * (count - 1) };
        },
        dispose: () => call.disposed++,
      };
      return model as unknown as PretrainedMLLM;
    },
  };
  return { io, stdout, stderr, calls, backends };
}

describe.skipIf(skipOnBackend(['wasm', 'webgpu', 'tensorflow'], 'the CLI logic makes no tensors; the cpu project covers it'))('mllm CLI', () => {
  it('help: `mllm --help` and `mllm run --help` print usage and exit 0; no command prints it to stderr with 2', async () => {
    let fake = fakeIo();
    expect(await runCli(['--help'], fake.io)).toBe(0);
    expect(fake.stdout.text).toBe(USAGE);
    fake = fakeIo();
    expect(await runCli(['run', '--help'], fake.io)).toBe(0);
    expect(fake.stdout.text).toBe(RUN_USAGE);
    expect(RUN_USAGE).toMatch(/--model <dir>[\s\S]*--image <file>[\s\S]*--max-new-tokens <n>[\s\S]*--backend <name>[\s\S]*--vision-tower <dir>/);
    fake = fakeIo();
    expect(await runCli([], fake.io)).toBe(2);
    expect([fake.stdout.text, fake.stderr.text]).toEqual(['', USAGE]);
    expect(fake.calls).toEqual([]);
  });

  it('runs: loads with the options, passes the question, images and budget, prints the answer to stdout and the summary to stderr', async () => {
    const { io, stdout, stderr, calls, backends } = fakeIo();
    const code = await runCli(
      ['run', '--model', directory, '--max-new-tokens', '20', '--backend', 'wasm', '--vision-tower', directory, '--tokenizer-dir', tokenizerDir, 'What is it?'],
      io,
    );
    expect(code).toBe(0);
    expect(backends).toEqual(['wasm']);
    expect(calls).toEqual([{ dir: directory, options: { visionTowerDir: directory, tokenizerDir }, question: 'What is it?', images: [], maxNewTokens: 20, disposed: 1 }]);
    expect(stdout.text).toBe('A red square.\n');
    const lines = stderr.text.split('\n');
    expect(lines[0]).toBe(`loaded ${directory} (llava) on wasm in 0.50 s`);
    // Not a terminal: one line per PROGRESS_EVERY tokens; 20 tokens → one line at 16, rate over tokens 2..16 (15 × 50 ms).
    expect(PROGRESS_EVERY).toBe(16);
    expect(lines[1]).toBe('generating: 16 tokens, 20.00 tokens/s');
    // Summary from the result: 19 decode steps in 950 ms.
    expect(lines[2]).toBe('prompt 57 tokens, prefill 1.00 s, 20 tokens generated, decode 20.00 tokens/s');
    expect(lines.slice(3)).toEqual(['']);
  });

  it('decodes each --image in order and passes RGB images in [0, 1] to chat', async () => {
    const { io, calls } = fakeIo({ tokens: 2 });
    expect(await runCli(['run', '--model', directory, '--image', redBlue, '--image', whiteBlack, 'Which colours?'], io)).toBe(0);
    const images = calls[0].images!.map((image) => ({ height: image.height, width: image.width, data: [...image.data] }));
    expect(images).toEqual([
      { height: 1, width: 2, data: [1, 0, 0, 0, 0, 1] },
      { height: 2, width: 1, data: [1, 1, 1, 0, 0, 0] },
    ]);
  });

  it('on a terminal the progress line is redrawn in place (at most ten times a second), cut to the width, and erased at the end', async () => {
    const { io, stderr } = fakeIo({ tty: true, tokens: 9 });
    expect(await runCli(['run', '--model', directory, 'q'], io)).toBe(0);
    const [loaded, progressAndSummary, end] = stderr.text.split('\n');
    // While loading, a `loading …` line, erased when the loaded line replaces it.
    expect([loaded, end]).toEqual([`loading ${directory} on cpu …\r\x1b[2Kloaded ${directory} (llava) on cpu in 0.50 s`, '']);
    // Tokens 1..9 arrive 50 ms apart: drawn at 1, 3, 5, 7, 9 (≥ 100 ms since the last draw), each cut to
    // the terminal's 36 columns − 1, then erased; the summary is written over the erased line.
    const draws = progressAndSummary.split('\r\x1b[2K');
    expect(draws).toEqual(['', 'generating: 1 token, – tokens/s', 'generating: 3 tokens, 20.00 tokens/', 'generating: 5 tokens, 20.00 tokens/', 'generating: 7 tokens, 20.00 tokens/', 'generating: 9 tokens, 20.00 tokens/', 'prompt 57 tokens, prefill 1.00 s, 9 tokens generated, decode 20.00 tokens/s']);
    // --no-progress: nothing between the loading line and the summary.
    const quiet = fakeIo({ tty: true, tokens: 9 });
    expect(await runCli(['run', '--no-progress', '--model', directory, 'q'], quiet.io)).toBe(0);
    expect(quiet.stderr.text.split('\n').map((l) => l.split('\r\x1b[2K').at(-1)!.split(' ')[0])).toEqual(['loaded', 'prompt', '']);
  });

  it('usage errors: one line naming the argument, no stack, exit 2, nothing loaded', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['run', 'q'], /^mllm run: --model <dir> is required \(see mllm run --help\)\n$/],
      [['run', '--model', directory], /^mllm run: the question is required \(the last argument, quoted\) \(see mllm run --help\)\n$/],
      [['run', '--model', directory, 'what', 'is', 'it'], /^mllm run: expected one question \(quote it\), got 3 arguments: "what" "is" "it" \(see/],
      [['run', '--model', directory, '--max-new-tokens', '0', 'q'], /^mllm run: --max-new-tokens: expected a positive integer, got "0"/],
      [['run', '--model', directory, '--max-new-tokens', '2.5', 'q'], /--max-new-tokens: expected a positive integer, got "2\.5"/],
      [['run', '--model', directory, '--backend', 'gpu', 'q'], /^mllm run: --backend: expected one of auto, cpu, wasm, webgpu, tensorflow, got "gpu"/],
      [['run', '--model', join(directory, 'nope'), 'q'], /^mllm run: --model .*nope: no such directory/],
      [['run', '--model', notAnImage, 'q'], /^mllm run: --model .*notes\.png: not a directory \(pass the checkpoint directory\)/],
      [['run', '--model', directory, '--vision-tower', join(directory, 'tower'), 'q'], /^mllm run: --vision-tower .*tower: no such directory/],
      [['run', '--model', directory, '--tokenizer-dir', join(directory, 'tok'), 'q'], /^mllm run: --tokenizer-dir .*tok: no such directory \(see mllm run --help\)\n$/],
      [['run', '--model', directory, '--tokenizer-dir', directory, 'q'], /^mllm run: --tokenizer-dir .*: no tokenizer\.json there \(see mllm run --help\)\n$/],
      [['run', '--model', directory, '--image', join(directory, 'cat.png'), 'q'], /^mllm run: --image .*cat\.png: no such file \(see mllm run --help\)\n$/],
      [['run', '--model', directory, '--image', directory, 'q'], /^mllm run: --image .*: is a directory/],
      [['run', '--model', directory, '--image', notAnImage, 'q'], /^mllm run: --image .*notes\.png: unsupported image format 'unknown' \(expected PNG or JPEG/],
      [['run', '--model', directory, '--colour', 'red', 'q'], /^mllm run: Unknown option '--colour'/],
      [['chat', 'q'], /^mllm: unknown command "chat"; the command is run \(see mllm --help\)\n$/],
    ];
    for (const [argv, message] of cases) {
      const { io, stdout, stderr, calls } = fakeIo();
      expect(await runCli(argv, io), argv.join(' ')).toBe(2);
      expect(stderr.text, argv.join(' ')).toMatch(message);
      expect(stderr.text.trimEnd().split('\n'), argv.join(' ')).toHaveLength(1);
      expect(stdout.text).toBe('');
      expect(calls).toEqual([]);
    }
  });

  it('a backend that does not start or a model that fails to load: its message on one line, exit 1; a failure while answering keeps the stack and disposes the model', async () => {
    let fake = fakeIo({ loadError: new Error('fromPretrained: "x" is not a checkpoint layout this package knows') });
    expect(await runCli(['run', '--model', directory, 'q'], fake.io)).toBe(1);
    expect(fake.stderr.text).toBe(`mllm run: cannot load ${directory}: fromPretrained: "x" is not a checkpoint layout this package knows\n`);
    fake = fakeIo({ backendError: new Error("initBackend('tensorflow'): the tensorflow backend cannot start: tfjs-node is not importable") });
    expect(await runCli(['run', '--model', directory, '--backend', 'tensorflow', 'q'], fake.io)).toBe(1);
    expect(fake.stderr.text).toBe("mllm run: backend: initBackend('tensorflow'): the tensorflow backend cannot start: tfjs-node is not importable\n");
    expect(fake.calls).toEqual([]);
    fake = fakeIo({ chatError: new Error('kernel failed') });
    expect(await runCli(['run', '--model', directory, 'q'], fake.io)).toBe(1);
    expect(fake.stderr.text).toMatch(/mllm run: Error: kernel failed\n {4}at /);
    expect(fake.calls[0].disposed).toBe(1);
  });

  it('an input the model cannot take (ModelInputError while answering): its message on one line, no stack, exit 2, the model disposed', async () => {
    const message = 'LlavaModel.forward: the spliced sequence has 70 tokens, more than tokenizer_model_max_length 64';
    const fake = fakeIo({ chatError: new ModelInputError(message) });
    expect(await runCli(['run', '--model', directory, 'q'], fake.io)).toBe(2);
    expect(fake.stderr.text).toBe(`loaded ${directory} (llava) on cpu in 0.50 s\nmllm run: ${message}\n`);
    expect(fake.stdout.text).toBe('');
    expect(fake.calls[0].disposed).toBe(1);
  });

  it('summary: decode rate counts the tokens after the first over the decode time', () => {
    expect(summaryLine({ text: '', tokens: [1, 2, 3, 4, 5], promptTokens: 12, prefillMs: 250, decodeMs: 2000 })).toBe(
      'prompt 12 tokens, prefill 0.25 s, 5 tokens generated, decode 2.00 tokens/s',
    );
    expect(summaryLine({ text: '', tokens: [7], promptTokens: 3, prefillMs: 10, decodeMs: 0 })).toBe('prompt 3 tokens, prefill 0.01 s, 1 tokens generated, decode – tokens/s');
    expect(summaryLine({ text: '', tokens: [], promptTokens: 3, prefillMs: 10, decodeMs: 40 })).toBe('prompt 3 tokens, prefill 0.01 s, 0 tokens generated, decode – tokens/s');
  });
});
