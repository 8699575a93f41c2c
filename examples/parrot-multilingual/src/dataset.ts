/**
 * Data of the Parrot example. One task in six languages: "what colour are the shapes?" asked in
 * language L, answered by freely generating the colour word in L (no options to pick from).
 *
 *   stage 0 (text only):  user `{colour word in a random language A}\n{question in L}` → `{colour word in L}`
 *                         — the colour arrives as a word where the image will later sit; the LLM learns
 *                           to read colour words of every language and answer in the question's language.
 *   stages 1–2 (images):  user `<image>\n{question in L}` → `{colour word in L}`
 */
import * as tf from '@tensorflow/tfjs-core';
import { CharTokenizer, collateChat, type MultimodalBatch, type Tokenizer } from '@mllm/models';
import { COLOURS, drawScene, POSITIONS, SHAPES, type Colour, type Scene } from './scenes.js';
import { LANGUAGES, TEMPLATES, pick, pickLanguage, templateTexts, type Language } from './questions.js';

/** Chat template settings shared by training and evaluation: no system turn (shorter sequences). */
export const CHAT_OPTIONS = { systemPrompt: null } as const;

/** A character-level vocabulary covering every template text. */
export function exampleTokenizer(): CharTokenizer {
  return CharTokenizer.fromTexts(templateTexts());
}

/** The question of the task in `language` (the user turn after the image). */
export function questionOf(language: Language): string {
  return TEMPLATES[language].question.colour;
}

/** The expected answer: the colour word in the question's language. */
export function answerOf(language: Language, colour: Colour): string {
  return TEMPLATES[language].colour[colour];
}

/** One held-out or training question about an image. */
export interface ColourQuestion {
  language: Language;
  colour: Colour;
  scene: Scene;
}

/** A scene of one or two shapes of one colour (shape, position and count drawn too, as distractors). */
export function colourQuestion(rng: () => number, language: Language, imageSize: number): ColourQuestion {
  const colour = pick(rng, COLOURS);
  const scene = drawScene(rng, imageSize, { shape: pick(rng, SHAPES), colour, count: 1 + Math.floor(rng() * 2), position: pick(rng, POSITIONS) });
  return { language, colour, scene };
}

/** Stage-0 batch (text only): the colour as a word of a random language, the question in another. */
export function textBatch(rng: () => number, tokenizer: Tokenizer, size: number): MultimodalBatch {
  const samples = Array.from({ length: size }, () => {
    const colour = pick(rng, COLOURS);
    const given = pick(rng, LANGUAGES);
    const asked = pick(rng, LANGUAGES);
    return {
      messages: [
        { role: 'user' as const, content: `${answerOf(given, colour)}\n${questionOf(asked)}` },
        { role: 'assistant' as const, content: answerOf(asked, colour) },
      ],
    };
  });
  return collateChat(tokenizer, samples, CHAT_OPTIONS);
}

/** Image batch (stages 1–2): `size` questions with languages drawn from `mix`. */
export function imageBatch(rng: () => number, tokenizer: Tokenizer, size: number, imageSize: number, mix: Record<Language, number>): MultimodalBatch {
  const questions = Array.from({ length: size }, () => colourQuestion(rng, pickLanguage(rng, mix), imageSize));
  return tf.tidy(() =>
    collateChat(
      tokenizer,
      questions.map((q) => ({
        messages: [
          { role: 'user' as const, content: `<image>\n${questionOf(q.language)}` },
          { role: 'assistant' as const, content: answerOf(q.language, q.colour) },
        ],
        images: [tf.tensor3d(q.scene.pixels, [q.scene.size, q.scene.size, 3])],
      })),
      CHAT_OPTIONS,
    ) as unknown as tf.TensorContainer,
  ) as unknown as MultimodalBatch;
}

/**
 * The held-out set: `perLanguage` fresh questions per language, drawn from `seed` (the same for every
 * recipe and training seed: the comparisons are paired), grouped by language in LANGUAGES order.
 */
export function heldOutQuestions(rng: () => number, perLanguage: number, imageSize: number): ColourQuestion[] {
  return LANGUAGES.flatMap((language) => Array.from({ length: perLanguage }, () => colourQuestion(rng, language, imageSize)));
}
