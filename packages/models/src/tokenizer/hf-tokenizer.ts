/**
 * Real checkpoint tokenizers: a HF `tokenizer.json` run by `@huggingface/tokenizers` (pure JS, the
 * same pipeline as the Rust library: normalizer → pre-tokenizer → BPE/Unigram/WordPiece → post-processor)
 * and the checkpoint's `chat_template` rendered by `@huggingface/jinja`. `HFTokenizer` implements the
 * host's `Tokenizer` interface, so `encodeChat`, collation and the models take it like the byte tokenizer.
 *
 * Image placeholders: the references never give `<image>` a vocabulary id; they split the text at
 * `<image>` and insert IMAGE_TOKEN_INDEX (−200) between the separately tokenized chunks
 * (LLaVA's `tokenizer_image_token`, Parrot/Wings' formatter). `HFTokenizer.imageId` is therefore −200.
 */
import { Template } from '@huggingface/jinja';
import { Tokenizer as HFTokenizerCore } from '@huggingface/tokenizers';
import { encodeAroundImages, IMAGE_PLACEHOLDER, type Tokenizer, type TokenizerSpec } from './byte-tokenizer.js';
import { nodeFilePromises } from '@mllm/core';

/** The references' image placeholder id (`IMAGE_TOKEN_INDEX` in LLaVA, Parrot and Wings). */
export const IMAGE_TOKEN_INDEX = -200;

/** A chat message for a checkpoint's `chat_template` (any role the template knows). */
export interface TemplateMessage {
  role: string;
  content: string;
}

/** `tokenizer_config.json` fields this module reads (HF writes special tokens as strings or `{content}` objects). */
export interface HFTokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  pad_token?: string | { content: string } | null;
  unk_token?: string | { content: string } | null;
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  chat_template?: string | Array<{ name: string; template: string }> | null;
  [key: string]: unknown;
}

const tokenText = (t: HFTokenizerConfig['bos_token']): string | null =>
  t == null ? null : typeof t === 'string' ? t : typeof t.content === 'string' ? t.content : null;

/**
 * A HF `tokenizer.json` tokenizer with the host's `Tokenizer` interface.
 *
 *   const tok = HFTokenizer.fromObjects(tokenizerJson, tokenizerConfig);
 *   tok.encode('hello world')                      // no special tokens (as the references' chunks)
 *   tok.encodeText('hello', { addSpecialTokens: true }) // with the post-processor's <s> etc.
 *   tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true })
 */
export class HFTokenizer implements Tokenizer {
  readonly vocabSize: number;
  /** `pad_token`'s id; falls back to `eos_token` (as HF generation does), −1 when neither exists. */
  readonly padId: number;
  /** `bos_token`'s id, −1 when the tokenizer has none (Qwen2). */
  readonly bosId: number;
  readonly eosId: number;
  /** IMAGE_TOKEN_INDEX (−200): a placeholder the model replaces by image features, not a vocabulary id. */
  readonly imageId = IMAGE_TOKEN_INDEX;
  /** `<|im_start|>`'s id, −1 when the vocabulary has no ChatML tokens. */
  readonly imStartId: number;
  /** `<|im_end|>`'s id, −1 when the vocabulary has no ChatML tokens. */
  readonly imEndId: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** The checkpoint's default `chat_template`, null when it ships none. */
  readonly chatTemplate: string | null;
  /** `tokenizer_config.json`'s `add_bos_token` (undefined when absent: the post-processor decides). */
  readonly addBosToken: boolean | undefined;
  private readonly core: HFTokenizerCore;
  private compiledTemplate: Template | null = null;

  private constructor(tokenizerJson: Record<string, unknown>, config: HFTokenizerConfig) {
    this.core = new HFTokenizerCore(tokenizerJson, config);
    const vocab = this.core.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const idOf = (token: string | null): number => (token === null ? -1 : (this.core.token_to_id(token) ?? -1));
    this.bosToken = tokenText(config.bos_token);
    this.eosToken = tokenText(config.eos_token);
    this.bosId = idOf(this.bosToken);
    this.eosId = idOf(this.eosToken);
    const pad = idOf(tokenText(config.pad_token));
    this.padId = pad >= 0 ? pad : this.eosId;
    this.imStartId = idOf('<|im_start|>');
    this.imEndId = idOf('<|im_end|>');
    this.addBosToken = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : undefined;
    const tpl = config.chat_template;
    this.chatTemplate = typeof tpl === 'string' ? tpl : Array.isArray(tpl) ? (tpl.find((t) => t.name === 'default')?.template ?? null) : null;
  }

  /**
   * Build from the parsed `tokenizer.json` and `tokenizer_config.json` (browsers: fetch them yourself).
   * @param tokenizerJson the parsed `tokenizer.json` (must have a `model`)
   * @param config the parsed `tokenizer_config.json` (`{}` when the checkpoint has none)
   */
  static fromObjects(tokenizerJson: unknown, config: unknown = {}): HFTokenizer {
    if (!tokenizerJson || typeof tokenizerJson !== 'object' || !('model' in tokenizerJson)) {
      throw new Error(`HFTokenizer.fromObjects: tokenizerJson must be a parsed tokenizer.json object with a 'model', got ${describe(tokenizerJson)}`);
    }
    if (!config || typeof config !== 'object' || Array.isArray(config)) {
      throw new Error(`HFTokenizer.fromObjects: config must be a parsed tokenizer_config.json object, got ${describe(config)}`);
    }
    return new HFTokenizer(tokenizerJson as Record<string, unknown>, config as HFTokenizerConfig);
  }

  /** Build from the files' bytes or text (UTF-8 JSON), e.g. `await (await fetch(url)).arrayBuffer()`. */
  static fromBytes(tokenizerJson: Uint8Array | ArrayBuffer | string, config?: Uint8Array | ArrayBuffer | string): HFTokenizer {
    const parse = (what: string, v: Uint8Array | ArrayBuffer | string): unknown => {
      const text = typeof v === 'string' ? v : new TextDecoder().decode(v);
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new Error(`HFTokenizer.fromBytes: ${what} is not valid JSON (${(e as Error).message})`);
      }
    };
    return HFTokenizer.fromObjects(parse('tokenizerJson', tokenizerJson), config === undefined ? {} : parse('config', config));
  }

  /**
   * Text → ids as the references tokenize prompt chunks (`tokenizer(chunk, add_special_tokens=False)`):
   * no BOS/EOS. With `allowImage`, each `<image>` becomes IMAGE_TOKEN_INDEX (the text is split there
   * and each chunk tokenized alone, so merges never cross a placeholder).
   */
  encode(text: string, options: { allowImage?: boolean } = {}): number[] {
    return encodeAroundImages('HFTokenizer', text, options, this.imageId, (chunk, ids) => {
      if (chunk.length) ids.push(...this.core.encode(chunk, { add_special_tokens: false }).ids);
    });
  }

  /** Text → ids through the full pipeline; `addSpecialTokens` runs the post-processor (e.g. LLaMA's `<s>`). */
  encodeText(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (typeof text !== 'string') throw new Error(`HFTokenizer.encodeText: text must be a string, got ${typeof text}`);
    return this.core.encode(text, { add_special_tokens: options.addSpecialTokens ?? false }).ids;
  }

  /** Ids → text. IMAGE_TOKEN_INDEX is written `<image>` (dropped with `skipSpecialTokens`); other ids outside the vocabulary become U+FFFD. */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    let out = '';
    let run: number[] = [];
    const flush = () => {
      if (run.length) out += this.core.decode(run, { skip_special_tokens: options.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.core.id_to_token(id) !== undefined) {
        run.push(id);
        continue;
      }
      flush();
      if (id === this.imageId) out += options.skipSpecialTokens ? '' : IMAGE_PLACEHOLDER;
      else out += '\uFFFD';
    }
    flush();
    return out;
  }

  /** Id of a token string (error naming it when the vocabulary lacks it). */
  specialId(token: string): number {
    const id = this.core.token_to_id(token);
    if (id === undefined) throw new Error(`HFTokenizer: unknown token '${token}'`);
    return id;
  }

  /** Token string of an id, undefined outside the vocabulary. */
  idToToken(id: number): string | undefined {
    return this.core.id_to_token(id);
  }

  /**
   * Render the checkpoint's `chat_template` (or `options.template`) with `@huggingface/jinja`, with the
   * variables transformers passes: `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, plus `options.extra`.
   */
  applyChatTemplate(
    messages: TemplateMessage[],
    options: { addGenerationPrompt?: boolean; template?: string; extra?: Record<string, unknown> } = {},
  ): string {
    if (!Array.isArray(messages)) throw new Error(`HFTokenizer.applyChatTemplate: messages must be an array, got ${describe(messages)}`);
    messages.forEach((m, i) => {
      if (!m || typeof m.role !== 'string' || typeof m.content !== 'string') {
        throw new Error(`HFTokenizer.applyChatTemplate: messages[${i}] must be {role: string, content: string}, got ${describe(m)}`);
      }
    });
    let template: Template;
    if (options.template !== undefined) template = new Template(options.template);
    else {
      if (this.chatTemplate === null) throw new Error('HFTokenizer.applyChatTemplate: the tokenizer_config.json has no chat_template; pass options.template');
      template = this.compiledTemplate ??= new Template(this.chatTemplate);
    }
    return template.render({
      ...options.extra,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
    });
  }

  /** An HF tokenizer is saved as its files, not in the model config: reload it with `loadTokenizer(dir)`. */
  toJSON(): TokenizerSpec {
    return { type: 'hf' };
  }
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an object with keys [${Object.keys(v as object).slice(0, 8).join(', ')}]`;
  return `${typeof v} ${JSON.stringify(v)?.slice(0, 60)}`;
}

/**
 * Node.js: load `tokenizer.json` (required) and `tokenizer_config.json` (optional) from a local
 * checkpoint directory. No network. In browsers use `HFTokenizer.fromBytes` / `fromObjects`.
 */
export async function loadTokenizer(dir: string): Promise<HFTokenizer> {
  if (typeof dir !== 'string' || dir.length === 0) throw new Error(`loadTokenizer: dir must be a directory path, got ${describe(dir)}`);
  const { fs, path } = await nodeFilePromises('loadTokenizer');
  const tokenizerPath = path.join(dir, 'tokenizer.json');
  let tokenizerText: string;
  try {
    tokenizerText = await fs.readFile(tokenizerPath, 'utf8');
  } catch (e) {
    throw new Error(`loadTokenizer: cannot read ${tokenizerPath} (${(e as Error).message}); the directory must hold a HF tokenizer.json`);
  }
  const configPath = path.join(dir, 'tokenizer_config.json');
  let configText: string | undefined;
  try {
    configText = await fs.readFile(configPath, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') throw new Error(`loadTokenizer: cannot read ${configPath} (${(e as Error).message})`);
  }
  return HFTokenizer.fromBytes(tokenizerText, configText);
}
