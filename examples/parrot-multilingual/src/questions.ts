/**
 * Questions about procedural scenes with templates written per language (en, zh, pt, ar, tr, ru).
 * The example asks the colour question and expects the colour word in the prompt's language.
 */
export { pick } from './scenes.js';
import { COLOURS, type Colour, type Position, type Shape } from './scenes.js';

export const LANGUAGES = ['en', 'zh', 'pt', 'ar', 'tr', 'ru'] as const;
export type Language = (typeof LANGUAGES)[number];
export const QUESTION_KINDS = ['colour', 'shape', 'count', 'position'] as const;
export type QuestionKind = (typeof QUESTION_KINDS)[number];

interface LanguageTemplates {
  question: Record<QuestionKind, string>;
  colour: Record<Colour, string>;
  shape: Record<Shape, string>;
  count: [string, string, string, string];
  position: Record<Position, string>;
}

export const TEMPLATES: Record<Language, LanguageTemplates> = {
  en: {
    question: { colour: 'What colour are the shapes?', shape: 'Which shape is shown?', count: 'How many shapes are there?', position: 'Where is the shape?' },
    colour: { red: 'red', green: 'green', blue: 'blue', yellow: 'yellow' },
    shape: { square: 'square', circle: 'circle', triangle: 'triangle', cross: 'cross' },
    count: ['one', 'two', 'three', 'four'],
    position: { left: 'left', right: 'right', top: 'top', bottom: 'bottom' },
  },
  zh: {
    question: { colour: '这些形状是什么颜色？', shape: '图中是什么形状？', count: '图中有几个形状？', position: '形状在哪里？' },
    colour: { red: '红色', green: '绿色', blue: '蓝色', yellow: '黄色' },
    shape: { square: '正方形', circle: '圆形', triangle: '三角形', cross: '十字' },
    count: ['一个', '两个', '三个', '四个'],
    position: { left: '左边', right: '右边', top: '上面', bottom: '下面' },
  },
  pt: {
    question: { colour: 'De que cor são as formas?', shape: 'Que forma é mostrada?', count: 'Quantas formas há?', position: 'Onde está a forma?' },
    colour: { red: 'vermelho', green: 'verde', blue: 'azul', yellow: 'amarelo' },
    shape: { square: 'quadrado', circle: 'círculo', triangle: 'triângulo', cross: 'cruz' },
    count: ['uma', 'duas', 'três', 'quatro'],
    position: { left: 'à esquerda', right: 'à direita', top: 'em cima', bottom: 'em baixo' },
  },
  ar: {
    question: { colour: 'ما لون الأشكال؟', shape: 'ما الشكل المعروض؟', count: 'كم عدد الأشكال؟', position: 'أين يقع الشكل؟' },
    colour: { red: 'أحمر', green: 'أخضر', blue: 'أزرق', yellow: 'أصفر' },
    shape: { square: 'مربع', circle: 'دائرة', triangle: 'مثلث', cross: 'صليب' },
    count: ['واحد', 'اثنان', 'ثلاثة', 'أربعة'],
    position: { left: 'يسار', right: 'يمين', top: 'أعلى', bottom: 'أسفل' },
  },
  tr: {
    question: { colour: 'Şekiller ne renk?', shape: 'Hangi şekil gösteriliyor?', count: 'Kaç şekil var?', position: 'Şekil nerede?' },
    colour: { red: 'kırmızı', green: 'yeşil', blue: 'mavi', yellow: 'sarı' },
    shape: { square: 'kare', circle: 'daire', triangle: 'üçgen', cross: 'artı' },
    count: ['bir', 'iki', 'üç', 'dört'],
    position: { left: 'solda', right: 'sağda', top: 'üstte', bottom: 'altta' },
  },
  ru: {
    question: { colour: 'Какого цвета фигуры?', shape: 'Какая фигура показана?', count: 'Сколько здесь фигур?', position: 'Где находится фигура?' },
    colour: { red: 'красный', green: 'зелёный', blue: 'синий', yellow: 'жёлтый' },
    shape: { square: 'квадрат', circle: 'круг', triangle: 'треугольник', cross: 'крест' },
    count: ['одна', 'две', 'три', 'четыре'],
    position: { left: 'слева', right: 'справа', top: 'сверху', bottom: 'снизу' },
  },
};

/** The colour words of `language` (in COLOURS order). */
export function colourWords(language: Language): string[] {
  return COLOURS.map((c) => TEMPLATES[language].colour[c]);
}

/** Draw a language for a training mix, e.g. `{ en: 0.9, zh: 0.02, ... }`. */
export function pickLanguage(rng: () => number, mix: Record<Language, number>): Language {
  const total = LANGUAGES.reduce((s, l) => s + mix[l], 0);
  let u = rng() * total;
  for (const l of LANGUAGES) {
    u -= mix[l];
    if (u < 0) return l;
  }
  return 'en';
}

/** Every text the templates can produce (to build a character vocabulary). */
export function templateTexts(): string[] {
  const out: string[] = ['\n'];
  for (const l of LANGUAGES) {
    const t = TEMPLATES[l];
    out.push(...Object.values(t.question), ...Object.values(t.colour), ...Object.values(t.shape), ...t.count, ...Object.values(t.position));
  }
  return out;
}

/**
 * The stage-2 mix for a non-English share `p`: English 1 − p, each of the five other languages p / 5
 * (Parrot's setting: English-dominated instruction data).
 */
export function mixForShare(p: number): Record<Language, number> {
  if (!(p >= 0 && p <= 1)) throw new Error(`mixForShare: p must be in [0, 1], got ${p}`);
  const other = p / (LANGUAGES.length - 1);
  return Object.fromEntries(LANGUAGES.map((l) => [l, l === 'en' ? 1 - p : other])) as Record<Language, number>;
}

export const ENGLISH_ONLY: Record<Language, number> = mixForShare(0);
