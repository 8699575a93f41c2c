/**
 * The authors' conversation formats, translated: each returns the exact prompt string their code
 * builds and the token ids with the image placeholder expanded as their code does it.
 *
 * - Parrot's `QwenConversationFormatter` and Wings' `ConversationFormatter` (the same algorithm, Wings
 *   with configurable slots): each turn is `slot + message (+ eot) (+ '\n')`, tokenized turn by turn
 *   without special tokens, every `<image>` → IMAGE_TOKEN_INDEX between separately tokenized chunks.
 * - LLaVA's `tokenizer_image_token` (Parrot's `mm_utils`): chunks tokenized *with* special tokens, the
 *   leading BOS kept once, each `<image>` → IMAGE_TOKEN_INDEX.
 * - Cheetah's Vicuna (`###`-separated `Human:`/`Assistant:`) and LLaMA-2 (`[INST]`) prompts: images are
 *   `<Img><HereForImage></Img>` joined into the user turn with a space; the prompt is cut at
 *   `<HereForImage>` and each segment tokenized alone, BOS only on the first (`get_context_emb`).
 */
import { IGNORE_INDEX, IMAGE_PLACEHOLDER } from './byte-tokenizer.js';
import type { HFTokenizer } from './hf-tokenizer.js';

/** One turn as the references store it: `from` is `system`, `human` or `gpt`. */
export interface AuthorTurn {
  from: 'system' | 'human' | 'gpt';
  value: string;
}

/** Wings' formatter slots (`system_slot`, `user_slot`, `gpt_slot`, `eot`, `default_system_prompt`). */
export interface FormatterSlots {
  system: string;
  human: string;
  gpt: string;
  eot: string;
  defaultSystemPrompt: string;
}

/** Parrot's Qwen2 ChatML (`QwenConversationFormatter`; also Wings' default slots). */
export const QWEN2_CHATML_SLOTS: FormatterSlots = {
  system: '<|im_start|>system\n',
  human: '<|im_start|>user\n',
  gpt: '<|im_start|>assistant\n',
  eot: '<|im_end|>',
  defaultSystemPrompt: 'You are a helpful assistant.',
};

/**
 * The slots Wings' LLaMA-3.1 run script passes (`run/pretrain_wings_llama3_1.sh`), kept as the script
 * has them: its `system_slot` is the *user* header and its `user_slot` the *system* header.
 */
export const WINGS_LLAMA3_SLOTS: FormatterSlots = {
  system: '<|start_header_id|>user<|end_header_id|>\n\n',
  human: '<|start_header_id|>system<|end_header_id|>\n\n',
  gpt: '<|start_header_id|>assistant<|end_header_id|>\n\n',
  eot: '<|eot_id|>',
  defaultSystemPrompt: 'You are a helpful assistant.',
};

export interface FormattedConversation {
  prompt: string;
  /** Ids, IMAGE_TOKEN_INDEX (−200) at each `<image>`. */
  inputIds: number[];
  /** IGNORE_INDEX except an assistant turn's tokens after its role slot. */
  labels: number[];
}

/**
 * Parrot's / Wings' `format(conversations, generation_preface)`. A system turn
 * (`slots.defaultSystemPrompt`) is inserted when the first turn is not one; with `generationPreface`
 * (a string, `''` for a bare generation prompt) a final `gpt` turn holding it is appended without eot.
 * Turns: `slot + value`, then `eot` unless it is the preface turn, then `'\n'` unless it is the last turn.
 * Labels: a `gpt` turn's tokens after the first `len(tokenize(slots.gpt))` ones.
 */
export function formatConversation(
  tokenizer: HFTokenizer,
  conversations: AuthorTurn[],
  options: { slots?: FormatterSlots; generationPreface?: string } = {},
): FormattedConversation {
  const slots = options.slots ?? QWEN2_CHATML_SLOTS;
  if (!Array.isArray(conversations)) throw new Error(`formatConversation: conversations must be an array, got ${typeof conversations}`);
  const roles = { system: slots.system, human: slots.human, gpt: slots.gpt } as const;
  const turns = conversations.map((t, i) => {
    if (!t || !(t.from in roles) || typeof t.value !== 'string') {
      throw new Error(`formatConversation: conversations[${i}] must be {from: 'system'|'human'|'gpt', value: string}, got ${JSON.stringify(t)}`);
    }
    return t;
  });
  if (turns[0]?.from !== 'system') turns.unshift({ from: 'system', value: slots.defaultSystemPrompt });
  const preface = options.generationPreface;
  if (preface !== undefined) turns.push({ from: 'gpt', value: preface });
  const gptSlotLength = tokenizer.encode(slots.gpt).length;
  const out: FormattedConversation = { prompt: '', inputIds: [], labels: [] };
  turns.forEach((turn, i) => {
    const last = i === turns.length - 1;
    let text = roles[turn.from] + turn.value;
    if (!last || preface === undefined) text += slots.eot;
    if (!last) text += '\n';
    out.prompt += text;
    const ids = tokenizer.encode(text, { allowImage: true });
    out.inputIds.push(...ids);
    ids.forEach((id, k) => out.labels.push(turn.from === 'gpt' && k >= gptSlotLength ? id : IGNORE_INDEX));
  });
  return out;
}

/**
 * LLaVA's `tokenizer_image_token(prompt)`: split at `<image>`, tokenize each chunk with the
 * tokenizer's special tokens (post-processor), keep a leading BOS once, and put IMAGE_TOKEN_INDEX
 * between chunks (each later chunk's BOS is dropped).
 */
export function tokenizerImageToken(tokenizer: HFTokenizer, prompt: string): number[] {
  if (typeof prompt !== 'string') throw new Error(`tokenizerImageToken: prompt must be a string, got ${typeof prompt}`);
  const chunks = prompt.split(IMAGE_PLACEHOLDER).map((c) => tokenizer.encodeText(c, { addSpecialTokens: true }));
  const ids: number[] = [];
  const offset = chunks[0].length > 0 && chunks[0][0] === tokenizer.bosId && tokenizer.bosId >= 0 ? 1 : 0;
  if (offset) ids.push(chunks[0][0]);
  chunks.forEach((chunk, i) => {
    if (i > 0) ids.push(tokenizer.imageId);
    ids.push(...chunk.slice(offset));
  });
  return ids;
}

/** Cheetah's image marker in a conversation and the cut point in its prompt. */
export const CHEETAH_IMAGE = '<Img><HereForImage></Img>';
const CHEETAH_CUT = '<HereForImage>';

export interface CheetahPrompt {
  prompt: string;
  /** Token ids of each text segment around the images (`images + 1` segments); BOS only on the first. */
  segments: number[][];
}

/**
 * Cheetah's `Chat.answer(raw_img_list, context)` prompt for its Vicuna (`conversation.py`:
 * `###Human: … ###Assistant:`) or LLaMA-2 (`conversation_llama2.py`: `[INST] … [/INST]`, empty
 * system) template. `context` holds `<Img><HereForImage></Img>` where the images go; `numImages`
 * images are attached in order (an image after the last marker text is appended to the user turn).
 */
export function cheetahPrompt(tokenizer: HFTokenizer, context: string, numImages: number, style: 'vicuna' | 'llama2'): CheetahPrompt {
  if (typeof context !== 'string') throw new Error(`cheetahPrompt: context must be a string, got ${typeof context}`);
  if (!Number.isInteger(numImages) || numImages < 0) throw new Error(`cheetahPrompt: numImages must be a non-negative integer, got ${numImages}`);
  if (style !== 'vicuna' && style !== 'llama2') throw new Error(`cheetahPrompt: style must be 'vicuna' or 'llama2', got ${JSON.stringify(style)}`);
  const [user, assistant] = style === 'vicuna' ? ['Human', 'Assistant'] : ['USER', 'ASSISTANT'];
  const messages: [string, string | null][] = [];
  // Chat.ask: text after an image joins the image's user message with a space.
  const ask = (text: string) => {
    const lastMsg = messages[messages.length - 1];
    if (lastMsg && lastMsg[0] === user && lastMsg[1]!.endsWith('</Img>')) lastMsg[1] = `${lastMsg[1]} ${text}`;
    else messages.push([user, text]);
  };
  // Chat.upload_img: the marker joins the last message (whatever its role) with a space.
  const upload = () => {
    const lastMsg = messages[messages.length - 1];
    if (lastMsg) lastMsg[1] = `${lastMsg[1]} ${CHEETAH_IMAGE}`;
    else messages.push([user, CHEETAH_IMAGE]);
  };
  context.split(CHEETAH_IMAGE).forEach((text, i) => {
    if (text.trim() !== '') ask(text);
    if (i < numImages) upload();
  });
  messages.push([assistant, null]);
  let prompt: string;
  if (style === 'vicuna') {
    // SeparatorStyle.SINGLE, system '' and sep '###'.
    prompt = '###' + messages.map(([role, msg]) => (msg ? `${role}: ${msg}###` : `${role}:`)).join('');
  } else {
    // SeparatorStyle.LLAMA_2, system '', sep '<s>', sep2 '</s>'; the first message carries the empty system block.
    prompt = '';
    messages.forEach(([, msg], i) => {
      if (!msg) return;
      if (i === 0) msg = `<<SYS>>\n\n<</SYS>>\n\n${msg}`;
      prompt += i % 2 === 0 ? `<s>[INST] ${msg} [/INST]` : ` ${msg} </s>`;
    });
    prompt = lstripChars(prompt, '<s>');
  }
  const parts = prompt.split(CHEETAH_CUT);
  if (parts.length !== numImages + 1) {
    throw new Error(`cheetahPrompt: context has ${parts.length - 1} image markers for numImages = ${numImages} (Cheetah asserts they match)`);
  }
  const segments = parts.map((seg, i) => tokenizer.encodeText(seg, { addSpecialTokens: i === 0 }));
  return { prompt, segments };
}

/** Python's `str.lstrip(chars)`: strips any of the characters, not the string. */
function lstripChars(s: string, chars: string): string {
  let i = 0;
  while (i < s.length && chars.includes(s[i])) i++;
  return s.slice(i);
}
