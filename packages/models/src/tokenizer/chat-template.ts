/**
 * ChatML chat template (the Qwen format Parrot uses) with LLaVA-style supervision:
 *
 *   <|im_start|>system\n{system}<|im_end|>\n
 *   <|im_start|>user\n{user, may contain <image>}<|im_end|>\n
 *   <|im_start|>assistant\n{answer}<|im_end|>\n
 *
 * As in Parrot's `QwenConversationFormatter`, the final turn has no trailing `\n`. Labels supervise
 * only assistant answers: the answer tokens, their `<|im_end|>` and (except on the final turn) the
 * trailing `\n` carry their own id; every other position is IGNORE_INDEX (-100). The
 * `<|im_start|>assistant\n` header is prompt. `promptMask` marks non-supervised text tokens
 * (label = IGNORE, not an image placeholder): the tokens Parrot's MoE attends to.
 */
import { IGNORE_INDEX, type Tokenizer } from './byte-tokenizer.js';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  /** Text; in user turns each `<image>` is an image placeholder. */
  content: string;
}

/** Parrot's default system prompt. */
export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant.';

export interface ChatTemplateOptions {
  /** Inserted as the first turn when the messages have no system turn; `null` = none. Default DEFAULT_SYSTEM_PROMPT. */
  systemPrompt?: string | null;
  /** Append `<|im_start|>assistant\n` (the generation preface). Default false. */
  addGenerationPrompt?: boolean;
  /** Prepend `<bos>`. Default false (ChatML models have none). */
  addBos?: boolean;
}

export interface ChatEncoding {
  /** `[T]` token ids, image placeholders = `tokenizer.imageId`. */
  inputIds: number[];
  /** `[T]` id at supervised positions, IGNORE_INDEX elsewhere (unshifted: the loss shifts). */
  labels: number[];
  /** `[T]` 1 = non-supervised prompt text token (not an image placeholder). */
  promptMask: number[];
  /** `[T]` 1 = token of the system turn. */
  systemMask: number[];
  /** Indices of image placeholders in `inputIds`, in order. */
  imagePositions: number[];
}

/** Encode a conversation with the ChatML template; see the file comment for the label rule. */
export function encodeChat(tokenizer: Tokenizer, messages: ChatMessage[], options: ChatTemplateOptions = {}): ChatEncoding {
  if (!Array.isArray(messages)) throw new Error(`encodeChat: messages must be an array, got ${typeof messages}`);
  const systemPrompt = options.systemPrompt === undefined ? DEFAULT_SYSTEM_PROMPT : options.systemPrompt;
  const turns: ChatMessage[] = [...messages];
  messages.forEach((m, i) => {
    if (!m || !['system', 'user', 'assistant'].includes(m.role) || typeof m.content !== 'string') {
      throw new Error(`encodeChat: messages[${i}] must be {role: 'system'|'user'|'assistant', content: string}, got ${JSON.stringify(m)}`);
    }
    if (m.role === 'system' && i !== 0) throw new Error(`encodeChat: a system message must be first, found at index ${i}`);
  });
  if (systemPrompt !== null && turns[0]?.role !== 'system') turns.unshift({ role: 'system', content: systemPrompt });

  const enc: ChatEncoding = { inputIds: [], labels: [], promptMask: [], systemMask: [], imagePositions: [] };
  const push = (ids: number[], supervised: boolean, system: boolean) => {
    for (const id of ids) {
      const isImage = id === tokenizer.imageId;
      if (isImage) enc.imagePositions.push(enc.inputIds.length);
      enc.inputIds.push(id);
      enc.labels.push(supervised && !isImage ? id : IGNORE_INDEX);
      enc.promptMask.push(!supervised && !isImage ? 1 : 0);
      enc.systemMask.push(system ? 1 : 0);
    }
  };
  const newline = tokenizer.encode('\n');
  if (options.addBos) push([tokenizer.bosId], false, false);
  turns.forEach((turn, i) => {
    const system = turn.role === 'system';
    const last = i === turns.length - 1 && !options.addGenerationPrompt;
    const header = [tokenizer.imStartId, ...tokenizer.encode(`${turn.role}\n`)];
    push(header, false, system);
    const body = [...tokenizer.encode(turn.content, { allowImage: turn.role === 'user' }), tokenizer.imEndId, ...(last ? [] : newline)];
    push(body, turn.role === 'assistant', system);
  });
  if (options.addGenerationPrompt) push([tokenizer.imStartId, ...tokenizer.encode('assistant\n')], false, false);
  return enc;
}
