/**
 * Languages of the multilingual benchmarks (MMMB, multilingual MMBench) and the localized answer
 * instruction that the Parrot evaluation appends to every multiple-choice prompt.
 *
 * The reference code calls Chinese `cn`; this package uses the ISO code `zh` everywhere and accepts
 * `cn` (and a few spellings) as aliases, see {@link normalizeLanguage}.
 */

/** Languages with a localized answer instruction. */
export const LANGUAGES = ['en', 'zh', 'pt', 'ar', 'tr', 'ru'] as const;

/** A language with a localized answer instruction. */
export type Language = (typeof LANGUAGES)[number];

const ALIASES: Record<string, Language> = {
  en: 'en',
  eng: 'en',
  english: 'en',
  zh: 'zh',
  cn: 'zh',
  'zh-cn': 'zh',
  'zh-hans': 'zh',
  chinese: 'zh',
  pt: 'pt',
  'pt-br': 'pt',
  portuguese: 'pt',
  ar: 'ar',
  arabic: 'ar',
  tr: 'tr',
  turkish: 'tr',
  ru: 'ru',
  russian: 'ru',
};

/**
 * Normalizes a language label (case-insensitive; `cn` → `zh`). Returns `undefined` for an empty
 * label and the trimmed lower-cased label itself for a language without a localized instruction
 * (such rows get the English instruction, as in the reference, but keep their own label in reports).
 */
export function normalizeLanguage(label: string | undefined | null): string | undefined {
  if (label === undefined || label === null) return undefined;
  const key = label.trim().toLowerCase().replace(/_/g, '-');
  if (key === '' || key === 'nan') return undefined;
  return ALIASES[key] ?? key;
}

/** True when `language` (already normalized) has a localized answer instruction. */
export function isKnownLanguage(language: string | undefined): language is Language {
  return language !== undefined && (LANGUAGES as readonly string[]).includes(language);
}

/**
 * The instruction appended (after a newline) to a multiple-choice prompt, per language. These are the
 * exact strings the Parrot VLMEvalKit wrapper used, so prompts match the published evaluation.
 */
export const ANSWER_INSTRUCTIONS: Readonly<Record<Language, string>> = Object.freeze({
  en: "Answer with the option's letter from the given choices directly.",
  zh: '请直接用给定选项中的选项字母回答。',
  pt: 'Responda diretamente com a letra da opção das escolhas dadas.',
  ar: 'أجب مباشرةً بحرف الخيار من الاختيارات المعطاة.',
  tr: 'Verilen seçeneklerden doğrudan seçeneğin harfi ile cevap verin.',
  ru: 'Ответьте буквой варианта из предложенных вариантов напрямую.',
});

/**
 * An older Chinese instruction. The reference's letter post-processing is keyed on it (and on the
 * English one), although the prompt builder no longer emits it; see `postprocessAnswer`.
 */
export const LEGACY_CHINESE_INSTRUCTION = '请直接回答选项字母。';

/** The answer instruction for a (normalized) language; unknown or missing languages get English. */
export function answerInstruction(language: string | undefined): string {
  return isKnownLanguage(language) ? ANSWER_INSTRUCTIONS[language] : ANSWER_INSTRUCTIONS.en;
}

/** True when `text` contains a CJK unified ideograph (U+4E00–U+9FFF), the reference's `cn_string`. */
export function containsCjk(text: string): boolean {
  return /[\u4e00-\u9fff]/.test(text);
}
