/** Rebuild a tokenizer from the description saved in a model config. */
import { ByteTokenizer, type Tokenizer, type TokenizerSpec } from './byte-tokenizer.js';
import { CharTokenizer } from './char-tokenizer.js';

export function tokenizerFromSpec(spec: TokenizerSpec): Tokenizer {
  if (spec?.type === 'byte') return ByteTokenizer.fromJSON(spec);
  if (spec?.type === 'char') return CharTokenizer.fromJSON(spec);
  if (spec?.type === 'hf') throw new Error("tokenizerFromSpec: an 'hf' tokenizer is not stored in the config; load it from its checkpoint directory with loadTokenizer(dir)");
  throw new Error(`tokenizerFromSpec: type must be 'byte' or 'char', got ${JSON.stringify((spec as { type?: unknown })?.type)}`);
}
