import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { createRng, disposeStateDict } from '@mllm/core';
import {
  COLOURS, SyntheticDifferenceGenerator, applyEdit, describeEdit, leastAttendedObject, patchPixels, qformerAttentionReader,
  randomScene, regionAttention, regionBox, renderScene, shapeLayout, type PatchAttentionReader,
} from '../index.js';
import { QFormerVPG } from '../qformer-vpg.js';
import { loadVPGStateDict } from '../state-dict-io.js';
import { lnVision64, qformer64 } from '../test-support/float64-reference.js';
import { useTestBackend } from '../test-support/backend.js';
import { paramsF64, randomParams, toTensors } from '../test-support/params.js';

useTestBackend();

const SIZE = 24;
const GRID = 3;
const PATCH = 4;
const PATCH_GRID = SIZE / PATCH; // 6

/** A pseudo-attention that only depends on the pixels (bright patches attract attention). */
const brightness: PatchAttentionReader = (images, size) =>
  images.map((image) => {
    const out = new Float64Array(PATCH_GRID * PATCH_GRID);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      const p = (y * size + x) * 3;
      out[Math.floor(y / PATCH) * PATCH_GRID + Math.floor(x / PATCH)] += image[p] + 2 * image[p + 1] + 3 * image[p + 2];
    }
    return out;
  });

function seeded(seed: number, attention: PatchAttentionReader = brightness, extra = {}) {
  return new SyntheticDifferenceGenerator({ seed, size: SIZE, grid: GRID, patchGrid: PATCH_GRID, attention, ...extra });
}

describe('synthetic scenes', () => {
  it('renders channels-last float32 pixels in [0, 1] with each shape centre in its colour', () => {
    const rng = createRng(5);
    for (let k = 0; k < 5; k++) {
      const scene = randomScene(rng, { size: SIZE, grid: GRID });
      const pixels = renderScene(scene);
      expect(pixels).toBeInstanceOf(Float32Array);
      expect(pixels.length).toBe(SIZE * SIZE * 3);
      expect(pixels.every((v) => v >= 0 && v <= 1)).toBe(true);
      for (const object of scene.objects) {
        const { centres } = shapeLayout(object, GRID, SIZE);
        expect(centres).toHaveLength(object.count);
        for (const [cx, cy] of centres) {
          const p = (Math.floor(cy) * SIZE + Math.floor(cx)) * 3;
          expect(Array.from(pixels.slice(p, p + 3))).toEqual(Array.from(Float32Array.from(COLOURS[object.colour])));
        }
      }
      // the top-left pixel of an empty region is background
      const used = new Set(scene.objects.map((o) => o.region));
      for (let r = 0; r < GRID * GRID; r++) if (!used.has(r)) {
        const [x0, y0] = regionBox(r, GRID, SIZE);
        expect(pixels[(y0 * SIZE + x0) * 3]).toBeCloseTo(scene.background, 6);
      }
    }
  });

  it('edits change pixels only inside the edited regions and name the change', () => {
    const rng = createRng(9);
    for (const kind of ['colour', 'shape', 'count', 'position'] as const) {
      const scene = randomScene(rng, { size: SIZE, grid: GRID });
      const region = scene.objects[0].region;
      const { scene: edited, edit } = applyEdit(scene, region, kind, rng);
      expect(edit.kind).toBe(kind);
      expect(scene.objects[0].region).toBe(region); // input untouched
      const a = renderScene(scene);
      const b = renderScene(edited);
      const touched = new Set([edit.before.region, edit.after.region]);
      let differs = false;
      for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) {
        const p = (y * SIZE + x) * 3;
        const same = a[p] === b[p] && a[p + 1] === b[p + 1] && a[p + 2] === b[p + 2];
        if (!same) {
          differs = true;
          const r = Math.floor(y / (SIZE / GRID)) * GRID + Math.floor(x / (SIZE / GRID));
          expect(touched.has(r), `${kind} changed pixel (${x}, ${y}) outside the edited regions`).toBe(true);
        }
      }
      expect(differs, `${kind} ${JSON.stringify(edit)}`).toBe(true);
      const sentence = describeEdit(edit, GRID);
      if (kind === 'colour') expect(sentence).toMatch(new RegExp(`${edit.before.colour} .* turned ${edit.after.colour}\\.$`));
      if (kind === 'shape') expect(sentence).toMatch(new RegExp(`became (an? )?${edit.after.shape}`));
      if (kind === 'count') expect(sentence).toMatch(/changed from \w+ to \w+\.$/);
      if (kind === 'position') expect(sentence).toMatch(/moved from the .+ to the .+\.$/);
    }
  });

  it('region attention averages patch mass per region; the least-attended occupied region is picked', () => {
    const mass = new Array(PATCH_GRID * PATCH_GRID).fill(1);
    // region 4 (centre) = patches (2..3, 2..3)
    for (const [x, y] of [[2, 2], [3, 2], [2, 3], [3, 3]]) mass[y * PATCH_GRID + x] = 0.25;
    const perRegion = regionAttention(mass, PATCH_GRID, GRID, SIZE);
    expect(perRegion[4]).toBeCloseTo(0.25, 12);
    expect(perRegion[0]).toBe(1);
    const scene = { size: SIZE, grid: GRID, background: 0.1, objects: [
      { region: 1, shape: 'circle' as const, colour: 'red' as const, count: 1 },
      { region: 4, shape: 'square' as const, colour: 'blue' as const, count: 2 },
    ] };
    expect(leastAttendedObject(scene, perRegion)).toBe(4);
    expect(() => regionAttention(mass.slice(1), PATCH_GRID, GRID, SIZE)).toThrow(/must have patchGrid² = 36 entries, got 35/);
  });

  it('is seeded and deterministic, per index, independent of call order', () => {
    const a = seeded(42);
    const b = seeded(42);
    const late = b.sample(4);
    const first = a.samples(0, 6);
    expect(first[4].images.map((i) => Array.from(i))).toEqual(late.images.map((i) => Array.from(i)));
    expect(first[4].prompt).toBe(late.prompt);
    expect(first[4].answer).toBe(late.answer);
    const other = seeded(43).samples(0, 6);
    expect(other.map((s) => s.answer)).not.toEqual(first.map((s) => s.answer));
    const tasks = new Set(a.samples(0, 30).map((s) => s.task));
    expect(tasks).toEqual(new Set(['what-changed', 'which-differs']));
  });

  it('builds what-changed and which-differs samples with the answer naming the edited image', () => {
    const changed = seeded(1, brightness, { task: 'what-changed' }).sample(0);
    expect(changed.images).toHaveLength(2);
    expect(changed.prompt.split('<image>')).toHaveLength(3);
    expect(changed.answer).toBe(describeEdit(changed.edit, GRID));
    expect(Array.from(changed.images[0])).toEqual(Array.from(renderScene(changed.original)));
    expect(Array.from(changed.images[1])).toEqual(Array.from(renderScene(changed.edited)));
    const differs = seeded(2, brightness, { task: 'which-differs', numImages: 4, imagePlaceholder: '<img>' }).sample(3);
    expect(differs.images).toHaveLength(4);
    expect(differs.prompt.split('<img>')).toHaveLength(5);
    expect(differs.answer.startsWith(`Image ${differs.editedImage + 1}. `)).toBe(true);
    differs.images.forEach((image, i) => {
      expect(Array.from(image)).toEqual(Array.from(renderScene(i === differs.editedImage ? differs.edited : differs.original)));
    });
    expect(() => seeded(1, brightness, { editKinds: ['rotate'] })).toThrow(/editKinds must be a non-empty subset/);
    expect(() => seeded(1, brightness, { patchGrid: 2 })).toThrow(/patchGrid must be an integer ≥ grid \(3\), got 2/);
  });

  it('edits the region the VPG attends to least (Q-Former cross-attention, checked against float64)', () => {
    const vpg = new QFormerVPG({
      qformer: { hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 16, encoderWidth: PATCH * PATCH * 3 },
      numQueryTokens: 4,
      llmHiddenSize: 8,
    });
    const shapes = [...paramsF64(vpg)].map(([n, v]) => [n, v.shape] as [string, number[]]);
    const params = randomParams(shapes, 77, 0.6);
    const tensors = toTensors(params);
    loadVPGStateDict(vpg, tensors);
    disposeStateDict(tensors);
    const reader = qformerAttentionReader(vpg, { patchGrid: PATCH_GRID });
    const generator = seeded(7, reader);
    const start = tf.memory().numTensors;
    const samples = generator.samples(0, 4);
    expect(tf.memory().numTensors).toBe(start);
    const c = { hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 2, encoderWidth: PATCH * PATCH * 3, crossAttentionFreq: 2, layerNormEps: 1e-12 };
    const regionsPicked = new Set<number>();
    for (const sample of samples) {
      // independent: raw patches (row-major patch grid, row-major pixels in a patch, channels last)
      const original = renderScene(sample.original);
      const Dv = PATCH * PATCH * 3;
      const features = new Float64Array(PATCH_GRID * PATCH_GRID * Dv);
      for (let py = 0; py < PATCH_GRID; py++) for (let px = 0; px < PATCH_GRID; px++) {
        for (let y = 0; y < PATCH; y++) for (let x = 0; x < PATCH; x++) for (let ch = 0; ch < 3; ch++) {
          features[(py * PATCH_GRID + px) * Dv + (y * PATCH + x) * 3 + ch] = original[((py * PATCH + y) * SIZE + px * PATCH + x) * 3 + ch];
        }
      }
      const normed = lnVision64(params, features, PATCH_GRID * PATCH_GRID, Dv);
      const { attentionMass } = qformer64(params, 'Qformer.', c, params.get('query_tokens')!.data, 4, normed, PATCH_GRID * PATCH_GRID);
      const perRegion = Array.from({ length: GRID * GRID }, (_, r) => {
        const ry = Math.floor(r / GRID), rx = r % GRID;
        let s = 0;
        for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) s += attentionMass[(ry * 2 + y) * PATCH_GRID + rx * 2 + x];
        return s / 4;
      });
      sample.regionAttention.forEach((v, r) => expect(v).toBeCloseTo(perRegion[r], 5));
      const occupied = sample.original.objects.map((o) => o.region);
      const least = occupied.reduce((best, r) => (perRegion[r] < perRegion[best] ? r : best), occupied[0]);
      expect(sample.edit.region).toBe(least);
      expect(occupied.every((r) => perRegion[r] >= perRegion[sample.edit.region])).toBe(true);
      regionsPicked.add(sample.edit.region);
    }
    expect(regionsPicked.size).toBeGreaterThan(1); // the choice depends on the image, not a constant
    const px = patchPixels(tf.zeros([1, SIZE, SIZE, 3]) as tf.Tensor4D, PATCH);
    expect(px.shape).toEqual([1, 36, 48]);
    px.dispose();
    vpg.dispose();
  });
});
