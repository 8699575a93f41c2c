/**
 * The two skills of the example, both 4-way multiple choice answered with one letter A–D, so the
 * model's output vocabulary is the same before and after the multimodal stage:
 *
 *   text-only (learned first):  `7 1 C 5 3?`                              → `C`  (find the letter among digits, copy it)
 *   image QA (learned second):  `<image>\nA red B green C blue D yellow?` → the letter of the shape's colour
 *
 * Both are procedural and seeded, with a held-out split decided by a hash of the item (text: the
 * digits, letter and slot; images: the (colour, shape, position) combination), so training never
 * sees a held-out item.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CharTokenizer, collateChat, type MultimodalBatch, type Tokenizer } from '@mllm/models';
import { COLOURS, POSITIONS, SHAPES, pick, positionCentre, renderScene, type Colour, type Position, type Shape } from '../../parrot-multilingual/src/scenes.js';

export const LETTERS = ['A', 'B', 'C', 'D'] as const;
export type Letter = (typeof LETTERS)[number];

/** Chat template settings shared by training and evaluation: no system turn (shorter sequences). */
export const CHAT_OPTIONS = { systemPrompt: null } as const;

export type Split = 'train' | 'heldout';

/** One question of either skill. `pixels` is `[size, size, 3]` channels-last for image items, null for text. */
export interface Item {
  kind: 'text' | 'image';
  prompt: string;
  answer: Letter;
  pixels: Float32Array | null;
  size: number;
}

/** FNV-1a of a string (a deterministic, well-mixed split key). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** One in five items is held out. */
export function splitOf(key: string): Split {
  return fnv1a(key) % 5 === 0 ? 'heldout' : 'train';
}

/** The text-only find-and-copy question: four digits with the answer letter inserted at `slot` (0–4). */
export function textItem(digits: readonly number[], letter: Letter, slot: number): Item {
  const tokens = digits.map(String);
  tokens.splice(slot, 0, letter);
  return { kind: 'text', prompt: `${tokens.join(' ')}?`, answer: letter, pixels: null, size: 0 };
}

/** A random text item of `split` (rejection sampling over the split). */
export function sampleTextItem(rng: () => number, split: Split): Item {
  for (;;) {
    const digits = Array.from({ length: 4 }, () => Math.floor(rng() * 10));
    const letter = pick(rng, LETTERS);
    const slot = Math.floor(rng() * 5);
    if (splitOf(`text:${digits.join('')}:${letter}:${slot}`) === split) return textItem(digits, letter, slot);
  }
}

export const IMAGE_PROMPT = `${COLOURS.map((c, i) => `${LETTERS[i]} ${c}`).join(' ')}?`;

/** Image combinations held out: one (shape, position) pair in four per colour, chosen by hash. */
export function imageSplitOf(colour: Colour, shape: Shape, position: Position): Split {
  return fnv1a(`image:${colour}:${shape}:${position}`) % 4 === 0 ? 'heldout' : 'train';
}

/** One shape at `position`, its centre jittered by up to ±1.5 px and its half size in [size/8, size/6]. */
export function imageItem(colour: Colour, shape: Shape, position: Position, size: number, rng: () => number): Item {
  const [x, y] = positionCentre(position, size);
  const jitter = () => (rng() * 2 - 1) * 1.5;
  const radius = size / 8 + rng() * (size / 6 - size / 8);
  const scene = renderScene(size, [{ shape, colour, x: x + jitter(), y: y + jitter(), radius }]);
  return { kind: 'image', prompt: IMAGE_PROMPT, answer: LETTERS[COLOURS.indexOf(colour)], pixels: scene.pixels, size };
}

/** A random image item of `split`. */
export function sampleImageItem(rng: () => number, split: Split, size: number): Item {
  for (;;) {
    const colour = pick(rng, COLOURS);
    const shape = pick(rng, SHAPES);
    const position = pick(rng, POSITIONS);
    if (imageSplitOf(colour, shape, position) === split) return imageItem(colour, shape, position, size, rng);
  }
}

/** Every held-out image combination, `variants` jittered drawings each (fixed seed, deterministic order). */
export function heldOutImageItems(size: number, variants: number, rng: () => number): Item[] {
  const items: Item[] = [];
  for (const colour of COLOURS) {
    for (const shape of SHAPES) {
      for (const position of POSITIONS) {
        if (imageSplitOf(colour, shape, position) !== 'heldout') continue;
        for (let v = 0; v < variants; v++) items.push(imageItem(colour, shape, position, size, rng));
      }
    }
  }
  return items;
}

/** `count` distinct held-out text items drawn with a fixed seed. */
export function heldOutTextItems(count: number, rng: () => number): Item[] {
  const seen = new Set<string>();
  const items: Item[] = [];
  while (items.length < count) {
    const item = sampleTextItem(rng, 'heldout');
    if (seen.has(item.prompt)) continue;
    seen.add(item.prompt);
    items.push(item);
  }
  return items;
}

/** A character vocabulary covering both prompts and every answer. */
export function exampleTokenizer(): CharTokenizer {
  return CharTokenizer.fromTexts(['0123456789 ?', ...LETTERS, IMAGE_PROMPT]);
}

/** The user turn of an item (`<image>\n` before image questions). */
export function userTurn(item: Item): string {
  return item.kind === 'image' ? `<image>\n${item.prompt}` : item.prompt;
}

/** Collate items into a batch supervised on the answer letter (the caller disposes it). */
export function collateItems(tokenizer: Tokenizer, items: readonly Item[]): MultimodalBatch {
  return tf.tidy(() =>
    collateChat(
      tokenizer,
      items.map((item) => ({
        messages: [
          { role: 'user' as const, content: userTurn(item) },
          { role: 'assistant' as const, content: item.answer },
        ],
        images: item.pixels ? [tf.tensor3d(item.pixels, [item.size, item.size, 3])] : [],
      })),
      CHAT_OPTIONS,
    ) as unknown as tf.TensorContainer,
  ) as unknown as MultimodalBatch;
}
