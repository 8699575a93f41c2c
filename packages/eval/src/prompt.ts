/**
 * The multiple-choice prompt of the Parrot evaluation:
 *
 *   [hint + "\n"] + question + "\nA. …" + "\nB. …" + … + "\n" + localized answer instruction
 *
 * The instruction language comes from the row (its `language` column or the reader's `language`
 * option). The reference instead picked it from the last three characters of the *dataset name*
 * (`…_pt` → Portuguese) and switched to Chinese whenever the prompt contained a CJK character, so
 * all-in-one runs (`MMMB`, `MTL_MMBench_DEV`) silently prompted pt/ar/ru/tr in English. That
 * behaviour is available as `instructionRule: 'reference'` for reproducing published runs.
 * The image placeholder (`<image>\n` in Parrot) is the model's business and is not included.
 */
import type { BenchmarkRow } from './benchmark-reader.js';
import { ANSWER_INSTRUCTIONS, answerInstruction, containsCjk, type Language } from './languages.js';

/** How the instruction language is chosen. */
export type InstructionRule = 'row-language' | 'reference';

/** Options of {@link buildPrompt}. */
export interface PromptOptions {
  /**
   * `'row-language'` (default): the row's language, English when it has none or an unknown one.
   * `'reference'`: the Parrot wrapper's rule — Chinese if `datasetName` ends in `_cn` or the prompt
   * contains a CJK character, else `_pt`/`_ar`/`_ru`/`_tr` suffixes, else English.
   */
  readonly instructionRule?: InstructionRule;
  /** Dataset name for `instructionRule: 'reference'` (e.g. `MMMB_pt`, `MTL_MMBench_DEV`). */
  readonly datasetName?: string;
}

/** The part of a row the prompt needs. */
export type PromptRow = Pick<BenchmarkRow, 'question' | 'hint' | 'options' | 'language'>;

/** The language the reference's suffix/CJK rule would pick for `datasetName` and this prompt body. */
export function referenceInstructionLanguage(datasetName: string, promptBody: string): Language {
  const suffix = datasetName.slice(-3);
  if (suffix === '_cn' || containsCjk(promptBody)) return 'zh';
  if (suffix === '_pt') return 'pt';
  if (suffix === '_ar') return 'ar';
  if (suffix === '_ru') return 'ru';
  if (suffix === '_tr') return 'tr';
  return 'en';
}

/** Question text with the hint and the option lines, without the instruction. */
export function buildPromptBody(row: Pick<PromptRow, 'question' | 'hint' | 'options'>): string {
  let body = row.hint !== undefined ? `${row.hint}\n${row.question}` : row.question;
  for (const option of row.options) body += `\n${option.letter}. ${option.text}`;
  return body;
}

/** The full prompt of a row: body + `\n` + localized answer instruction. */
export function buildPrompt(row: PromptRow, options: PromptOptions = {}): string {
  if (row.options.length === 0) throw new TypeError('buildPrompt: row has no options');
  const rule = options.instructionRule ?? 'row-language';
  const body = buildPromptBody(row);
  let instruction: string;
  if (rule === 'row-language') instruction = answerInstruction(row.language);
  else if (rule === 'reference') {
    if (options.datasetName === undefined) {
      throw new TypeError("buildPrompt: instructionRule 'reference' needs a datasetName (e.g. 'MMMB_pt')");
    }
    instruction = ANSWER_INSTRUCTIONS[referenceInstructionLanguage(options.datasetName, body)];
  } else {
    throw new TypeError(`instructionRule: expected 'row-language' or 'reference', got ${JSON.stringify(rule)}`);
  }
  return `${body}\n${instruction}`;
}
