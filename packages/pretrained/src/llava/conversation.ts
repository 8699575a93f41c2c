/**
 * The prompt a plain LLaVA-style checkpoint is asked with, as the authors' inference code builds it,
 * with one `<image>\n` per image before the question (LLaVA's and Bunny's `DEFAULT_IMAGE_TOKEN + '\n' + qs`).
 *
 * Which format (see {@link pickLlavaConversation}):
 * - `chat_template`: the tokenizer ships one (`tokenizer_config.json`): rendered with
 *   `@huggingface/jinja` with the generation prompt, then `<image>` expanded by LLaVA's
 *   `tokenizer_image_token` (a BOS the template wrote as text and the tokenizer adds again is kept once).
 * - `bunny`: Bunny's `conv_bunny` (`SeparatorStyle.TWO`, sep `' '`): `system + ' USER: <image>\nq ASSISTANT:'`,
 *   the system prompt addressing "the user"; picked for `model_type` `bunny-*` (Bunny's CLI always uses it).
 * - `chatml`: Parrot's / Wings' Qwen2 ChatML formatter (`format_query`: default system prompt, bare
 *   assistant slot), for tokenizers with `<|im_start|>` (Qwen-family decoders).
 * - `llava_v1`: LLaVA-1.5's `conv_vicuna_v1` (`SeparatorStyle.TWO`, sep `' '`, sep2 `</s>`):
 *   `system + ' USER: <image>\nq ASSISTANT:'`, the system prompt addressing "the human" (the format
 *   VLMEvalKit's LLaVA wrapper uses for every LLaVA-1.5 checkpoint); the fallback.
 */
import { formatConversation, QWEN2_CHATML_SLOTS, tokenizerImageToken, type HFTokenizer } from '@mllm/models';

/** The conversation formats a plain LLaVA checkpoint may be prompted with. */
export type LlavaConversationStyle = 'chat_template' | 'bunny' | 'chatml' | 'llava_v1';

/** All styles, for option checking. */
export const LLAVA_CONVERSATION_STYLES: readonly LlavaConversationStyle[] = Object.freeze(['chat_template', 'bunny', 'chatml', 'llava_v1'] as const);

/** LLaVA's `conv_vicuna_v1` system prompt. */
export const LLAVA_V1_SYSTEM =
  "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.";
/** Bunny's `conv_bunny` system prompt. */
export const BUNNY_SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

/** The prompt of one user turn, its ids with IMAGE_TOKEN_INDEX (−200) per image, and the ids that end the answer. */
export interface LlavaPrompt {
  style: LlavaConversationStyle;
  prompt: string;
  inputIds: number[];
  /** Generation stops at the first of these (the tokenizer's eos, plus the format's own end token when it has one). */
  stopIds: number[];
}

/**
 * The format the authors' code would use for this checkpoint: the tokenizer's `chat_template` when
 * it has one; else Bunny's for `model_type` `bunny-*`; else ChatML when the vocabulary has
 * `<|im_start|>`; else LLaVA-1.5's `llava_v1`.
 */
export function pickLlavaConversation(config: Readonly<Record<string, unknown>>, tokenizer: HFTokenizer): LlavaConversationStyle {
  if (tokenizer.chatTemplate !== null) return 'chat_template';
  if (typeof config.model_type === 'string' && config.model_type.startsWith('bunny')) return 'bunny';
  if (tokenizer.imStartId >= 0) return 'chatml';
  return 'llava_v1';
}

/** `SeparatorStyle.TWO` with one user message and an open assistant turn. */
const twoStyle = (system: string, message: string) => `${system} USER: ${message} ASSISTANT:`;

/** The stop ids: eos and, when the vocabulary has it, the format's end token. */
function stops(tokenizer: HFTokenizer, ...tokens: string[]): number[] {
  const ids = new Set<number>();
  if (tokenizer.eosId >= 0) ids.add(tokenizer.eosId);
  for (const token of tokens) {
    const encoded = tokenizer.encodeText(token); // added tokens are matched whole, before the model
    if (encoded.length === 1 && tokenizer.idToToken(encoded[0]) === token) ids.add(encoded[0]);
  }
  return [...ids];
}

/** `tokenizer_image_token` keeping a leading BOS once when the template also wrote it as text. */
function imageTokenIds(tokenizer: HFTokenizer, prompt: string): number[] {
  const ids = tokenizerImageToken(tokenizer, prompt);
  return tokenizer.bosId >= 0 && ids[0] === tokenizer.bosId && ids[1] === tokenizer.bosId ? ids.slice(1) : ids;
}

/** Builds the prompt of `question` with `numImages` images in `style` (see the module comment). */
export function llavaPrompt(tokenizer: HFTokenizer, style: LlavaConversationStyle, question: string, numImages: number): LlavaPrompt {
  if (typeof question !== 'string') throw new Error(`llavaPrompt: question must be a string, got ${typeof question}`);
  if (!Number.isInteger(numImages) || numImages < 0) throw new Error(`llavaPrompt: numImages must be a non-negative integer, got ${numImages}`);
  const message = '<image>\n'.repeat(numImages) + question;
  switch (style) {
    case 'chat_template': {
      const prompt = tokenizer.applyChatTemplate([{ role: 'user', content: message }], { addGenerationPrompt: true });
      return { style, prompt, inputIds: imageTokenIds(tokenizer, prompt), stopIds: stops(tokenizer, '<|im_end|>', '<|eot_id|>') };
    }
    case 'bunny': {
      const prompt = twoStyle(BUNNY_SYSTEM, message);
      return { style, prompt, inputIds: imageTokenIds(tokenizer, prompt), stopIds: stops(tokenizer, '<|endoftext|>', '<|end_of_text|>') };
    }
    case 'chatml': {
      const { prompt, inputIds } = formatConversation(tokenizer, [{ from: 'human', value: message }], { slots: QWEN2_CHATML_SLOTS, generationPreface: '' });
      return { style, prompt, inputIds, stopIds: stops(tokenizer, '<|im_end|>') };
    }
    case 'llava_v1': {
      const prompt = twoStyle(LLAVA_V1_SYSTEM, message);
      return { style, prompt, inputIds: imageTokenIds(tokenizer, prompt), stopIds: stops(tokenizer, '</s>') };
    }
    default:
      throw new Error(`llavaPrompt: style must be one of ${LLAVA_CONVERSATION_STYLES.join(', ')}, got ${JSON.stringify(style)}`);
  }
}
