/**
 * `mllm`: run a checkpoint directory from the command line.
 *
 *   mllm run --model <dir> [--image a.png ...] [--max-new-tokens N] [--backend auto|cpu|wasm|webgpu|tensorflow]
 *            [--vision-tower <dir>] [--tokenizer-dir <dir>] "question"
 *
 * The answer goes to stdout; the loading line, the progress line (redrawn in place on a terminal,
 * else one line every {@link PROGRESS_EVERY} tokens) and the summary go to stderr, so
 * `mllm run … > answer.txt` keeps only the answer. Exit codes: 0 done, 2 a usage error (bad
 * arguments, an image that cannot be read or decoded, a model directory that does not exist) or an
 * input the model cannot take (a `ModelInputError` while answering: a prompt longer than the model's
 * limit, more images than the authors' format holds, a directory without the tokenizer `chat` needs),
 * 1 the backend did not start or the model failed to load or run. Errors the user can fix print one
 * line; any other error while answering is a bug and keeps its stack.
 */
import { readFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BACKEND_REQUESTS, initBackend, type BackendRequest } from '@mllm/core';
import { decodeImage, ModelInputError } from '@mllm/models';
// The package entry: importing it registers every layout's loader with fromPretrained.
import { fromPretrained, type ChatResult, type FromPretrainedOptions, type PretrainedMLLM, type RgbImage } from './index.js';

export const USAGE = `Usage: mllm <command> [options]

Runs multimodal LLM checkpoint directories (plain LLaVA-style Hugging Face, Parrot, Wings, Cheetah)
with TensorFlow.js, from local files only.

Commands:
  run         answer a question about images: mllm run --model <dir> --image cat.png "question"

Options:
  -h, --help  this help; \`mllm run --help\` for the options of run
`;

export const RUN_USAGE = `Usage: mllm run --model <dir> [--image <file> ...] [options] "question"

Loads the checkpoint directory (its layout is detected: plain LLaVA-style HF, Parrot, Wings,
Cheetah), formats the question as the authors' code does with the images in front, and answers
greedily. The answer goes to stdout; progress and the summary go to stderr.

Required:
  --model <dir>          checkpoint directory
  "question"             the question (one argument: quote it)
Options:
  --image <file>         a PNG or JPEG image; repeatable (images go into the prompt in this order)
  --max-new-tokens <n>   most tokens to generate (default 128)
  --backend <name>       auto (default: MLLM_BACKEND, else the fastest that starts) | cpu | wasm |
                         webgpu | tensorflow
  --vision-tower <dir>   the vision tower's directory, when config.json's mm_vision_tower names a
                         path from the authors' machine (default: a sibling directory named like
                         that path's last component)
  --tokenizer-dir <dir>  the directory with tokenizer.json (+ tokenizer_config.json), when the
                         checkpoint keeps none (default: the checkpoint directory; for Cheetah,
                         the LLM directory its YAML names)
  --no-progress          no progress line
  -h, --help             this help
`;

/** Without a terminal, one progress line per this many tokens (logs stay short). */
export const PROGRESS_EVERY = 16;

/** Where the CLI writes (process.stdout / stderr, or a test's collector). */
export interface CliStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** Streams and injectable parts of a CLI run (tests replace them). */
export interface CliIo {
  readonly stdout: CliStream;
  readonly stderr: CliStream;
  /** Loads the model (default {@link fromPretrained}). */
  readonly load?: (dir: string, options: FromPretrainedOptions) => Promise<PretrainedMLLM>;
  /** Starts the backend and returns its name (default `@mllm/core`'s `initBackend`). */
  readonly startBackend?: (request: BackendRequest | undefined) => Promise<string>;
  /** Clock in milliseconds (default `performance.now`). */
  readonly now?: () => number;
}

/** A mistake in how the command was called: one line, exit code 2. */
class UsageError extends Error {}

const BACKENDS = BACKEND_REQUESTS as readonly string[];

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const rate = (tokens: number, ms: number) => (ms > 0 ? `${((tokens * 1000) / ms).toFixed(2)} tokens/s` : '– tokens/s');

/** `--image` files → RGB images in [0, 1]; a missing or undecodable file is a usage error naming it. */
async function readImages(paths: readonly string[]): Promise<RgbImage[]> {
  const images: RgbImage[] = [];
  for (const path of paths) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new UsageError(`--image ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (error as Error).message}`);
    }
    try {
      images.push(decodeImage(bytes));
    } catch (error) {
      throw new UsageError(`--image ${path}: ${(error as Error).message}`);
    }
  }
  return images;
}

/**
 * The progress line while generating: on a terminal one line redrawn in place (`\r`, erase line),
 * else a line every {@link PROGRESS_EVERY} tokens. Rates count from the first token, so the prefill
 * (image encoding and the prompt) does not dilute them.
 */
function createTokenProgress(stream: CliStream, now: () => number) {
  const tty = stream.isTTY === true;
  let firstTokenAt: number | undefined;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let drawn = false;
  const describe = (tokens: number) => {
    const time = now();
    firstTokenAt ??= time;
    const decodeRate = tokens > 1 ? rate(tokens - 1, time - firstTokenAt) : '– tokens/s';
    return `generating: ${tokens} token${tokens === 1 ? '' : 's'}, ${decodeRate}`;
  };
  return {
    onToken({ tokens }: { tokens: number }) {
      const line = describe(tokens);
      if (tty) {
        const time = now();
        if (time - lastDraw < 100 && tokens > 1) return; // at most ten redraws a second
        lastDraw = time;
        const columns = stream.columns;
        stream.write(`\r\x1b[2K${columns && line.length > columns - 1 ? line.slice(0, columns - 1) : line}`);
        drawn = true;
      } else if (tokens % PROGRESS_EVERY === 0) {
        stream.write(`${line}\n`);
      }
    },
    done() {
      if (tty && drawn) stream.write('\r\x1b[2K');
    },
  };
}

/** The summary line: prompt length, prefill time, decode rate (tokens after the first over the decode time). */
export function summaryLine(result: ChatResult): string {
  const decoded = result.tokens.length - 1; // the first token comes out of the prefill
  return (
    `prompt ${result.promptTokens} tokens, prefill ${seconds(result.prefillMs)}, ` +
    `${result.tokens.length} tokens generated, decode ${decoded > 0 ? rate(decoded, result.decodeMs) : '– tokens/s'}`
  );
}

/** `mllm run …`; see {@link RUN_USAGE}. */
async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const fail = (text: string) => io.stderr.write(`mllm run: ${text}\n`);
  let request;
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: [...argv],
        allowPositionals: true,
        options: {
          model: { type: 'string' },
          image: { type: 'string', multiple: true },
          'max-new-tokens': { type: 'string' },
          backend: { type: 'string' },
          'vision-tower': { type: 'string' },
          'tokenizer-dir': { type: 'string' },
          'no-progress': { type: 'boolean' },
          help: { type: 'boolean', short: 'h' },
        },
      });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      io.stdout.write(RUN_USAGE);
      return 0;
    }
    if (!values.model) throw new UsageError('--model <dir> is required');
    if (positionals.length !== 1) {
      throw new UsageError(
        positionals.length === 0 ? 'the question is required (the last argument, quoted)' : `expected one question (quote it), got ${positionals.length} arguments: ${positionals.map((p) => JSON.stringify(p)).join(' ')}`,
      );
    }
    let maxNewTokens = 128;
    if (values['max-new-tokens'] !== undefined) {
      maxNewTokens = Number(values['max-new-tokens']);
      if (!/^\d+$/.test(values['max-new-tokens']) || maxNewTokens < 1) {
        throw new UsageError(`--max-new-tokens: expected a positive integer, got ${JSON.stringify(values['max-new-tokens'])}`);
      }
    }
    if (values.backend !== undefined && !BACKENDS.includes(values.backend)) {
      throw new UsageError(`--backend: expected one of ${BACKENDS.join(', ')}, got ${JSON.stringify(values.backend)}`);
    }
    if (!existsSync(values.model)) throw new UsageError(`--model ${values.model}: no such directory`);
    if (!statSync(values.model).isDirectory()) throw new UsageError(`--model ${values.model}: not a directory (pass the checkpoint directory)`);
    const tower = values['vision-tower'];
    if (tower !== undefined && !(existsSync(tower) && statSync(tower).isDirectory())) throw new UsageError(`--vision-tower ${tower}: no such directory`);
    const tokenizerDir = values['tokenizer-dir'];
    if (tokenizerDir !== undefined) {
      if (!(existsSync(tokenizerDir) && statSync(tokenizerDir).isDirectory())) throw new UsageError(`--tokenizer-dir ${tokenizerDir}: no such directory`);
      if (!existsSync(join(tokenizerDir, 'tokenizer.json'))) throw new UsageError(`--tokenizer-dir ${tokenizerDir}: no tokenizer.json there`);
    }
    const images = await readImages(values.image ?? []);
    request = {
      model: values.model,
      question: positionals[0],
      images,
      maxNewTokens,
      backend: values.backend as BackendRequest | undefined,
      options: { ...(tower === undefined ? {} : { visionTowerDir: tower }), ...(tokenizerDir === undefined ? {} : { tokenizerDir }) },
      progress: !values['no-progress'],
    };
  } catch (error) {
    if (error instanceof UsageError) {
      fail(`${error.message} (see mllm run --help)`);
      return 2;
    }
    throw error;
  }

  const now = io.now ?? (() => performance.now());
  let backend: string;
  try {
    const startBackend = io.startBackend ?? (async (name) => (await initBackend(name)).backend);
    backend = await startBackend(request.backend);
  } catch (error) {
    fail(`backend: ${(error as Error).message}`);
    return 1;
  }
  let model: PretrainedMLLM;
  try {
    const started = now();
    // Real checkpoints take a while to read: on a terminal say so until the loaded line replaces it.
    const tty = io.stderr.isTTY === true;
    if (tty) io.stderr.write(`loading ${request.model} on ${backend} …`);
    try {
      model = await (io.load ?? fromPretrained)(request.model, request.options);
    } finally {
      if (tty) io.stderr.write('\r\x1b[2K');
    }
    io.stderr.write(`loaded ${request.model} (${model.kind}) on ${backend} in ${seconds(now() - started)}\n`);
  } catch (error) {
    fail(`cannot load ${request.model}: ${(error as Error).message}`);
    return 1;
  }
  try {
    const progress = request.progress ? createTokenProgress(io.stderr, now) : undefined;
    let result: ChatResult;
    try {
      result = await model.chat(request.question, request.images, { maxNewTokens: request.maxNewTokens, onToken: progress?.onToken });
    } finally {
      progress?.done();
    }
    io.stdout.write(`${result.text}\n`);
    io.stderr.write(`${summaryLine(result)}\n`);
    return 0;
  } catch (error) {
    // The question, images or directory the user gave: one line, like a usage error.
    if (error instanceof ModelInputError) {
      fail(error.message);
      return 2;
    }
    // Not the user's input: keep the stack for the bug report.
    fail(`${(error as Error).stack ?? String(error)}`);
    return 1;
  } finally {
    model.dispose();
  }
}

/** Runs the CLI with `argv` (without node and the script); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    io.stderr.write(USAGE);
    return 2;
  }
  if (command === '-h' || command === '--help' || command === 'help') {
    io.stdout.write(USAGE);
    return 0;
  }
  if (command === 'run') return run(rest, io);
  io.stderr.write(`mllm: unknown command ${JSON.stringify(command)}; the command is run (see mllm --help)\n`);
  return 2;
}
