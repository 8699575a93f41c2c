/**
 * Byte-level UTF-8 tokenizer: ids `0..255` are the bytes of the UTF-8 encoding, followed by a few
 * special tokens. Every string of every language (Arabic, Chinese, Turkish ı/İ, Cyrillic, accented
 * Latin, emoji) encodes without an unknown token and decodes back exactly, U+FEFF (BOM) included
 * anywhere. Exactly = every well-formed string: a lone UTF-16 surrogate (half of a surrogate pair)
 * has no UTF-8 encoding, so `encode` writes U+FFFD's bytes for it (as `TextEncoder`) and it decodes
 * as U+FFFD. Decoding never throws: an invalid byte sequence (e.g. a generation cut inside a
 * multi-byte character) becomes U+FFFD.
 *
 *   encode("Ça") = [0xC3, 0x87, 0x61]          decode([0xC3]) = "\uFFFD"
 */

/** Label value that marks a position as not supervised (PyTorch `ignore_index`). */
export const IGNORE_INDEX = -100;

/** Number of byte tokens (ids `0..255`). */
export const BYTE_VOCAB_SIZE = 256;

/** Special tokens in id order after the 256 bytes (`<pad>` = 256, ...). */
export const DEFAULT_SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>', '<image>', '<|im_start|>', '<|im_end|>'] as const;

/** The image placeholder string in message text. */
export const IMAGE_PLACEHOLDER = '<image>';

/** What the model, chat template and collation need from a tokenizer. */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly imageId: number;
  readonly imStartId: number;
  readonly imEndId: number;
  /** Text → ids. With `allowImage`, each literal `<image>` becomes `imageId`; other special strings stay plain text. */
  encode(text: string, options?: { allowImage?: boolean }): number[];
  /** Ids → text; never throws. Special tokens are written as their strings unless `skipSpecialTokens`. */
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): string;
  /** Id of a special token string (error naming the token when unknown). */
  specialId(token: string): number;
  /** A JSON-able description (saved in the model config). */
  toJSON(): TokenizerSpec;
}

export interface ByteTokenizerSpec {
  type: 'byte';
  specialTokens: string[];
}

/** Saved description of a tokenizer (`byte`, `char` with its vocabulary, or `hf`: saved as its own files). */
export type TokenizerSpec = ByteTokenizerSpec | { type: 'char'; specialTokens: string[]; characters: string[] } | { type: 'hf' };

const REQUIRED_SPECIALS = ['<pad>', '<bos>', '<eos>', '<image>', '<|im_start|>', '<|im_end|>'];

/**
 * Shared by the tokenizers: validate `text`, split it at `<image>` placeholders when
 * `allowImage` (each placeholder becomes `imageId`), and encode the text chunks with `encodeChunk`.
 */
export function encodeAroundImages(
  owner: string,
  text: string,
  options: { allowImage?: boolean },
  imageId: number,
  encodeChunk: (chunk: string, ids: number[]) => void,
): number[] {
  if (typeof text !== 'string') throw new Error(`${owner}.encode: text must be a string, got ${typeof text}`);
  const chunks = options.allowImage ? text.split(IMAGE_PLACEHOLDER) : [text];
  const ids: number[] = [];
  chunks.forEach((chunk, i) => {
    if (i > 0) ids.push(imageId);
    encodeChunk(chunk, ids);
  });
  return ids;
}

export class ByteTokenizer implements Tokenizer {
  readonly specialTokens: readonly string[];
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly imageId: number;
  readonly imStartId: number;
  readonly imEndId: number;
  private readonly specialIds = new Map<string, number>();
  private readonly encoder = new TextEncoder();

  constructor(specialTokens: readonly string[] = DEFAULT_SPECIAL_TOKENS) {
    if (new Set(specialTokens).size !== specialTokens.length) {
      throw new Error(`ByteTokenizer: specialTokens must be distinct, got [${specialTokens.join(', ')}]`);
    }
    for (const required of REQUIRED_SPECIALS) {
      if (!specialTokens.includes(required)) {
        throw new Error(`ByteTokenizer: specialTokens must include '${required}', got [${specialTokens.join(', ')}]`);
      }
    }
    this.specialTokens = [...specialTokens];
    specialTokens.forEach((token, i) => this.specialIds.set(token, BYTE_VOCAB_SIZE + i));
    this.vocabSize = BYTE_VOCAB_SIZE + specialTokens.length;
    this.padId = this.specialId('<pad>');
    this.bosId = this.specialId('<bos>');
    this.eosId = this.specialId('<eos>');
    this.imageId = this.specialId('<image>');
    this.imStartId = this.specialId('<|im_start|>');
    this.imEndId = this.specialId('<|im_end|>');
  }

  static fromJSON(spec: ByteTokenizerSpec): ByteTokenizer {
    if (!spec || spec.type !== 'byte') throw new Error(`ByteTokenizer.fromJSON: expected type 'byte', got ${JSON.stringify(spec?.type)}`);
    return new ByteTokenizer(spec.specialTokens);
  }

  specialId(token: string): number {
    const id = this.specialIds.get(token);
    if (id === undefined) throw new Error(`ByteTokenizer: unknown special token '${token}' (known: ${this.specialTokens.join(', ')})`);
    return id;
  }

  encode(text: string, options: { allowImage?: boolean } = {}): number[] {
    return encodeAroundImages('ByteTokenizer', text, options, this.imageId, (chunk, ids) => {
      for (const byte of this.encoder.encode(chunk)) ids.push(byte);
    });
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    // ignoreBOM: keep a leading U+FEFF; by default TextDecoder strips it from every decode call,
    // i.e. from the text after each special token.
    const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
    let out = '';
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) out += decoder.decode(new Uint8Array(bytes));
      bytes = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (Number.isInteger(id) && id >= 0 && id < BYTE_VOCAB_SIZE) {
        bytes.push(id);
        continue;
      }
      flush();
      const special = Number.isInteger(id) ? this.specialTokens[id - BYTE_VOCAB_SIZE] : undefined;
      if (special === undefined) out += '\uFFFD'; // id outside the tokenizer's vocabulary
      else if (!options.skipSpecialTokens) out += special;
    }
    flush();
    return out;
  }

  toJSON(): ByteTokenizerSpec {
    return { type: 'byte', specialTokens: [...this.specialTokens] };
  }
}
