/**
 * Training batches and the held-out benchmark of the Parrot example. Training prompts are built
 * with @mllm/eval's `buildPrompt`, the same function that scores the held-out set, so the model
 * is trained on exactly the prompt format it is evaluated on.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CharTokenizer, collateChat, type MultimodalBatch, type Tokenizer } from '@mllm/models';
import { ANSWER_INSTRUCTIONS, buildPrompt, type BenchmarkRowInput, type OptionChoice } from '@mllm/eval';
import { LETTERS, LANGUAGES, makeSample, pick, pickLanguage, templateTexts, type Language, type McqSample, type OptionOrder, type QuestionKind } from './questions.js';

/** Chat template settings shared by training and evaluation: no system turn (shorter sequences). */
export const CHAT_OPTIONS = { systemPrompt: null } as const;

/** A character-level vocabulary covering every template text and answer instruction. */
export function exampleTokenizer(): CharTokenizer {
  return CharTokenizer.fromTexts([...templateTexts(), ...Object.values(ANSWER_INSTRUCTIONS)]);
}

/** The user turn of a sample: `<image>\n` + question, options and the localized instruction. */
export function promptOf(sample: McqSample): string {
  const options: OptionChoice[] = sample.options.map((text, i) => ({ letter: LETTERS[i], text }));
  return buildPrompt({ question: sample.question, hint: undefined, options, language: sample.language });
}

/** One training batch: `size` samples with languages drawn from `mix`. */
export function trainingBatch(
  rng: () => number,
  tokenizer: Tokenizer,
  size: number,
  imageSize: number,
  mix: Record<Language, number>,
  kinds: readonly QuestionKind[],
  optionOrder: OptionOrder,
): MultimodalBatch {
  const samples = Array.from({ length: size }, () =>
    makeSample(rng, pickLanguage(rng, mix), imageSize, pick(rng, kinds), { optionOrder }),
  );
  return tf.tidy(() =>
    collateChat(
      tokenizer,
      samples.map((s) => ({
        messages: [
          { role: 'user' as const, content: `<image>\n${promptOf(s)}` },
          { role: 'assistant' as const, content: s.answer },
        ],
        images: [tf.tensor3d(s.scene.pixels, [s.scene.size, s.scene.size, 3])],
      })),
      CHAT_OPTIONS,
    ) as unknown as tf.TensorContainer,
  ) as unknown as MultimodalBatch;
}

/** A balanced held-out set in the MMMB format: `perLanguage` questions per language, kinds cycled. */
export function heldOutRows(
  seed: number,
  perLanguage: number,
  imageSize: number,
  kinds: readonly QuestionKind[],
  optionOrder: OptionOrder,
  rngFactory: (seed: number) => () => number,
): BenchmarkRowInput[] {
  const rng = rngFactory(seed);
  const rows: BenchmarkRowInput[] = [];
  let index = 0;
  for (const language of LANGUAGES) {
    for (let i = 0; i < perLanguage; i++) {
      const sample = makeSample(rng, language, imageSize, kinds[i % kinds.length], { optionOrder });
      rows.push({
        index: index++,
        question: sample.question,
        options: Object.fromEntries(sample.options.map((text, k) => [LETTERS[k], text])),
        answer: sample.answer,
        category: sample.kind,
        l2Category: 'perception',
        language,
        image: { width: imageSize, height: imageSize, data: sample.scene.pixels },
      });
    }
  }
  return rows;
}
