/**
 * Multiple-choice questions about procedural scenes, with templates written per language
 * (en, zh, pt, ar, tr, ru). Each question has four options A–D, one correct.
 */
export { pick } from './scenes.js';
import { COLOURS, POSITIONS, SHAPES, drawScene, pick, shuffle, type Colour, type Position, type Scene, type Shape } from './scenes.js';

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

export const LETTERS = ['A', 'B', 'C', 'D'] as const;

/** How a question's four options are ordered. */
export type OptionOrder = 'fixed' | 'per-language' | 'shuffled';

/**
 * With `per-language`, each language's template lists the options in its own fixed order (the
 * English order for `en`), so the answer letter depends on the image AND on the prompt's language:
 * a model that learned the English mapping answers other languages wrongly until it learns theirs.
 */
export const LANGUAGE_OPTION_ORDER: Record<Language, [number, number, number, number]> = {
  en: [0, 1, 2, 3],
  zh: [1, 2, 3, 0],
  pt: [2, 3, 0, 1],
  ar: [3, 0, 1, 2],
  tr: [1, 0, 3, 2],
  ru: [2, 3, 1, 0],
};

export interface McqSample {
  language: Language;
  kind: QuestionKind;
  question: string;
  /** Option texts for A–D in this language. */
  options: [string, string, string, string];
  /** Correct letter. */
  answer: (typeof LETTERS)[number];
  scene: Scene;
}

/** One random question in `language` about a fresh scene of `size`×`size` pixels. */
export function makeSample(
  rng: () => number,
  language: Language,
  size: number,
  kind?: QuestionKind,
  options: { optionOrder?: OptionOrder } = {},
): McqSample {
  const t = TEMPLATES[language];
  const questionKind = kind ?? pick(rng, QUESTION_KINDS);
  const shape = pick(rng, SHAPES);
  const colour = pick(rng, COLOURS);
  const position = pick(rng, POSITIONS);
  const count = questionKind === 'position' ? 1 : questionKind === 'count' ? 1 + Math.floor(rng() * 4) : 1 + Math.floor(rng() * 2);
  const scene = drawScene(rng, size, { shape, colour, count, position });
  let correct: string;
  let all: string[];
  switch (questionKind) {
    case 'colour':
      correct = t.colour[colour];
      all = COLOURS.map((c) => t.colour[c]);
      break;
    case 'shape':
      correct = t.shape[shape];
      all = SHAPES.map((s) => t.shape[s]);
      break;
    case 'count':
      correct = t.count[count - 1];
      all = [...t.count];
      break;
    case 'position':
      correct = t.position[position];
      all = POSITIONS.map((p) => t.position[p]);
      break;
  }
  // MMMB keeps one option order per question; see OptionOrder for the three choices here.
  const order = options.optionOrder ?? 'fixed';
  const ordered = (
    order === 'shuffled' ? shuffle(rng, all) : order === 'per-language' ? LANGUAGE_OPTION_ORDER[language].map((k) => all[k]) : all
  ) as McqSample['options'];
  const answer = LETTERS[ordered.indexOf(correct)];
  return { language, kind: questionKind, question: t.question[questionKind], options: ordered, answer, scene };
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
  const out: string[] = [...LETTERS, '. ', '\n'];
  for (const l of LANGUAGES) {
    const t = TEMPLATES[l];
    out.push(...Object.values(t.question), ...Object.values(t.colour), ...Object.values(t.shape), ...t.count, ...Object.values(t.position));
  }
  return out;
}

/** The English-heavy mix Parrot was made for: 90 % English, the rest split evenly. */
export const ENGLISH_HEAVY_MIX: Record<Language, number> = { en: 0.9, zh: 0.02, pt: 0.02, ar: 0.02, tr: 0.02, ru: 0.02 };
