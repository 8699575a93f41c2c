/**
 * Seeded synthetic discriminative samples (VPG-C §3.3, without SAM / ChatGPT / diffusion):
 *
 * 1. draw a procedural scene (exact object regions);
 * 2. read the VPG's cross-attention on the original image (mass per patch → mean per region);
 * 3. edit the least-attended object (colour, shape, count or position) and redraw;
 * 4. write the instruction and the target sentence naming the change.
 *
 * Sample `i` depends only on `(seed, i)` and the attention reader, so datasets are reproducible and
 * can be generated in any order.
 */
import { createRng } from '@mllm/core';
import { EDIT_KINDS, applyEdit, describeEdit, type EditKind, type SceneEdit } from './edit.js';
import { renderScene } from './render.js';
import { leastAttendedObject, regionAttention } from './region-attention.js';
import { pick, randomInt, randomScene, type Scene } from './scene.js';
import { SYNTHETIC_TASKS, TEMPLATE_COUNTS, whatChangedText, whichDiffersText, type SyntheticTask } from './templates.js';

/**
 * Reads attention per patch for images `[size, size, 3]` (channels last): returns, per image, the
 * mass per patch of a `patchGrid × patchGrid` grid, row-major.
 */
export type PatchAttentionReader = (images: Float32Array[], size: number) => ArrayLike<number>[];

export interface SyntheticGeneratorOptions {
  seed: number;
  /** Patches per side the attention reader returns. */
  patchGrid: number;
  attention: PatchAttentionReader;
  /** Canvas side (default 32). */
  size?: number;
  /** Regions per side (default 3). */
  grid?: number;
  /** Allowed edits (default all four). */
  editKinds?: readonly EditKind[];
  /** Task of every sample, or 'mixed' (default) to alternate by a seeded draw. */
  task?: SyntheticTask | 'mixed';
  /** Images in a which-differs sample (default 3). */
  numImages?: number;
  /** Image placeholder in prompts (default the host tokenizer's `<image>`). */
  imagePlaceholder?: string;
}

export interface SyntheticSample {
  task: SyntheticTask;
  /** Each `[size, size, 3]` float32 in [0, 1], channels last, in prompt order. */
  images: Float32Array[];
  size: number;
  prompt: string;
  answer: string;
  edit: SceneEdit;
  /** Index of the edited image in `images`. */
  editedImage: number;
  original: Scene;
  edited: Scene;
  /** Mean attention per region of the original image (what chose the edit). */
  regionAttention: number[];
}

/** 32-bit mix of (seed, index) → a per-sample seed. */
export function sampleSeed(seed: number, index: number): number {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(index | 0, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export class SyntheticDifferenceGenerator {
  readonly options: Required<SyntheticGeneratorOptions>;

  constructor(options: SyntheticGeneratorOptions) {
    this.options = {
      size: 32,
      grid: 3,
      editKinds: EDIT_KINDS,
      task: 'mixed',
      numImages: 3,
      imagePlaceholder: '<image>',
      ...options,
    };
    const o = this.options;
    if (!Number.isFinite(o.seed)) throw new Error(`SyntheticDifferenceGenerator: seed must be a finite number, got ${o.seed}`);
    if (!Number.isInteger(o.patchGrid) || o.patchGrid < o.grid) {
      throw new Error(`SyntheticDifferenceGenerator: patchGrid must be an integer ≥ grid (${o.grid}), got ${o.patchGrid}`);
    }
    if (typeof o.attention !== 'function') throw new Error('SyntheticDifferenceGenerator: attention must be a PatchAttentionReader function');
    if (o.editKinds.length === 0 || o.editKinds.some((k) => !EDIT_KINDS.includes(k))) {
      throw new Error(`SyntheticDifferenceGenerator: editKinds must be a non-empty subset of ${EDIT_KINDS.join(', ')}, got ${JSON.stringify(o.editKinds)}`);
    }
    if (o.task !== 'mixed' && !SYNTHETIC_TASKS.includes(o.task)) {
      throw new Error(`SyntheticDifferenceGenerator: task must be one of ${SYNTHETIC_TASKS.join(', ')}, mixed; got ${String(o.task)}`);
    }
    if (!Number.isInteger(o.numImages) || o.numImages < 2) throw new Error(`SyntheticDifferenceGenerator: numImages must be an integer ≥ 2, got ${o.numImages}`);
  }

  /** Sample `index` (deterministic in seed and index). */
  sample(index: number): SyntheticSample {
    if (!Number.isInteger(index) || index < 0) throw new Error(`SyntheticDifferenceGenerator.sample: index must be a non-negative integer, got ${index}`);
    const o = this.options;
    const rng = createRng(sampleSeed(o.seed, index));
    const original = randomScene(rng, { size: o.size, grid: o.grid, maxObjects: o.grid * o.grid - 1 });
    const originalPixels = renderScene(original);
    const [mass] = o.attention([originalPixels], o.size);
    const perRegion = regionAttention(mass, o.patchGrid, o.grid, o.size);
    const target = leastAttendedObject(original, perRegion);
    // An edit must be visible at this resolution (e.g. a tiny circle and square can rasterise alike).
    let attempt: { scene: Scene; edit: SceneEdit; pixels: Float32Array } | null = null;
    for (let tries = 0; tries < 16 && !attempt; tries++) {
      const { scene, edit } = applyEdit(original, target, pick(rng, o.editKinds), rng);
      const pixels = renderScene(scene);
      if (pixels.some((v, i) => v !== originalPixels[i])) attempt = { scene, edit, pixels };
    }
    if (!attempt) throw new Error(`SyntheticDifferenceGenerator: no visible edit of region ${target} at size ${o.size}; use a larger size`);
    const { scene: edited, edit, pixels: editedPixels } = attempt;
    const description = describeEdit(edit, o.grid);
    const task: SyntheticTask = o.task === 'mixed' ? pick(rng, SYNTHETIC_TASKS) : o.task;
    const variant = randomInt(rng, TEMPLATE_COUNTS[task]);
    if (task === 'what-changed') {
      const text = whatChangedText(description, variant, o.imagePlaceholder);
      return { task, images: [originalPixels, editedPixels], size: o.size, ...text, edit, editedImage: 1, original, edited, regionAttention: perRegion };
    }
    const odd = randomInt(rng, o.numImages);
    const images = Array.from({ length: o.numImages }, (_, i) => (i === odd ? editedPixels : originalPixels.slice()));
    const text = whichDiffersText(description, o.numImages, odd, variant, o.imagePlaceholder);
    return { task, images, size: o.size, ...text, edit, editedImage: odd, original, edited, regionAttention: perRegion };
  }

  /** Samples `start … start + count − 1`. */
  samples(start: number, count: number): SyntheticSample[] {
    return Array.from({ length: count }, (_, i) => this.sample(start + i));
  }
}
