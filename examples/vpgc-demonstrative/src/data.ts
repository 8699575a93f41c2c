/**
 * Data of the VPG-C example, all drawn from @mllm/vpgc's procedural scenes (16×16 pixels, a 2×2 grid
 * of regions, 2–3 objects):
 *
 * - stage 1 (the "pretrained MLLM"): captioning and region questions about one of 1–3 images, and
 *   text-only change sentences (see `stage1Sample`);
 * - stage 2 (VPG-C alone): synthetic discriminative "which image differs" samples (3 images, one
 *   edited in its least-attended object) from `SyntheticDifferenceGenerator`;
 * - evaluation: held-out "what changed between image 1 and image 2" questions (a task type never
 *   trained) as 4-way multiple choice over change descriptions, and held-out samples of the trained
 *   which-differs task as 3-way multiple choice over the image index.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng } from '@mllm/core';
import { CharTokenizer, collateChat, type MultimodalBatch, type Tokenizer } from '@mllm/models';
import {
  SyntheticDifferenceGenerator, applyEdit, describeEdit, objectPhrase, pick, randomInt, randomScene, regionName, renderScene,
  EDIT_KINDS, imageLines, type PatchAttentionReader, type Scene, type SyntheticSample,
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

/**
 * One stage-1 sample. The mix gives the "pretrained MLLM" what the paper's pretrained MLLMs bring
 * (an LLM that reads several images and writes change sentences) but no discriminative training:
 *
 * - 50 %: one image, captioning or a region question;
 * - 25 %: two or three unrelated images, a question about one of them ("Describe image 2.");
 * - 25 %: text only, a scene written out as a caption and one hypothetical change to it
 *   ("Scene: … Suggest one change." → a `describeEdit` sentence). No image pair is ever compared.
 */
export function stage1Sample(rng: () => number): Stage1Sample {
  const draw = rng();
  const newScene = () => randomScene(rng, { size: SCENE.size, grid: SCENE.grid });
  if (draw < 0.5) {
    const scene = newScene();
    const { question, answer } = imageQuestion(rng, scene, 'the image');
    return { prompt: `<image>\n${question}`, answer, images: [renderScene(scene)] };
  }
  if (draw < 0.75) {
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

export function stage1Batch(rng: () => number, tokenizer: Tokenizer, batchSize: number): MultimodalBatch {
  return chatBatch(
    tokenizer,
    Array.from({ length: batchSize }, () => stage1Sample(rng)),
  );
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
