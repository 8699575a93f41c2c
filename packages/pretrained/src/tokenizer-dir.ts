/**
 * Where a loader reads the tokenizer `chat` needs (`tokenizer.json`, `tokenizer_config.json`): the checkpoint
 * directory by default, or `options.tokenizerDir` — a tokenizer kept outside the checkpoint, as the tower may be
 * (e.g. a Wings-LLaMA checkpoint, which ships none: the base LLM's directory). Every loader of this package takes
 * the option, and `fromPretrained` / `mllm run --tokenizer-dir` pass it on.
 */
import { describeValue, nodeFilePromises } from '@mllm/core';
import { loadTokenizer, type HFTokenizer } from '@mllm/models';

/** The `tokenizerDir` option checked: `undefined`, or a non-empty path (anything else names the option and the value). */
export function checkTokenizerDirOption(owner: string, tokenizerDir: unknown): string | undefined {
  if (tokenizerDir !== undefined && (typeof tokenizerDir !== 'string' || tokenizerDir.length === 0)) {
    throw new Error(`${owner}: options.tokenizerDir must be a directory path, got ${describeValue(tokenizerDir)}`);
  }
  return tokenizerDir;
}

/** Whether `dir` holds a `tokenizer.json`. */
export async function hasTokenizerJson(owner: string, dir: string): Promise<boolean> {
  const { fs, path } = await nodeFilePromises(owner);
  return fs.stat(path.join(dir, 'tokenizer.json')).then((stat) => stat.isFile(), () => false);
}

/**
 * The tokenizer from `tokenizerDir` when given (it must hold a `tokenizer.json`: a clear error otherwise), else
 * from the checkpoint directory `dir`, or `null` when `dir` has none (the loader decides whether `chat` can do
 * without). A `tokenizer.json` that cannot be parsed is an error either way.
 */
export async function readCheckpointTokenizer(owner: string, dir: string, tokenizerDir: unknown): Promise<HFTokenizer | null> {
  const given = checkTokenizerDirOption(owner, tokenizerDir);
  const from = given ?? dir;
  if (!(await hasTokenizerJson(owner, from))) {
    if (given !== undefined) throw new Error(`${owner}: options.tokenizerDir ${JSON.stringify(given)} has no tokenizer.json`);
    return null;
  }
  return loadTokenizer(from);
}
