/**
 * Data of the VPG-C example, all drawn from @mllm/vpgc's procedural scenes (16×16 pixels, a 2×2 grid
 * of regions):
 *
 * - stage 1 (the "pretrained MLLM"): region questions and captions of busy scenes (an object in every
 *   region), questions about one of 2–3 sparser images, and text-only change sentences (`stage1Sample`);
 * - experiment A (instruction-specific detail under a visual-prompt bottleneck): region questions
 *   ("What colour is the shape in the top left?") on busy scenes, trained on in stage 2 and scored
 *   held out as multiple choice over every value of the asked attribute;
 * - experiment B (the paper's zero-shot claim): synthetic discriminative "which image differs"
 *   samples (3 images, one edited in its least-attended object) from `SyntheticDifferenceGenerator`
 *   to train on; held-out "what changed between image 1 and image 2" questions (a task type never
 *   trained) as 4-way multiple choice over change descriptions, and held-out samples of the trained
 *   which-differs task as 3-way multiple choice over the image index.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng } from '@mllm/core';
import { CharTokenizer, collateChat, type MultimodalBatch, type Tokenizer } from '@mllm/models';
import {
  SyntheticDifferenceGenerator, applyEdit, describeEdit, objectPhrase, pick, randomInt, randomScene, regionName, renderScene,
  COLOUR_NAMES, EDIT_KINDS, imageLines, type PatchAttentionReader, type Scene, type SyntheticSample,
} from '@mllm/vpgc';

/** Chat template settings for training and scoring: no system turn (shorter sequences). */
export const CHAT_OPTIONS = { systemPrompt: null } as const;

/** Scene geometry: 16×16 pixels, 2×2 regions. */
export const SCENE = { size: 16, grid: 2 } as const;

/** Every character any prompt or answer can use. */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;?!\'-\n';

export function exampleTokenizer(): CharTokenizer {
  return CharTokenizer.fromTexts([ALPHABET]);
}

// ------------------------------------------------------------------ stage 1: single-image data

/** "The red circle in the top left. The two blue squares in the bottom right." */
export function caption(scene: Scene): string {
  return scene.objects
    .map((o) => {
      const phrase = objectPhrase(o);
      return `${phrase[0].toUpperCase()}${phrase.slice(1)} in the ${regionName(o.region, scene.grid)}.`;
    })
    .join(' ');
}

export interface Stage1Sample {
  prompt: string;
  answer: string;
  images: Float32Array[];
}

const capitalized = (text: string) => `${text[0].toUpperCase()}${text.slice(1)}`;

/** A captioning or region question about one scene. */
function imageQuestion(rng: () => number, scene: Scene, imageName: string): { question: string; answer: string } {
  if (rng() < 0.5) return { question: `Describe ${imageName}.`, answer: caption(scene) };
  const region = randomInt(rng, SCENE.grid * SCENE.grid);
  const object = scene.objects.find((o) => o.region === region);
  return {
    question: `What is in the ${regionName(region, SCENE.grid)} of ${imageName}?`,
    answer: object ? `${capitalized(objectPhrase(object))}.` : 'Nothing.',
  };
}

// ------------------------------------------------------------------ experiment A: region questions

/** The answers of a region question, i.e. its multiple-choice options: the 6 colour words. */
export const COLOUR_OPTIONS = COLOUR_NAMES.map((c) => `${capitalized(c)}.`);

/** A busy scene: every one of the 4 regions holds an object, in any of the 6 colours. */
export function busyScene(rng: () => number): Scene {
  const regions = SCENE.grid * SCENE.grid;
  return randomScene(rng, { size: SCENE.size, grid: SCENE.grid, minObjects: regions, maxObjects: regions });
}

/** A sparse scene: one object (1–4 shapes of one colour) in one of the 4 regions. */
export function sparseScene(rng: () => number): Scene {
  return randomScene(rng, { size: SCENE.size, grid: SCENE.grid, minObjects: 1, maxObjects: 1 });
}

/**
 * "Colour in region 3?" → "Red.": a question about ONE region. Regions are numbered 1–4 row-major
 * (1 = top left, 4 = bottom right), so with the character tokenizer the region is one token.
 */
export function regionQuestionText(region: number): string {
  return `Colour in region ${region + 1}?`;
}

/** A region question about a fresh scene: busy (the asked region is one of 4 occupied) or sparse (the only object's region). */
export function regionSample(rng: () => number, busy: boolean): Stage1Sample {
  const scene = busy ? busyScene(rng) : sparseScene(rng);
  const object = busy ? pick(rng, scene.objects) : scene.objects[0];
  return { prompt: `<image>\n${regionQuestionText(object.region)}`, answer: `${capitalized(object.colour)}.`, images: [renderScene(scene)] };
}

/** Held-out region questions (6-way multiple choice over the colour words), scenes from `seed`. */
export function regionQuestions(seed: number, count: number, busy = true): ChoiceQuestion[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, () => {
    const sample = regionSample(rng, busy);
    return { prompt: sample.prompt, images: sample.images, options: [...COLOUR_OPTIONS], answerIndex: COLOUR_OPTIONS.indexOf(sample.answer) };
  });
}

/** Experiment A's instruction data: region questions on busy scenes. */
export function regionBatch(rng: () => number, tokenizer: Tokenizer, batchSize: number): MultimodalBatch {
  return chatBatch(tokenizer, Array.from({ length: batchSize }, () => regionSample(rng, true)));
}

/**
 * Stage 1 trains the "pretrained MLLM": what the paper's pretrained MLLMs bring — a VPG whose fixed
 * queries capture an image's salient content, an LLM that answers questions about an image, reads
 * several images and writes change sentences — but neither busy scenes nor any discriminative
 * training. Three of four steps are single-image batches (`stage1ImageSample`), every fourth a
 * batch of longer multi-image / text-only samples (`stage1LanguageSample`; kept apart because a
 * batch pads to its longest sample).
 *
 * Single image, one sparse scene (ONE object):
 * - 50 %: "Colour in region k?" about its region → its colour;
 * - 50 %: "Where is the shape?" → "Region k." (the VPG learns where things are).
 *
 * On a sparse scene the salient content IS the asked detail, so the fixed queries suffice; on a busy
 * scene (experiment A) they must carry four objects in N tokens, and the region decides which.
 */
export function stage1ImageSample(rng: () => number): Stage1Sample {
  if (rng() < 0.5) return regionSample(rng, false);
  const scene = sparseScene(rng);
  return { prompt: '<image>\nWhere is the shape?', answer: `Region ${scene.objects[0].region + 1}.`, images: [renderScene(scene)] };
}

/**
 * The language experiment B needs, without comparing images:
 * - 50 %: two or three scenes of 2–3 objects (as the synthetic generator draws them), a question
 *   about one of them ("Describe image 2.", "What is in the top left of image 3?");
 * - 50 %: text only, a scene written out as a caption and one hypothetical change to it
 *   ("Scene: … Suggest one change." → a `describeEdit` sentence). No image pair is ever compared.
 */
export function stage1LanguageSample(rng: () => number): Stage1Sample {
  const newScene = () => randomScene(rng, { size: SCENE.size, grid: SCENE.grid });
  if (rng() < 0.5) {
    const scenes = Array.from({ length: 2 + randomInt(rng, 2) }, newScene);
    const k = randomInt(rng, scenes.length);
    const { question, answer } = imageQuestion(rng, scenes[k], `image ${k + 1}`);
    return { prompt: imageLines(scenes.length, '<image>') + question, answer, images: scenes.map(renderScene) };
  }
  const scene = newScene();
  const region = pick(rng, scene.objects).region;
  const { edit } = applyEdit(scene, region, pick(rng, EDIT_KINDS), rng);
  return { prompt: `Scene: ${caption(scene)}\nSuggest one change.`, answer: describeEdit(edit, SCENE.grid), images: [] };
}

/** A batch of (prompt, answer, images) conversations; images `[S, S, 3]` channels last. */
export function chatBatch(tokenizer: Tokenizer, samples: Array<{ prompt: string; answer: string; images: Float32Array[] }>): MultimodalBatch {
  return tf.tidy(() =>
    collateChat(
      tokenizer,
      samples.map((s) => ({
        messages: [
          { role: 'user' as const, content: s.prompt },
          { role: 'assistant' as const, content: s.answer },
        ],
        images: s.images.map((pixels) => tf.tensor3d(pixels, [SCENE.size, SCENE.size, 3])),
      })),
      CHAT_OPTIONS,
    ) as unknown as tf.TensorContainer,
  ) as unknown as MultimodalBatch;
}

/** Stage-1 batch of step `step`: every fourth step multi-image / text-only samples, the others single-image. */
export function stage1Batch(rng: () => number, tokenizer: Tokenizer, batchSize: number, step: number): MultimodalBatch {
  const sample = step % 4 === 0 ? stage1LanguageSample : stage1ImageSample;
  return chatBatch(tokenizer, Array.from({ length: batchSize }, () => sample(rng)));
}

// ------------------------------------------------------------------ stage 2 and evaluation: image pairs

/** The synthetic generator of one task, with the frozen VPG's attention choosing the edited object. */
export function differenceGenerator(
  seed: number,
  task: 'which-differs' | 'what-changed',
  attention: PatchAttentionReader,
  patchGrid: number,
): SyntheticDifferenceGenerator {
  return new SyntheticDifferenceGenerator({ seed, task, numImages: 3, size: SCENE.size, grid: SCENE.grid, patchGrid, attention });
}

export function syntheticBatch(tokenizer: Tokenizer, samples: SyntheticSample[]): MultimodalBatch {
  return chatBatch(tokenizer, samples.map((s) => ({ prompt: s.prompt, answer: s.answer, images: s.images })));
}

/** A multiple-choice question: the options are continuations of the assistant turn. */
export interface ChoiceQuestion {
  prompt: string;
  images: Float32Array[];
  options: string[];
  answerIndex: number;
}

/**
 * What-changed as 4-way multiple choice: the true description and 3 distractors, each a visible
 * edit of the same original scene (another object or another change), in a seeded random order.
 * Every option names an object of image 1, so only the change itself tells them apart.
 */
export function whatChangedQuestion(sample: SyntheticSample, seed: number, numOptions = 4): ChoiceQuestion {
  const rng = createRng(seed);
  const truth = sample.answer;
  const originalPixels = sample.images[0];
  const options = new Set<string>([truth]);
  for (let tries = 0; options.size < numOptions && tries < 200; tries++) {
    const region = pick(rng, sample.original.objects).region;
    const { scene, edit } = applyEdit(sample.original, region, pick(rng, EDIT_KINDS), rng);
    const pixels = renderScene(scene);
    if (!pixels.some((v, i) => v !== originalPixels[i])) continue;
    options.add(describeEdit(edit, sample.original.grid));
  }
  if (options.size < numOptions) throw new Error(`whatChangedQuestion: found only ${options.size} distinct options`);
  const shuffled = shuffle([...options], rng);
  return { prompt: sample.prompt, images: sample.images, options: shuffled, answerIndex: shuffled.indexOf(truth) };
}

/** Which-differs as multiple choice over "Image k." (the start of the trained answer). */
export function whichDiffersQuestion(sample: SyntheticSample): ChoiceQuestion {
  const options = sample.images.map((_, k) => `Image ${k + 1}.`);
  return { prompt: sample.prompt, images: sample.images, options, answerIndex: sample.editedImage };
}

function shuffle<T>(items: T[], rng: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}
