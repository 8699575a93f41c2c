/** The six languages of the demo (Parrot's MMMB set): names, writing direction, sample questions. */
export const LANGUAGE_CODES = ['en', 'zh', 'pt', 'ar', 'tr', 'ru'] as const;
export type LanguageCode = (typeof LANGUAGE_CODES)[number];

export interface LanguageInfo {
  code: LanguageCode;
  /** Name in the language itself. */
  name: string;
  dir: 'ltr' | 'rtl';
}

export const LANGUAGES: Record<LanguageCode, LanguageInfo> = {
  en: { code: 'en', name: 'English', dir: 'ltr' },
  zh: { code: 'zh', name: '中文', dir: 'ltr' },
  pt: { code: 'pt', name: 'Português', dir: 'ltr' },
  ar: { code: 'ar', name: 'العربية', dir: 'rtl' },
  tr: { code: 'tr', name: 'Türkçe', dir: 'ltr' },
  ru: { code: 'ru', name: 'Русский', dir: 'ltr' },
};

export type QuestionKind = 'colour' | 'shape' | 'count';

export const QUESTIONS: Record<LanguageCode, Record<QuestionKind, string>> = {
  en: { colour: 'What colour is the shape?', shape: 'Which shape is shown?', count: 'How many shapes are there?' },
  zh: { colour: '这个形状是什么颜色？', shape: '图中是什么形状？', count: '图中有几个形状？' },
  pt: { colour: 'De que cor é a forma?', shape: 'Que forma é mostrada?', count: 'Quantas formas há?' },
  ar: { colour: 'ما لون الشكل؟', shape: 'ما الشكل المعروض؟', count: 'كم عدد الأشكال؟' },
  tr: { colour: 'Şekil ne renk?', shape: 'Hangi şekil gösteriliyor?', count: 'Kaç şekil var?' },
  ru: { colour: 'Какого цвета фигура?', shape: 'Какая фигура показана?', count: 'Сколько здесь фигур?' },
};

const COLOUR_NAMES: Record<LanguageCode, Record<'red' | 'green' | 'blue' | 'yellow', string>> = {
  en: { red: 'red', green: 'green', blue: 'blue', yellow: 'yellow' },
  zh: { red: '红色', green: '绿色', blue: '蓝色', yellow: '黄色' },
  pt: { red: 'vermelho', green: 'verde', blue: 'azul', yellow: 'amarelo' },
  ar: { red: 'أحمر', green: 'أخضر', blue: 'أزرق', yellow: 'أصفر' },
  tr: { red: 'kırmızı', green: 'yeşil', blue: 'mavi', yellow: 'sarı' },
  ru: { red: 'красный', green: 'зелёный', blue: 'синий', yellow: 'жёлтый' },
};

export function colourName(language: LanguageCode, colour: 'red' | 'green' | 'blue' | 'yellow'): string {
  return COLOUR_NAMES[language][colour];
}

/** A guess at the language of a question from its script (for RTL layout and the language badge). */
export function guessLanguage(text: string): LanguageCode | null {
  if (/[\u0600-\u06ff]/.test(text)) return 'ar';
  if (/[\u4e00-\u9fff]/.test(text)) return 'zh';
  if (/[\u0400-\u04ff]/.test(text)) return 'ru';
  if (/[ğışĞİŞ]/.test(text)) return 'tr';
  if (/[ãõçáéíóúâêô]/i.test(text)) return 'pt';
  if (/[a-z]/i.test(text)) return 'en';
  return null;
}
