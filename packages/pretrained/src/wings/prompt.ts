/**
 * Wings' prompt as its `infer.py` builds it:
 *
 *   instruction = replace_image_token(question, ['<image 1>', …, '<image 4>'], '<image>', leaved_token_num=1)
 *   prompt, input_ids = ConversationFormatter(tokenizer, slots).format_query(instruction)   # generation_preface ''
 *
 * `replace_image_token` turns the first `<image k>` marker present (k = 1…4) into `<image>`, keeps only its
 * first occurrence and deletes the other markers; without any marker it puts `<image>\n` before the question.
 * `format_query` is the formatter's system turn (default system prompt), the user turn and an empty
 * assistant turn without eot (`formatConversation` of @mllm/models with `generationPreface: ''`).
 * The slots are the run scripts': Qwen2 ChatML for `wings_qwen2`, `WINGS_LLAMA3_SLOTS` (the script's swapped
 * system / user headers, as trained) for `wings_llama`.
 */
import { QWEN2_CHATML_SLOTS, WINGS_LLAMA3_SLOTS, formatConversation, type FormatterSlots, type HFTokenizer } from '@mllm/models';
import type { WingsModelType } from './checkpoint.js';

/** The markers `infer.py`'s `preprocess_vqa` replaces (`<image 1>` … `<image 4>`). */
export const WINGS_IMAGE_MARKERS: readonly string[] = ['<image 1>', '<image 2>', '<image 3>', '<image 4>'];

const IMAGE = '<image>';

/** The formatter slots of each Wings variant's run script. */
export function wingsSlots(modelType: WingsModelType): FormatterSlots {
  return modelType === 'wings_llama' ? WINGS_LLAMA3_SLOTS : QWEN2_CHATML_SLOTS;
}

/**
 * `infer.py`'s `replace_image_token(question, WINGS_IMAGE_MARKERS, '<image>', leaved_token_num=1)`: the
 * instruction of a question about one image.
 */
export function wingsInstruction(question: string): string {
  if (typeof question !== 'string') throw new Error(`wingsInstruction: question must be a string, got ${typeof question}`);
  let text = question;
  let replaced = 0;
  for (const marker of WINGS_IMAGE_MARKERS) {
    if (text.includes(marker)) {
      text = text.split(marker).join(IMAGE);
      // retain_only_first_sub_str: keep the first '<image>', drop the later ones.
      const first = text.indexOf(IMAGE) + IMAGE.length;
      text = text.slice(0, first) + text.slice(first).split(IMAGE).join('');
      replaced += 1;
    }
    if (replaced >= 1) break;
  }
  if (replaced === 0) return `${IMAGE}\n${text}`;
  for (const marker of WINGS_IMAGE_MARKERS) text = text.split(marker).join('');
  return text;
}

/**
 * Token ids (IMAGE_TOKEN_INDEX at the image) and prompt string of one user turn, as Wings' `infer.py`
 * formats it: with an image, `wingsInstruction(question)`; without, the question unchanged.
 */
export function wingsPrompt(
  tokenizer: HFTokenizer,
  modelType: WingsModelType,
  question: string,
  withImage: boolean,
): { prompt: string; inputIds: number[] } {
  const instruction = withImage ? wingsInstruction(question) : question;
  const { prompt, inputIds } = formatConversation(tokenizer, [{ from: 'human', value: instruction }], {
    slots: wingsSlots(modelType),
    generationPreface: '',
  });
  return { prompt, inputIds };
}
