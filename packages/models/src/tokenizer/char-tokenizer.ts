/**
 * Character-level tokenizer with a vocabulary built from data: one id per Unicode code point
 * seen in the training texts (sorted by code point), after the special tokens and `<unk>`.
 * Shorter sequences than byte-level for CJK / Arabic / Cyrillic, at the price of `<unk>` for
 * characters never seen. Decoding never throws (unknown ids → U+FFFD).
 *
 *   ids: 0..S−1 specials, S = <unk>, S+1.. characters
 */
import { DEFAULT_SPECIAL_TOKENS, IMAGE_PLACEHOLDER, encodeAroundImages, type Tokenizer } from './byte-tokenizer.js';

export interface CharTokenizerSpec {
  type: 'char';
  specialTokens: string[];
  /** One entry per code point, in id order. */
  characters: string[];
}

const REQUIRED_SPECIALS = ['<pad>', '<bos>', '<eos>', '<image>', '<|im_start|>', '<|im_end|>'];

export class CharTokenizer implements Tokenizer {
  readonly specialTokens: readonly string[];
  readonly characters: readonly string[];
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly imageId: number;
  readonly imStartId: number;
  readonly imEndId: number;
  /** Id of `<unk>` (characters outside the vocabulary). */
  readonly unkId: number;
  private readonly charIds = new Map<string, number>();

  constructor(characters: readonly string[], specialTokens: readonly string[] = DEFAULT_SPECIAL_TOKENS) {
    for (const required of REQUIRED_SPECIALS) {
      if (!specialTokens.includes(required)) throw new Error(`CharTokenizer: specialTokens must include '${required}', got [${specialTokens.join(', ')}]`);
    }
    if (new Set(specialTokens).size !== specialTokens.length) throw new Error('CharTokenizer: specialTokens must be distinct');
    this.specialTokens = [...specialTokens];
    this.unkId = specialTokens.length;
    characters.forEach((c, i) => {
      if ([...c].length !== 1) throw new Error(`CharTokenizer: characters[${i}] must be one code point, got ${JSON.stringify(c)}`);
      if (this.charIds.has(c)) throw new Error(`CharTokenizer: characters[${i}] ${JSON.stringify(c)} is repeated`);
      this.charIds.set(c, this.unkId + 1 + i);
    });
    this.characters = [...characters];
    this.vocabSize = this.unkId + 1 + characters.length;
    this.padId = this.specialId('<pad>');
    this.bosId = this.specialId('<bos>');
    this.eosId = this.specialId('<eos>');
    this.imageId = this.specialId('<image>');
    this.imStartId = this.specialId('<|im_start|>');
    this.imEndId = this.specialId('<|im_end|>');
  }

  /** Vocabulary = every code point in `texts` (plus the template's own characters), sorted. */
  static fromTexts(texts: Iterable<string>, specialTokens: readonly string[] = DEFAULT_SPECIAL_TOKENS): CharTokenizer {
    const seen = new Set<string>([...'systemuserassistant\nYou are a helpful assistant.']);
    for (const text of texts) for (const c of text.split(IMAGE_PLACEHOLDER).join('')) seen.add(c);
    return new CharTokenizer([...seen].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!), specialTokens);
  }

  static fromJSON(spec: CharTokenizerSpec): CharTokenizer {
    if (!spec || spec.type !== 'char') throw new Error(`CharTokenizer.fromJSON: expected type 'char', got ${JSON.stringify(spec?.type)}`);
    return new CharTokenizer(spec.characters, spec.specialTokens);
  }

  specialId(token: string): number {
    const id = this.specialTokens.indexOf(token);
    if (id < 0) throw new Error(`CharTokenizer: unknown special token '${token}' (known: ${this.specialTokens.join(', ')})`);
    return id;
  }

  encode(text: string, options: { allowImage?: boolean } = {}): number[] {
    return encodeAroundImages('CharTokenizer', text, options, this.imageId, (chunk, ids) => {
      for (const c of chunk) ids.push(this.charIds.get(c) ?? this.unkId);
    });
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    let out = '';
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || id === this.unkId) out += '\uFFFD';
      else if (id < this.unkId) out += options.skipSpecialTokens ? '' : this.specialTokens[id];
      else out += this.characters[id - this.unkId - 1];
    }
    return out;
  }

  toJSON(): CharTokenizerSpec {
    return { type: 'char', specialTokens: [...this.specialTokens], characters: [...this.characters] };
  }
}
