import { describe, expect, it } from 'vitest';
import { ANSWER_INSTRUCTIONS, answerInstruction, normalizeLanguage } from './languages.js';
import { buildPrompt, buildPromptBody, referenceInstructionLanguage, type PromptRow } from './prompt.js';

const row = (language: string | undefined, extra: Partial<PromptRow> = {}): PromptRow => ({
  question: 'Which animal is shown?',
  hint: undefined,
  options: [
    { letter: 'A', text: 'cat' },
    { letter: 'B', text: 'dog' },
    { letter: 'D', text: 'bird' },
  ],
  language,
  ...extra,
});

describe('buildPrompt', () => {
  it('is question, option lines and the localized instruction, chosen by the row language', () => {
    const expected: Record<string, string> = {
      en: "Answer with the option's letter from the given choices directly.",
      zh: '请直接用给定选项中的选项字母回答。',
      pt: 'Responda diretamente com a letra da opção das escolhas dadas.',
      ar: 'أجب مباشرةً بحرف الخيار من الاختيارات المعطاة.',
      tr: 'Verilen seçeneklerden doğrudan seçeneğin harfi ile cevap verin.',
      ru: 'Ответьте буквой варианта из предложенных вариантов напрямую.',
    };
    for (const [language, instruction] of Object.entries(expected)) {
      expect(buildPrompt(row(language))).toBe(`Which animal is shown?\nA. cat\nB. dog\nD. bird\n${instruction}`);
    }
  });

  it('puts the hint on its own line before the question', () => {
    expect(buildPrompt(row('en', { hint: 'Look closely.' }))).toBe(
      `Look closely.\nWhich animal is shown?\nA. cat\nB. dog\nD. bird\n${ANSWER_INSTRUCTIONS.en}`,
    );
    expect(buildPromptBody(row('en', { hint: 'H' }))).toBe('H\nWhich animal is shown?\nA. cat\nB. dog\nD. bird');
  });

  it('falls back to English for rows without a language or with one that has no instruction', () => {
    expect(buildPrompt(row(undefined)).endsWith(`\n${ANSWER_INSTRUCTIONS.en}`)).toBe(true);
    expect(buildPrompt(row('fr')).endsWith(`\n${ANSWER_INSTRUCTIONS.en}`)).toBe(true);
    expect(answerInstruction('fr')).toBe(ANSWER_INSTRUCTIONS.en);
  });

  it('does not switch to Chinese for CJK text in a non-Chinese row (unlike the reference)', () => {
    const prompt = buildPrompt(row('pt', { question: 'O que significa 猫?' }));
    expect(prompt.endsWith(ANSWER_INSTRUCTIONS.pt)).toBe(true);
  });

  it("reproduces the reference's dataset-name rule on request, including its all-in-one pitfall", () => {
    const pt = row('pt');
    expect(buildPrompt(pt, { instructionRule: 'reference', datasetName: 'MMMB_pt' }).endsWith(ANSWER_INSTRUCTIONS.pt)).toBe(true);
    // The all-in-one name has no language suffix: Portuguese rows get the English instruction.
    expect(buildPrompt(pt, { instructionRule: 'reference', datasetName: 'MMMB' }).endsWith(ANSWER_INSTRUCTIONS.en)).toBe(true);
    expect(buildPrompt(pt, { instructionRule: 'reference', datasetName: 'MTL_MMBench_DEV' }).endsWith(ANSWER_INSTRUCTIONS.en)).toBe(true);
    // Any CJK character forces Chinese, whatever the suffix.
    expect(referenceInstructionLanguage('MMBench_dev_ru', 'Что такое 猫?')).toBe('zh');
    expect(referenceInstructionLanguage('MMBench_dev_cn', 'plain')).toBe('zh');
    expect(referenceInstructionLanguage('mmmb_ar', 'plain')).toBe('ar');
    expect(referenceInstructionLanguage('mmmb_tr', 'plain')).toBe('tr');
    expect(() => buildPrompt(pt, { instructionRule: 'reference' })).toThrow(/needs a datasetName/);
    expect(() => buildPrompt(pt, { instructionRule: 'suffix' as 'reference' })).toThrow(/instructionRule: expected/);
  });

  it('rejects rows without options', () => {
    expect(() => buildPrompt(row('en', { options: [] }))).toThrow(/no options/);
  });
});

describe('normalizeLanguage', () => {
  it('maps cn and spellings to zh, keeps unknown labels, drops empty ones', () => {
    expect(normalizeLanguage('cn')).toBe('zh');
    expect(normalizeLanguage('ZH_CN')).toBe('zh');
    expect(normalizeLanguage(' Russian ')).toBe('ru');
    expect(normalizeLanguage('fr')).toBe('fr');
    expect(normalizeLanguage('nan')).toBeUndefined();
    expect(normalizeLanguage('')).toBeUndefined();
    expect(normalizeLanguage(undefined)).toBeUndefined();
  });
});
