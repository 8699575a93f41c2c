/**
 * Mapping a model's free-text answer to an option letter, following VLMEvalKit's `can_infer`
 * (the rules the published Parrot numbers were scored with), plus the Parrot wrapper's letter
 * post-processing of raw generations.
 *
 * 1. Letter: replace each of `.()[],:;!*#{}` with a space, split on whitespace; if exactly one
 *    distinct option letter occurs as a whole token, that is the answer ("B", "(B)", "B. cat",
 *    "the answer is B." all give B; "An apple" gives nothing: "An" is not the token "A").
 *    A known refusal sentence, or the token `Z` with no option letter, gives `Z` (refused; wrong).
 * 2. Text: otherwise, if exactly one option's text (lower-cased) is a substring of the lower-cased
 *    answer, that option.
 * 3. Otherwise unresolved. The reference then asks an LLM judge; this harness instead asks the model
 *    for its log-likelihood of each option (see `evaluate`).
 */
import type { OptionChoice } from './benchmark-reader.js';
import { ANSWER_INSTRUCTIONS, LEGACY_CHINESE_INSTRUCTION } from './languages.js';

/** Sentences that mean the model refused; mapped to `Z`. */
export const REFUSAL_SENTENCES: readonly string[] = Object.freeze([
  "Sorry, I can't help with images of people yet.",
  "I can't process this file.",
  "I'm sorry, but without the image provided",
  'Cannot determine the answer',
]);

/** An API failure marker: never read as a letter (the text rule still applies). */
export const API_FAILURE_MARKER = 'Failed to obtain answer via API';

const SEPARATOR_CHARACTERS = /[.()[\],:;!*#{}]/g;

/** Whitespace tokens of an answer after replacing `.()[],:;!*#{}` with spaces. */
export function answerTokens(answer: string): string[] {
  return answer.replace(SEPARATOR_CHARACTERS, ' ').split(/\s+/).filter((token) => token.length > 0);
}

/** Rule 1: a unique option letter as a token, `'Z'` for a refusal, else `undefined`. */
export function inferOptionLetter(answer: string, options: readonly OptionChoice[]): string | undefined {
  if (answer.includes(API_FAILURE_MARKER)) return undefined;
  if (REFUSAL_SENTENCES.some((sentence) => answer.includes(sentence))) return 'Z';
  const tokens = new Set(answerTokens(answer));
  const present = options.filter((option) => tokens.has(option.letter));
  if (present.length === 1) return present[0].letter;
  if (present.length === 0 && tokens.has('Z')) return 'Z';
  return undefined;
}

/** Rule 2: the unique option whose lower-cased text is a substring of the lower-cased answer. */
export function inferOptionByText(answer: string, options: readonly OptionChoice[]): string | undefined {
  const haystack = answer.toLowerCase();
  const matches = options.filter((option) => haystack.includes(option.text.toLowerCase()));
  return matches.length === 1 ? matches[0].letter : undefined;
}

/** How an answer was resolved. */
export type ExtractionMethod = 'letter' | 'text' | 'refusal';

/** Result of {@link extractAnswer}: the letter and the rule that found it, or undefined. */
export interface Extraction {
  readonly letter: string;
  readonly method: ExtractionMethod;
}

/** Rules 1 and 2 (VLMEvalKit `can_infer`). `Z` means refused and never matches a ground truth. */
export function extractAnswer(answer: string, options: readonly OptionChoice[]): Extraction | undefined {
  const letter = inferOptionLetter(answer, options);
  if (letter !== undefined) return { letter, method: letter === 'Z' ? 'refusal' : 'letter' };
  const byText = inferOptionByText(answer, options);
  return byText === undefined ? undefined : { letter: byText, method: 'text' };
}

// ---------------------------------------------------------------------------------------------
// Parrot's post-processing of raw generations.

const ASCII_WHITESPACE = ' \t\n\r\x0b\x0c';
const ASCII_PUNCTUATION = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
const UPPERCASE = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function stripCharacters(text: string, characters: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && characters.includes(text[start])) start++;
  while (end > start && characters.includes(text[end - 1])) end--;
  return text.slice(start, end);
}

function afterPrefix(answer: string, prefixes: readonly string[]): string {
  const lower = answer.toLowerCase();
  for (const prefix of prefixes) {
    const position = lower.indexOf(prefix);
    if (position >= 0) return answer.slice(position + prefix.length);
  }
  return answer;
}

/**
 * The Parrot wrapper's clean-up of a multiple-choice generation: trims punctuation and whitespace,
 * then repeatedly: a leading capital followed by a space/punctuation → that letter; a trailing
 * capital preceded by one → that letter; text containing "answer is"/"answer:" → the part after it
 * (and after "option"). E.g. "B. A cat" → "B"; "The answer is C" → "C"; "A cat" → "A" (sic).
 */
export function stripToOptionLetter(generation: string): string {
  let answer = stripCharacters(generation, ASCII_WHITESPACE);
  const separators = ASCII_WHITESPACE + ASCII_PUNCTUATION;
  for (;;) {
    answer = stripCharacters(answer, ASCII_PUNCTUATION + ASCII_WHITESPACE);
    if (answer.length <= 1) return answer;
    if (UPPERCASE.includes(answer[0]) && separators.includes(answer[1])) return answer[0];
    if (UPPERCASE.includes(answer[answer.length - 1]) && separators.includes(answer[answer.length - 2])) {
      return answer[answer.length - 1];
    }
    const lower = answer.toLowerCase();
    if (!lower.includes('answer is') && !lower.includes('answer:')) return answer;
    answer = afterPrefix(afterPrefix(answer, ['answer is', 'answer:']), ['option']);
  }
}

/**
 * When to apply {@link stripToOptionLetter} to generations:
 * - `'all'` (default): for every multiple-choice prompt, whatever its language;
 * - `'reference'`: only when the prompt ends with the English instruction or the legacy Chinese one
 *   (the Parrot wrapper's test, which never fires for the current zh/pt/ar/tr/ru instructions);
 * - `'none'`: use the generation as is (only whitespace-trimmed).
 */
export type PostprocessMode = 'all' | 'reference' | 'none';

/** Applies the Parrot post-processing to a generation according to `mode`. */
export function postprocessAnswer(generation: string, prompt: string, mode: PostprocessMode = 'all'): string {
  const trimmed = stripCharacters(generation, ASCII_WHITESPACE);
  if (mode === 'none') return trimmed;
  if (mode === 'reference') {
    const applies = prompt.endsWith(ANSWER_INSTRUCTIONS.en) || prompt.endsWith(LEGACY_CHINESE_INSTRUCTION);
    return applies ? stripToOptionLetter(trimmed) : trimmed;
  }
  if (mode === 'all') return stripToOptionLetter(trimmed);
  throw new TypeError(`postprocess: expected 'all', 'reference' or 'none', got ${JSON.stringify(mode)}`);
}
