/**
 * `ModelInputError`: what a caller gave a model cannot be run as given — the question, the images or the
 * checkpoint directory (a prompt longer than the model takes, more images than the authors' format holds, a
 * directory without the tokenizer `chat` needs) — as opposed to a bug. The message says what to change, so
 * front ends show it alone, without a stack: the `mllm` command prints it on one line and exits 2.
 */
export class ModelInputError extends Error {
  override name = 'ModelInputError';
}
